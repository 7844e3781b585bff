"""Host keys gpuforge trusts: its own known_hosts under the state dir.

`gpuforge hosts trust` scans each host's SSH key (ssh-keyscan), shows its fingerprint and
records it only when the user confirms; every run then checks host keys against this file,
the system's and the user's ~/.ssh/known_hosts (toolkit/run_env.py ssh_args)."""

from __future__ import annotations

import fnmatch
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ExitCode, GpuforgeError, PrerequisiteMissing
from toolkit.inventory import ResolvedInventory, reach
from toolkit.paths import state_dir

# Host keys gpuforge was told to trust (`gpuforge hosts trust`), checked besides the
# user's ~/.ssh/known_hosts and the system's.
KNOWN_HOSTS = "known_hosts"


def known_hosts_file() -> Path:
    """gpuforge's own known_hosts (created empty, 0600): what `hosts trust` records."""
    path = state_dir() / KNOWN_HOSTS
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
    return path


@dataclass(frozen=True)
class Target:
    host: str
    address: str
    port: int

    @property
    def entry(self) -> str:
        """The name ssh looks the key up by in known_hosts."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class ScannedKey:
    target: Target
    line: str  # known_hosts line: "ENTRY TYPE BASE64"
    key_type: str
    fingerprint: str
    state: str  # new | known | changed


def matches(host: str, groups: list[str], limit: str | None) -> bool:
    """Ansible-style --limit: names or globs of hosts or groups, separated by , or :."""
    if not limit:
        return True
    patterns = [p.strip() for p in limit.replace(":", ",").split(",") if p.strip()]
    return any(fnmatch.fnmatchcase(name, pat) for pat in patterns for name in (host, *groups))


def targets(resolved: ResolvedInventory, limit: str | None) -> tuple[list[Target], list[str]]:
    """SSH targets of the inventory (after --limit), and the hosts not reached over ssh."""
    found: list[Target] = []
    skipped: list[str] = []
    for host, hostvars in sorted(resolved.hosts.items()):
        if not matches(host, resolved.groups.get(host, []), limit):
            continue
        where = reach(host, {k: getattr(v, "value", None) for k, v in hostvars.items()})
        if not where.ssh:
            skipped.append(host)
            continue
        found.append(Target(host, where.address, where.port))
    return found, skipped


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)


def fingerprint(line: str) -> str:
    proc = _run(["ssh-keygen", "-l", "-E", "sha256", "-f", "-"], stdin=line + "\n")
    parts = proc.stdout.split()
    return parts[1] if proc.returncode == 0 and len(parts) > 1 else "?"


def recorded(entry: str, path: Path) -> set[str]:
    """The 'TYPE BASE64' keys `path` holds for `entry`."""
    proc = _run(["ssh-keygen", "-F", entry, "-f", str(path)])
    return {" ".join(ln.split()[1:3]) for ln in proc.stdout.splitlines()
            if ln.strip() and not ln.startswith("#")}


def scan(target: Target, path: Path) -> list[ScannedKey]:
    """The host's keys as it presents them now, compared with what `path` records."""
    for tool in ("ssh-keyscan", "ssh-keygen"):
        if not _which(tool):
            raise PrerequisiteMissing(f"{tool} not found on this controller",
                                      hint="install it: apt-get install openssh-client")
    proc = _run(["ssh-keyscan", "-T", "10", "-p", str(target.port), "-t",
                 "ed25519,ecdsa,rsa", target.address])
    lines = [ln.strip() for ln in proc.stdout.splitlines()
             if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise GpuforgeError(
            f"{target.host}: no SSH host key from {target.address}:{target.port}",
            hint="is the host up and its sshd listening there? (ansible_host/ansible_port)",
            code=ExitCode.UNREACHABLE)
    known = recorded(target.entry, path)
    keys: list[ScannedKey] = []
    for line in lines:
        fields = line.split()
        key = " ".join(fields[1:3])
        line = f"{target.entry} {key}"
        state = "known" if key in known else ("changed" if known else "new")
        keys.append(ScannedKey(target, line, fields[1], fingerprint(line), state))
    return keys


def _which(tool: str) -> bool:
    from shutil import which

    return which(tool) is not None


def record(keys: list[ScannedKey], path: Path | None = None) -> Path:
    """Append the keys not yet recorded; a changed host's old keys are removed first."""
    path = path or known_hosts_file()
    for entry in sorted({k.target.entry for k in keys if k.state == "changed"}):
        _run(["ssh-keygen", "-R", entry, "-f", str(path)])
        Path(f"{path}.old").unlink(missing_ok=True)
    new = [k.line for k in keys if k.state != "known"]
    if new:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write("".join(f"{line}\n" for line in new))
    return path
