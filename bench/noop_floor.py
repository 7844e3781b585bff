#!/usr/bin/env python3
"""Figure 3 - no-op floor: a no-op `gpuforge apply --profile cpu-llm` on one host vs the
floor of reaching it at all: `ansible -m ping` plus the fact gathering the roles need
(`setup` with our gather subset), same inventory and settings. Prints the slowest tasks of
the last no-op apply: what makes the ratio large.

    .venv/bin/python bench/noop_floor.py --name NAME [--rounds 3]

NAME is a sandbox on which cpu-llm has been applied (e.g. `gpuforge demo --name NAME`);
The sandbox inventory names its key file (gateway_api_key_file); nothing to export.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    GPUFORGE,
    VENV_BIN,
    env,
    interleave,
    load,
    ratio,
    state_dir,
    stats,
    table,
    timed,
    write,
)

SUBSET = "!all,min,hardware,virtual"  # ansible.cfg's gather_subset


def breakdown(timings: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a run's time went: task count, seconds per role, the ten slowest tasks."""
    per_role: dict[str, float] = {}
    for t in timings:
        role = t.get("role") or "(play)"
        per_role[role] = round(per_role.get(role, 0.0) + float(t.get("duration_s") or 0), 2)
    slowest = sorted(timings, key=lambda t: -float(t.get("duration_s") or 0))[:10]
    return {"tasks": len(timings),
            "task_seconds": round(sum(float(t.get("duration_s") or 0) for t in timings), 1),
            "seconds_per_role": per_role,
            "slowest_tasks": [{"task": t["task"], "role": t.get("role"), "s": t["duration_s"],
                               "status": t.get("status")} for t in slowest]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--converge", action="store_true",
                        help="Apply once before measuring (a host not yet converged).")
    args = parser.parse_args()
    load_start = load()
    inv = str(state_dir() / "sandbox" / args.name / "inventory.yml")
    e = env()
    apply = [*GPUFORGE, "apply", "-i", inv, "--profile", "cpu-llm", "--yes", "--json"]
    ansible = str(VENV_BIN / "ansible")

    def floor() -> float:
        return (timed([ansible, "all", "-i", inv, "-m", "ansible.builtin.ping"], e)
                + timed([ansible, "all", "-i", inv, "-m", "ansible.builtin.setup",
                         "-a", f"gather_subset={SUBSET}"], e))

    if args.converge:  # the measured runs must be no-ops
        timed(apply, e)
    times = interleave({"apply cpu-llm (no-op)": lambda: timed(apply, e), "floor": floor},
                       args.rounds)
    runs = json.loads(subprocess.run([*GPUFORGE, "runs", "list", "--json"], env=e,
                                     capture_output=True, text=True, check=True).stdout)
    last = json.loads(subprocess.run([*GPUFORGE, "runs", "show", str(runs[0]["run_id"]), "--json"],
                                     env=e, capture_output=True, text=True, check=True).stdout)
    hosts = last.get("hosts", {})
    where = breakdown(last.get("timings") or [])
    result = {"load_start": load_start, "hosts": len(hosts) or 1,
              "times": {k: stats(v) for k, v in times.items()},
              "ratio_apply_over_floor": ratio(times["apply cpu-llm (no-op)"], times["floor"]),
              "last_apply": {"run_id": runs[0]["run_id"],
                             "changed": {h: c.get("changed") for h, c in hosts.items()},
                             **where},
              "load_end": load()}
    path = write("noop_floor", result)
    print(table(["side", "median s", "spread s", "n"],
                [[k, s["median"], f"{s['min']}..{s['max']}", s["n"]]
                 for k, s in result["times"].items()]))  # type: ignore[attr-defined]
    print(f"ratio apply/floor: {result['ratio_apply_over_floor']}")
    print("slowest tasks of the last no-op apply:")
    print(json.dumps(result["last_apply"], indent=1)[:3000])
    print(f"load {result['load_end']}; {path}")


if __name__ == "__main__":
    main()
