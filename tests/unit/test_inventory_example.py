"""inventory/example is a realistic production layout that passes `gpuforge check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.profiles import load_profiles

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory" / "example"
# The example's vault is encrypted with this documented demo password (see hosts.yml).
DEMO_VAULT_PASSWORD = "gpuforge-example"


def _check(tmp_path: Path, *args: str, password: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GPUFORGE_", "ANSIBLE_VAULT"))}
    env.update({"GPUFORGE_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1",
                "COLUMNS": "200"})
    if password:
        secret = tmp_path / "vault-pass"
        secret.write_text(DEMO_VAULT_PASSWORD + "\n")
        secret.chmod(0o600)
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(secret)
    return subprocess.run([sys.executable, "-m", "toolkit.cli.app", "check", "-i",
                           str(EXAMPLE), *args], capture_output=True, text=True, env=env,
                          check=False, cwd=ROOT, timeout=300)


PROFILES = sorted(name for name, p in load_profiles().items() if p.playbook.is_file())


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_example_passes_check(tmp_path: Path, profile: str | None) -> None:
    proc = _check(tmp_path, *(["--profile", profile] if profile else []))
    assert proc.returncode == 0, proc.stderr
    assert "ok: 3 host(s), no problems" in proc.stderr


def test_check_needs_no_vault_password(tmp_path: Path) -> None:
    """CI's check stage runs without secrets: vaulted values are judged still encrypted."""
    proc = _check(tmp_path, "--profile", "cpu-llm", password=False)
    assert proc.returncode == 0, proc.stderr


def test_the_vaulted_keys_decrypt_with_the_demo_password(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.inventory import resolve

    secret = tmp_path / "vault-pass"
    secret.write_text(DEMO_VAULT_PASSWORD + "\n")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(secret))
    keys = resolve([EXAMPLE]).hosts["cpu-b01.dc1.example.com"]["vault_gateway_api_keys"]
    assert all(str(k).startswith("gf-example-") for k in keys.value)


def test_the_same_key_in_plain_text_is_refused(tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "inv"
    shutil.copytree(EXAMPLE, copy)
    gateway = copy / "group_vars" / "inference" / "gateway.yml"
    gateway.write_text(gateway.read_text().replace(
        '"{{ vault_gateway_api_keys }}"', "[gf-example-plain-text-key]"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFORGE_")}
    env.update({"GPUFORGE_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1",
                "COLUMNS": "300"})
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli.app", "check", "-i", str(copy)],
                          capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    assert proc.returncode == 3
    assert "gateway_api_keys: is a secret in plain text" in proc.stderr
    assert str(gateway) in proc.stderr


def test_layout_groups_concerns_and_secrets() -> None:
    hosts = (EXAMPLE / "hosts.yml").read_text()
    assert "gpu_nodes:" in hosts and "inference:" in hosts
    for group in ("all", "gpu_nodes", "inference"):
        assert len(list((EXAMPLE / "group_vars" / group).glob("*.yml"))) >= 2
    vault = (EXAMPLE / "group_vars" / "all" / "vault.yml").read_text()
    assert vault.count("!vault |") == 2 and "$ANSIBLE_VAULT;1.1;AES256" in vault
    assert not [p for p in EXAMPLE.rglob("*.yml") if "gf-example-" in p.read_text()], \
        "a key in plain text"


def test_a_vaulted_inventory_can_be_read_twice_in_one_process(tmp_path: Path) -> None:
    """validate reads the inventory again after its run: ansible-core's vault context may be
    set only once per process, and the second read must reuse it, not crash (exit 1)."""
    secret = tmp_path / "vault-pass"
    secret.write_text(DEMO_VAULT_PASSWORD + "\n")
    secret.chmod(0o600)
    code = ("from pathlib import Path; from toolkit.inventory import resolve\n"
            f"a = resolve([Path({str(EXAMPLE)!r})]); b = resolve([Path({str(EXAMPLE)!r})])\n"
            "assert a.hosts.keys() == b.hosts.keys() and a.hosts, 'no hosts'\n"
            "print(len(b.hosts))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_VAULT")}
    env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(secret)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout) > 0
