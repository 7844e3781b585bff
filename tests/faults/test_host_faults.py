"""Faults on the host side: the network goes, the mirror goes, the CLI is told to stop.

Each asserts a clear message and exit code, that nothing is lost (the run is recorded,
no stale lock), and that a re-run converges."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.sandbox import Sandbox, wait_for_line

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def pair(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox("faults", hosts=2)


def apply_json(box: Sandbox, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = box.gpuforge("apply", "--yes", "--profile", "base", "--json", *extra)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {})


def test_host_cut_from_network_mid_run(pair: Sandbox) -> None:
    proc = pair.popen("apply", "--yes", "--profile", "base", "--json")
    wait_for_line(proc, "faults-2", timeout=180)
    cname = pair.container("faults-2")
    subprocess.run(["podman", "network", "disconnect", "podman", cname], check=True,
                   capture_output=True)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        subprocess.run(["podman", "network", "connect", "podman", cname], check=True,
                       capture_output=True)
    assert proc.returncode == 4, err
    data = json.loads(out)
    assert data["hosts"]["faults-2"]["unreachable"] >= 1
    assert data["hosts"]["faults-1"]["failed"] == 0
    assert data["hosts"]["faults-1"]["unreachable"] == 0
    assert any(f["host"] == "faults-2" and f["kind"] == "unreachable" for f in data["failures"])
    shown = json.loads(pair.gpuforge("runs", "show", str(data["run_id"]), "--json").stdout)
    assert shown["exit_code"] == 4
    # Back on the network, a re-run converges.
    rc, again = apply_json(pair)
    assert rc == 0, again
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in again["hosts"].values())


def test_mirror_unreachable_on_one_host(pair: Sandbox) -> None:
    good = pair.exec("faults-1", "cat", "/etc/apt/sources.list").stdout
    assert pair.exec("faults-1", "sh", "-c",
                     "echo 'deb http://127.0.0.1:9/debian bookworm main' "
                     "> /etc/apt/sources.list && rm -rf /var/lib/apt/lists/*").returncode == 0
    try:
        rc, data = apply_json(pair)
        assert rc == 2, data
        messages = [f["message"] for f in data["failures"] if f["host"] == "faults-1"]
        assert any("after 3 retries" in m and "http://127.0.0.1:9/debian" in m
                   for m in messages), messages
        assert data["hosts"]["faults-2"]["failed"] == 0
    finally:
        pair.exec("faults-1", "sh", "-c", f"printf '%s' '{good}' > /etc/apt/sources.list")
    rc, again = apply_json(pair)
    assert rc == 0, again


def test_sigterm_cancels_records_and_leaves_no_lock(pair: Sandbox) -> None:
    proc = pair.popen("apply", "--yes", "--profile", "base", "--json")
    wait_for_line(proc, "Preflight", timeout=180)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 130, err
    run_id = json.loads(out)["run_id"]
    shown = json.loads(pair.gpuforge("runs", "show", str(run_id), "--json").stdout)
    assert shown["status"] == "cancelled"
    # No stale lock: the next apply runs at once and converges.
    rc, again = apply_json(pair)
    assert rc == 0, again


def _old_style_inventory(pair: Sandbox, path: Path) -> Path:
    """The first host as a hand-written inventory that asks ssh not to check host keys, without
    connection sharing (every run makes a fresh connection, so every run checks the key)."""
    inv = yaml.safe_load(Path(pair.inventory).read_text(encoding="utf-8"))
    group = inv["all"]["children"]["sandbox"]
    name = pair.state["hosts"][0]["name"]
    group["hosts"] = {name: group["hosts"][name]}
    group["vars"]["ansible_ssh_common_args"] = (
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ControlPath=none")
    path.write_text(yaml.safe_dump(inv), encoding="utf-8")
    return path


def _fingerprint(pair: Sandbox, host: str) -> str:
    out = pair.exec(host, "ssh-keygen", "-l", "-E", "sha256", "-f",
                    "/etc/ssh/ssh_host_ed25519_key.pub").stdout
    return out.split()[1]


def test_unknown_and_changed_host_keys_are_refused_until_trusted(
        pair: Sandbox, tmp_path: Path) -> None:
    inv = str(_old_style_inventory(pair, tmp_path / "hosts.yml"))
    first = pair.state["hosts"][0]["name"]
    # Unknown key: refused although the inventory says StrictHostKeyChecking=no.
    proc = pair.gpuforge("facts", "-i", inv)
    assert proc.returncode == 4, proc.stderr
    assert "Host key verification failed" in proc.stderr
    assert "gpuforge hosts trust" in proc.stderr
    # trust shows the host's real fingerprint; without a terminal it records only with --yes.
    proc = pair.gpuforge("hosts", "trust", "-i", inv, stdin=subprocess.DEVNULL)
    assert proc.returncode == 3, proc.stderr
    assert _fingerprint(pair, first) in proc.stderr and "--yes" in proc.stderr
    assert pair.gpuforge("facts", "-i", inv).returncode == 4
    proc = pair.gpuforge("hosts", "trust", "-i", inv, "--limit", first, "--yes")
    assert proc.returncode == 0, proc.stderr
    proc = pair.gpuforge("facts", "-i", inv)
    assert proc.returncode == 0, proc.stderr
    # The host's key changes (someone poses as it, or it was reinstalled): refused again.
    cname = pair.container(first)
    swap = ("mkdir -p /root/hostkeys && cp -a /etc/ssh/ssh_host_* /root/hostkeys/ && "
            "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh")
    restore = "cp -a /root/hostkeys/. /etc/ssh/ && systemctl restart ssh"
    assert pair.exec(first, "sh", "-c", swap).returncode == 0
    try:
        proc = pair.gpuforge("facts", "-i", inv)
        assert proc.returncode == 4, proc.stderr
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr \
            or "Host key verification failed" in proc.stderr
        assert "gpuforge hosts trust" in proc.stderr
        # trust names the change and replaces nothing without --replace.
        proc = pair.gpuforge("hosts", "trust", "-i", inv, "--yes")
        assert proc.returncode == 3 and "differs" in proc.stderr, proc.stderr
        assert "(changed)" in proc.stderr
    finally:
        assert subprocess.run(["podman", "exec", cname, "sh", "-c", restore],
                              capture_output=True, check=False).returncode == 0
    # Its own key back: the recorded key is accepted again.
    proc = pair.gpuforge("facts", "-i", inv)
    assert proc.returncode == 0, proc.stderr
