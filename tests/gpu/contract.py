"""The GPU contract: what gpuforge promises on a machine with an NVIDIA GPU, checked there.

Run by scripts/gpu-contract.sh on a machine with a GPU, its own driver and no internet. It
carries everything (``--bundle``: the pinned llama.cpp source archive, the catalog model, the
wheels this runner needs) and writes one JSON document (``--out``):

- ``facts``: gpu_facts (plugins/modules/gpu_facts.py) on the real hardware;
- ``gate``: the compatibility gate on those facts and the machine's nvcc;
- ``build``: the CUDA llama.cpp build through roles/llama_cpp/files/build-llama-server.sh for
  the GPUs' architectures, its time, and ldd's proof that llama-server links CUDA;
- ``serve``: llama-server with every layer offloaded serving the catalog model;
- ``judgements``: validate's GPU checks (toolkit/validate.py, as `gpuforge validate` makes
  them): a driver loaded, every GPU on the bus visible to nvidia-smi, every layer on a CUDA
  device, tokens/s and TTFT against the GPU class's floors (seeds/validate_gpu_classes.yml);
- ``speed``: tokens/s and TTFT over HTTP (through nginx when the machine has it) against
  llama-bench on the same GPU.

``--self-check`` runs the GPU-free part anywhere: the bundle's checksums, and the same facts,
gate and judgement code on a recorded host tree (tests/fixtures/gpu) and a recorded CUDA
start-up log (tests/fixtures/validate/gpu).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from toolkit.compat import check_combination, load_compat, toolkit_problems  # noqa: E402
from toolkit.validate import (  # noqa: E402
    gpu_classes,
    gpu_vendor,
    judge_gpu,
    judge_runtime_device,
    judge_speed,
    thresholds_for_gpu,
)

BUDGET_S = 8 * 60
MODEL = "smollm2-135m-instruct"


def _load_gpu_facts() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gpuforge_gpu_facts", REPO / "plugins" / "modules" / "gpu_facts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins() -> dict[str, str]:
    """What the bundle must hold, from the role defaults and the model catalog."""
    defaults = yaml.safe_load((REPO / "roles/llama_cpp/defaults/main.yml").read_text())
    model = yaml.safe_load((REPO / "seeds/models.yml").read_text())["models"][MODEL]
    return {"source": str(defaults["llama_cpp_source_url"]).split("/")[-1],
            "source_sha256": str(defaults["llama_cpp_source_sha256"]),
            "subdir": str(defaults["llama_cpp_source_subdir"]),
            "model": str(model["files"][0]["name"]),
            "model_sha256": str(model["files"][0]["sha256"])}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_bundle(bundle: Path) -> dict[str, Any]:
    """Each carried file present with its pinned sha256."""
    want = pins()
    out: dict[str, Any] = {"ok": True, "files": {}}
    for key in ("source", "model"):
        path = bundle / want[key]
        got = sha256(path) if path.is_file() else None
        ok = got == want[f"{key}_sha256"]
        out["files"][want[key]] = {"sha256": got, "expected": want[f"{key}_sha256"], "ok": ok}
        out["ok"] = out["ok"] and ok
    return out


def live_facts(gf: ModuleType) -> dict[str, Any]:
    def has_tool(key: str) -> bool:
        return shutil.which(gf.TOOLS[key][0]) is not None

    def run_tool(key: str) -> str | None:
        name, args = gf.TOOLS[key]
        proc = subprocess.run([name, *args], capture_output=True, text=True, check=False)
        return proc.stdout if proc.returncode == 0 else None

    facts: dict[str, Any] = gf.gather("/", gf.GPU_CATALOG, run_tool, has_tool)
    return facts


def nvcc_version(nvcc: str = "nvcc") -> str | None:
    path = shutil.which(nvcc) or ("/usr/local/cuda/bin/nvcc"
                                  if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if not path:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"release (\d+\.\d+)", out)
    return found.group(1) if found else None


def architectures(facts: dict[str, Any]) -> list[str]:
    return sorted({str(g["compute_capability"]).replace(".", "") for g in facts.get("gpus", [])
                   if g.get("vendor") == "nvidia" and g.get("compute_capability")}, key=int)


def gate(facts: dict[str, Any], toolkit: str | None) -> dict[str, Any]:
    """The compatibility gate on real facts: generation vs loaded driver, toolkit vs GPUs."""
    table = load_compat()
    problems = []
    driver = facts.get("nvidia_driver") or {}
    for generation in sorted({str(g["generation"]) for g in facts.get("gpus", [])
                              if g.get("vendor") == "nvidia" and g.get("generation")}):
        problems += check_combination(
            table, gpu_generation=generation, driver_branch=driver.get("branch"),
            kernel_module=driver.get("kernel_module"), runtime="llama.cpp-cuda",
            runtime_version=None, distro=None)
    if toolkit:
        problems += toolkit_problems(table, architectures=architectures(facts), toolkit=toolkit)
    return {"ok": not problems, "toolkit": toolkit, "architectures": architectures(facts),
            "problems": [p.__dict__ for p in problems]}


def judgements(facts: dict[str, Any], log: str | None,
               speed: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The checks `gpuforge validate` makes on a GPU host (toolkit/validate.py), on this
    machine: GPUs and driver (no pin: the machine's own driver must be loaded), every GPU on
    the bus visible to nvidia-smi, llama-server's every layer on a CUDA device (its log), and
    tokens/s and TTFT against the floors of the GPU's class (seeds/validate_gpu_classes.yml)."""
    checks = judge_gpu("localhost", {"gpu": facts, "driver_pin": ""}, True)
    vendor, count = gpu_vendor(facts)
    if log is not None and count:
        descriptor = {"name": MODEL, "runtime": "llama_cpp", "unit": "llama-server", "gpu": True}
        checks.append(judge_runtime_device("localhost", descriptor, vendor, count,
                                           {"lines": log.splitlines()}))
    if speed is not None:
        floors = thresholds_for_gpu(gpu_classes(REPO / "seeds"), facts)
        checks += judge_speed("localhost", speed.get("ttft_s"), speed.get("tokens_per_s"),
                              floors)
    return [c.to_dict() for c in checks]


