"""`gpuforge report`: a self-contained HTML page for one recorded run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    run_id: Annotated[str, typer.Argument(help="Run id (see `gpuforge runs list`).")],
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="HTML file to write.")] = Path("report.html"),
) -> None:
    """Write one HTML file (no network needed) with the run's summary, hosts, failures,
    acceptance checks and a per-host task timeline."""
    from toolkit.console import err
    from toolkit.errors import InvalidInput
    from toolkit.history import History
    from toolkit.names import parse_run_id
    from toolkit.report import render

    record = History().get(parse_run_id(run_id))
    if record is None:
        raise InvalidInput(f"no run {run_id} in the history",
                           hint="`gpuforge runs list` shows the recorded runs")
    checks = [c.to_dict() for c in record.checks]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(record, checks), encoding="utf-8")
    err().print(f"wrote {output}", markup=False)
