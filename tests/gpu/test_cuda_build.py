"""A real CUDA build of llama-server through the llama_cpp role's build script (marker
cuda_build; outside the default gate: ~20 minutes per architecture on 2 cores, more under
load). No GPU is needed: nvcc compiles without one. It runs in a debian13 sandbox container
with trixie's nvidia-cuda-toolkit 12.4 (what the role installs on Debian 13), for sm_90 only:

    GPUFORGE_CUDA_BUILD_DIR=DIR pytest -m cuda_build tests/gpu/test_cuda_build.py

DIR keeps the artifact (llama-server-cuda12-sm90.tar.gz): a later run checks it without
compiling again. The proof asked of it: llama-server needs libcudart/libcublas 12 and the
driver's libcuda (readelf NEEDED), and carries the CUDA backend (ggml_cuda_init)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from toolkit.sandbox.images import ensure_image
from toolkit.sandbox.podman import podman_env

pytestmark = [pytest.mark.cuda_build, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SOURCE = "llama_cpp_python-0.3.36.tar.gz"
SUBDIR = "llama_cpp_python-0.3.36/vendor/llama.cpp"
ARTIFACT = "llama-server-cuda12-sm90.tar.gz"
CONTAINER = "gpuforge-cuda-build"


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                          check=check)


def build(directory: Path) -> float:
    """Compile in a debian13 container; the source archive must be in `directory`."""
    image = ensure_image("debian13")
    shutil.copy(REPO / "roles/llama_cpp/files/build-llama-server.sh", directory)
    _podman("rm", "-f", CONTAINER, check=False)
    _podman("run", "-d", "--name", CONTAINER, "-v", f"{directory}:/build:Z", image,
            "sleep", "infinity")
    try:
        _podman("exec", CONTAINER, "sh", "-c",
                "echo 'deb http://deb.debian.org/debian trixie main contrib non-free' "
                "> /etc/apt/sources.list.d/cuda.list && apt-get update -q")
        _podman("exec", "-e", "DEBIAN_FRONTEND=noninteractive", CONTAINER, "apt-get", "install",
                "-y", "-q", "--no-install-recommends", "build-essential", "cmake",
                "nvidia-cuda-toolkit", "binutils")
        start = time.monotonic()
        _podman("exec", "-e", "TMPDIR=/build/tmp", CONTAINER, "sh", "-c",
                "mkdir -p /build/tmp && nice -n 19 sh /build/build-llama-server.sh "
                f"/build/{SOURCE} {SUBDIR} cuda {os.cpu_count() or 2} /build/{ARTIFACT} 90")
        return time.monotonic() - start
    finally:
        _podman("rm", "-f", CONTAINER, check=False)


def test_llama_server_links_the_cuda_backend(tmp_path: Path) -> None:
    directory = Path(os.environ.get("GPUFORGE_CUDA_BUILD_DIR", tmp_path))
    assert (directory / SOURCE).is_file() or (directory / ARTIFACT).is_file(), (
        f"put {SOURCE} (the pinned source archive) into {directory}")
    if not (directory / ARTIFACT).is_file():
        print(f"CUDA build took {build(directory):.0f} s")
    with tarfile.open(directory / ARTIFACT) as tar:
        tar.extractall(tmp_path / "pkg", filter="data")
    binary = tmp_path / "pkg" / "bin" / "llama-server"
    needed = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True,
                            check=True).stdout
    for lib in ("libcudart.so.12", "libcublas.so.12", "libcuda.so.1"):
        assert f"[{lib}]" in needed, needed
    strings = subprocess.run(["strings", str(binary)], capture_output=True, text=True,
                             check=True).stdout
    assert "ggml_cuda_init" in strings
