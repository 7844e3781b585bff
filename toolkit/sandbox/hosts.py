"""Start, list and remove sandbox hosts, and write the inventory that reaches them."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from toolkit.errors import GpuforgeError, InvalidInput
from toolkit.sandbox.images import SANDBOX_USER, ensure_image
from toolkit.sandbox.podman import podman, require
from toolkit.sandbox.state import keys_dir, load_state, sandbox_dir

MAX_HOSTS = 16
LABEL = "io.gpuforge.sandbox"
# Ports published on the controller's loopback: ssh, and the gateway's HTTPS.
PUBLISHED = (22, 443)
CONNECTIONS = ("ssh", "podman")


def host_names(name: str, count: int) -> list[str]:
    prefix = "sandbox" if name == "default" else name
    return [f"{prefix}-{i}" for i in range(1, count + 1)]


def container_name(name: str, host: str) -> str:
    return f"gpuforge-{name}-{host}" if not host.startswith(f"{name}-") else f"gpuforge-{host}"


def extra_ca_certificates() -> list[dict[str, str]]:
    """The controller's locally added CAs (e.g. a TLS-inspecting proxy's), for base."""
    directory = Path("/usr/local/share/ca-certificates")
    return [{"name": p.stem, "src": str(p)} for p in sorted(directory.glob("*.crt"))]


def inventory_data(name: str, hosts: list[dict[str, Any]], connection: str,
                   key_path: Path, api_key_file: Path,
                   known_hosts: Path | None = None) -> dict[str, Any]:
    # The gateway's key lives in a controller file only its owner reads, never in the
    # inventory: apply, validate and endpoints all find it through this path.
    group_vars: dict[str, Any] = {"gpuforge_sandbox": name,
                                  "gateway_api_key_file": str(api_key_file)}
    known_hosts = known_hosts or api_key_file.parent / "known_hosts"
    if connection == "ssh":
        group_vars.update({
            "ansible_connection": "ssh",
            "ansible_user": SANDBOX_USER,
            "ansible_become": True,
            "ansible_ssh_private_key_file": str(key_path),
            # The hosts' keys, read from the containers by `sandbox up` (not trusted on
            # first use), are the only ones accepted.
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes "
                                       f"-o UserKnownHostsFile={known_hosts} -o LogLevel=ERROR",
        })
    else:
        group_vars.update({"ansible_connection": "containers.podman.podman"})
    cas = extra_ca_certificates()
    if cas:
        group_vars["base_ca_certificates"] = cas
    host_entries: dict[str, Any] = {}
    for h in hosts:
        entry: dict[str, Any] = {"gpuforge_published_ports": h["ports"]}
        if connection == "ssh":
            entry.update({"ansible_host": "127.0.0.1", "ansible_port": h["ports"]["22"]})
        else:
            entry["ansible_host"] = h["container"]
        host_entries[h["name"]] = entry
    return {"all": {"children": {"sandbox": {"hosts": host_entries, "vars": group_vars}}}}


def _write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _adopt_legacy(path: Path) -> None:
    """Move a key an older gpuforge kept beside the inventory (sandbox/NAME/) to `path`."""
    legacy = path.parent.parent.parent / "sandbox" / path.parent.name / path.name
    if legacy.is_file() and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(legacy, path)


def ensure_api_key(directory: Path) -> Path:
    """The sandbox's gateway API key file (0600) in its keys dir, generated once and kept
    across ups."""
    path = directory / "api-key"
    _adopt_legacy(path)
    if not path.is_file() or not path.read_text(encoding="utf-8").strip():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomic(path, secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    return path


def _ensure_key(directory: Path) -> Path:
    key = directory / "id_ed25519"
    _adopt_legacy(key)
    _adopt_legacy(key.with_suffix(".pub"))
    if not key.exists():
        require("ssh-keygen")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        "gpuforge-sandbox", "-f", str(key)], check=True)
    return key


def _remove_containers(name: str) -> None:
    proc = podman("ps", "-a", "--filter", f"label={LABEL}={name}", "--format", "{{.Names}}",
                  check=False)
    names = proc.stdout.split()
    if names:
        podman("rm", "-f", "-t", "2", *names, check=False)


def _start(name: str, host: str, image: str) -> dict[str, Any]:
    cname = container_name(name, host)
    podman("rm", "-f", "-t", "2", cname, check=False)  # a stale one from an earlier session
    args = ["run", "-d", "--name", cname, "--hostname", host, "--label", f"{LABEL}={name}",
            "--systemd=always"]
    for port in PUBLISHED:
        args += ["-p", f"127.0.0.1::{port}"]
    podman(*args, image, "/sbin/init")
    ports: dict[str, int] = {}
    for port in PUBLISHED:
        out = podman("port", cname, f"{port}/tcp").stdout.strip().splitlines()
        ports[str(port)] = int(out[0].rsplit(":", 1)[1])
    return {"name": host, "container": cname, "ports": ports}


def _wait_systemd(cname: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = podman("exec", cname, "systemctl", "is-system-running", check=False)\
            .stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise GpuforgeError(f"sandbox host {cname} did not boot (systemd: {state or 'no answer'})",
                        hint=f"look at `podman logs {cname}`")


def _install_key(cname: str, pubkey: str) -> None:
    script = (f"install -d -m 700 -o {SANDBOX_USER} -g {SANDBOX_USER} ~{SANDBOX_USER}/.ssh && "
              f"printf '%s\\n' '{pubkey}' > ~{SANDBOX_USER}/.ssh/authorized_keys && "
              f"chown {SANDBOX_USER}: ~{SANDBOX_USER}/.ssh/authorized_keys && "
              f"chmod 600 ~{SANDBOX_USER}/.ssh/authorized_keys")
    podman("exec", cname, "sh", "-c", script)


def host_keys(cname: str) -> list[str]:
    """The container's SSH host public keys, read inside it: not trust on first use."""
    out = podman("exec", cname, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout
    keys = [" ".join(line.split()[:2]) for line in out.splitlines() if line.strip()]
    if not keys:
        raise GpuforgeError(f"sandbox host {cname} has no SSH host key",
                            hint=f"look at `podman exec {cname} ls /etc/ssh`")
    return keys


def known_hosts_lines(hosts: list[dict[str, Any]]) -> str:
    """known_hosts entries for the hosts' published SSH ports on the loopback."""
    return "".join(f"[127.0.0.1]:{h['ports']['22']} {key}\n"
                   for h in hosts for key in h["host_keys"])


def _wait_ssh(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(8).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise GpuforgeError(f"sshd on 127.0.0.1:{port} did not answer",
                        hint="look at `podman logs` of the sandbox host")


def up(name: str, count: int, distro: str, connection: str) -> dict[str, Any]:
    if not 1 <= count <= MAX_HOSTS:
        raise InvalidInput(f"--hosts must be between 1 and {MAX_HOSTS}, not {count}",
                           hint="sandbox hosts share this machine's cores and memory")
    if connection not in CONNECTIONS:
        raise InvalidInput(f"unknown connection {connection!r}",
                           hint=f"choose one of: {', '.join(CONNECTIONS)}")
    require("podman", "debootstrap", "ssh-keygen")
    image = ensure_image(distro)
    directory = sandbox_dir(name)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    secrets_dir = keys_dir(name)
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _ensure_key(secrets_dir)
    pubkey = key.with_suffix(".pub").read_text(encoding="utf-8").strip()
    _remove_containers(name)
    names = host_names(name, count)
    with ThreadPoolExecutor(max_workers=min(4, count)) as pool:
        hosts = list(pool.map(lambda h: _start(name, h, image), names))

    def ready(h: dict[str, Any]) -> None:
        _wait_systemd(h["container"])
        _install_key(h["container"], pubkey)
        if connection == "ssh":
            _wait_ssh(h["ports"]["22"])
            h["host_keys"] = host_keys(h["container"])

    with ThreadPoolExecutor(max_workers=min(8, count)) as pool:
        list(pool.map(ready, hosts))
    known_hosts = secrets_dir / "known_hosts"
    _write_atomic(known_hosts, known_hosts_lines(hosts) if connection == "ssh" else "")
    for h in hosts:
        h.pop("host_keys", None)
    inventory = directory / "inventory.yml"
    _write_atomic(inventory, "# Written by `gpuforge sandbox up`; replaced on the next up.\n"
                  + yaml.safe_dump(inventory_data(name, hosts, connection, key,
                                                  ensure_api_key(secrets_dir), known_hosts),
                                   sort_keys=False))
    state = {"name": name, "distro": distro, "connection": connection, "image": image,
             "inventory": str(inventory), "key": str(key), "hosts": hosts,
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_atomic(directory / "state.json", json.dumps(state, indent=2))
    return state


def status(name: str) -> dict[str, str]:
    proc = podman("ps", "-a", "--filter", f"label={LABEL}={name}", "--format", "json",
                  check=False)
    try:
        rows = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        rows = []
    return {(r.get("Names") or ["?"])[0]: str(r.get("State", "?")) for r in rows}


def down(name: str) -> bool:
    require("podman")
    existed = load_state(name) is not None
    _remove_containers(name)
    shutil.rmtree(sandbox_dir(name), ignore_errors=True)
    shutil.rmtree(keys_dir(name), ignore_errors=True)
    return existed
