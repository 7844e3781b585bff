"""`gpuforge check`: every inventory problem at once, before anything runs."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import InventoryOpt, JsonOpt, inventories_or_default
from toolkit.errors import ExitCode


def check(
    inventory: InventoryOpt = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p",
                                                help="Also require this profile's inputs.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check host variables against the roles' argument specs (exit 3 on any problem)."""
    from dataclasses import asdict

    from toolkit.check import check_inventory
    from toolkit.console import emit_json, err
    from toolkit.profiles import get_profile

    prof = get_profile(profile) if profile else None
    inventories = inventories_or_default(inventory)
    resolved, problems = check_inventory(inventories, prof)
    if as_json:
        per_host = {host: sum(1 for p in problems if p.host == host)
                    for host in {*resolved.hosts, *(p.host for p in problems)}}
        emit_json({"ok": not problems,
                   "hosts": {host: {"ok": n == 0, "problems": n}
                             for host, n in sorted(per_host.items())},
                   "problems": [asdict(p) for p in problems]})
    for problem in problems:
        err().print(str(problem), markup=False, highlight=False)
    if problems:
        err().print(f"{len(problems)} problem(s) in {len(resolved.hosts)} host(s)", markup=False)
        raise typer.Exit(int(ExitCode.INVALID_INPUT))
    err().print(f"ok: {len(resolved.hosts)} host(s), no problems", markup=False)
