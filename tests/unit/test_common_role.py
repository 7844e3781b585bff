"""The parts the runtime roles share, written once in the common role: the systemd sandbox
block and the unit check run before a unit replaces the installed one."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from toolkit.paths import collections_dir

ROOT = Path(__file__).resolve().parents[2]
HARDENING = ROOT / "roles" / "common" / "templates" / "systemd-hardening.j2"
UNITS = {"llama_cpp": "llama-server@.service.j2", "ollama": "ollama.service.j2",
         "vllm": "vllm.service.j2"}


def _filter() -> Any:
    spec = importlib.util.spec_from_file_location(
        "systemd_unit_filter", ROOT / "plugins" / "filter" / "systemd_unit.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.unit_verify_command


def test_unit_verify_command_checks_a_copy_under_the_real_name() -> None:
    command = _filter()("llama-server@validate.service")
    assert command.startswith("/bin/sh -c '")
    assert 'cp %s "$d/llama-server@validate.service"' in command
    assert 'systemd-analyze verify --man=no "$d/llama-server@validate.service"' in command
    assert 'rm -rf "$d"; exit $rc' in command


@pytest.mark.parametrize("bad", ["", "x.service; rm -rf /", "../x.service", "a'b.service",
                                 "nginx", None])
def test_unit_verify_command_refuses_other_names(bad: Any) -> None:
    with pytest.raises(AnsibleFilterError, match="unit file name"):
        _filter()(bad)


def test_each_runtime_unit_uses_the_shared_parts() -> None:
    for role, unit in UNITS.items():
        text = (ROOT / "roles" / role / "templates" / unit).read_text(encoding="utf-8")
        assert "common/templates/systemd-hardening.j2" in text, role
        assert "ProtectKernelTunables" not in text, f"{role} repeats the shared block"
        tasks = (ROOT / "roles" / role / "tasks" / "configure.yml").read_text(encoding="utf-8")
        assert "gpuforge.infra.unit_verify_command" in tasks, role
        assert "systemd-analyze verify" not in tasks, role


def test_rendered_units_carry_the_sandbox(tmp_path: Path) -> None:
    """Render the three unit templates as the roles do and read the sandbox lines back."""
    out = tmp_path / "out"
    base_vars = {
        "ansible_managed": "managed", "llama_cpp_config_dir": "/etc/x",
        "__llama_cpp_home": "/opt/x", "llama_cpp_user": "u", "llama_cpp_group": "g",
        "llama_cpp_model_group": "m", "llama_cpp_backend": "cpu", "llama_cpp_gpu_devices": [],
        "ollama_gpu": False, "ollama_user": "o", "ollama_group": "o",
        "__ollama_binary": "/usr/bin/ollama", "ollama_home": "/var/lib/ollama",
        "__ollama_under_home": False, "ollama_models_dir": "/var/lib/ollama/models",
        "ollama_gpu_device_allow": [], "ollama_ip_address_allow": ["localhost"],
        "vllm_served_model_name": "m", "vllm_install_method": "venv", "vllm_user": "v",
        "vllm_group": "v", "vllm_home": "/var/lib/vllm", "vllm_venv": "/opt/vllm",
        "__vllm_serve_args": ["a"], "vllm_hf_home": "/var/lib/vllm/hf",
        "vllm_gpu_device_allow": [], "vllm_ip_address_allow": ["127.0.0.1", "::1"],
    }
    tasks = [{"ansible.builtin.template": {
        "src": str(ROOT / "roles" / role / "templates" / unit),
        "dest": str(out / role), "mode": "0644"},
        "vars": {"role_path": str(ROOT / "roles" / role)}} for role, unit in UNITS.items()]
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                     "vars": base_vars, "tasks": [
                                         {"ansible.builtin.file": {"path": str(out),
                                                                   "state": "directory",
                                                                   "mode": "0700"}},
                                         *tasks]}]))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections_dir())}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(play)],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    shared = [line for line in HARDENING.read_text().splitlines()
              if line and not line.startswith(("{", " ")) and "{{" not in line]
    units = {role: (out / role).read_text().splitlines() for role in UNITS}
    for role, lines in units.items():
        for line in shared:
            assert lines.count(line) == 1, (role, line)
    assert "SystemCallFilter=~@privileged @resources" in units["ollama"]
    assert "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK" in units["vllm"]
    vllm_ip = [line for line in units["vllm"] if line.startswith("IPAddress")]
    assert vllm_ip == ["IPAddressAllow=127.0.0.1", "IPAddressAllow=::1", "IPAddressDeny=any"]
    assert {"MemoryDenyWriteExecute=yes", "PrivateDevices=yes", "IPAddressAllow=localhost",
            "IPAddressDeny=any"} <= set(units["llama_cpp"])
