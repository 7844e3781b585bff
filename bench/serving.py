#!/usr/bin/env python3
"""Figure 4 - serving efficiency on one cpu-llm host: prompt and generation tokens/s through
the gateway (HTTPS, API key) vs llama.cpp's own llama-bench, same model, host and threads,
and vs llama-server run by hand (same binary and flags, no systemd sandbox, no gateway);
and the gateway's added latency (the same request to 127.0.0.1:<runtime port> vs through
the gateway, both sent from inside the host).

    GPUFORGE_API_KEY=... .venv/bin/python bench/serving.py --name NAME [--rounds 5]

NAME is a sandbox on which `gpuforge apply --profile cpu-llm` has run with that key
(`gpuforge demo --name NAME` does both; its key is in $GPUFORGE_STATE_DIR/sandbox/NAME/api-key).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import load, state_dir, stats, table, write

HAND_PORT = 18081

# Runs inside the host: timed requests, direct and through the gateway, interleaved.
CLIENT = r'''
import json, ssl, sys, time, urllib.request
cfg = json.loads(sys.argv[1])
ctx = ssl._create_unverified_context()
def post(base, path, body, key):
    req = urllib.request.Request(base + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json",
                                  **({"Authorization": "Bearer " + key} if key else {})})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300, context=ctx) as r:
        data = json.loads(r.read())
    return time.perf_counter() - t0, data
# The runtime's own key (what the gateway sends it), read here by root, never passed along.
runtime_key = open(cfg["runtime_key_file"]).read().strip() if cfg.get("runtime_key_file") else ""
sides = {"direct": (cfg["direct"], runtime_key), "gateway": (cfg["gateway"], cfg["key"])}
if cfg.get("hand"):
    sides["by hand"] = (cfg["hand"], runtime_key)
out = {s: {"latency": [], "pp": [], "tg": [], "e2e_tg": []} for s in sides}
prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 12)
for r in range(cfg["rounds"]):
    for s in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
        base, key = sides[s]
        dt, _ = post(base, "/v1/completions", {"model": cfg["model"], "prompt": "Hi",
                                              "max_tokens": 1, "cache_prompt": False}, key)
        out[s]["latency"].append(dt)
        dt, d = post(base, "/v1/completions", {"model": cfg["model"], "prompt": prompt,
                     "max_tokens": 64, "cache_prompt": False, "ignore_eos": True,
                     "temperature": 0}, key)
        t = d.get("timings", {})
        out[s]["pp"].append(t.get("prompt_per_second", 0.0))
        out[s]["tg"].append(t.get("predicted_per_second", 0.0))
        out[s]["e2e_tg"].append(d.get("usage", {}).get("completion_tokens", 0) / dt)
print(json.dumps(out))
'''


def podman_exec(container: str, *cmd: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["podman", "exec", "-i", container, *cmd], input=stdin,
                          capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {container}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def runtime(container: str) -> tuple[dict[str, Any], list[str]]:
    """The host's first runtime: its endpoint description and llama-server's command
    line as its unit runs it."""
    desc = json.loads(podman_exec(container, "sh", "-c",
                                  "cat $(ls /etc/gpuforge/endpoints.d/*.json | head -n 1)"))
    unit = podman_exec(container, "systemctl", "show", "-P", "ExecStart", desc["unit"])
    argv = unit.split("argv[]=", 1)[1].split(";", 1)[0].split()
    # The unit passes its flags as $LLAMA_SERVER_ARGS from its EnvironmentFile.
    env_files = podman_exec(container, "systemctl", "show", "-P", "EnvironmentFiles",
                            desc["unit"]).split()
    for env_file in env_files[:1]:
        for line in podman_exec(container, "cat", env_file).splitlines():
            if line.startswith("LLAMA_SERVER_ARGS="):
                argv = [argv[0], *line.split("=", 1)[1].split()]
    return dict(desc), argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    key = os.environ.get("GPUFORGE_API_KEY") or (
        state_dir() / "sandbox" / args.name / "api-key").read_text(encoding="utf-8").strip()
    state = json.loads((state_dir() / "sandbox" / args.name / "state.json")
                       .read_text(encoding="utf-8"))
    container = state["hosts"][0]["container"]
    desc, argv = runtime(container)
    server, model = argv[0], argv[argv.index("--model") + 1]
    threads = argv[argv.index("--threads") + 1]
    bench_bin = str(Path(server).with_name("llama-bench"))
    gw = json.loads(podman_exec(container, "cat", "/etc/gpuforge/gateway.json"))
    result: dict[str, object] = {"load_start": load(), "model": model, "threads": threads,
                                 "runtime_argv": argv}
    # llama.cpp's own measurement, as llama-bench reports it. A host whose runtime is a
    # stand-in without llama-bench (CI's stub build) gets the latency figures only.
    has_bench = subprocess.run(["podman", "exec", container, "test", "-x", bench_bin],
                               check=False).returncode == 0
    native: dict[str, float] = {}
    if has_bench:
        raw = json.loads(podman_exec(container, bench_bin, "-m", model, "-t", threads, "-p",
                                     "128", "-n", "64", "-r", str(args.rounds), "-o", "json"))
        native = {("pp" if r["n_prompt"] else "tg"): r["avg_ts"] for r in raw}
        result["llama_bench"] = {"pp128_tps": native["pp"], "tg64_tps": native["tg"],
                                 "samples": [r.get("samples_ts") for r in raw]}
    else:
        result["llama_bench"] = f"absent: {bench_bin} (not a real llama.cpp build)"
    cfg = {"direct": desc["upstream"], "gateway": f"https://127.0.0.1:{gw.get('port', 443)}",
           "key": key, "model": desc["name"], "rounds": args.rounds,
           "runtime_key_file": desc.get("api_key_file", "")}
    # The same binary and flags started by hand (root, no unit, no sandbox) on a spare port:
    # what a person tuning llama-server themselves would get on this host.
    hand = [*argv]
    hand[hand.index("--port") + 1] = str(HAND_PORT)
    subprocess.run(["podman", "exec", "-d", container, *hand], check=True)
    try:
        podman_exec(container, "sh", "-c", f"for i in $(seq 120); do curl -sf "
                    f"http://127.0.0.1:{HAND_PORT}/health >/dev/null && exit 0; sleep 1; done;"
                    " exit 1")
        cfg["hand"] = f"http://127.0.0.1:{HAND_PORT}"
        meas = json.loads(podman_exec(container, "python3", "-", json.dumps(cfg), stdin=CLIENT))
    finally:
        subprocess.run(["podman", "exec", container, "pkill", "-f", "--", f"--port {HAND_PORT}"],
                       check=False)
    result["requests"] = {s: {k: stats(v) for k, v in m.items()} for s, m in meas.items()}
    med = {s: {k: statistics.median(v) for k, v in m.items()} for s, m in meas.items()}
    result["ratios"] = {
        "gateway_pp_over_llama_bench": round(med["gateway"]["pp"] / native["pp"], 3)
        if native else None,
        "gateway_tg_over_llama_bench": round(med["gateway"]["tg"] / native["tg"], 3)
        if native else None,
        "gateway_e2e_tg_over_direct_e2e_tg": round(med["gateway"]["e2e_tg"]
                                                    / med["direct"]["e2e_tg"], 3),
        "gateway_pp_over_by_hand": round(med["gateway"]["pp"] / med["by hand"]["pp"], 3),
        "gateway_tg_over_by_hand": round(med["gateway"]["tg"] / med["by hand"]["tg"], 3),
        "gateway_e2e_tg_over_by_hand": round(med["gateway"]["e2e_tg"]
                                             / med["by hand"]["e2e_tg"], 3),
        "by_hand_tg_over_llama_bench": round(med["by hand"]["tg"] / native["tg"], 3)
        if native else None,
    }
    result["gateway_added_latency_ms"] = round(
        (med["gateway"]["latency"] - med["direct"]["latency"]) * 1000, 1)
    result["load_end"] = load()
    path = write("serving", result)
    rows = [["llama-bench", f"{native['pp']:.1f}", f"{native['tg']:.1f}", "", ""]] if native else []
    for s in ("by hand", "direct", "gateway"):
        rows.append([s, f"{med[s]['pp']:.1f}", f"{med[s]['tg']:.1f}", f"{med[s]['e2e_tg']:.1f}",
                     f"{med[s]['latency'] * 1000:.1f}"])
    print(table(["side", "prompt t/s", "gen t/s", "end-to-end gen t/s", "1-token latency ms"],
                rows))
    print(json.dumps(result["ratios"]), f"gateway adds {result['gateway_added_latency_ms']} ms")
    print(f"load {result['load_start']} -> {result['load_end']}; {path}")


if __name__ == "__main__":
    main()
