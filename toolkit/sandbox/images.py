"""Sandbox base images, built locally when none can be pulled: debootstrap a Debian
root with systemd, sshd, sudo and python3, add the unprivileged `gpuforge` user, and
`podman import` it. Built once and reused; rebuilt when the recipe changes."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from toolkit.errors import GpuforgeError, InvalidInput
from toolkit.paths import state_dir
from toolkit.sandbox.podman import podman, podman_env, require

DISTROS = {"debian12": "bookworm", "debian13": "trixie"}
PACKAGES = ("python3", "ca-certificates", "systemd", "systemd-sysv", "dbus",
            "openssh-server", "sudo", "iproute2", "procps", "curl", "gnupg")
SANDBOX_USER = "gpuforge"
RECIPE_LABEL = "io.gpuforge.recipe"

# sshd host keys are made per container at first boot, not baked into the image.
KEYGEN_UNIT = """[Unit]
Description=Generate sshd host keys for this sandbox host
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""


def image_name(distro: str) -> str:
    return f"localhost/gpuforge-sandbox:{distro}"


def recipe_hash(distro: str) -> str:
    text = "\n".join([DISTROS[distro], *PACKAGES, SANDBOX_USER, KEYGEN_UNIT, "v2"])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def mirror() -> str:
    return os.environ.get("GPUFORGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def image_current(distro: str) -> bool:
    proc = podman("image", "inspect", "--format",
                  "{{ index .Config.Labels \"" + RECIPE_LABEL + "\" }}",
                  image_name(distro), check=False)
    return proc.returncode == 0 and proc.stdout.strip() == recipe_hash(distro)


def _customise(root: Path) -> None:
    def chroot(*cmd: str) -> None:
        subprocess.run(["chroot", str(root), *cmd], check=True, capture_output=True)

    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    unit = root / "etc/systemd/system/gpuforge-sshd-keygen.service"
    unit.write_text(KEYGEN_UNIT, encoding="utf-8")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).unlink(missing_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
    chroot("useradd", "--create-home", "--shell", "/bin/bash", "--uid", "1000", SANDBOX_USER)
    sudoers = root / "etc/sudoers.d" / SANDBOX_USER
    sudoers.write_text(f"{SANDBOX_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n", encoding="utf-8")
    sudoers.chmod(0o440)
    (root / "etc/hostname").unlink(missing_ok=True)
    # The host's apt caches and logs do not belong in an image.
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def ensure_image(distro: str, *, force: bool = False) -> str:
    """Return the image name for `distro`, building it if missing or outdated."""
    if distro not in DISTROS:
        raise InvalidInput(f"unknown distro {distro!r}",
                           hint=f"choose one of: {', '.join(DISTROS)}")
    require("podman", "debootstrap")
    name = image_name(distro)
    lock_file = state_dir() / f"image-{distro}.lock"
    with open(lock_file, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per distro, even across processes
        if not force and image_current(distro):
            return name
        build_root = state_dir() / "tmp"
        build_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"rootfs-{distro}-", dir=build_root) as tmp:
            root = Path(tmp) / "rootfs"
            proc = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                 DISTROS[distro], str(root), mirror()],
                capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
                raise GpuforgeError(
                    f"debootstrap of {distro} from {mirror()} failed: {' | '.join(tail)}",
                    hint="check that the mirror is reachable, or set GPUFORGE_DEBIAN_MIRROR "
                         "to a site mirror")
            _customise(root)
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                ["podman", "import", "--change", 'CMD ["/sbin/init"]',
                 "--change", f"LABEL {RECIPE_LABEL}={recipe_hash(distro)}",
                 "--change", "STOPSIGNAL SIGRTMIN+3", "-", name],
                stdin=tar.stdout, env=podman_env(), capture_output=True, text=True, check=False)
            tar.wait()
            if imported.returncode != 0:
                raise GpuforgeError(f"podman import of {name} failed: {imported.stderr.strip()}",
                                    hint="see `podman info`")
    return name
