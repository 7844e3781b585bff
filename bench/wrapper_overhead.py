#!/usr/bin/env python3
"""Figure 1 - wrapper overhead: `gpuforge apply --profile base` vs `ansible-playbook
playbooks/base.yml` with the same ansible.cfg and environment, on the same sandbox hosts.

    .venv/bin/python bench/wrapper_overhead.py [--hosts 4] [--rounds 5] [--cold-rounds 0]

No-op: the hosts are converged once, then A and B alternate. Cold (optional, slow): each
round gets fresh hosts for A and for B.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    GPUFORGE,
    ROOT,
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
    timed,
    write,
)

# A third side, ansible-runner alone (a fresh private data dir, as gpuforge uses): it splits
# what ansible-runner costs from what gpuforge itself adds.
RUNNER = """
import sys, tempfile, ansible_runner
with tempfile.TemporaryDirectory() as d:
    r = ansible_runner.run(private_data_dir=d, playbook=sys.argv[1], inventory=sys.argv[2],
                           limit=sys.argv[3] or None, quiet=True)
sys.exit(0 if r.status == "successful" else 1)
"""


def sides(inventory: str, limit: list[str]) -> dict[str, object]:
    e = env()
    playbook = str(ROOT / "playbooks/base.yml")
    gf = [*GPUFORGE, "apply", "-i", inventory, "--profile", "base", "--yes", "--json", *limit]
    ap = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, playbook, *limit]
    ar = [str(VENV_BIN / "python"), "-c", RUNNER, playbook, inventory, limit[-1] if limit else ""]
    return {"gpuforge apply": lambda: timed(gf, e), "ansible-playbook": lambda: timed(ap, e),
            "ansible-runner": lambda: timed(ar, e)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cold-rounds", type=int, default=0)
    parser.add_argument("--name", default="bench-wrap")
    parser.add_argument("--keep", action="store_true", help="Leave the sandbox up.")
    args = parser.parse_args()
    result: dict[str, object] = {"hosts": args.hosts, "load_start": load()}
    state_file = state_dir() / "sandbox" / args.name / "state.json"
    reuse = state_file.is_file()
    try:
        # A sandbox already up (e.g. fanout.py --keep) is reused: its first N hosts.
        state = (json.loads(state_file.read_text(encoding="utf-8")) if reuse
                 else sandbox_up(args.name, args.hosts))
        inv = str(state["inventory"])
        limit = ["--limit", ",".join(h["name"] for h in state["hosts"][:args.hosts])]
        fns = sides(inv, limit)
        timed([*GPUFORGE, "apply", "-i", inv, "--profile", "base", "--yes", *limit],
              env())  # converge
        noop = interleave(fns, args.rounds)  # type: ignore[arg-type]
        result["noop"] = {k: stats(v) for k, v in noop.items()}
        result["noop_ratio"] = ratio(noop["gpuforge apply"], noop["ansible-playbook"])
        result["noop_ratio_runner_over_playbook"] = ratio(noop["ansible-runner"],
                                                          noop["ansible-playbook"])
        result["noop_ratio_gpuforge_over_runner"] = ratio(noop["gpuforge apply"],
                                                          noop["ansible-runner"])
        if args.cold_rounds:
            cold: dict[str, list[float]] = {"gpuforge apply": [], "ansible-playbook": []}
            for r in range(args.cold_rounds):
                for side in (list(cold) if r % 2 == 0 else list(cold)[::-1]):
                    fresh = sandbox_up(f"{args.name}-cold", args.hosts)
                    cold[side].append(sides(str(fresh["inventory"]), [])[side]())  # type: ignore[operator]
                    print(f"  cold {r + 1} {side}: {cold[side][-1]:.1f}s", file=sys.stderr)
            result["cold"] = {k: stats(v) for k, v in cold.items()}
            result["cold_ratio"] = ratio(cold["gpuforge apply"], cold["ansible-playbook"])
    finally:
        if args.cold_rounds:
            sandbox_down(f"{args.name}-cold")
        if not (args.keep or reuse):
            sandbox_down(args.name)
    result["load_end"] = load()
    path = write("wrapper_overhead", result)
    rows = [[mode, side, s["median"], f"{s['min']}..{s['max']}", s["n"]]
            for mode in ("noop", "cold") if mode in result
            for side, s in result[mode].items()]  # type: ignore[attr-defined]
    print(table(["mode", "side", "median s", "spread s", "n"], rows))
    print(f"no-op ratios: gpuforge/ansible-playbook {result['noop_ratio']}, ansible-runner/"
          f"ansible-playbook {result['noop_ratio_runner_over_playbook']}, gpuforge/"
          f"ansible-runner {result['noop_ratio_gpuforge_over_runner']}"
          + (f"; cold ratio: {result['cold_ratio']}" if "cold_ratio" in result else ""))
    print(f"load {result['load_start']} -> {result['load_end']}; {path}")


if __name__ == "__main__":
    main()
