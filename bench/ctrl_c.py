#!/usr/bin/env python3
"""Figure 7 - Ctrl-C to exit: SIGINT to a running `gpuforge apply --profile base` until the
process has exited, with today's cancel (polled every 0.25 s, SIGINT to ansible-playbook,
its tree terminated only after a grace period) against the old one (ansible-runner's 5 s
poll, then SIGTERM/SIGKILL to the tree), on the same sandbox host.

    .venv/bin/python bench/ctrl_c.py [--rounds 3]

The old side is today's gpuforge with the old cancel put back in the process (OLD below):
everything else (check, lock, history, progress) is the same code on both sides.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    VENV_BIN,
    env,
    interleave,
    load,
    ratio,
    sandbox_down,
    sandbox_up,
    state_dir,
    stats,
    table,
    write,
)

# Today's gpuforge, or (argv[1] == "old") with the cancel it had before: ansible-runner's
# default poll and an immediate SIGTERM/SIGKILL of ansible-playbook's tree.
DRIVER = """
import os, sys
from toolkit import process_tree, runner
if sys.argv.pop(1) == "old":
    class OldStop:
        def __init__(self, cancel, grace_s=0.0):
            self.cancel, self.done = cancel, False
        def __call__(self):
            if self.cancel.is_set() and not self.done:
                self.done = True
                process_tree.terminate_tree(os.getpid(), "ansible-playbook")
            return self.cancel.is_set()
        def stop_leftovers(self):
            pass
    runner.CANCEL_POLL_S = 5.0
    runner.GracefulStop = OldStop
from toolkit.cli.app import main
sys.exit(main())
"""


def one(side: str, inventory: str) -> float:
    """Seconds from SIGINT (sent once the play is under way) to the process's exit."""
    proc = subprocess.Popen(
        [str(VENV_BIN / "python"), "-c", DRIVER, side, "apply", "-i", inventory, "--profile",
         "base", "--yes", "--json"], env=env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    while "Preflight" not in proc.stderr.readline():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{side}: the play never reached Preflight")
    time.sleep(2.0)  # well inside a task, as a person's Ctrl-C would be
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    took = time.perf_counter() - t0
    if proc.returncode != 130 or json.loads(out)["status"] != "cancelled":
        raise SystemExit(f"{side}: exited {proc.returncode}, not a recorded cancel:\n"
                         f"{err[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    state_dir()
    name = "bench-ctrlc"
    box = sandbox_up(name, 1)
    try:
        load_before = load()
        times = interleave({"new": lambda: one("new", box["inventory"]),
                            "old": lambda: one("old", box["inventory"])}, args.rounds)
        load_after = load()
    finally:
        sandbox_down(name)
    data = {"rounds": args.rounds, "load": [load_before, load_after],
            "sides": {k: stats(v) for k, v in times.items()},
            "new_over_old": ratio(times["new"], times["old"])}
    path = write("ctrl_c", data)
    print(table(["side", "median s", "min..max s"],
                [[k, v["median"], f"{v['min']}..{v['max']}"] for k, v in data["sides"].items()]))
    print(f"new/old: {data['new_over_old']}  (kept in {path})")


if __name__ == "__main__":
    main()
