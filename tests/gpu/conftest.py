"""tests/gpu runs only where an NVIDIA GPU answers: elsewhere its `gpu` tests are deselected
(not skipped, so a CI run without a GPU neither fails nor reports a skip). Its GPU-free part
lives in tests/unit/test_gpu_contract.py, in the default gate."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def nvidia_gpu_present() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    proc = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and "GPU " in proc.stdout


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if nvidia_gpu_present():
        return
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if "gpu" not in item.keywords]
