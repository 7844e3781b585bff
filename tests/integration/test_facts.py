"""`gpuforge facts` on a sandbox host, and `gpuforge check` refusing a bad driver pin."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def box(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox("gpufacts", hosts=1, distro="debian13")


def test_facts_json_reports_a_host_without_gpus(box: Sandbox) -> None:
    proc = box.gpuforge("facts", "-i", box.inventory, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] is True
    [(host, facts)] = data["hosts"].items()
    assert host == box.state["hosts"][0]["name"]
    # A sandbox host is a container: no GPU, no NVIDIA driver, no NVSwitch.
    assert facts["gpu_count"] == 0 and facts["gpus"] == []
    assert facts["nvswitch_count"] == 0
    assert facts["nvidia_driver"] is None
    assert facts["secure_boot"] in ("enabled", "disabled", "unknown")


def test_facts_table_says_no_gpu(box: Sandbox) -> None:
    proc = box.gpuforge("facts", "-i", box.inventory)
    assert proc.returncode == 0, proc.stderr
    assert "0 GPU(s)" in proc.stderr and "no GPU" in proc.stderr


def test_check_refuses_a_driver_branch_too_old_for_vllm(box: Sandbox, tmp_path: Path) -> None:
    inventory = tmp_path / "inv"
    (inventory / "group_vars").mkdir(parents=True)
    shutil.copy(box.inventory, inventory / "hosts.yml")
    (inventory / "group_vars" / "all.yml").write_text(
        "nvidia_driver_branch: '535'\nvllm_version: '0.11.0'\n", encoding="utf-8")
    proc = box.gpuforge("check", "-i", str(inventory), "--profile", "gpu-node")
    assert proc.returncode == 3, proc.stderr
    assert "nvidia_driver_branch vs vllm_version" in proc.stderr
    assert "driver branch 535 supports CUDA up to 12.2, but vllm 0.11.0 needs CUDA 12.8" \
        in proc.stderr
    assert str(inventory / "group_vars" / "all.yml") in proc.stderr
