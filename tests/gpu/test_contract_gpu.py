"""The GPU contract on real hardware (marker gpu): run by scripts/gpu-contract.sh, or as
`GPUFORGE_GPU_BUNDLE=DIR pytest -m gpu tests/gpu` on the GPU machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.gpu import contract

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    bundle = os.environ.get("GPUFORGE_GPU_BUNDLE")
    assert bundle, "set GPUFORGE_GPU_BUNDLE to a bundle made by scripts/gpu-contract.sh --prepare"
    out = tmp_path_factory.mktemp("gpu-contract")
    data = contract.run(Path(bundle), out, os.cpu_count() or 2)
    contract.write_json(out / "contract.json", data)
    return data


def test_facts_name_every_gpu_with_memory_and_compute_capability(result: dict) -> None:
    gpus = [g for g in result["facts"]["gpus"] if g["vendor"] == "nvidia"]
    assert gpus and all(g["name"] and g["memory_mib"] and g["compute_capability"] for g in gpus)
    assert all(g["mig_mode"] in ("enabled", "disabled", None) for g in gpus)


def test_the_gate_passes_the_machines_own_toolkit(result: dict) -> None:
    assert result["gate"]["ok"], result["gate"]["problems"]


def test_llama_server_links_cuda_and_offloads_every_layer(result: dict) -> None:
    assert result["build"]["ok"] and result["build"]["ldd_cuda"], result["build"]
    on_gpu = [c for c in result["judgements"] if not c["name"].startswith("gateway.")]
    assert all(c["status"] == "pass" for c in on_gpu), on_gpu


def test_validates_gpu_checks_pass_with_the_gpu_class_floors(result: dict) -> None:
    """The checks `gpuforge validate` makes on a GPU host, tokens/s and TTFT included."""
    names = [c["name"] for c in result["judgements"]]
    assert {"gpu.driver", "gpu.smi_visible", "gateway.tokens_per_s", "gateway.ttft_s"} <= set(
        names), names
    assert all(c["status"] == "pass" for c in result["judgements"]), result["judgements"]


def test_the_contract_fits_its_budget(result: dict) -> None:
    assert result["seconds"] < contract.BUDGET_S
