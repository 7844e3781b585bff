"""The one adapter over ansible-runner.

Everything that starts ansible-playbook goes through `run_playbook`: a fresh private
data dir per run, an environment allow-list, no env files written by runner, bounded
artifacts, our own cancel callback, and an event handler that only enqueues (a slow
handler would stall ansible; one returning None would drop events).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import ExitCode
from toolkit.paths import collections_dir, content_root, state_dir
from toolkit.summary import EventSummariser, RunSummary, scrub, scrub_data

# Artifacts of this many runs are kept under the state dir; older ones are rotated out.
ARTIFACTS_KEPT = 20

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
# Host keys gpuforge was told to trust (`gpuforge hosts trust`), checked besides the
# user's ~/.ssh/known_hosts and the system's.
KNOWN_HOSTS = "known_hosts"


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


def known_hosts_file() -> Path:
    """gpuforge's own known_hosts (created empty, 0600): what `hosts trust` records."""
    path = state_dir() / KNOWN_HOSTS
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
    return path


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


@dataclass
class RunRequest:
    playbook: Path
    inventories: list[Path]
    limit: str | None = None
    tags: str | None = None
    check: bool = False
    diff: bool = False
    extravars: dict[str, Any] = field(default_factory=dict)
    envvars: dict[str, str] = field(default_factory=dict)
    forks: int | None = None
    # Secret values known to the caller (e.g. read from key files): scrubbed like env secrets.
    secrets: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    status: str  # successful | failed | canceled | timeout | error
    rc: int
    started_at: str
    ended_at: str
    duration_s: float
    summary: RunSummary
    artifact_dir: str

    @property
    def cancelled(self) -> bool:
        return self.status == "canceled"

    def exit_code(self) -> ExitCode:
        return outcome_code(self.status, self.rc, self.summary)


def outcome_code(status: str, rc: int, summary: RunSummary) -> ExitCode:
    """Map a finished run to the documented exit codes (unreachable wins over failed)."""
    if status == "canceled":
        return ExitCode.CANCELLED
    totals = summary.totals()
    if totals.unreachable:
        return ExitCode.UNREACHABLE
    if totals.failed:
        return ExitCode.FAILED_HOSTS
    if rc == 0 and status == "successful":
        return ExitCode.OK
    return ExitCode.INTERNAL


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    }


def run_playbook(
    request: RunRequest,
    *,
    ident: str,
    on_progress: Callable[[EventSummariser], None] | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run one playbook and return its typed result. Never raises for host failures."""
    from ansible_runner.config.runner import RunnerConfig
    from ansible_runner.runner import Runner

    cancel = cancel or threading.Event()
    tmp_root = state_dir() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    remove_stale_secret_files(tmp_root)
    private = Path(tempfile.mkdtemp(prefix=f"run-{ident}-", dir=tmp_root))
    artifacts = state_dir() / "artifacts"
    envvars = {**base_envvars(), **request.envvars}
    cmdline = " ".join(f for f, on in (("--check", request.check), ("--diff", request.diff)) if on)
    events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    secrets_box: list[str] = []

    def enqueue(event: dict[str, Any]) -> bool:
        # Runner writes the event to artifacts/<id>/job_events after this returns: scrubbed
        # in place first, so a run killed before its end leaves no secret there either.
        if secrets_box:
            event.update(scrub_data(event, secrets_box, keys=False))
        events.put(event)
        return True

    started = _now()
    t0 = time.monotonic()
    config = RunnerConfig(
        private_data_dir=str(private),
        project_dir=str(content_root()),
        playbook=str(request.playbook),
        inventory=[str(p) for p in request.inventories],
        limit=request.limit,
        tags=request.tags,
        extravars=request.extravars or None,
        envvars=envvars,
        cmdline=cmdline or None,
        forks=request.forks,
        ident=ident,
        artifact_dir=str(artifacts),
        rotate_artifacts=ARTIFACTS_KEPT,
        suppress_env_files=True,
        quiet=True,
        settings={"suppress_ansible_output": True},
    )
    config.prepare()
    config.env = allowed_env(config.env, os.environ)
    secrets = secret_values(config.env, request.secrets)
    hide_secret_env(config, private)
    secrets_box.extend(secrets)
    summariser = EventSummariser(secrets)
    stopped: list[int] = []

    def should_cancel() -> bool:
        # ansible-playbook's workers run in process groups of their own, so runner's
        # killpg of the main process would leave them running: stop the whole tree first.
        if cancel.is_set() and not stopped:
            stopped.extend(terminate_tree(os.getpid(), "ansible-playbook"))
        return cancel.is_set()

    runner = Runner(config=config, event_handler=enqueue, cancel_callback=should_cancel)
    error: list[BaseException] = []

    def target() -> None:
        try:
            runner.run()
        except BaseException as exc:  # reported below, never lost in the thread
            error.append(exc)

    thread = threading.Thread(target=target, name=f"ansible-runner-{ident}", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not events.empty():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            summariser.add(event)
            if on_progress is not None:
                on_progress(summariser)
    except KeyboardInterrupt:
        cancel.set()
        thread.join()
        while not events.empty():
            summariser.add(events.get())
    thread.join()
    shutil.rmtree(private, ignore_errors=True)
    status = "error" if error else str(runner.status)
    rc = int(runner.rc) if isinstance(runner.rc, int) else 1
    if cancel.is_set():
        status = "canceled"
    summary = summariser.summary()
    if error:
        summary.warnings.append(scrub(f"runner error: {error[0]}", secrets))
    artifact_dir = artifacts / ident
    scrub_artifacts(artifact_dir, secrets)
    if rc != 0 and not summary.hosts:
        # ansible-playbook stopped before any host (syntax error, missing file...).
        summary.warnings.extend(_tail(artifact_dir / "stdout", 6))
    return RunResult(
        status=status, rc=rc, started_at=started, ended_at=_now(),
        duration_s=round(time.monotonic() - t0, 2), summary=summary,
        artifact_dir=str(artifact_dir))


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


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def terminate_tree(parent: int, name: str, grace_s: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process below `parent`'s children named `name`."""
    import signal

    children = _children_map()
    roots = [pid for pid in children.get(parent, []) if name in _cmdline(pid)]
    tree: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(
                Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in tree):
            time.sleep(0.1)
    return tree


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def scrub_artifacts(directory: Path, secrets: list[str]) -> None:
    """Defence in depth: no secret value stays in runner's artifacts (events, stdout)."""
    if not secrets or not directory.is_dir():
        return
    for path in directory.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        cleaned = scrub(text, secrets)
        if cleaned != text:
            tmp = path.with_name(path.name + ".scrub")
            tmp.write_text(cleaned, encoding="utf-8")
            os.replace(tmp, path)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
