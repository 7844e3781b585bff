"""A run's outcome: the one status vocabulary and the one exit-code policy.

Every layer speaks `RunStatus`: the runner adapter translates ansible-runner's words into
it at the boundary (`from_runner`), history stores its values, JSON and reports print
them, and `exit_code` / `judged_exit_code` below are the only places that turn an outcome
into a documented process exit code (README "Exit codes").
"""

from __future__ import annotations

from enum import StrEnum

from toolkit.errors import ExitCode


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ERROR = "error"
    # Recorded `running` by a process that is gone (killed, machine rebooted).
    INTERRUPTED = "interrupted"


def from_runner(status: str) -> RunStatus:
    """ansible-runner's status word (it spells `canceled`) as a RunStatus."""
    if status == "canceled":
        return RunStatus.CANCELLED
    try:
        return RunStatus(status)
    except ValueError:  # starting, pending, unknown: the run never finished properly
        return RunStatus.ERROR


def exit_code(status: RunStatus | str, rc: int, *, failed: int, unreachable: int) -> ExitCode:
    """A finished playbook run's exit code: cancelled wins, then unreachable, then failed."""
    status = from_runner(str(status))
    if status is RunStatus.CANCELLED:
        return ExitCode.CANCELLED
    if unreachable:
        return ExitCode.UNREACHABLE
    if failed:
        return ExitCode.FAILED_HOSTS
    if rc == 0 and status is RunStatus.SUCCESSFUL:
        return ExitCode.OK
    return ExitCode.INTERNAL


def judged_exit_code(playbook_code: int, any_check_failed: bool) -> ExitCode:
    """A run judged afterwards (validate): 4 when a host was unreachable, 2 when a check
    failed (or the playbook failed on a host), else the playbook's own code (0, or 1/130
    for an internal error/cancel)."""
    if playbook_code == ExitCode.UNREACHABLE:
        return ExitCode.UNREACHABLE
    if playbook_code == ExitCode.FAILED_HOSTS or any_check_failed:
        return ExitCode.FAILED_HOSTS
    return ExitCode(playbook_code)


def judged_status(verdict: ExitCode, played_code: ExitCode, played: RunStatus) -> RunStatus:
    """The status recorded for a judged run: the playbook's own while the verdict agrees
    with the playbook's exit code, else what the verdict says."""
    if verdict == played_code:
        return played
    return RunStatus.SUCCESSFUL if verdict == ExitCode.OK else RunStatus.FAILED
