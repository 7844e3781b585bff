"""Issue 2's promises on real sandbox hosts: apply, idempotence, plan, unreachable, cancel."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sandbox import Sandbox, wait_for_line

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture(scope="module")
def three(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox("found", hosts=3)


def run_json(box: Sandbox, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    proc = box.gpuforge(*args, "--json")
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, data, proc.stderr


def test_sandbox_hosts_are_real_machines(three: Sandbox) -> None:
    assert [h["name"] for h in three.state["hosts"]] == ["found-1", "found-2", "found-3"]
    for host in ("found-1", "found-3"):
        assert three.exec(host, "hostname").stdout.strip() == host
        state = three.exec(host, "systemctl", "is-system-running").stdout.strip()
        assert state in ("running", "degraded")
    listed = json.loads(three.gpuforge("sandbox", "list", "--json").stdout)
    assert {h["state"] for s in listed for h in s["hosts"]} == {"running"}
    inventory = Path(three.inventory).read_text()
    assert "ansible_user: gpuforge" in inventory and "ansible_become: true" in inventory


def test_plan_on_fresh_hosts_changes_nothing(three: Sandbox) -> None:
    rc, data, err = run_json(three, "plan", "--profile", "base", "-i", three.inventory)
    assert rc == 0, err
    assert data["status"] == "successful" and data["failures"] == []
    assert set(data["hosts"]) == {"found-1", "found-2", "found-3"}
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in data["hosts"].values())
    assert any(c["task"].startswith("Install | Bootstrap python3-apt") for c in data["changes"])
    assert "would change" in err
    # Check mode really changed nothing: python3-apt is still absent.
    probe = three.exec("found-1", "dpkg-query", "-W", "-f=${db:Status-Status}", "python3-apt")
    assert probe.stdout.strip() != "installed"


def test_apply_then_second_apply_changes_nothing(three: Sandbox) -> None:
    rc, first, err = run_json(three, "apply", "--yes", "--profile", "base")
    assert rc == 0, err
    assert all(c["changed"] > 0 and c["failed"] == 0 for c in first["hosts"].values())
    for host in ("found-1", "found-2", "found-3"):
        assert three.exec(host, "lspci", "-n").returncode == 0  # pciutils came from base
    rc, second, err = run_json(three, "apply", "--yes", "--profile", "base")
    assert rc == 0, err
    assert {h: c["changed"] for h, c in second["hosts"].items()} == {
        "found-1": 0, "found-2": 0, "found-3": 0}
    shown = json.loads(three.gpuforge("runs", "show", str(second["run_id"]), "--json").stdout)
    assert shown["status"] == "successful" and shown["profile"] == "base"
    assert len(shown["timings"]) > 10 and set(shown["hosts"]) == set(second["hosts"])


def test_converged_hosts_are_a_no_op_under_mitogen_too(three: Sandbox) -> None:
    """The opt-in mitogen strategy (issue 16) runs the same base roles: 0 changed on the
    hosts the linear strategy converged."""
    rc, data, err = run_json(three, "apply", "--yes", "--profile", "base",
                             "--strategy", "mitogen")
    assert rc == 0, err
    assert {h: (c["changed"], c["failed"]) for h, c in data["hosts"].items()} == {
        "found-1": (0, 0), "found-2": (0, 0), "found-3": (0, 0)}
    assert data["status"] == "successful"


def test_wrong_type_in_sandbox_inventory_touches_no_host(three: Sandbox, tmp_path: Path) -> None:
    host_vars = tmp_path / "host_vars"
    host_vars.mkdir()
    inv = tmp_path / "inventory.yml"
    inv.write_text(Path(three.inventory).read_text())
    (host_vars / "found-2.yml").write_text("base_packages: {curl: yes}\n")
    before = len(json.loads(three.gpuforge("runs", "list", "--json").stdout))
    proc = three.gpuforge("apply", "--yes", "--profile", "base", "-i", str(inv))
    assert proc.returncode == 3
    assert "found-2: base_packages:" in proc.stderr
    assert str(host_vars / "found-2.yml") in proc.stderr
    assert len(json.loads(three.gpuforge("runs", "list", "--json").stdout)) == before


def test_sigint_cancels_within_seconds_and_is_recorded(three: Sandbox) -> None:
    proc = three.popen("apply", "--yes", "--profile", "base", "--json")
    wait_for_line(proc, "Preflight", timeout=120)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 130, err
    run_id = json.loads(out)["run_id"]
    shown = json.loads(three.gpuforge("runs", "show", str(run_id), "--json").stdout)
    assert shown["status"] == "cancelled" and shown["exit_code"] == 130


def test_host_stopped_mid_run_is_unreachable_others_finish(three: Sandbox) -> None:
    proc = three.popen("apply", "--yes", "--profile", "base", "--json")
    wait_for_line(proc, "found-3", timeout=120)
    subprocess.run(["podman", "stop", "-t", "0", three.container("found-3")],
                   capture_output=True, check=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 4, err
    data = json.loads(out)
    assert data["hosts"]["found-3"]["unreachable"] >= 1
    for host in ("found-1", "found-2"):
        assert data["hosts"][host]["failed"] == 0 and data["hosts"][host]["unreachable"] == 0
        assert data["hosts"][host]["ok"] > 10
    assert any(f["host"] == "found-3" and f["kind"] == "unreachable" for f in data["failures"])
