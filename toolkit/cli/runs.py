"""`gpuforge runs list|show|import`: the run history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import InventoryOpt, JsonOpt, host_table

app = typer.Typer(help="Run history: every apply, plan, validate and facts run, with its outcome "
                       "(and AWX jobs imported with `runs import`).",
                  no_args_is_help=True)


@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs, newest first."""
    from toolkit.console import emit_json
    from toolkit.history import History

    records = History().list(limit)
    if as_json:
        emit_json([r.to_dict() for r in records])
        return
    rows = [[str(r.id), r.started_at, r.command, r.profile or "-", r.status,
             "-" if r.exit_code is None else str(r.exit_code),
             "-" if r.duration_s is None else f"{r.duration_s:.1f}s", r.inventory]
            for r in records]
    host_table("runs", rows, ["id", "started", "command", "profile", "status", "exit",
                              "duration", "inventory"])


@app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id (see `gpuforge runs list`).")],
    as_json: JsonOpt = False,
) -> None:
    """Show one run: per-host counts, failures, slowest tasks."""
    from toolkit.console import emit_json, err
    from toolkit.errors import InvalidInput
    from toolkit.history import History
    from toolkit.names import parse_run_id

    record = History().get(parse_run_id(run_id))
    if record is None:
        raise InvalidInput(f"no run {run_id} in the history",
                           hint="`gpuforge runs list` shows the recorded runs")
    if as_json:
        emit_json(record.to_dict())
        return
    assert record.summary is not None
    console = err()
    origin = "" if record.source == "gpuforge" else f" (imported from {record.source})"
    console.print(f"run {record.id}: {record.command} --profile {record.profile} "
                  f"on {record.inventory}{origin}", markup=False)
    console.print(f"status: {record.status}  exit: {record.exit_code}  rc: {record.rc}  "
                  f"started: {record.started_at}  duration: {record.duration_s}s", markup=False)
    rows = [[h, str(c.ok), str(c.changed), str(c.failed), str(c.unreachable), str(c.skipped),
             "yes" if h in record.reboot_required else "no"]
            for h, c in sorted(record.summary.hosts.items())]
    host_table("hosts", rows, ["host", "ok", "changed", "failed", "unreachable", "skipped",
                               "reboot required"])
    for f in record.summary.failures:
        console.print(f"{f.kind}: {f.host}: {f.task}: {f.message}", markup=False)
    slow = sorted(record.summary.timings, key=lambda t: t.duration_s, reverse=True)[:10]
    if slow:
        host_table("slowest tasks", [[t.host, t.task, f"{t.duration_s:.2f}s", t.status]
                                     for t in slow], ["host", "task", "duration", "status"])


@app.command("import")
def import_run(
    artifacts: Annotated[Path, typer.Argument(
        help="The directory `ansible-runner process` wrote (it holds artifacts/job_events/), "
             "or one artifacts/<ident> directory.", show_default=False)],
    profile: Annotated[str | None, typer.Option(
        "--profile", help="The job's profile (default: the one its playbook is named "
                          "after, as in the AWX project: cpu_llm.yml is cpu-llm).")] = None,
    source: Annotated[str, typer.Option(
        "--source", help="Where the job ran: awx, navigator or runner.")] = "awx",
    inventory: InventoryOpt = None,
    thresholds: Annotated[str | None, typer.Option(
        "--thresholds", help="With -i: judge a validate job against this profile's "
                             "thresholds, as `gpuforge validate --profile` does.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a job run elsewhere (an AWX job, `ansible-runner process`) in the history:
    its events, status and output, read as a gpuforge run's are; `runs show` and `report`
    then show it. With -i (the job's inventory) a validate job is judged as `gpuforge
    validate` judges, its checks and verdict recorded. Exit 3 for a directory that is not
    such a job, or one already recorded."""
    from toolkit.console import emit_json, err
    from toolkit.errors import InvalidInput
    from toolkit.history import History
    from toolkit.imported_run import import_run as record_job

    if thresholds is not None and not inventory:
        raise InvalidInput("--thresholds judges a validate job: give its inventory with -i")
    imported = record_job(artifacts, profile=profile, source=source,
                          inventories=list(inventory) if inventory else None,
                          thresholds=thresholds)
    record = History().get(imported.run_id)
    assert record is not None
    if as_json:
        emit_json(record.to_dict())
        return
    err().print(f"recorded {imported.artifacts} ({imported.events} events) as run "
                f"{record.id}: {record.status}, exit {record.exit_code} "
                f"(`gpuforge runs show {record.id}`)", markup=False)
