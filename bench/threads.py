#!/usr/bin/env python3
"""Figure 6 - CPU threads: llama-server's decode tokens/s on one cpu-llm host with
`--threads` = every physical core (the old default) against the automatic default the role
now sets (physical cores less one up to 8 cores; the unit's own `--threads`), on a quiet
host and beside one CPU-bound process, all in one run: both settings run side by side (two
llama-servers started by hand with the unit's binary and flags, only `--threads` and
`--port` differing), requests alternating between them, quiet and loaded rounds alternating.

    .venv/bin/python bench/threads.py --name NAME [--rounds 5] [--tokens 64]

NAME is a sandbox on which `gpuforge apply --profile cpu-llm` has run (`gpuforge demo
--name NAME` does it). Nothing on the host is changed: the two servers and the CPU-bound
process are stopped at the end. Writes bench/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import load, state_dir, stats, table, write
from bench.serving import podman_exec, runtime

PORTS = {"all cores": 18091, "automatic": 18092}

# Runs inside the host: requests to both servers, alternating, on a quiet host and beside
# one CPU-bound process (started and stopped here, between rounds).
CLIENT = r'''
import json, os, subprocess, sys, time, urllib.request
cfg = json.loads(sys.argv[1])
key = open(cfg["key_file"]).read().strip() if cfg.get("key_file") else ""
def decode(base):
    body = {"model": cfg["model"], "prompt": "Tell me about the sea.", "cache_prompt": False,
            "max_tokens": cfg["tokens"], "ignore_eos": True, "temperature": 0}
    req = urllib.request.Request(base + "/v1/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json",
                                  **({"Authorization": "Bearer " + key} if key else {})})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read()).get("timings", {}).get("predicted_per_second", 0.0)
sides = list(cfg["servers"])
out = {c: {s: [] for s in sides} for c in ("quiet", "beside one CPU-bound process")}
for r in range(cfg["rounds"]):
    for cond in (list(out) if r % 2 == 0 else list(out)[::-1]):
        burner = None
        if cond != "quiet":
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1)
        try:
            for s in (sides if r % 2 == 0 else sides[::-1]):
                out[cond][s].append(decode(cfg["servers"][s]))
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
print(json.dumps(out))
'''

# The host's physical cores (those this process may run on), as the role counts them.
CORES = r'''
import glob, os
cpus = os.sched_getaffinity(0)
cores = set()
for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology/core_id"):
    cpu = int(path.split("/")[5][3:])
    if cpu in cpus:
        package = open(path.replace("core_id", "physical_package_id")).read().strip()
        cores.add((package, open(path).read().strip()))
print(len(cores) or len(cpus))
'''


def start(container: str, argv: list[str], threads: int, port: int) -> str:
    """llama-server by hand with the unit's flags, `--threads` and `--port` set; its pid."""
    hand = [*argv]
    hand[hand.index("--threads") + 1] = str(threads)
    hand[hand.index("--port") + 1] = str(port)
    pid_file = f"/tmp/gpuforge-bench-threads-{port}.pid"
    subprocess.run(["podman", "exec", "-d", container, "sh", "-c",
                    f'echo $$ > {pid_file}; exec "$@"', "sh", *hand], check=True)
    podman_exec(container, "sh", "-c", f"for i in $(seq 120); do curl -sf "
                f"http://127.0.0.1:{port}/health >/dev/null && exit 0; sleep 1; done; exit 1")
    return podman_exec(container, "cat", pid_file).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    state = json.loads((state_dir() / "sandbox" / args.name / "state.json")
                       .read_text(encoding="utf-8"))
    container = state["hosts"][0]["container"]
    desc, argv = runtime(container)
    physical = int(podman_exec(container, "python3", "-", stdin=CORES))
    threads = {"all cores": physical, "automatic": int(argv[argv.index("--threads") + 1])}
    result: dict[str, Any] = {"load_start": load(), "physical_cores": physical,
                              "threads": threads, "runtime_argv": argv}
    pids: list[str] = []
    try:
        for side, port in PORTS.items():
            pids.append(start(container, argv, threads[side], port))
        cfg = {"servers": {s: f"http://127.0.0.1:{p}" for s, p in PORTS.items()},
               "model": desc["name"], "rounds": args.rounds, "tokens": args.tokens,
               "key_file": desc.get("api_key_file", "")}
        meas = json.loads(podman_exec(container, "python3", "-", json.dumps(cfg),
                                      stdin=CLIENT))
    finally:
        for pid in pids:
            subprocess.run(["podman", "exec", container, "kill", pid], check=False)
    result["decode_tps"] = {c: {s: stats(v) for s, v in m.items()} for c, m in meas.items()}
    med = {c: {s: statistics.median(v) for s, v in m.items()} for c, m in meas.items()}
    result["automatic_over_all_cores"] = {
        c: round(m["automatic"] / m["all cores"], 3) if m["all cores"] else None
        for c, m in med.items()}
    result["load_end"] = load()
    path = write("threads", result)
    print(table(["condition", f"all cores ({threads['all cores']}) t/s",
                 f"automatic ({threads['automatic']}) t/s", "automatic / all cores"],
                [[c, f"{m['all cores']:.1f}", f"{m['automatic']:.1f}",
                  result["automatic_over_all_cores"][c]] for c, m in med.items()]))
    print(f"load {result['load_start']} -> {result['load_end']}; {path}")


if __name__ == "__main__":
    main()
