"""A recorded validate run: the validate playbook through the recorded-run path, each
host's published measurements judged against its thresholds, the verdict and checks
recorded with the run, run metrics published for a monitoring host. The CLI only renders.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from toolkit.check import key_file_secrets
from toolkit.errors import ExitCode
from toolkit.inventory import ResolvedInventory
from toolkit.paths import content_root, seeds_dir
from toolkit.profiles import get_profile
from toolkit.recorded_run import Outcome, run_profile
from toolkit.run_metrics import publish, validate_records, wanted
from toolkit.runner import RunResult
from toolkit.summary import RunSummary
from toolkit.validate import (
    Check,
    default_thresholds,
    exit_code,
    gpu_classes,
    gpu_vendor,
    judge_host,
    thresholds_for,
    thresholds_for_gpu,
)

# The fact the validate role publishes on each host (roles/validate/tasks/publish.yml).
MEASUREMENTS_FACT = "validate_measurements"
PUBLISHED_BY = ("ansible.builtin.set_fact", "set_fact")
GPU_GROUP = "gpu_nodes"


def judge_run(result: RunResult, resolved: ResolvedInventory,
              profile_block: dict[str, Any]) -> tuple[ExitCode, list[Check]]:
    """Every host's checks, and the verdict's exit code, of a validate run."""
    return judge_summary(result.summary, int(result.exit_code()), resolved, profile_block)


def judge_summary(summary: RunSummary, played_code: int, resolved: ResolvedInventory,
                  profile_block: dict[str, Any]) -> tuple[ExitCode, list[Check]]:
    """The checks of every host whose measurements the summary holds, and the verdict's exit
    code (a run here, or a validate job imported from AWX). A host whose GPU facts show
    NVIDIA or AMD GPUs is held to its GPU class's floors (seeds/validate_gpu_classes.yml)."""
    defaults = default_thresholds(content_root() / "roles")
    classes = gpu_classes(seeds_dir())
    reasons = {f.host: f"{f.kind}: {f.task}: {f.message}" for f in summary.failures}
    checks: list[Check] = []
    for host in sorted(summary.hosts or resolved.hosts):
        hostvars = {k: v.value for k, v in resolved.hosts.get(host, {}).items()}
        measured = summary.facts.get(host, {}).get(MEASUREMENTS_FACT)
        gpu = measured.get("gpu") if isinstance(measured, dict) else None
        floors = thresholds_for_gpu(classes, gpu) if gpu_vendor(gpu)[1] else {}
        checks += judge_host(host, measured if isinstance(measured, dict) else None,
                             thresholds_for(defaults, profile_block, hostvars, floors),
                             gpu_host=GPU_GROUP in resolved.groups.get(host, []),
                             failure=reasons.get(host, ""))
    return ExitCode(exit_code(played_code, checks)), checks


def run_validate(inventories: list[Path], *, profile: str | None,
                 limit: str | None, deep: bool = False) -> Outcome:
    """Validate the hosts and record the verdict; thresholds from `profile`'s block."""
    block = get_profile(profile).validate if profile else {}
    outcome = run_profile(
        command="validate", profile=get_profile("validate"), inventories=inventories,
        limit=limit, tags=None, check=False, lock=False,
        extravars={"validate_models_deep": True} if deep else None,
        published_facts={MEASUREMENTS_FACT: PUBLISHED_BY},
        judge=lambda result, resolved: judge_run(result, resolved, block))
    resolved = outcome.resolved
    if resolved is not None and wanted(resolved.groups) and not outcome.result.cancelled:
        publish(inventories, validate_records(
            outcome.checks, profile=profile or "validate",
            duration_s=outcome.result.duration_s, now=time.time()),
            key_file_secrets(resolved))
    return outcome
