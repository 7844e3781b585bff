"""Exit codes and the errors the CLI knows how to explain."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, `gpuforge --help`)."""

    OK = 0
    INTERNAL = 1
    FAILED_HOSTS = 2
    INVALID_INPUT = 3
    UNREACHABLE = 4
    PREREQUISITE = 5
    CANCELLED = 130


EXIT_CODE_HELP = (
    "Exit codes: 0 ok, 1 internal error, 2 failed hosts, 3 invalid input "
    "(inventory, variables, usage), 4 unreachable hosts, 5 controller prerequisite "
    "missing, 130 cancelled."
)


class GpuforgeError(Exception):
    """A known error: one `Error:` line, one `Hint:` line, a documented exit code."""

    code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str = "", code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code


class InvalidInput(GpuforgeError):
    code = ExitCode.INVALID_INPUT


class PrerequisiteMissing(GpuforgeError):
    code = ExitCode.PREREQUISITE
