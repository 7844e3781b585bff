"""What a playbook run's environment holds: the controller variables that reach
ansible-playbook (an allow-list), the secrets among them and how they are kept off
command lines and artifacts, and the settings every run gets (our ansible.cfg, the
collection path, host-key checking).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from toolkit.known_hosts import known_hosts_file
from toolkit.paths import collections_dir, content_root, state_dir
from toolkit.strategy import envvars_from_setting

# Variables of the controller's environment that reach ansible-playbook. Everything
# else (cloud credentials, unrelated tokens) stays out.
ENV_ALLOW = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR",
    "SSH_AUTH_SOCK", "CONTAINERS_CONF", "CONTAINER_HOST",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "VIRTUAL_ENV",
})
ENV_ALLOW_PREFIXES = ("ANSIBLE_", "LC_", "GPUFORGE_", "MOLECULE_")
# Secrets that roles read from the controller's environment (lookup('env', ...)).
SECRET_ENV = frozenset({"HF_TOKEN", "GPUFORGE_API_KEY", "GPUFORGE_API_KEYS"})
# Starts ansible-playbook with the secret env read from a 0600 file (see its docstring).
SECRET_EXEC = Path(__file__).with_name("_secret_exec.py")
SECRET_ENV_FILE = "secret-env.json"


def is_secret_env(name: str) -> bool:
    return name in SECRET_ENV or (
        name.startswith("GPUFORGE_") and any(w in name for w in ("TOKEN", "KEY", "SECRET")))


def allowed_env(env: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """Keep what runner set itself, plus allow-listed variables of the caller's env."""
    out: dict[str, str] = {}
    for key, value in env.items():
        set_by_runner = key not in base or base[key] != value
        if (set_by_runner or key in ENV_ALLOW or key in SECRET_ENV
                or key.startswith(ENV_ALLOW_PREFIXES)):
            out[key] = value
    return out


def secret_values(env: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Values that must never be shown or stored: each one whole, and each key of a
    comma-separated list (GPUFORGE_API_KEYS) on its own."""
    values: list[str] = []
    for key, value in env.items():
        if is_secret_env(key) and value:
            values.append(value)
            values.extend(p.strip() for p in value.split(",") if p.strip() and "," in value)
    return values + [s for s in extra if s]


def vault_values(values: Iterable[Any]) -> list[str]:
    """The clear text of every vault-encrypted value in `values` (nested too) that the
    vault password at hand opens: scrubbed like env secrets. Unopenable ones are skipped
    (ansible-playbook cannot use them either)."""
    from ansible.parsing.vault import EncryptedString

    found: list[str] = []
    todo = list(values)
    while todo:
        item = todo.pop()
        if type(item).__name__ == "SourcedValue":
            item = item.value
        if isinstance(item, EncryptedString):
            try:
                found.append(str(item._decrypt()))  # the one way to open it
            except Exception:  # no or wrong vault password: ansible cannot use it either
                continue
        elif isinstance(item, Mapping):
            todo.extend(item.values())
        elif isinstance(item, list | tuple):
            todo.extend(item)
    return found


def configured_ssh_args() -> str:
    """The ssh_args the caller's ANSIBLE_SSH_ARGS or our ansible.cfg sets."""
    import configparser

    if os.environ.get("ANSIBLE_SSH_ARGS"):
        return os.environ["ANSIBLE_SSH_ARGS"]
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(content_root() / "ansible.cfg", encoding="utf-8")
    return cfg.get("ssh_connection", "ssh_args", fallback="")


def ssh_args() -> str:
    """ANSIBLE_SSH_ARGS: host keys are checked (an unknown or changed key fails the
    connection) against gpuforge's known_hosts and the system's, and the user's
    ~/.ssh/known_hosts (or the file an inventory names with UserKnownHostsFile).
    First on ssh's command line, before the configured ssh_args and any inventory's
    ssh_common_args, so it wins over a `StrictHostKeyChecking=no` there (ssh keeps the
    first value it is given)."""
    files = " ".join([str(known_hosts_file()), "/etc/ssh/ssh_known_hosts",
                      "/etc/ssh/ssh_known_hosts2"])
    return (f"-o StrictHostKeyChecking=yes -o 'GlobalKnownHostsFile={files}' "
            f"{configured_ssh_args()}").strip()



def base_envvars() -> dict[str, str]:
    """Settings every run gets: our ansible.cfg and the collection path."""
    root = content_root()
    # The ansible-playbook of the environment gpuforge runs in comes first.
    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": ":".join(
            p for p in (str(collections_dir()), os.environ.get("ANSIBLE_COLLECTIONS_PATH")) if p),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(state_dir() / "tmp" / "ansible-local"),
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(state_dir() / "facts"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # ansible-runner sets ANSIBLE_HOST_KEY_CHECKING=False unless told otherwise.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": ssh_args(),
        # linear, or mitogen's strategy when GPUFORGE_STRATEGY (apply --strategy) asks.
        **envvars_from_setting(),
    }



def hide_secret_env(config: Any, private: Path) -> None:
    """Keep the secret env out of runner's `command` artifact and of every command line,
    and tie ansible-playbook's life to gpuforge's.

    Runner writes `command` (argv, cwd and env, in clear) before it starts the process,
    and ansible-playbook's roles read the secrets with lookup('env'). So the secrets
    leave config.env for a 0600 file in the private data dir, and ansible-playbook is
    started through _secret_exec.py, which reads and deletes that file and execs it with
    the secrets in its environment (readable only by this user and root). The same
    wrapper makes ansible-playbook stop when gpuforge dies, SIGKILL included."""
    secret_env = {k: v for k, v in config.env.items() if is_secret_env(k)}
    target = "-"
    if secret_env:
        for key in secret_env:
            del config.env[key]
        path = private / SECRET_ENV_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(secret_env, fh)
        target = str(path)
    config.command = [sys.executable, str(SECRET_EXEC), target, "--", *config.command]


def remove_stale_secret_files(tmp_root: Path, age_s: float = 60.0) -> list[Path]:
    """Secret env files a killed gpuforge left behind: the wrapper deletes each within
    milliseconds of its start, so one older than a minute belongs to no live run."""
    removed = []
    for path in tmp_root.glob(f"run-*/{SECRET_ENV_FILE}"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > age_s:
                path.unlink()
                removed.append(path)
    return removed