def build(bundle: Path, work: Path, archs: list[str], jobs: int) -> dict[str, Any]:
    want = pins()
    tarball = work / "llama-server-cuda.tar.gz"
    start = time.monotonic()
    proc = subprocess.run(
        ["sh", str(REPO / "roles/llama_cpp/files/build-llama-server.sh"),
         str(bundle / want["source"]), want["subdir"], "cuda", str(jobs), str(tarball),
         ";".join(archs)],
        capture_output=True, text=True, check=False, env=dict(
            os.environ, TMPDIR=str(work),
            PATH=f"/usr/local/cuda/bin:{os.environ.get('PATH', '/usr/bin:/bin')}"))
    seconds = round(time.monotonic() - start, 1)
    if proc.returncode != 0:
        return {"ok": False, "seconds": seconds, "rc": proc.returncode,
                "tail": (proc.stdout + proc.stderr).splitlines()[-20:]}
    home = work / "release"
    home.mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(home)], check=True)
    ldd = subprocess.run(["ldd", str(home / "bin/llama-server")], capture_output=True,
                         text=True, check=False).stdout
    cuda = [line.strip() for line in ldd.splitlines() if re.search(r"libcu(da|dart|blas)", line)]
    return {"ok": bool(cuda), "seconds": seconds, "architectures": archs, "jobs": jobs,
            "artifact_sha256": sha256(tarball), "ldd_cuda": cuda, "home": str(home)}


def _post(url: str, body: dict[str, Any], timeout: float = 120) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=timeout)  # loopback only


