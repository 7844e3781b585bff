"""`gpuforge endpoints` and `gpuforge demo` helpers that need no host."""

from __future__ import annotations

import stat
from pathlib import Path

from toolkit.cli.demo import ensure_key
from toolkit.cli.endpoints import base_url


def test_sandbox_hosts_are_reached_over_their_published_loopback_port() -> None:
    assert base_url("h1", {"gpuforge_published_ports": {"22": 2222, "443": 4443}}) == (
        "https://127.0.0.1:4443/v1")


def test_other_hosts_use_their_address_and_gateway_port() -> None:
    assert base_url("gpu1", {"ansible_host": "10.0.0.5"}) == "https://10.0.0.5/v1"
    assert base_url("gpu1", {"ansible_host": "10.0.0.5", "gateway_port": 8443}) == (
        "https://10.0.0.5:8443/v1")


def test_the_demo_key_file_is_private_and_kept(tmp_path: Path) -> None:
    path = ensure_key(tmp_path / "sb")
    key = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key.strip()) >= 32
    assert ensure_key(tmp_path / "sb").read_text() == key
