"""The one adapter over ansible-runner.

Everything that starts ansible-playbook goes through `run_playbook`: a fresh private
data dir per run, the environment of `toolkit.run_env`, no env files written by runner,
bounded artifacts (`toolkit.artifacts`), our own cancel (`GracefulStop`), and an event
handler that only enqueues (a slow handler would stall ansible; one returning None would
drop events). ansible-runner's words stop here: results carry a `RunStatus`.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit import process_tree
from toolkit.artifacts import ARTIFACTS_KEPT, scrub_artifacts, tail
from toolkit.errors import ExitCode
from toolkit.paths import content_root, state_dir
from toolkit.run_env import (
    allowed_env,
    base_envvars,
    hide_secret_env,
    remove_stale_secret_files,
    secret_values,
)
from toolkit.run_status import RunStatus, exit_code, from_runner
from toolkit.summary import EventSummariser, RunSummary, scrub, scrub_data

# ansible-runner asks for a cancel this often (its `pexpect_timeout`, 5 s by default).
CANCEL_POLL_S = 0.25
# After SIGINT, ansible-playbook gets this long to stop on its own (its interrupt
# handling, the stats event) before what is left of its process tree is terminated.
INTERRUPT_GRACE_S = 5.0


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
    # Facts the run publishes that the caller keeps (fact -> the task actions that set
    # it): collected per host into RunSummary.facts from the run's events.
    published_facts: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class RunResult:
    status: RunStatus
    rc: int
    started_at: str
    ended_at: str
    duration_s: float
    summary: RunSummary
    artifact_dir: str

    @property
    def cancelled(self) -> bool:
        return self.status is RunStatus.CANCELLED

    def exit_code(self) -> ExitCode:
        return outcome_code(self.status, self.rc, self.summary)


def outcome_code(status: RunStatus | str, rc: int, summary: RunSummary) -> ExitCode:
    """A finished run's exit code (the policy is `toolkit.run_status.exit_code`)."""
    totals = summary.totals()
    return exit_code(status, rc, failed=totals.failed, unreachable=totals.unreachable)


def now() -> str:
    """The time as history and JSON record it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class GracefulStop:
    """ansible-runner's cancel callback: once `cancel` is set, SIGINT to ansible-playbook
    (it stops the play, reaps its workers and exits: ansible-core 2.19 runs no handlers and
    sends no stats on an interrupt), and only if it has not exited within
    `grace_s`, SIGTERM then SIGKILL to its whole tree. Returns True (runner then kills
    the process group too) only when the tree has been stopped."""

    def __init__(self, cancel: threading.Event, grace_s: float = INTERRUPT_GRACE_S) -> None:
        self.cancel = cancel
        self.grace_s = grace_s
        self.interrupted_at: float | None = None
        # (pid, process start) of ansible-playbook's tree when it was interrupted: a pid
        # reused since by an unrelated process is never signalled.
        self.tree: list[tuple[int, str | None]] = []
        self.stopped = False

    def __call__(self) -> bool:
        if not self.cancel.is_set():
            return False
        if self.interrupted_at is None:
            self.interrupted_at = time.monotonic()
            self.tree = [(pid, process_tree.process_start(pid)) for pid in process_tree.tree_of(
                process_tree.interrupt(os.getpid(), "ansible-playbook"))]
            return False
        if time.monotonic() - self.interrupted_at < self.grace_s:
            return False
        self.stop_leftovers()
        return True

    def stop_leftovers(self) -> None:
        """Terminate whatever of the interrupted tree still runs (a worker orphaned by
        ansible-playbook's exit included)."""
        if self.stopped:
            return
        self.stopped = True
        process_tree.terminate_tree(os.getpid(), "ansible-playbook")
        left = [pid for pid, started in self.tree
                if started is not None and process_tree.process_start(pid) == started
                and process_tree.alive(pid)]
        if left:
            process_tree.send(process_tree.tree_of(left), signal.SIGTERM)
            time.sleep(0.5)
            process_tree.send(process_tree.tree_of(left), signal.SIGKILL)


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

    started = now()
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
    # Set after prepare(): without an env/settings file in the private data dir, prepare()
    # drops the `settings` given above, and the poll would stay at runner's 5 s.
    config.pexpect_timeout = CANCEL_POLL_S
    config.env = allowed_env(config.env, os.environ)
    secrets = secret_values(config.env, request.secrets)
    hide_secret_env(config, private)
    secrets_box.extend(secrets)
    summariser = EventSummariser(secrets, published_facts=request.published_facts)
    stop = GracefulStop(cancel)

    runner = Runner(config=config, event_handler=enqueue, cancel_callback=stop)
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
    if cancel.is_set():
        stop.stop_leftovers()
    shutil.rmtree(private, ignore_errors=True)
    status = RunStatus.ERROR if error else from_runner(str(runner.status))
    rc = int(runner.rc) if isinstance(runner.rc, int) else 1
    if cancel.is_set():
        status = RunStatus.CANCELLED
    summary = summariser.summary()
    if error:
        summary.warnings.append(scrub(f"runner error: {error[0]}", secrets))
    artifact_dir = artifacts / ident
    scrub_artifacts(artifact_dir, secrets)
    if rc != 0 and not summary.hosts:
        # ansible-playbook stopped before any host (syntax error, missing file...).
        summary.warnings.extend(tail(artifact_dir / "stdout", 6))
    return RunResult(
        status=status, rc=rc, started_at=started, ended_at=now(),
        duration_s=round(time.monotonic() - t0, 2), summary=summary,
        artifact_dir=str(artifact_dir))
