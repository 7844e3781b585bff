"""gpuforge's own run metrics: after an apply or a validate, each host gets its record in the
node exporter's textfile directory (role monitoring_agent, entry point run_metrics), so
Prometheus can alert on a failed apply or a stale validate.

The records are built here (pure functions) and handed to a small playbook as a variable;
the role renders and writes the file. Hosts are told only when the inventory has a
`monitoring` group (a monitoring host that would read them)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from toolkit.summary import RunSummary
from toolkit.validate import Check

MONITORING_GROUP = "monitoring"


def _record(kind: str, profile: str, success: bool, duration_s: float, now: float,
            checks: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": kind, "profile": profile, "success": success, "timestamp": round(now, 3),
            "duration_s": round(duration_s, 3), "checks": dict(checks or {})}


def apply_records(summary: RunSummary, *, profile: str, status: str, duration_s: float,
                  now: float) -> dict[str, dict[str, Any]]:
    """One record per host the run reached: success when the run as a whole did not fail
    for that host (no failed task, reachable) and was not cancelled."""
    ran = status in {"successful", "failed"}
    return {host: _record("apply", profile,
                          ran and counts.failed == 0 and counts.unreachable == 0,
                          duration_s, now)
            for host, counts in summary.hosts.items()}


def _value(measured: Any) -> float | None:
    if isinstance(measured, bool) or not isinstance(measured, (int, float)):
        return None
    return float(measured) if math.isfinite(measured) else None


def validate_records(checks: Iterable[Check], *, profile: str, duration_s: float,
                     now: float) -> dict[str, dict[str, Any]]:
    """One record per host: every check passed or not, with its number when it measured one
    (tokens/s, TTFT); success when every check of the host passed."""
    by_host: dict[str, dict[str, dict[str, Any]]] = {}
    for check in checks:
        by_host.setdefault(check.host, {})[check.name] = {
            "passed": check.passed, "value": _value(check.measured)}
    return {host: _record("validate", profile, all(c["passed"] for c in host_checks.values()),
                          duration_s, now, host_checks)
            for host, host_checks in by_host.items()}


def wanted(groups: Mapping[str, list[str]]) -> bool:
    """Publish only where a monitoring host reads the records."""
    return any(MONITORING_GROUP in host_groups for host_groups in groups.values())


def publish(inventories: list[Path], records: dict[str, dict[str, Any]],
            secrets: list[str]) -> str:
    """Write every host's record (playbooks/run_metrics.yml); returns the run's status. A
    failure here never changes the verdict of the run it describes."""
    from toolkit.paths import content_root
    from toolkit.runner import RunRequest, run_playbook

    if not records:
        return "skipped"
    request = RunRequest(playbook=content_root() / "playbooks" / "run_metrics.yml",
                         inventories=inventories, limit=",".join(sorted(records)),
                         extravars={"gpuforge_run_records": records}, secrets=secrets)
    return run_playbook(request, ident=f"run-metrics-{time.time_ns()}").status
