#!/usr/bin/env python3
"""Fleet front gateway: added latency and throughput of the front against a host gateway direct.

From inside the front host, the same one-token chat completion goes A/B/A/B to one host
gateway directly (its address, the client key) and through the front (127.0.0.1, the client
key; the front then adds its TLS hop with the fleet credential). Then both sides take `--burst`
requests `--concurrency` at a time for requests/s. The result records which runtime the
member's endpoint descriptor names (llama_cpp, or a stand-in named as such).

    .venv/bin/python bench/fleet_front.py --name NAME [--rounds 20] [--burst 40]

NAME is a sandbox of 3+ hosts where the fleet test's setup has run: cpu-llm on the first two,
front-gateway on the last (tests/integration/test_fleet.py shows the inventory overlay).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import load, state_dir, stats, table, write

CLIENT = r'''
import json, ssl, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
cfg = json.loads(sys.stdin.readline())
ctx = ssl._create_unverified_context()
body = json.dumps({"model": cfg["model"], "max_tokens": 1,
                   "messages": [{"role": "user", "content": "Say OK."}]}).encode()
def post(base):
    req = urllib.request.Request(base + "/chat/completions", body,
                                 {"Content-Type": "application/json",
                                  "Authorization": "Bearer " + cfg["key"]})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120, context=ctx) as r:
        r.read()
    return time.perf_counter() - t0
sides = {"direct": cfg["direct"], "front": cfg["front"]}
out = {s: {"latency": [], "rps": []} for s in sides}
for _ in range(cfg["rounds"]):
    for s, base in sides.items():
        out[s]["latency"].append(post(base))
for _ in range(3):
    for s, base in sides.items():
        t0 = time.perf_counter()
        with ThreadPoolExecutor(cfg["concurrency"]) as pool:
            list(pool.map(lambda _: post(base), range(cfg["burst"])))
        out[s]["rps"].append(cfg["burst"] / (time.perf_counter() - t0))
print(json.dumps(out))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    box = json.loads((state_dir() / "sandbox" / args.name / "state.json").read_text())
    inventory = Path(box["inventory"]).read_text(encoding="utf-8")
    import yaml

    key_file = yaml.safe_load(inventory)["all"]["children"]["sandbox"]["vars"][
        "gateway_api_key_file"]
    front = box["hosts"][-1]["container"]
    described = json.loads(subprocess.run(
        ["podman", "exec", front, "cat", "/etc/gpuforge/front.json"], capture_output=True,
        text=True, check=True).stdout)
    model, members = next(iter(described["pools"].items()))
    pools = subprocess.run(["podman", "exec", front, "cat",
                            "/etc/nginx/gpuforge-front/pools.conf"],
                           capture_output=True, text=True, check=True).stdout
    member = next(h["container"] for h in box["hosts"] if h["name"] == members[0])
    runtime = json.loads(subprocess.run(
        ["podman", "exec", member, "sh", "-c", "cat /etc/gpuforge/endpoints.d/*.json"],
        capture_output=True, text=True, check=True).stdout)["runtime"]
    address = next(line.split()[1] for line in pools.splitlines()
                   if line.strip().startswith("server ") and members[0] in line)
    cfg = {"model": model, "key": Path(key_file).read_text(encoding="utf-8").split()[0],
           "direct": f"https://{address}/v1", "front": f"https://127.0.0.1:{described['port']}/v1",
           "rounds": args.rounds, "burst": args.burst, "concurrency": args.concurrency}
    start_load = load()
    # The key goes on stdin, never on a command line.
    proc = subprocess.run(["podman", "exec", "-i", front, "python3", "-c", CLIENT],
                          input=json.dumps(cfg) + "\n", capture_output=True, text=True,
                          check=True, timeout=3600)
    out = json.loads(proc.stdout)
    lat = {s: stats(out[s]["latency"]) for s in out}
    rps = {s: stats(out[s]["rps"]) for s in out}
    result = {
        "what": "one-token chat completion from the front host: "
                "a host gateway direct vs through the front gateway; then bursts of "
                f"{args.burst} requests {args.concurrency} at a time",
        # What the member's endpoint descriptor says serves the model: llama_cpp, or a
        # stand-in named as such when the real runtime could not be built in time.
        "runtime": runtime,
        "model": model, "rounds": args.rounds, "latency_s": lat, "requests_per_s": rps,
        "latency_ratio_front_over_direct": round(lat["front"]["median"]
                                                 / lat["direct"]["median"], 3),
        "rps_ratio_front_over_direct": round(rps["front"]["median"]
                                             / rps["direct"]["median"], 3),
        "load_start": start_load, "load_end": load()}
    path = write("fleet_front", result)
    print(table(["side", "latency median s", "requests/s median"],
                [[s, lat[s]["median"], rps[s]["median"]] for s in out]))
    print(f"front/direct latency x{result['latency_ratio_front_over_direct']}, "
          f"throughput x{result['rps_ratio_front_over_direct']}; {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
