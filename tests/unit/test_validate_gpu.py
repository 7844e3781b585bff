"""validate's GPU judgements: every GPU on the PCI bus visible to nvidia-smi, the runtime really
on the GPU (every layer offloaded to a CUDA/ROCm device), and serving floors per GPU class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.gpu.trees import gather, materialise
from tests.unit.test_gpu_facts import gf
from toolkit.validate import judge_gpus_visible, judge_offload, parse_offload, thresholds_for_gpu

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / "tests" / "fixtures" / "validate" / "gpu"
CLASSES = yaml.safe_load((REPO / "seeds" / "validate_gpu_classes.yml").read_text())


def _h100_with_smi_lines(keep: int) -> dict[str, Any]:
    """The recorded HGX H100 host, nvidia-smi answering for its first `keep` GPUs only."""
    root = materialise("hgx-h100-mig-open")
    smi = (root / "tools" / "nvidia_smi.txt").read_text().splitlines()[:keep]
    facts: dict[str, Any] = gf.gather(
        str(root), gf.GPU_CATALOG, lambda key: "\n".join(smi) if key == "nvidia_smi" else None,
        lambda key: key == "nvidia_smi")
    return facts


def test_every_gpu_on_the_bus_listed_by_nvidia_smi_passes() -> None:
    facts = gather("hgx-h100-mig-open")
    check = judge_gpus_visible("gpu1", facts)
    assert check.passed and check.measured == facts["nvidia_gpu_count"] == 8


def test_a_gpu_on_the_bus_but_missing_from_nvidia_smi_fails_by_address() -> None:
    check = judge_gpus_visible("gpu1", _h100_with_smi_lines(7))
    assert not check.passed
    assert check.measured == 7 and check.threshold == "== 8 (PCI)"
    assert check.message.startswith("1 of 8 GPUs on the PCI bus missing from nvidia-smi: 0000:")


def test_no_nvidia_smi_fails() -> None:
    check = judge_gpus_visible("gpu1", gather("hgx-h100-mig-open", without=("nvidia_smi",)))
    assert not check.passed and check.message == "nvidia-smi is not installed"


def test_a_host_without_gpus_has_nothing_missing() -> None:
    assert judge_gpus_visible("cpu1", gather("no-gpu")).passed


def test_offload_is_read_from_the_start_up_log() -> None:
    got = parse_offload((LOGS / "cuda-all-layers.log").read_text())
    assert got == {"layers": 31, "total": 31, "devices": ["CUDA0 (NVIDIA H200)"]}
    assert parse_offload((LOGS / "cpu-build.log").read_text()) == {
        "layers": None, "total": None, "devices": []}


@pytest.mark.parametrize(("log", "backend", "ok", "why"), [
    ("cuda-all-layers.log", "cuda", True, ""),
    ("cuda-partial.log", "cuda", False, "only 12/31 layers offloaded"),
    ("cpu-build.log", "cuda", False, "no CUDA device in the log (serving on the CPU?)"),
    ("cuda-all-layers.log", "rocm", False, "no ROCm device in the log (serving on the CPU?)"),
    ("cpu-build.log", "cpu", True, ""),
])
def test_a_gpu_host_serving_on_the_cpu_fails(log: str, backend: str, ok: bool, why: str) -> None:
    check = judge_offload("gpu1", "smollm2-135m-instruct", backend, (LOGS / log).read_text())
    assert check.name == "runtime.smollm2-135m-instruct.gpu"
    assert (check.passed, check.message) == (ok, why)


def test_floors_follow_the_gpu_class() -> None:
    hopper = thresholds_for_gpu(CLASSES, gather("hgx-h100-mig-open"))
    cpu = thresholds_for_gpu(CLASSES, gather("no-gpu"))
    assert hopper == {"min_tokens_per_s": 200, "max_ttft_s": 1}
    assert cpu == {"min_tokens_per_s": 1.0, "max_ttft_s": 30.0}
    assert thresholds_for_gpu(CLASSES, gather("mi300x-rocm"))["min_tokens_per_s"] == 150
    assert thresholds_for_gpu(CLASSES, {"gpu_count": 1, "gpus": [
        {"vendor": "nvidia", "generation": "kepler"}]}) == {}


def test_every_gpu_generation_of_the_catalog_has_floors() -> None:
    generations = {str(e["generation"]) for e in yaml.safe_load(
        (REPO / "seeds" / "gpus.yml").read_text())["devices"] if e["kind"] == "gpu"}
    missing = generations - set(CLASSES["classes"])
    # Volta, Turing, CDNA1/2 and RDNA3 are not serving targets yet: listed so the gap is seen.
    assert missing == {"volta", "turing", "cdna1", "cdna2", "rdna3"}
