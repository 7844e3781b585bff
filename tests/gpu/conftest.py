"""tests/gpu runs only where an NVIDIA GPU answers: elsewhere its `gpu` tests are deselected
(not skipped, so a CI run without a GPU neither fails nor reports a skip), and the real
CUDA build (marker cuda_build) runs only when `-m cuda_build` asks for it. Its GPU-free part
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


def _left_out(config: pytest.Config, item: pytest.Item, gpu_present: bool) -> bool:
    if item.get_closest_marker("gpu") and not gpu_present:
        return True
    # The real CUDA build takes tens of minutes: only when asked for by name (-m cuda_build).
    return bool(item.get_closest_marker("cuda_build")) and \
        "cuda_build" not in (config.option.markexpr or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    present = nvidia_gpu_present()
    left = [item for item in items if _left_out(config, item, present)]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if item not in left]