def measure(base: str, tokens: int = 128, runs: int = 5) -> dict[str, Any]:
    """Generation tokens/s (llama-server's own timings and wall clock) and TTFT (streamed)."""
    rates, walls, ttfts = [], [], []
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Count from 1 to 200."}],
            "max_tokens": tokens, "temperature": 0}
    for _ in range(runs):
        start = time.monotonic()
        with _post(f"{base}/v1/chat/completions", body) as resp:
            data = json.load(resp)
        wall = time.monotonic() - start
        rates.append(float(data.get("timings", {}).get("predicted_per_second") or 0))
        walls.append(data.get("usage", {}).get("completion_tokens", 0) / wall)
        start = time.monotonic()
        with _post(f"{base}/v1/chat/completions", {**body, "stream": True}) as resp:
            resp.readline()
            ttfts.append(time.monotonic() - start)
    return {"tokens_per_s": max(rates), "end_to_end_tokens_per_s": max(walls),
            "ttft_s": min(ttfts), "runs": runs, "max_tokens": tokens}


def llama_bench(home: Path, model: Path) -> float | None:
    proc = subprocess.run([str(home / "bin/llama-bench"), "-m", str(model), "-ngl", "999",
                           "-p", "0", "-n", "128", "-r", "5", "-o", "json"],
                          capture_output=True, text=True, check=False, timeout=300)
    try:
        rows = json.loads(proc.stdout)
    except ValueError:
        return None
    gen = [r for r in rows if r.get("n_gen")]
    return float(gen[0]["avg_ts"]) if gen else None


def _nginx(work: Path, upstream_port: int, port: int) -> subprocess.Popen[bytes] | None:
    nginx = shutil.which("nginx")
    if not nginx:
        return None
    conf = work / "nginx.conf"
    conf.write_text(
        f"daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err;\n"
        "events {}\nhttp { access_log off; server {"
        f" listen 127.0.0.1:{port}; location / {{ proxy_pass http://127.0.0.1:{upstream_port};"
        " proxy_http_version 1.1; proxy_buffering off; } } }\n", encoding="utf-8")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)])
    time.sleep(1)
    return proc


def serve(home: Path, model: Path, work: Path, port: int = 18081) -> dict[str, Any]:
    log = work / "llama-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(home / "bin/llama-server"), "--host", "127.0.0.1", "--port", str(port),
             "--model", str(model), "--alias", MODEL, "--n-gpu-layers", "999",
             "--ctx-size", "4096", "--parallel", "2"], stdout=out, stderr=subprocess.STDOUT)
    result: dict[str, Any] = {"ok": False}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    result["ok"] = True
                    break
            except OSError:
                time.sleep(1)
        if result["ok"]:
            result["http"] = measure(f"http://127.0.0.1:{port}")
            proxy = _nginx(work, port, port + 1)
            if proxy:
                try:
                    result["gateway"] = measure(f"http://127.0.0.1:{port + 1}")
                finally:
                    proxy.terminate()
            else:
                result["gateway"] = "no nginx on this machine: measured llama-server directly"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result["log"] = log.read_text(errors="replace")
    return result


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def self_check(bundle: Path | None, shape: str) -> dict[str, Any]:
    """The GPU-free part: bundle checksums, and facts -> gate -> judgements on a recorded tree."""
    from tests.fixtures.gpu.trees import gather  # the recorded trees' reader

    facts = gather(shape)
    return {"mode": "self-check", "shape": shape,
            "bundle": check_bundle(bundle) if bundle else "not given",
            "facts": {k: facts[k] for k in ("gpu_count", "nvidia_gpu_count", "nvidia_driver")},
            "architectures": architectures(facts),
            "gate": {"debian-12 toolkit 11.8": gate(facts, "11.8"),
                     "debian-13 toolkit 12.4": gate(facts, "12.4")},
            "judgements": judgements(facts, (REPO / "tests/fixtures/validate/gpu"
                                             / "cuda-all-layers.log").read_text())}


