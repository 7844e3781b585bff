"""`gpuforge facts` on a sandbox host, `gpuforge check` refusing a bad driver pin, and
`gpuforge plan --profile llm-server` on that fresh host (never applied)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox
from tests.sandbox import GPUFORGE

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


# The installed packages, then a digest of every file (content and link target) under /etc and
# /boot, then of the list of paths: a plan must leave all three as they were.
_SNAPSHOT = ("dpkg-query -W -f='${Package} ${Version} ${db:Status-Status}\\n' | sha256sum; "
             "find /etc /boot -xdev \\( -type f -o -type l \\) -print0 | sort -z "
             "| xargs -0 sha256sum | sha256sum; find /etc /boot -xdev | sort | sha256sum")


def test_plan_llm_server_on_a_fresh_gpu_host_changes_nothing(box: Sandbox,
                                                            tmp_path: Path) -> None:
    # A fresh host: no python3-apt, nothing prepared; the GPU roles run (the stand-in says a
    # GPU is there) and gpuforge_runtime is left to its default. NVIDIA's toolkit repository is
    # unreachable here, as at an air-gapped site without a mirror.
    host = box.state["hosts"][0]["name"]
    inventory = tmp_path / "inv"
    (inventory / "group_vars").mkdir(parents=True)
    shutil.copy(box.inventory, inventory / "hosts.yml")
    (inventory / "group_vars" / "all.yml").write_text(
        "nvidia_driver_assume_gpu: true\ncontainer_gpu_toolkit_install: false\n",
        encoding="utf-8")
    before = box.exec(host, "sh", "-c", _SNAPSHOT)
    assert before.returncode == 0 and "python3-apt" not in box.exec(
        host, "sh", "-c", "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' "
        "| grep ' installed$'").stdout
    env = {**box.env, "GPUFORGE_API_KEY": "gf-test-" + secrets.token_hex(16)}
    proc = subprocess.run([*GPUFORGE, "plan", "-i", str(inventory), "--profile", "llm-server",
                           "--json"], env=env, capture_output=True, text=True, timeout=1800,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads(proc.stdout)
    assert data["hosts"][host]["failed"] == 0
    planned = {c["task"] for c in data["changes"] if c["host"] == host}
    # What apply would do, the GPU roles' part included.
    assert {"Install | Add the Debian contrib/non-free archive", "Install | Pin the driver branch",
            "Configure | Blacklist nouveau", "Docker | Write the merged daemon.json"} <= planned
    assert "would change" in proc.stderr and "Blacklist nouveau" in proc.stderr
    # The facts show no GPU (a container): llama.cpp serves on the CPU, and the summary says so.
    warning = f"{host}: no GPU in the facts of {host}: llama_cpp serves on the CPU"
    assert any(w.startswith(warning) for w in data["warnings"]), data["warnings"]
    assert f"warning: {warning}" in proc.stderr
    after = box.exec(host, "sh", "-c", _SNAPSHOT)
    assert after.stdout == before.stdout, "plan changed packages, /etc or /boot on the host"
