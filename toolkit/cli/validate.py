"""`gpuforge validate`: acceptance checks per host, judged against thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
) -> None:
    """Measure each host (GPU, driver, runtimes, a real completion, speed, checksums) and
    judge it: exit 0 all pass, 2 a check failed, 4 a host unreachable."""
    import json
    import shutil
    import tempfile

    from toolkit.console import emit_json, err
    from toolkit.errors import ExitCode
    from toolkit.execute import run_profile
    from toolkit.inventory import resolve
    from toolkit.names import within
    from toolkit.paths import content_root, state_dir
    from toolkit.profiles import get_profile
    from toolkit.run_metrics import publish, validate_records, wanted
    from toolkit.validate import (
        default_thresholds,
        exit_code,
        judge_host,
        table_rows,
        thresholds_for,
        to_json,
        to_junit,
    )

    inventories = inventories_or_default(inventory)
    block = get_profile(profile).validate if profile else {}
    runner_profile = get_profile("validate")
    results_dir = Path(tempfile.mkdtemp(prefix="validate-", dir=state_dir()))
    outcome = run_profile(command="validate", profile=runner_profile, inventories=inventories,
                          limit=limit, tags=None, check=False, lock=False,
                          extravars={"validate_results_dir": str(results_dir)})
    resolved = resolve(inventories)
    defaults = default_thresholds(content_root() / "roles")
    summary = outcome.result.summary
    reasons = {f.host: f"{f.kind}: {f.task}: {f.message}" for f in summary.failures}
    checks = []
    for host in sorted(summary.hosts or resolved.hosts):
        hostvars = {k: v.value for k, v in resolved.hosts.get(host, {}).items()}
        measured: dict[str, Any] | None = None
        published = within(results_dir, f"{host}.json")  # a host name never leaves it
        if published.is_file():
            measured = json.loads(published.read_text(encoding="utf-8"))
        gpu_host = "gpu_nodes" in resolved.groups.get(host, [])
        checks += judge_host(host, measured, thresholds_for(defaults, block, hostvars),
                             gpu_host=gpu_host, failure=reasons.get(host, ""))

    code = ExitCode(exit_code(int(outcome.exit_code), checks))
    if code != outcome.exit_code:
        from toolkit.history import History

        History().record_verdict(outcome.run_id, status="failed" if code else "successful",
                                 exit_code=int(code))
    data = to_json(checks, run_id=outcome.run_id, exit_code=int(code))
    record_dir = state_dir() / "validate"
    record_dir.mkdir(parents=True, exist_ok=True)
    # What each host reported, kept beside the verdict for whoever asks "measured how?".
    measured_dir = record_dir / f"run-{outcome.run_id}.measured"
    if measured_dir.exists():
        shutil.rmtree(measured_dir)
    results_dir.rename(measured_dir)
    (record_dir / f"run-{outcome.run_id}.json").write_text(json.dumps(data, indent=2),
                                                            encoding="utf-8")
    if wanted(resolved.groups) and not outcome.result.cancelled:
        import time

        from toolkit.check import key_file_secrets

        publish(inventories, validate_records(
            checks, profile=profile or "validate", duration_s=outcome.result.duration_s,
            now=time.time()), key_file_secrets(resolved))
    host_table(f"validate run {outcome.run_id}", table_rows(checks),
               ["host", "check", "result", "measured", "threshold", "why"])
    failed = sum(not c.passed for c in checks)
    err().print(f"{len(checks) - failed} passed, {failed} failed", markup=False)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(to_junit(checks), encoding="utf-8")
    if as_json:
        emit_json(data)
    raise typer.Exit(int(code))