def prepare(bundle: Path, source_archive: Path | None) -> dict[str, Any]:
    """Fill a bundle on a machine with the network or caches: source archive, model, wheels."""
    from toolkit.models.cache import default_cache, fetch, file_path
    from toolkit.models.catalog import get_model

    want = pins()
    bundle.mkdir(parents=True, exist_ok=True)
    source = bundle / want["source"]
    if not source.is_file():
        if source_archive:
            shutil.copyfile(source_archive, source)
        else:
            defaults = yaml.safe_load((REPO / "roles/llama_cpp/defaults/main.yml").read_text())
            url = str(defaults["llama_cpp_source_url"]).strip()
            with urllib.request.urlopen(url, timeout=600) as resp, \
                    (bundle / (want["source"] + ".part")).open("wb") as part:
                shutil.copyfileobj(resp, part)
            (bundle / (want["source"] + ".part")).replace(source)
    model = get_model(MODEL)
    fetch(model, default_cache())
    shutil.copyfile(file_path(default_cache(), model, model.files[0]), bundle / want["model"])
    wheels = bundle / "wheels"
    # PyYAML (seeds) and ansible-core (gpu_facts imports ansible.module_utils): put on the path
    # by scripts/gpu-contract.sh, never installed on the GPU machine.
    from ansible import __version__ as ansible_version

    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
                    "--dest", str(wheels), "pyyaml"], check=False)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--dest", str(wheels), f"ansible-core=={ansible_version}"], check=False)
    return check_bundle(bundle)


def run(bundle: Path, out: Path, jobs: int, clock: Callable[[], float] = time.monotonic
        ) -> dict[str, Any]:
    start = clock()
    result: dict[str, Any] = {"mode": "gpu", "budget_s": BUDGET_S}
    result["bundle"] = check_bundle(bundle)
    gf = _load_gpu_facts()
    facts = live_facts(gf)
    result["facts"] = facts
    toolkit = nvcc_version()
    result["gate"] = gate(facts, toolkit)
    archs = architectures(facts)
    if not archs or not result["bundle"]["ok"] or not toolkit:
        result["ok"] = False
        result["stopped"] = ("no NVIDIA GPU in the facts" if not archs else
                             "bundle incomplete" if not result["bundle"]["ok"] else "no nvcc")
        return result
    with tempfile.TemporaryDirectory(prefix="gpu-contract-") as tmp:
        work = Path(tmp)
        result["build"] = build(bundle, work, archs, jobs)
        if result["build"]["ok"]:
            home = Path(result["build"]["home"])
            model = bundle / pins()["model"]
            served = serve(home, model, work)
            log = served.pop("log")
            (out / "llama-server.log").write_text(log, encoding="utf-8")
            result["serve"] = served
            speed = served.get("gateway") if isinstance(served.get("gateway"), dict) \
                else served.get("http")
            result["judgements"] = judgements(facts, log, speed or {})
            result["speed"] = {"llama_bench_tg128": llama_bench(home, model)}
            http = served.get("http") or {}
            bench = result["speed"]["llama_bench_tg128"]
            if bench and http:
                result["speed"]["http_vs_bench"] = round(http["tokens_per_s"] / bench, 3)
    result["seconds"] = round(clock() - start, 1)
    result["ok"] = bool(result["gate"]["ok"] and result.get("build", {}).get("ok")
                        and all(c["status"] == "pass" for c in result.get("judgements", []))
                        and result["seconds"] < BUDGET_S)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="directory with the source archive and model")
    parser.add_argument("--out", type=Path, required=True, help="directory for contract.json")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--self-check", action="store_true",
                        help="GPU-free part only, on a recorded host tree")
    parser.add_argument("--prepare", action="store_true",
                        help="fill --bundle (network or local caches), then stop")
    parser.add_argument("--source-archive", type=Path,
                        help="with --prepare: a local copy of the pinned source archive")
    parser.add_argument("--shape", default="hgx-h100-mig-open",
                        help="recorded tree for --self-check (tests/fixtures/gpu)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.prepare:
        if args.bundle is None:
            parser.error("--prepare needs --bundle")
        data = {"mode": "prepare", "bundle": prepare(args.bundle, args.source_archive)}
        data["ok"] = data["bundle"]["ok"]
    elif args.self_check:
        data = self_check(args.bundle, args.shape)
        data["ok"] = (data["bundle"] == "not given" or data["bundle"]["ok"])
    else:
        if args.bundle is None:
            parser.error("--bundle is required on a GPU machine")
        data = run(args.bundle, args.out, args.jobs)
    write_json(args.out / "contract.json", data)
    print(json.dumps({k: data[k] for k in ("mode", "ok") if k in data}))
    return 0 if data.get("ok") else 2


if __name__ == "__main__":
    sys.exit(main())
