"""`gpuforge hosts trust`: which hosts it scans, and how it records and replaces keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from toolkit.cli.app import main
from toolkit.errors import ExitCode
from toolkit.inventory import resolve
from toolkit.known_hosts import ScannedKey, Target, matches, record, recorded, targets
from toolkit.sandbox.hosts import inventory_data, known_hosts_lines


def _public_key(tmp_path: Path, name: str) -> str:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def test_limit_matches_hosts_and_groups_by_name_or_glob() -> None:
    assert matches("gpu1", ["gpus"], None)
    assert matches("gpu1", ["gpus"], "gpus")
    assert matches("gpu1", ["gpus"], "web,gpu*")
    assert matches("gpu1", ["gpus"], "web:gpu1")
    assert not matches("gpu1", ["gpus"], "web")


def test_targets_are_the_ssh_hosts_with_their_address_and_port(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  hosts:\n"
        "    gpu1: {ansible_host: 10.0.0.5}\n"
        "    gpu2: {ansible_host: 10.0.0.6, ansible_port: 2222}\n"
        "    here: {ansible_connection: local}\n"
        "    box: {ansible_connection: containers.podman.podman}\n")
    found, skipped = targets(resolve([inv]), None)
    assert [(t.host, t.entry) for t in found] == [("gpu1", "10.0.0.5"),
                                                   ("gpu2", "[10.0.0.6]:2222")]
    assert skipped == ["box", "here"]
    assert [t.host for t in targets(resolve([inv]), "gpu2")[0]] == ["gpu2"]


def test_record_adds_new_keys_and_replaces_a_changed_one(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    target = Target("gpu2", "10.0.0.6", 2222)
    old, new = _public_key(tmp_path, "old"), _public_key(tmp_path, "new")
    record([ScannedKey(target, f"{target.entry} {old}", "ssh-ed25519", "SHA256:x", "new")],
           path)
    assert recorded(target.entry, path) == {old}
    assert path.stat().st_mode & 0o777 == 0o600
    record([ScannedKey(target, f"{target.entry} {new}", "ssh-ed25519", "SHA256:y", "changed")],
           path)
    assert recorded(target.entry, path) == {new}
    assert recorded("10.0.0.6", path) == set()  # port 22 is another entry


def test_sandbox_inventory_checks_keys_against_the_recorded_ones(tmp_path: Path) -> None:
    key = _public_key(tmp_path, "host")
    hosts = [{"name": "sb-1", "container": "c", "ports": {"22": 40022, "443": 40443},
              "host_keys": [key]}]
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_lines(hosts))
    assert recorded("[127.0.0.1]:40022", known) == {key}
    data = inventory_data("sb", hosts, "ssh", tmp_path / "id", tmp_path / "api-key", known)
    args = data["all"]["children"]["sandbox"]["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in args and f"UserKnownHostsFile={known}" in args
    assert "StrictHostKeyChecking=no" not in args


def test_trust_needs_an_ssh_host(tmp_path: Path, state_dir: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    here: {ansible_connection: local}\n")
    assert main(["hosts", "trust", "-i", str(inv)]) == ExitCode.INVALID_INPUT
    assert "no ssh host matches" in capsys.readouterr().err


def test_trust_asks_first_and_without_a_terminal_needs_yes(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's decisions; the real ssh-keyscan runs in tests/faults/test_host_faults.py."""
    import toolkit.known_hosts

    key = _public_key(tmp_path, "host")
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    gpu1: {ansible_host: 10.0.0.5}\n")

    def scan(target: Target, path: Path) -> list[ScannedKey]:
        state = "known" if recorded(target.entry, path) else "new"
        return [ScannedKey(target, f"{target.entry} {key}", "ssh-ed25519", "SHA256:abc", state)]

    monkeypatch.setattr(toolkit.known_hosts, "scan", scan)
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 - no terminal
    assert main(["hosts", "trust", "-i", str(inv)]) == ExitCode.INVALID_INPUT
    err = capsys.readouterr().err
    assert "SHA256:abc" in err and "--yes" in err
    known = state_dir / "known_hosts"
    assert recorded("10.0.0.5", known) == set()
    assert main(["hosts", "trust", "-i", str(inv), "--yes"]) == 0
    assert recorded("10.0.0.5", known) == {key}
    assert main(["hosts", "trust", "-i", str(inv)]) == 0  # already known: nothing to ask
    assert "already recorded" in capsys.readouterr().err
    # --json: the keys and what was done, on stdout (people's lines stay on stderr).
    assert main(["hosts", "trust", "-i", str(inv), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"known_hosts": str(known), "recorded": False, "keys": [
        {"host": "gpu1", "entry": "10.0.0.5", "type": "ssh-ed25519",
         "fingerprint": "SHA256:abc", "state": "known"}]}


def test_sandbox_keys_move_out_of_the_inventory_directory(tmp_path: Path) -> None:
    """A sandbox made by an older gpuforge kept its keys beside its inventory: the next
    `sandbox up` moves them to sandbox-keys/NAME (the same key, so clients keep working)."""
    from toolkit.sandbox.hosts import ensure_api_key

    legacy = tmp_path / "sandbox" / "sb"
    legacy.mkdir(parents=True)
    (legacy / "api-key").write_text("legacy-key-0123456789abcdef0123456789\n")
    path = ensure_api_key(tmp_path / "sandbox-keys" / "sb")
    assert path == tmp_path / "sandbox-keys" / "sb" / "api-key"
    assert path.read_text().strip() == "legacy-key-0123456789abcdef0123456789"
    assert not (legacy / "api-key").exists()
