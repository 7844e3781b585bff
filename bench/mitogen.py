#!/usr/bin/env python3
"""Figure - linear vs mitogen through `gpuforge apply --strategy`, in one run:

1. no-op floor: a no-op `apply --profile cpu-llm` on one converged host (sandbox --name),
   linear and mitogen, against the floor of reaching the host at all (`ansible -m ping`
   plus our fact gathering);
2. fan-out: a no-op `apply --profile base` on 1, 2, 4, 8 ... hosts of one sandbox
   (--fan-name, started here unless it is up), linear vs mitogen;
3. wrapper overhead: on the first --wrap-hosts of that sandbox, `gpuforge apply` vs
   `ansible-playbook playbooks/base.yml` with the same environment, under each strategy.

    .venv/bin/python bench/mitogen.py --name NAME [--sizes 1,2,4,8] [--rounds 3] [--keep]
    .venv/bin/python bench/mitogen.py --part floor --name NAME     # only 1.
    .venv/bin/python bench/mitogen.py --part fleet                 # only 2. and 3.

Every comparison alternates its sides round by round (bench/_common.interleave). Results:
bench/results/mitogen_floor.json (1.) and mitogen_fleet.json (2. and 3.).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from bench.noop_floor import SUBSET
from toolkit.strategy import strategy_envvars

STRATEGIES = ("linear", "mitogen")


def apply_cmd(inventory: str, profile: str, strategy: str, limit: list[str]) -> list[str]:
    return [*GPUFORGE, "apply", "-i", inventory, "--profile", profile, "--yes", "--json",
            "--strategy", strategy, *limit]


def run(cmd: list[str], environ: dict[str, str]) -> Callable[[], float]:
    return lambda: timed(cmd, environ)


def floor_figure(inventory: str, profile: str, rounds: int) -> dict[str, Any]:
    e = env()
    ansible = str(VENV_BIN / "ansible")

    def floor() -> float:
        return (timed([ansible, "all", "-i", inventory, "-m", "ansible.builtin.ping"], e)
                + timed([ansible, "all", "-i", inventory, "-m", "ansible.builtin.setup",
                         "-a", f"gather_subset={SUBSET}"], e))

    sides = {f"apply {s}": run(apply_cmd(inventory, profile, s, []), e) for s in STRATEGIES}
    sides["floor"] = floor
    times = interleave(sides, rounds)
    return {"times": {k: stats(v) for k, v in times.items()},
            "ratio_linear_over_floor": ratio(times["apply linear"], times["floor"]),
            "ratio_mitogen_over_floor": ratio(times["apply mitogen"], times["floor"]),
            "ratio_mitogen_over_linear": ratio(times["apply mitogen"], times["apply linear"])}


def fanout_figure(inventory: str, names: list[str], sizes: list[int],
                  rounds: int) -> dict[str, Any]:
    e = env()
    out: dict[str, Any] = {}
    for n in sizes:
        limit = ["--limit", ",".join(names[:n])]
        print(f"fan-out {n} host(s)", file=sys.stderr)
        times = interleave({s: run(apply_cmd(inventory, "base", s, limit), e)
                            for s in STRATEGIES}, rounds)
        out[str(n)] = {"times": {k: stats(v) for k, v in times.items()},
                       "ratio_mitogen_over_linear": ratio(times["mitogen"], times["linear"])}
    return out


def wrapper_figure(inventory: str, names: list[str], rounds: int) -> dict[str, Any]:
    limit = ["--limit", ",".join(names)]
    playbook = str(ROOT / "playbooks" / "base.yml")
    sides: dict[str, Callable[[], float]] = {}
    for s in STRATEGIES:
        e = env(**strategy_envvars(s))
        sides[f"gpuforge apply {s}"] = run(apply_cmd(inventory, "base", s, limit), e)
        sides[f"ansible-playbook {s}"] = run(
            [str(VENV_BIN / "ansible-playbook"), "-i", inventory, playbook, *limit], e)
    times = interleave(sides, rounds)
    return {"hosts": len(names), "times": {k: stats(v) for k, v in times.items()},
            **{f"ratio_wrapper_{s}": ratio(times[f"gpuforge apply {s}"],
                                           times[f"ansible-playbook {s}"]) for s in STRATEGIES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", help="a sandbox with cpu-llm applied (part floor)")
    parser.add_argument("--part", choices=["all", "floor", "fleet"], default="all")
    parser.add_argument("--profile", default="cpu-llm", help="the floor's no-op profile")
    parser.add_argument("--fan-name", default="bench-mitogen")
    parser.add_argument("--sizes", default="1,2,4,8")
    parser.add_argument("--wrap-hosts", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Leave the fan-out sandbox up.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.part in ("all", "floor"):
        if not args.name:
            parser.error("--name (a converged cpu-llm sandbox) is needed for the floor")
        floor_part(args.name, args.profile, args.rounds)
    if args.part in ("all", "fleet"):
        fleet_part(args.fan_name, sizes, args.wrap_hosts, args.rounds, args.keep)


STRATEGY_NAMES = {"linear": "ansible-core linear", "mitogen": "mitogen 0.3.54 mitogen_linear"}


def floor_part(name: str, profile: str, rounds: int) -> None:
    result: dict[str, Any] = {"load_start": load(), "strategies": STRATEGY_NAMES,
                              "profile": profile}
    cpu_inv = str(state_dir() / "sandbox" / name / "inventory.yml")
    # Both sides must be no-ops: converge under each strategy once (first-sight work such as
    # the model sha256 record is not measured).
    for s in STRATEGIES:
        timed(apply_cmd(cpu_inv, profile, s, []), env())
    f = result["noop_floor"] = floor_figure(cpu_inv, profile, rounds)
    result["load_end"] = load()
    path = write("mitogen_floor", result)
    print(table([f"no-op {profile}", "median s", "spread s"],
                [[k, v["median"], f"{v['min']}..{v['max']}"] for k, v in f["times"].items()]))
    print(f"apply/floor linear {f['ratio_linear_over_floor']}, mitogen "
          f"{f['ratio_mitogen_over_floor']}; mitogen/linear {f['ratio_mitogen_over_linear']}; "
          f"load {result['load_start']} -> {result['load_end']}; {path}")


def fleet_part(fan_name: str, sizes: list[int], wrap_hosts: int, rounds: int,
               keep: bool) -> None:
    result: dict[str, Any] = {"load_start": load(), "strategies": STRATEGY_NAMES}
    state_file = state_dir() / "sandbox" / fan_name / "state.json"
    started = False
    try:
        state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
        if len(state.get("hosts", [])) < max(sizes):
            state, started = sandbox_up(fan_name, max(sizes)), True
        inv = str(state["inventory"])
        names = [h["name"] for h in state["hosts"]][:max(sizes)]
        for s in STRATEGIES:  # converge, then a no-op under each strategy before measuring
            timed(apply_cmd(inv, "base", s, ["--limit", ",".join(names)]), env(),
                  timeout=7200)
        result["fanout"] = fanout_figure(inv, names, sizes, rounds)
        result["wrapper"] = wrapper_figure(inv, names[:wrap_hosts], rounds)
    finally:
        if started and not keep:
            sandbox_down(fan_name)
    result["load_end"] = load()
    path = write("mitogen_fleet", result)
    print(table(["hosts", "linear s", "mitogen s", "mitogen/linear"],
                [[n, v["times"]["linear"]["median"], v["times"]["mitogen"]["median"],
                  v["ratio_mitogen_over_linear"]] for n, v in result["fanout"].items()]))
    w = result["wrapper"]
    print(table(["wrapper (" + str(w["hosts"]) + " hosts)", "median s"],
                [[k, v["median"]] for k, v in w["times"].items()]))
    print(f"gpuforge/ansible-playbook: linear {w['ratio_wrapper_linear']}, "
          f"mitogen {w['ratio_wrapper_mitogen']}; load {result['load_start']} -> "
          f"{result['load_end']}; {path}")

if __name__ == "__main__":
    main()
