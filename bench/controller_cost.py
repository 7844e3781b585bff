#!/usr/bin/env python3
"""Figure 5 - controller cost: wall time of `gpuforge --help` and `gpuforge runs list`
(targets < 0.3 s and < 0.5 s), and the controller's peak memory during a multi-host apply
of the base profile, sampled from /proc, on 2 hosts vs N hosts (does it grow with events?).

    .venv/bin/python bench/controller_cost.py [--hosts 8] [--rounds 15]

Uses hyperfine when it is installed, a Python loop otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    GPUFORGE,
    env,
    load,
    sandbox_down,
    sandbox_up,
    state_dir,
    stats,
    table,
    timed,
    write,
)


def wall(cmd: list[str], rounds: int) -> dict[str, object]:
    e = env()
    if shutil.which("hyperfine"):
        out = state_dir() / "hyperfine.json"
        subprocess.run(["hyperfine", "-N", "--warmup", "2", "--runs", str(rounds),
                        "--export-json", str(out), " ".join(cmd)], env=e, check=True,
                       capture_output=True)
        times = json.loads(out.read_text(encoding="utf-8"))["results"][0]["times"]
        return {"tool": "hyperfine", **stats(times)}
    timed(cmd, e)
    return {"tool": "python loop", **stats([timed(cmd, e) for _ in range(rounds)])}


def tree_rss_kib(root: int) -> tuple[int, int]:
    """(RSS of the root process, RSS of the root and all its descendants), in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines()
                          if ":" in line)
        except OSError:
            continue
        pid = int(status.parent.name)
        children.setdefault(int(fields["PPid"]), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return rss.get(root, 0), total


def peak_apply(inventory: str, limit: str) -> dict[str, object]:
    cmd = [*GPUFORGE, "apply", "-i", inventory, "--profile", "base", "--yes", "--json",
           "--limit", limit]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    peaks = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            own, tree = tree_rss_kib(proc.pid)
            peaks[0], peaks[1] = max(peaks[0], own), max(peaks[1], tree)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    t0 = time.perf_counter()
    sampler.start()
    out, _ = proc.communicate(timeout=3600)
    done.set()
    sampler.join()
    run_id = json.loads(out)["run_id"]
    events = sum(1 for d in (state_dir() / "artifacts").glob(f"{run_id}-*/**/job_events/*"))
    return {"wall_s": round(time.perf_counter() - t0, 2), "peak_gpuforge_rss_mib":
            round(peaks[0] / 1024, 1), "peak_tree_rss_mib": round(peaks[1] / 1024, 1),
            "events": events, "run_id": run_id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--name", default="bench-fan",
                        help="Sandbox to use (started if absent, left up if it was up).")
    parser.add_argument("--no-apply", action="store_true", help="Only the CLI wall times.")
    args = parser.parse_args()
    result: dict[str, object] = {"load_start": load()}
    result["help"] = wall([*GPUFORGE, "--help"], args.rounds)
    result["runs_list"] = wall([*GPUFORGE, "runs", "list"], args.rounds)
    if not args.no_apply:
        state_file = state_dir() / "sandbox" / args.name / "state.json"
        started = not state_file.is_file()
        state = sandbox_up(args.name, args.hosts) if started else json.loads(
            state_file.read_text(encoding="utf-8"))
        try:
            names = [h["name"] for h in state["hosts"]]
            inv = str(state["inventory"])
            if started:  # converge fresh hosts: the measured runs are alike no-ops
                peak_apply(inv, ",".join(names))
            result["memory"] = {str(n): peak_apply(inv, ",".join(names[:n]))
                                for n in sorted({2, len(names)})}
        finally:
            if started:
                sandbox_down(args.name)
    result["load_end"] = load()
    path = write("controller_cost", result)
    rows = [[k, result[k]["median"], f"{result[k]['min']}..{result[k]['max']}",  # type: ignore[index]
             result[k]["tool"], t] for k, t in (("help", "< 0.3"), ("runs_list", "< 0.5"))]  # type: ignore[index]
    print(table(["command", "median s", "spread s", "tool", "target s"], rows))
    if "memory" in result:
        print(table(["hosts", "wall s", "events", "peak gpuforge RSS MiB", "peak tree RSS MiB"],
                    [[n, m["wall_s"], m["events"], m["peak_gpuforge_rss_mib"],
                      m["peak_tree_rss_mib"]]
                     for n, m in result["memory"].items()]))  # type: ignore[attr-defined]
    print(f"load {result['load_start']} -> {result['load_end']}; {path}")


if __name__ == "__main__":
    main()
