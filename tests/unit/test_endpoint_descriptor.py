"""The serving contract between the runtimes and the roles that serve, watch or measure them:
one schema (roles/common/files/endpoint-descriptor.schema.json), one writer (common's
endpoint_descriptor task file) and one reader (common's endpoint_descriptors). Each runtime's
descriptor, written by Ansible through the writer from the mapping in the runtime's own tasks,
must match the schema; a descriptor that does not is refused before it reaches endpoints.d."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from toolkit.paths import collections_dir

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "roles" / "common" / "files" / "endpoint-descriptor.schema.json")
                    .read_text(encoding="utf-8"))
RUNTIMES = ("llama_cpp", "ollama", "vllm")
READERS = ("gateway", "monitoring_agent", "validate", "llama_cpp")
INCLUDE = "ansible.builtin.include_role"
# Values the runtimes' templated fields read, as a host would have them.
HOST_VARS: dict[str, Any] = {
    "__i": {"name": "qwen2.5-0.5b", "port": 8081}, "llama_cpp_backend": "cuda",
    "llama_cpp_api_key_file": "/etc/llama-server/api.key",
    "item": {"name": "llama3.2:1b"}, "ollama_host": "127.0.0.1:11434", "ollama_gpu": False,
    "vllm_served_model_name": "qwen2.5-0.5b-instruct", "__vllm_url": "http://127.0.0.1:8000",
    "vllm_api_key_file": "",
}


def _tasks(role: str) -> Iterator[dict[str, Any]]:
    def walk(tasks: Any) -> Iterator[dict[str, Any]]:
        for task in tasks if isinstance(tasks, list) else []:
            if isinstance(task, dict):
                yield task
                for key in ("block", "rescue", "always"):
                    yield from walk(task.get(key))
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        yield from walk(yaml.safe_load(path.read_text(encoding="utf-8")))


def _includes(role: str, tasks_from: str) -> list[dict[str, Any]]:
    return [t for t in _tasks(role) if isinstance(t.get(INCLUDE), dict)
            and t[INCLUDE].get("name") == "gpuforge.infra.common"
            and t[INCLUDE].get("tasks_from") == tasks_from]


def test_descriptors_are_written_and_read_only_through_common() -> None:
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
    for role in roles:
        if role == "common":
            continue
        for task in _tasks(role):
            for module in ("ansible.builtin.copy", "ansible.builtin.template"):
                dest = str((task.get(module) or {}).get("dest", ""))
                assert "endpoints_dir" not in dest, f"{role}: {task.get('name')} writes one"
            # A role may list its own files by name (ollama's clean-up); reading them all is
            # the reader's job.
            find = task.get("ansible.builtin.find") or {}
            assert "endpoints_dir" not in str(find.get("paths", "")) \
                or find.get("patterns") != "*.json", f"{role}: {task.get('name')} reads descriptors"
    for role in RUNTIMES:
        assert _includes(role, "endpoint_descriptor"), f"{role} writes no descriptor"
    for role in READERS:
        assert _includes(role, "endpoint_descriptors"), f"{role} does not read the descriptors"


def test_each_runtime_descriptor_matches_the_schema(tmp_path: Path) -> None:
    tasks = []
    for role in RUNTIMES:
        [writer] = _includes(role, "endpoint_descriptor")
        fields = writer["vars"]["common_endpoint"]
        assert set(SCHEMA["required"]) <= set(fields) <= set(SCHEMA["properties"]), role
        tasks.append({INCLUDE: {"name": "gpuforge.infra.common",
                                "tasks_from": "endpoint_descriptor"},
                      "vars": {"common_endpoints_dir": str(tmp_path / "endpoints.d"),
                               "common_endpoint_file": f"{role}.json",
                               "common_endpoint": fields}})
    # A descriptor without its unit, which validate reads, is refused before it is written.
    broken = dict(tasks[0]["vars"]["common_endpoint"])
    del broken["unit"]
    tasks.append({INCLUDE: {"name": "gpuforge.infra.common", "tasks_from": "endpoint_descriptor"},
                  "vars": {"common_endpoints_dir": str(tmp_path / "endpoints.d"),
                           "common_endpoint_file": "broken.json", "common_endpoint": broken}})
    (tmp_path / "endpoints.d").mkdir()
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": HOST_VARS, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_dir()), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
         "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
        capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert ("The endpoint descriptor broken.json" in proc.stdout
            and "does not match roles/common/files/endpoint-descriptor.schema.json" in proc.stdout)
    assert not (tmp_path / "endpoints.d" / "broken.json").exists()
    written = {}
    for role in RUNTIMES:
        written[role] = json.loads((tmp_path / "endpoints.d" / f"{role}.json").read_text())
        jsonschema.validate(written[role], SCHEMA)
    assert written["llama_cpp"] == {
        "name": "qwen2.5-0.5b", "runtime": "llama_cpp", "upstream": "http://127.0.0.1:8081",
        "health_path": "/health", "unit": "llama-server@qwen2.5-0.5b.service", "gpu": True,
        "api_key_file": "/etc/llama-server/api.key"}
    assert written["ollama"]["gpu"] is False and written["ollama"]["upstream"] == (
        "http://127.0.0.1:11434")
    assert "api_key_file" not in written["vllm"]  # no key file: the field is left out
