"""`gpuforge endpoints` and `gpuforge demo` helpers that need no host."""

from __future__ import annotations

import stat
from pathlib import Path

from toolkit.cli.endpoints import base_url, key_location
from toolkit.sandbox.hosts import ensure_api_key, inventory_data


def test_sandbox_hosts_are_reached_over_their_published_loopback_port() -> None:
    assert base_url("h1", {"gpuforge_published_ports": {"22": 2222, "443": 4443}}) == (
        "https://127.0.0.1:4443/v1")


def test_other_hosts_use_their_address_and_gateway_port() -> None:
    assert base_url("gpu1", {"ansible_host": "10.0.0.5"}) == "https://10.0.0.5/v1"
    assert base_url("gpu1", {"ansible_host": "10.0.0.5", "gateway_port": 8443}) == (
        "https://10.0.0.5:8443/v1")


def test_the_sandbox_key_file_is_private_and_kept(tmp_path: Path) -> None:
    path = ensure_api_key(tmp_path / "sb")
    key = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key.strip()) >= 32
    assert ensure_api_key(tmp_path / "sb").read_text() == key


def test_the_sandbox_inventory_points_at_the_key_file_not_the_key(tmp_path: Path) -> None:
    path = ensure_api_key(tmp_path / "sb")
    hosts = [{"name": "sb-1", "container": "gpuforge-sb-1", "ports": {"22": 2222, "443": 4443}}]
    data = inventory_data("sb", hosts, "ssh", tmp_path / "id", path)
    group_vars = data["all"]["children"]["sandbox"]["vars"]
    assert group_vars["gateway_api_key_file"] == str(path)
    assert path.read_text().strip() not in repr(data)
    assert key_location(group_vars) == (f"file {path} (mode 0600)", path)
