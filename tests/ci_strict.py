"""Under CI=true a skipped test is a failed test.

A skip on a developer's machine says "this tool is not here"; in CI it would hide a missing
install step (no podman, no root, no chromium) behind a green run. So in CI every skip —
a skip marker, `pytest.skip()`, `pytest.importorskip()` — is reported as a failure that
names the reason. xfail is left alone: it is an expectation, not a missing tool."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


def ci_is_strict() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def _reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and ci_is_strict():
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} would be skipped ({_reason(report.longrepr)}), "
                           "but under CI=true every tool a test needs must be installed "
                           "(scripts/setup.sh)")
