"""`gpuforge validate`: acceptance checks per host, judged against thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import InventoryOpt, JsonOpt, LimitOpt, host_table, inventories_or_default


def validate(
    inventory: InventoryOpt = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", "-p",
        help="Take thresholds from this profile's `validate:` block (e.g. cpu-llm).")] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    junit: Annotated[Path | None, typer.Option(
        "--junit", help="Write JUnit XML (one testcase per check per host) to FILE.")] = None,
    deep: Annotated[bool, typer.Option(
        "--deep", help="Hash every model file again instead of trusting the sha256 recorded "
                       "for files whose size, mtime and inode are unchanged.")] = False,
) -> None:
    """Measure each host (GPU, driver, runtimes, a real completion, speed, checksums) and
    judge it: exit 0 all pass, 2 a check failed, 4 a host unreachable."""
    from toolkit.console import emit_json, err
    from toolkit.validate import table_rows, to_json, to_junit
    from toolkit.validate_run import run_validate

    outcome = run_validate(inventories_or_default(inventory), profile=profile, limit=limit,
                           deep=deep)
    checks = outcome.checks
    host_table(f"validate run {outcome.run_id}", table_rows(checks),
               ["host", "check", "result", "measured", "threshold", "why"])
    failed = sum(not c.passed for c in checks)
    err().print(f"{len(checks) - failed} passed, {failed} failed", markup=False)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(to_junit(checks), encoding="utf-8")
    if as_json:
        emit_json(to_json(checks, run_id=outcome.run_id, exit_code=int(outcome.exit_code)))
    raise typer.Exit(int(outcome.exit_code))
