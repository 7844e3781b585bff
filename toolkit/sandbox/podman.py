"""The podman command line, with settings that work on hosts without systemd or
CAP_SYS_RESOURCE (runc, cgroupfs, lowered rlimits), passed through CONTAINERS_CONF so
neither the user's machine nor molecule needs hand set-up."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from toolkit.errors import PrerequisiteMissing
from toolkit.paths import state_dir

INSTALL_HINT = "install them: apt-get install podman runc debootstrap openssh-client"


def containers_conf_text(*, runc: bool, systemd_host: bool) -> str:
    lines = ["[containers]", 'default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]',
             "", "[engine]"]
    if runc:
        lines.append('runtime = "runc"')
    if not systemd_host:
        lines.append('cgroup_manager = "cgroupfs"')
        lines.append('events_logger = "file"')
    return "\n".join(lines) + "\n"


def containers_conf() -> Path:
    """Write (if changed) and return the containers.conf gpuforge runs podman with."""
    path = state_dir() / "containers.conf"
    text = containers_conf_text(runc=shutil.which("runc") is not None,
                                systemd_host=Path("/run/systemd/system").is_dir())
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(containers_conf()))
    return env


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise PrerequisiteMissing(f"{', '.join(missing)} not found on this controller",
                                  hint=INSTALL_HINT)
    if os.geteuid() != 0:
        raise PrerequisiteMissing(
            "sandbox hosts need rootful podman (systemd containers, debootstrap)",
            hint="run gpuforge sandbox commands as root (sudo -E gpuforge sandbox up)")


def podman(*args: str, check: bool = True, input_bytes: bytes | None = None,
           timeout: float | None = 300) -> subprocess.CompletedProcess[str]:
    require("podman")
    proc = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=input_bytes is None,
        input=input_bytes, timeout=timeout, check=False)
    if input_bytes is not None:  # normalise to text
        proc = subprocess.CompletedProcess(
            proc.args, proc.returncode, (proc.stdout or b"").decode(errors="replace"),
            (proc.stderr or b"").decode(errors="replace"))
    if check and proc.returncode != 0:
        from toolkit.errors import GpuforgeError

        raise GpuforgeError(
            f"podman {' '.join(args[:3])} failed: {proc.stderr.strip().splitlines()[-1:]}",
            hint="see `podman info`; gpuforge runs podman with CONTAINERS_CONF="
                 f"{containers_conf()}")
    return proc
