"""One recorded run of a profile: check, lock, run, record. Shared by apply and plan."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from toolkit.check import check_inventory, key_file_secrets
from toolkit.conventions import role_variables
from toolkit.errors import ExitCode, InvalidInput
from toolkit.history import History
from toolkit.inventory import ResolvedInventory
from toolkit.lock import InventoryLock
from toolkit.profiles import Profile
from toolkit.progress import Progress
from toolkit.runner import RunRequest, RunResult, _now, run_playbook, vault_values


@dataclass
class Outcome:
    run_id: int
    result: RunResult
    exit_code: ExitCode

    def to_dict(self, command: str, profile: str) -> dict[str, Any]:
        data = self.result.summary.to_dict()
        data.pop("timings")
        return {
            "run_id": self.run_id, "command": command, "profile": profile,
            "status": display_status(self.result.status), "rc": self.result.rc,
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


def display_status(status: str) -> str:
    """ansible-runner says 'canceled'; gpuforge's history and output say 'cancelled'."""
    return "cancelled" if status == "canceled" else status


@contextlib.contextmanager
def _sigterm_cancels(cancel: threading.Event) -> Iterator[None]:
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
) -> Outcome:
    resolved = ensure_valid(inventories, profile)
    history = History()
    lock_cm: contextlib.AbstractContextManager[Any] = (
        InventoryLock(inventories, command, limit=limit) if lock else contextlib.nullcontext())
    with lock_cm:
        run_id = history.start(
            command=command, inventory=", ".join(str(p) for p in inventories),
            profile=profile.name, playbook=str(profile.playbook), limit=limit, tags=tags,
            check_mode=check, started_at=_now())
        cancel = threading.Event()
        request = RunRequest(
            playbook=profile.playbook, inventories=inventories, limit=limit, tags=tags,
            check=check, diff=check, extravars={**role_variables(), **(extravars or {})},
            secrets=key_file_secrets(resolved) + vault_values(
                v for host in resolved.hosts.values() for v in host.values()))
        title = f"gpuforge {command} --profile {profile.name} (run {run_id})"
        result: RunResult | None = None
        try:
            with _sigterm_cancels(cancel), Progress(title, quiet=quiet) as progress:
                result = run_playbook(request, ident=f"{run_id}-{_now().replace(':', '')}",
                                      on_progress=progress.update, cancel=cancel)
        finally:
            if result is None:  # the runner itself broke: the run is still recorded
                from toolkit.summary import RunSummary

                history.finish(run_id, status="error", rc=1, exit_code=int(ExitCode.INTERNAL),
                               ended_at=_now(), duration_s=0.0, artifact_dir=None,
                               summary=RunSummary({}, [], [], [], [], []))
        code = result.exit_code()
        history.finish(run_id, status=display_status(result.status), rc=result.rc,
                       exit_code=int(code), ended_at=result.ended_at, duration_s=result.duration_s,
                       artifact_dir=result.artifact_dir, summary=result.summary)
    return Outcome(run_id=run_id, result=result, exit_code=code)
