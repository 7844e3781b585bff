"""The GPU-free part of the GPU contract suite (scripts/gpu-contract.sh): it runs here, in the
default gate; the part that needs a GPU (tests/gpu, marker gpu) is deselected without one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.gpu import contract
from tests.gpu.conftest import nvidia_gpu_present

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu-contract.sh"


def _run(*args: str) -> tuple[int, dict]:
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    out = Path(args[args.index("--out") + 1]) / "contract.json"
    return proc.returncode, json.loads(out.read_text())


def test_self_check_runs_facts_gate_and_judgements_on_a_recorded_h100(tmp_path: Path) -> None:
    rc, data = _run("--self-check", "--out", str(tmp_path))
    assert rc == 0 and data["ok"] is True
    assert data["facts"]["nvidia_gpu_count"] == 8 and data["architectures"] == ["90"]
    old = data["gate"]["debian-12 toolkit 11.8"]
    assert old["ok"] is False
    assert old["problems"][0]["message"].startswith("CUDA 11.8 cannot build for sm_90")
    assert data["gate"]["debian-13 toolkit 12.4"]["ok"] is True
    # validate's GPU checks, the same code `gpuforge validate` runs on a GPU host.
    assert [(c["name"], c["status"]) for c in data["judgements"]] == [
        ("gpu.visible", "pass"), ("gpu.driver", "pass"), ("gpu.smi_visible", "pass"),
        (f"runtime.{contract.MODEL}.gpu", "pass")]


def test_a_bundle_with_a_wrong_model_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"not the model")
    rc, data = _run("--self-check", "--bundle", str(bundle), "--out", str(tmp_path / "out"))
    assert rc == 2 and data["ok"] is False
    files = data["bundle"]["files"]
    assert files["SmolLM2-135M-Instruct.Q4_1.gguf"]["ok"] is False
    assert files["llama_cpp_python-0.3.36.tar.gz"]["sha256"] is None  # not carried


def test_self_check_of_a_host_without_gpu_has_no_architectures(tmp_path: Path) -> None:
    rc, data = _run("--self-check", "--shape", "no-gpu", "--out", str(tmp_path))
    assert rc == 0 and data["architectures"] == [] and data["facts"]["gpu_count"] == 0


def test_the_script_is_clean_shell() -> None:
    assert subprocess.run(["sh", "-n", str(SCRIPT)], check=False).returncode == 0
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is needed (scripts/setup.sh installs it)"
    proc = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


def test_gpu_tests_are_deselected_where_no_gpu_answers() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--collect-only", str(REPO / "tests" / "gpu" / "test_contract_gpu.py")],
                          capture_output=True, text=True, check=False, cwd=REPO)
    expected = "5 tests collected" if nvidia_gpu_present() else "5 deselected"
    assert expected in proc.stdout, proc.stdout[-1500:]
    assert "skipped" not in proc.stdout


def test_the_contract_judges_speed_against_the_gpu_class_floors() -> None:
    from tests.fixtures.gpu.trees import gather

    log = (REPO / "tests/fixtures/validate/gpu/cuda-all-layers.log").read_text()
    checks = {c["name"]: c for c in contract.judgements(
        gather("hgx-h100-mig-open"), log, {"tokens_per_s": 150.0, "ttft_s": 0.05})}
    assert (checks["gateway.tokens_per_s"]["status"], checks["gateway.tokens_per_s"]["threshold"]
            ) == ("fail", ">= 200")  # seeds/validate_gpu_classes.yml: hopper
    assert checks["gateway.ttft_s"]["status"] == "pass"
    cpu = {c["name"]: c for c in contract.judgements(
        gather("hgx-h100-mig-open"), (REPO / "tests/fixtures/validate/gpu/cpu-build.log")
        .read_text())}
    assert cpu[f"runtime.{contract.MODEL}.gpu"]["message"].startswith("serving on the CPU")
