"""One recorded run of a playbook: check, lock, run, record.

Every command that runs a playbook for a user (apply, plan, validate, facts, demo) goes
through `run_profile`: the inventory is checked before any host is touched, the apply lock
is taken (commands that change hosts), the run is recorded `running` in the history before
it starts and finished there with everything it produced, whatever happens.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from toolkit.check import check_inventory, key_file_secrets
from toolkit.conventions import role_variables
from toolkit.errors import ExitCode, InvalidInput
from toolkit.history import History
from toolkit.inventory import ResolvedInventory
from toolkit.lock import InventoryLock
from toolkit.placement import placement_variables
from toolkit.profiles import Profile
from toolkit.progress import Progress
from toolkit.run_env import vault_values
from toolkit.run_status import RunStatus, judged_status
from toolkit.runner import RunRequest, RunResult, now, run_playbook
from toolkit.summary import RunSummary
from toolkit.validate import Check

# A judge (validate's) turns a finished run into a verdict before it is recorded: the
# exit code and the checks behind it.
Judge = Callable[[RunResult, ResolvedInventory], tuple[ExitCode, list[Check]]]


@dataclass
class Outcome:
    run_id: int
    result: RunResult
    exit_code: ExitCode
    # The verdict's status when a judge disagreed with the playbook's own.
    verdict_status: RunStatus | None = None
    checks: list[Check] = field(default_factory=list)
    resolved: ResolvedInventory | None = None

    @property
    def status(self) -> RunStatus:
        """What the history records for this run."""
        return self.verdict_status or RunStatus(self.result.status)

    def to_dict(self, command: str, profile: str) -> dict[str, Any]:
        data = self.result.summary.to_dict()
        data.pop("timings")
        return {
            "run_id": self.run_id, "command": command, "profile": profile,
            "status": str(self.status), "rc": self.result.rc,
            "exit_code": int(self.exit_code), "started_at": self.result.started_at,
            "ended_at": self.result.ended_at, "duration_s": self.result.duration_s, **data,
        }


def ensure_valid(inventories: list[Path], profile: Profile) -> ResolvedInventory:
    """Raise InvalidInput listing every problem; nothing has touched a host yet."""
    resolved, problems = check_inventory(inventories, profile)
    if problems:
        lines = "\n  ".join(str(p) for p in problems)
        raise InvalidInput(
            f"{len(problems)} problem(s) in the inventory; no host was touched:\n  {lines}",
            hint="fix the variables named above (`gpuforge check` lists them again)")
    return resolved


@contextlib.contextmanager
def sigterm_cancels(cancel: threading.Event) -> Iterator[None]:
    """SIGTERM (CI timeouts, systemd) cancels the run the way Ctrl-C does."""
    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_profile(
    *, command: str, profile: Profile, inventories: list[Path], limit: str | None,
    tags: str | None, check: bool, quiet: bool = False, lock: bool = True,
    extravars: dict[str, Any] | None = None,
    published_facts: dict[str, tuple[str, ...]] | None = None,
    judge: Judge | None = None,
) -> Outcome:
    resolved = ensure_valid(inventories, profile)
    history = History()
    lock_cm: contextlib.AbstractContextManager[Any] = (
        InventoryLock(inventories, command, limit=limit) if lock else contextlib.nullcontext())
    with lock_cm:
        run_id = history.start(
            command=command, inventory=", ".join(str(p) for p in inventories),
            profile=profile.name, playbook=str(profile.playbook), limit=limit, tags=tags,
            check_mode=check, started_at=now())
        cancel = threading.Event()
        request = RunRequest(
            playbook=profile.playbook, inventories=inventories, limit=limit, tags=tags,
            check=check, diff=check,
            extravars={**role_variables(), **placement_variables(resolved),
                       **(extravars or {})},
            published_facts=published_facts or {},
            secrets=key_file_secrets(resolved) + vault_values(
                v for host in resolved.hosts.values() for v in host.values()))
        title = f"gpuforge {command} --profile {profile.name} (run {run_id})"
        result: RunResult | None = None
        try:
            with sigterm_cancels(cancel), Progress(title, quiet=quiet) as progress:
                result = run_playbook(request, ident=f"{run_id}-{now().replace(':', '')}",
                                      on_progress=progress.update, cancel=cancel)
        finally:
            if result is None:  # the runner itself broke: the run is still recorded
                history.finish(run_id, status=RunStatus.ERROR, rc=1,
                               exit_code=int(ExitCode.INTERNAL), ended_at=now(),
                               duration_s=0.0, artifact_dir=None,
                               summary=RunSummary({}, [], [], [], [], []))
        code = result.exit_code()
        status, checks = result.status, list[Check]()
        if judge is not None:
            verdict, checks = judge(result, resolved)
            status, code = judged_status(verdict, code, result.status), verdict
        history.finish(run_id, status=status, rc=result.rc, exit_code=int(code),
                       ended_at=result.ended_at, duration_s=result.duration_s,
                       artifact_dir=result.artifact_dir, summary=result.summary, checks=checks)
    return Outcome(run_id=run_id, result=result, exit_code=code, verdict_status=status,
                   checks=checks, resolved=resolved)
