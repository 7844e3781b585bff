"""`gpuforge apply` and `gpuforge plan`: run a profile, or show what it would change."""

from __future__ import annotations

from pathlib import Path

import typer

from toolkit.cli.common import (
    InventoryOpt,
    JsonOpt,
    LimitOpt,
    ProfileOpt,
    TagsOpt,
    host_table,
    inventories_or_default,
)


def render_outcome(outcome: object, *, plan: bool) -> None:
    """Per-host counts, warnings and failures of a recorded run, on stderr."""
    from toolkit.console import err
    from toolkit.recorded_run import Outcome

    assert isinstance(outcome, Outcome)
    summary = outcome.result.summary
    durations: dict[str, float] = {}
    for t in summary.timings:
        durations[t.host] = durations.get(t.host, 0.0) + t.duration_s
    if plan:
        for host in sorted(summary.hosts):
            changes = [c for c in summary.changes if c.host == host]
            err().print(f"{host}: {len(changes)} task(s) would change", markup=False)
            for change in changes:
                detail = f" ({change.diff})" if change.diff else ""
                err().print(f"  ~ {change.task}{detail}", markup=False, highlight=False)
    rows = []
    for host, c in sorted(summary.hosts.items()):
        rows.append([host, str(c.ok), str(c.changed), str(c.failed), str(c.unreachable),
                     str(c.skipped), f"{durations.get(host, 0.0):.1f}s",
                     "yes" if host in summary.reboot_required else "no"])
    host_table(
        f"run {outcome.run_id}: {outcome.status} "
        f"in {outcome.result.duration_s:.1f}s",
        rows, ["host", "ok", "changed", "failed", "unreachable", "skipped", "task time",
               "reboot required"])
    for warning in summary.warnings:
        err().print(f"warning: {warning}", markup=False, highlight=False)
    for failure in summary.failures:
        err().print(f"{failure.kind}: {failure.host}: {failure.task}: {failure.message}",
                    markup=False, highlight=False)
    if outcome.result.cancelled:
        err().print(f"cancelled; run {outcome.run_id} recorded as cancelled", markup=False)


def publish_run_metrics(outcome: object, profile: str, inventories: list[Path]) -> None:
    """Each host's record of this apply for the monitoring host (toolkit/run_metrics.py)."""
    import time

    from toolkit.check import key_file_secrets
    from toolkit.recorded_run import Outcome
    from toolkit.run_metrics import apply_records, publish, wanted

    assert isinstance(outcome, Outcome)
    resolved = outcome.resolved
    if resolved is None or outcome.result.cancelled or not wanted(resolved.groups):
        return
    publish(inventories, apply_records(
        outcome.result.summary, profile=profile, status=str(outcome.status),
        duration_s=outcome.result.duration_s, now=time.time()), key_file_secrets(resolved))


def _run(command: str, profile: str, inventory: list[Path] | None, limit: str | None,
         tags: str | None, as_json: bool, check: bool) -> None:
    from toolkit.console import emit_json
    from toolkit.profiles import get_profile
    from toolkit.recorded_run import run_profile

    prof = get_profile(profile)
    outcome = run_profile(command=command, profile=prof,
                          inventories=inventories_or_default(inventory), limit=limit,
                          tags=tags, check=check, lock=not check)
    render_outcome(outcome, plan=check)
    if not check:
        publish_run_metrics(outcome, prof.name, inventories_or_default(inventory))
    if as_json:
        emit_json(outcome.to_dict(command, prof.name))
    raise typer.Exit(int(outcome.exit_code))


def apply(
    profile: ProfileOpt = "base",
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    tags: TagsOpt = None,
    yes: bool = typer.Option(False, "--yes", "-y",
                             help="Do not ask for confirmation (non-interactive use)."),
    as_json: JsonOpt = False,
    strategy: str | None = typer.Option(
        None, "--strategy", metavar="linear|mitogen",
        help="Ansible strategy: linear (default) or mitogen (faster; plays that reboot stay "
             "linear). Default: the GPUFORGE_STRATEGY setting, else linear."),
) -> None:
    """Apply a profile to the inventory's hosts, with live progress; the run is recorded."""
    import sys

    from toolkit.strategy import for_this_run

    with for_this_run(strategy):  # checked before any host is touched (exit 3 / 5)
        if not yes and sys.stdin.isatty():
            typer.confirm(f"Apply profile {profile!r}?", default=True, abort=True, err=True)
        _run("apply", profile, inventory, limit, tags, as_json, check=False)


def plan(
    profile: ProfileOpt = "base",
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    tags: TagsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show, per host, what applying a profile would change (check + diff mode)."""
    _run("plan", profile, inventory, limit, tags, as_json, check=True)
