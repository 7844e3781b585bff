"""The llama_cpp build cache key and the artifact check, run by Ansible (check mode, on the
controller itself) through the role's own install tasks against a staged controller cache:
the artifact name carries backend, CUDA major and architectures; a cached artifact whose
sha256 differs from the one recorded at publish time is refused before anything is unpacked;
an artifact built from another source archive is a cache miss (built again)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from toolkit.paths import collections_dir

SOURCE_SHA = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  vars:
    base_apt_ready: false
    llama_cpp_controller_cache: {cache}
    llama_cpp_artifact_platform: testplat
  tasks:
    - ansible.builtin.include_role:
        name: gpuforge.infra.llama_cpp
        tasks_from: install.yml
"""


def _stage(cache: Path, name: str, *, recorded: str | None = None,
           source: str = SOURCE_SHA) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    artifact = cache / f"{name}.tar.gz"
    artifact.write_bytes(b"not really a tarball\n")
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    (cache / f"{name}.tar.gz.json").write_text(json.dumps(
        {"sha256": recorded or digest, "source_sha256": source}), encoding="utf-8")
    return artifact


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "play.yml"
    play.write_text(_PLAY.format(cache=tmp_path / "cache"), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_dir()), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false")
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "--check",
         "-e", f"ansible_python_interpreter={sys.executable}", *extra, str(play)],
        capture_output=True, text=True, env=env, check=False, cwd=tmp_path)


def test_a_cached_artifact_that_changed_since_publishing_is_refused(tmp_path: Path) -> None:
    artifact = _stage(tmp_path / "cache", "llama-server-0.3.36-cpu-testplat", recorded="0" * 64)
    proc = _run(tmp_path, "-e", "llama_cpp_backend=cpu")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert f"{artifact} has sha256" in proc.stdout
    assert "0" * 64 + " was recorded when it was published" in proc.stdout
    assert "Unpack the artifact" not in proc.stdout


def test_the_cuda_artifact_is_named_by_toolkit_major_and_architectures(tmp_path: Path) -> None:
    # The controller is Debian 12: Debian's toolkit there is CUDA 11.8.
    _stage(tmp_path / "cache", "llama-server-0.3.36-cuda11-sm80_90-testplat")
    proc = _run(tmp_path, "-e", "llama_cpp_backend=cuda",
                "-e", json.dumps({"llama_cpp_cuda_architectures": ["80", "90"]}))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Build | Compile" not in proc.stdout  # found in the cache under that name
    assert "Check the artifact against the sha256 recorded" in proc.stdout


def test_an_artifact_of_another_source_archive_is_built_again(tmp_path: Path) -> None:
    _stage(tmp_path / "cache", "llama-server-0.3.36-cpu-testplat", source="f" * 64)
    proc = _run(tmp_path, "-e", "llama_cpp_backend=cpu")
    assert "Treat an artifact of another source archive as missing" in proc.stdout
    assert "Build | Compile llama-server and llama-bench" in proc.stdout, proc.stdout[-3000:]


_PREFLIGHT = """
- hosts: localhost
  connection: local
  gather_facts: true
  vars:
    model_store_paths: {smollm2-135m-instruct: {path: /srv/models/smollm2.gguf}}
  tasks:
    - ansible.builtin.include_role:
        name: gpuforge.infra.llama_cpp
        tasks_from: preflight.yml
"""


def test_the_role_refuses_a_toolkit_that_cannot_build_for_the_gpus(tmp_path: Path) -> None:
    # Same table as the gate; here the architectures come from the run (gathered facts or
    # inventory), as on a host whose generation the inventory never declared.
    play = tmp_path / "preflight.yml"
    play.write_text(_PREFLIGHT, encoding="utf-8")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_dir()), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false")

    def run(archs: list[str], version: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "--check",
             "-e", f"ansible_python_interpreter={sys.executable}", "-e", "llama_cpp_backend=cuda",
             "-e", json.dumps({"llama_cpp_cuda_architectures": archs,
                               "llama_cpp_cuda_version": version}), str(play)],
            capture_output=True, text=True, env=env, check=False, cwd=tmp_path)

    refused = run(["80", "90"], "11.8")
    assert refused.returncode == 2, refused.stdout[-3000:]
    assert "CUDA 11.8 (llama_cpp_cuda_version" in refused.stdout
    assert "cannot build for sm_90 (needs CUDA 12.0 or newer)" in refused.stdout
    assert "sm_80" not in refused.stdout.split("cannot build for")[1].split("on localhost")[0]
    passed = run(["90"], "12.4")
    assert "Check the CUDA toolkit can build" in passed.stdout
    assert "cannot build for" not in passed.stdout


def test_a_cuda_cache_miss_plans_the_toolchain_without_touching_anything(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    proc = _run(tmp_path, "-e", "llama_cpp_backend=cuda",
                "-e", json.dumps({"llama_cpp_cuda_architectures": ["80"]}))
    assert "Build | Install the GPU toolchain (cuda)" in proc.stdout, proc.stdout[-3000:]
    assert "Toolchain | Install the GPU compiler and libraries" in proc.stdout
    assert "Build | Compile llama-server and llama-bench (minutes) for cuda" in proc.stdout
    assert "fatal:" not in proc.stdout.split("Install | Install the runtime libraries")[0]
