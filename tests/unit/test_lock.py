"""The apply lock is keyed on the hosts an apply touches, not on the inventory's path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.lock import InventoryLock, InventoryLocked, host_key, hosts_to_lock


def _inventory(path: Path, hosts: dict[str, str]) -> Path:
    path.write_text("all:\n  hosts:\n" + "".join(
        f"    {name}: {{ansible_host: {address}, ansible_port: 2222}}\n"
        for name, address in hosts.items()))
    return path


def test_host_key_is_how_the_host_is_reached() -> None:
    assert host_key("web1", {}) == "ssh:web1:22"
    assert host_key("a", {"ansible_host": "127.0.0.1", "ansible_port": 2201}) \
        == "ssh:127.0.0.1:2201"
    assert host_key("a", {"ansible_connection": "podman", "ansible_host": "box-1"}) \
        == "podman:box-1"


def test_two_inventories_naming_the_same_host_exclude_each_other(
        state_dir: Path, tmp_path: Path) -> None:
    first = _inventory(tmp_path / "a.yml", {"web1": "192.0.2.1", "web2": "192.0.2.2"})
    second = _inventory(tmp_path / "b.yml", {"other-name": "192.0.2.2"})
    with InventoryLock([first], "apply"), pytest.raises(InventoryLocked) as info, \
            InventoryLock([second], "apply"):
        pass
    assert info.value.code == 3
    assert "holds host ssh:192.0.2.2:2222" in info.value.message and "pid" in info.value.message
    with InventoryLock([second], "apply"):  # released on exit
        pass


def test_different_hosts_do_not_exclude_each_other(state_dir: Path, tmp_path: Path) -> None:
    first = _inventory(tmp_path / "a.yml", {"web1": "192.0.2.1"})
    second = _inventory(tmp_path / "b.yml", {"web2": "192.0.2.2"})
    with InventoryLock([first], "apply"), InventoryLock([second], "apply"):
        pass


def test_limit_narrows_the_hosts_locked(state_dir: Path, tmp_path: Path) -> None:
    inv = _inventory(tmp_path / "a.yml", {"web1": "192.0.2.1", "web2": "192.0.2.2"})
    assert hosts_to_lock([inv], "web1") == ["ssh:192.0.2.1:2222"]
    with InventoryLock([inv], "apply", limit="web1"), \
            InventoryLock([inv], "apply", limit="web2"):
        pass


def test_a_refusal_releases_the_hosts_it_took(state_dir: Path) -> None:
    with InventoryLock([], "apply", hosts=["b"]):
        with pytest.raises(InventoryLocked), InventoryLock([], "apply", hosts=["a", "b"]):
            pass
        with InventoryLock([], "apply", hosts=["a"]):  # "a" was given back
            pass


def test_the_kernel_releases_the_lock_of_a_killed_process(state_dir: Path) -> None:
    code = ("import sys, time; from pathlib import Path; from toolkit.lock import InventoryLock;"
            "lock = InventoryLock([], 'apply', hosts=['h']).__enter__();"
            "print('held', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(InventoryLocked, match=f"pid {child.pid}"), \
                InventoryLock([], "apply", hosts=["h"]):
            pass
    finally:
        child.kill()
        child.wait()
    with InventoryLock([], "apply", hosts=["h"]):
        pass
