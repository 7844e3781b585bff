"""llm-server serves on the GPU by default: the backend, CUDA architectures and offloaded layers
follow the GPU facts (recorded NVIDIA, AMD and GPU-less hosts), the inventory still wins, and a
GPU-less host's warning reaches the run summary."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from tests.unit.test_gpu_facts import gather, materialise
from toolkit.paths import collections_dir
from toolkit.summary import EventSummariser

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gpuforge_gpu_backend_filter", REPO / "plugins" / "filter" / "gpu_backend.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gb = _load()


@pytest.mark.parametrize(("shape", "backend", "archs", "targets"), [
    ("hgx-h100-mig-open", "cuda", ["90"], []),
    ("rtx4090-proprietary", "cuda", ["89"], []),
    ("mi300x-rocm", "rocm", ["80", "86", "89", "90"], ["gfx942"]),
    ("no-gpu", "cpu", ["80", "86", "89", "90"], []),
])
def test_backend_follows_the_recorded_facts(shape: str, backend: str, archs: list[str],
                                            targets: list[str]) -> None:
    facts = gather(shape)
    assert gb.gpu_backend(facts) == backend
    assert gb.cuda_architectures(facts) == archs
    assert gb.amdgpu_targets(facts) == targets


def test_no_facts_at_all_is_cpu_and_the_default_list_carries_hopper() -> None:
    assert gb.gpu_backend(None) == "cpu"
    assert gb.gpu_backend({}) == "cpu"
    assert "90" in gb.cuda_architectures(None)


def test_mixed_compute_capabilities_are_sorted_and_unique() -> None:
    facts = {"gpus": [{"vendor": "nvidia", "compute_capability": "9.0"},
                      {"vendor": "nvidia", "compute_capability": "8.0"},
                      {"vendor": "nvidia", "compute_capability": "9.0"},
                      {"vendor": "nvidia", "compute_capability": "12.0"},
                      {"vendor": "nvidia", "compute_capability": None}]}
    assert gb.cuda_architectures(facts) == ["80", "90", "120"]


def test_a_non_mapping_is_refused_by_name() -> None:
    with pytest.raises(AnsibleFilterError, match="gpuforge_gpu"):
        gb.gpu_backend(["H100"])


def test_a_gpu_less_hosts_warning_reaches_the_run_summary() -> None:
    summariser = EventSummariser()
    summariser.add({"event": "runner_on_ok", "event_data": {
        "host": "cpu-1", "task": "Warn when a host serves on the CPU",
        "res": {"changed": False, "ansible_facts": {
            "gpuforge_run_warning": "no GPU in the facts of cpu-1: llama_cpp serves on the CPU"}}}})
    summariser.add({"event": "runner_on_ok", "event_data": {
        "host": "gpu-1", "task": "Gather GPU facts", "res": {"changed": False}}})
    assert summariser.summary().warnings == [
        "cpu-1: no GPU in the facts of cpu-1: llama_cpp serves on the CPU"]


# The role's own defaults and argument template, rendered by Ansible against the facts that the
# real gpu_facts module reads from a recorded host tree (its root option is the seam: no GPU
# can exist in a sandbox host).
_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{defaults}, {vars}]
  vars:
    model_store_paths: {{smollm2-135m-instruct: {{path: /srv/models/smollm2.gguf}}}}
  tasks:
    - gpuforge.infra.gpu_facts:
        root: {root}
        use_tools: false
    - ansible.builtin.copy:
        dest: {out}
        mode: "0600"
        content: "{{{{ {{'backend': llama_cpp_backend, 'archs': llama_cpp_cuda_architectures,
          'layers': llama_cpp_n_gpu_layers | int, 'ollama_gpu': ollama_gpu,
          'devices': llama_cpp_gpu_devices,
          'args': lookup('ansible.builtin.template', '{template}') | from_json}} | to_json }}}}"
"""


def _render(tmp_path: Path, shape: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out = tmp_path / f"{shape}.json"
    play = tmp_path / "play.yml"
    play.write_text(_PLAY.format(
        defaults=REPO / "roles/llama_cpp/defaults/main.yml",
        vars=REPO / "roles/llama_cpp/vars/main.yml",
        root=materialise(shape), out=out,
        template=REPO / "roles/llama_cpp/templates/args.json.j2"), encoding="utf-8")
    ollama = tmp_path / "ollama.yml"
    ollama.write_text((REPO / "roles/ollama/defaults/main.yml").read_text(), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_dir()),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
            "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"@{ollama}", str(play)]
    for key, value in (extra or {}).items():
        argv += ["-e", json.dumps({key: value})]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_an_nvidia_host_builds_cuda_for_its_gpus_and_offloads_every_layer(
        tmp_path: Path) -> None:
    got = _render(tmp_path, "hgx-h100-mig-open")
    assert got["backend"] == "cuda" and got["archs"] == ["90"] and got["ollama_gpu"] is True
    # The unit may open all eight GPUs, not only the first.
    assert got["devices"] == [f"/dev/nvidia{i}" for i in range(8)] + [
        "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]
    args = got["args"]["smollm2-135m-instruct"]
    assert args[args.index("--n-gpu-layers") + 1] == "999"


def test_a_host_without_gpu_serves_on_the_cpu(tmp_path: Path) -> None:
    got = _render(tmp_path, "no-gpu")
    assert got["backend"] == "cpu" and got["ollama_gpu"] is False
    assert got["devices"][0] == "/dev/nvidia0" and len(got["devices"]) == 4
    args = got["args"]["smollm2-135m-instruct"]
    assert args[args.index("--n-gpu-layers") + 1] == "0"


def test_the_inventory_still_overrides_the_facts(tmp_path: Path) -> None:
    got = _render(tmp_path, "hgx-h100-mig-open", {"llama_cpp_backend": "cpu"})
    assert got["backend"] == "cpu"
    args = got["args"]["smollm2-135m-instruct"]
    assert args[args.index("--n-gpu-layers") + 1] == "0"
