"""The front gateway's health probe (roles/front_gateway/files/front-health.py): a member leaves
its pool after `fails` failed probes in a row, rejoins after `passes` good ones, each change is
logged once and the pools file is rewritten only on a change. The probe's HTTPS call itself is
exercised on real hosts by tests/integration/test_fleet.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROLE = Path(__file__).resolve().parents[2] / "roles" / "front_gateway"
SCRIPT = ROLE / "files" / "front-health.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_loader(
        "front_health", importlib.machinery.SourceFileLoader("front_health", str(SCRIPT)))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def probe_env(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "fleet.key").write_text("gf-fleet-0123456789abcdef\n", encoding="utf-8")
    cfg = {"pools": [{"id": 1, "model": "m", "ca_file": str(tmp_path / "ca.pem"), "backends": [
        {"host": "one", "address": "10.0.0.1", "port": 443},
        {"host": "two", "address": "fd00::2", "port": 8443}]}],
        "ssl_name": "localhost", "key_file": str(tmp_path / "fleet.key"),
        "pools_file": str(tmp_path / "pools.conf"), "state_file": str(tmp_path / "state.json"),
        "log_file": str(tmp_path / "health.log"), "timeout": 1, "fails": 2, "passes": 2,
        "max_fails": 2, "fail_timeout": 10, "keepalive": 16}
    path = tmp_path / "health.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return {"dir": tmp_path, "config": str(path)}


def test_member_leaves_after_two_failures_and_rejoins_after_two_passes(
        probe_env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    module = _load()
    script = {"one": [True, False, False, False, True, True], "two": [True] * 6}
    calls: list[str] = []

    def fake_probe(backend: dict[str, Any], pool: dict[str, Any], cfg: dict[str, Any],
                   key: str) -> tuple[bool, str]:
        assert key == "gf-fleet-0123456789abcdef" and pool["model"] == "m"
        calls.append(backend["host"])
        ok = script[backend["host"]].pop(0)
        return ok, "HTTP 200" if ok else "ConnectionRefusedError: refused"

    module.probe = fake_probe
    pools = probe_env["dir"] / "pools.conf"
    snapshots = []
    for _ in range(6):
        assert module.main(["front-health", probe_env["config"], "--no-reload"]) == 0
        snapshots.append(("changed" in capsys.readouterr().out, pools.read_text()))
    down = [" down;" in text.split("# one")[0].splitlines()[-1] for _, text in snapshots]
    # Up, one failure (still up), second failure: down, third: still down, pass, pass: up.
    assert down == [False, False, True, True, True, False]
    assert [changed for changed, _ in snapshots] == [True, False, True, False, False, True]
    log = (probe_env["dir"] / "health.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in log] == [
        "pool m: one down (ConnectionRefusedError: refused)", "pool m: one up (HTTP 200)"]
    text = snapshots[0][1]
    assert "upstream gf_pool_1 {" in text and "least_conn;" in text
    assert "server 10.0.0.1:443 max_fails=2 fail_timeout=10s;" in text
    assert "server [fd00::2]:8443 max_fails=2 fail_timeout=10s;" in text
    assert len(calls) == 12


def test_probe_reports_a_refused_connection_as_unhealthy(probe_env: dict[str, Any]) -> None:
    module = _load()
    cfg = json.loads(Path(probe_env["config"]).read_text())
    # Nothing listens on this loopback port; the CA file is this machine's own store.
    pool = dict(cfg["pools"][0], ca_file=None)
    ok, reason = module.probe({"host": "x", "address": "127.0.0.1", "port": 9}, pool, cfg,
                              "gf-fleet-0123456789abcdef")
    assert not ok and "Error" in reason
