#!/usr/bin/env python3
"""Figure 2 - fan-out: no-op runs of the base playbook on 1, 2, 4, 8 ... sandbox hosts, our
tuned ansible.cfg (pipelining, forks, a gather subset, the fact cache) vs Ansible's
defaults (an ansible.cfg holding only roles_path).

    .venv/bin/python bench/fanout.py [--sizes 1,2,4,8] [--rounds 3]

One sandbox of the largest size is started and converged once; each size is a --limit to
its first N hosts, so every size runs on already-converged hosts (a no-op).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--name", default="bench-fan")
    parser.add_argument("--keep", action="store_true", help="Leave the sandbox up.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    defaults_cfg = state_dir() / "bench-defaults.cfg"
    defaults_cfg.parent.mkdir(parents=True, exist_ok=True)
    defaults_cfg.write_text(f"[defaults]\nroles_path = {ROOT / 'roles'}\n", encoding="utf-8")
    tuned = env()
    plain = {k: v for k, v in env(ANSIBLE_CONFIG=str(defaults_cfg)).items()
             if k != "ANSIBLE_CACHE_PLUGIN_CONNECTION"}
    result: dict[str, object] = {"load_start": load(), "sizes": {}}
    try:
        # A sandbox already up with enough hosts (an earlier --keep) is reused.
        state_file = state_dir() / "sandbox" / args.name / "state.json"
        state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
        if len(state.get("hosts", [])) < max(sizes):
            state = sandbox_up(args.name, max(sizes))
        inv = str(state["inventory"])
        names = [h["name"] for h in state["hosts"]]
        play = [str(VENV_BIN / "ansible-playbook"), "-i", inv, str(ROOT / "playbooks/base.yml")]
        timed(play, tuned)  # converge every host once
        for n in sizes:
            limit = ["--limit", ",".join(names[:n])]
            print(f"{n} host(s):", file=sys.stderr)
            times = interleave({"tuned": lambda lim=limit: timed([*play, *lim], tuned),
                                "defaults": lambda lim=limit: timed([*play, *lim], plain)},
                               args.rounds)
            result["sizes"][n] = {"tuned": stats(times["tuned"]),  # type: ignore[index]
                                  "defaults": stats(times["defaults"]),
                                  "ratio_tuned_over_defaults": ratio(times["tuned"],
                                                                     times["defaults"]),
                                  "load": load()}
    finally:
        if not args.keep:
            sandbox_down(args.name)
    result["load_end"] = load()
    path = write("fanout", result)
    rows = [[n, r["tuned"]["median"], f"{r['tuned']['min']}..{r['tuned']['max']}",
             r["defaults"]["median"], f"{r['defaults']['min']}..{r['defaults']['max']}",
             r["ratio_tuned_over_defaults"], r["load"]]
            for n, r in result["sizes"].items()]  # type: ignore[attr-defined]
    print(table(["hosts", "tuned s", "spread", "defaults s", "spread", "tuned/defaults",
                 "load"], rows))
    print(f"load {result['load_start']} -> {result['load_end']}; {path}")


if __name__ == "__main__":
    main()
