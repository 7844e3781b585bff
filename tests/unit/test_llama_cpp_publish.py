"""llama_cpp's publish step, run by Ansible on the controller itself: several runs on one
controller that publish the same artifact at once (two deploys of different hosts, both on a
cache miss) each succeed, and the cache ends with the artifact beside a record whose sha256
is that artifact's, and no temporary file left. Before each run fetched to its own temporary
file, they shared `<artifact>.tar.gz.part` and the slower one failed on a file the faster had
already renamed (met in the test command when two sandbox suites built at once)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toolkit.paths import collections_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="the build directory /var/cache/gpuforge is root's")

RUNS = 3
PUBLISHES = 4  # per run


def test_concurrent_publishes_of_one_artifact_leave_a_consistent_cache(tmp_path: Path) -> None:
    artifact = f"llama-server-test-{os.getpid()}-cpu-debian12-x86_64"
    build = Path("/var/cache/gpuforge/llama-build")
    build.mkdir(parents=True, exist_ok=True)
    source = build / f"{artifact}.tar.gz"
    data = os.urandom(3_000_000)
    source.write_bytes(data)
    cache = tmp_path / "cache"
    key = {"source_sha256": "a" * 64, "backend": "cpu", "toolkit_major": "", "architectures": []}
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"llama_cpp_controller_cache": str(cache), "__llama_cpp_artifact": artifact,
                      "__llama_cpp_tarball": str(cache / f"{artifact}.tar.gz"),
                      "__llama_cpp_artifact_key": key},
             "tasks": [{"ansible.builtin.include_role": {"name": "gpuforge.infra.llama_cpp",
                                                         "tasks_from": "publish.yml"},
                        "loop": list(range(PUBLISHES))}]}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_dir()),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false")
    try:
        procs = [subprocess.Popen(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
             "-e", f"ansible_python_interpreter={sys.executable}", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
            for _ in range(RUNS)]
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        source.unlink()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-4000:]
    tarball = cache / f"{artifact}.tar.gz"
    assert tarball.read_bytes() == data
    record = json.loads((cache / f"{artifact}.tar.gz.json").read_text(encoding="utf-8"))
    assert record == {**key, "sha256": hashlib.sha256(data).hexdigest()}
    assert tarball.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in cache.iterdir()) == [
        ".publish.lock", f"{artifact}.tar.gz", f"{artifact}.tar.gz.json"]
