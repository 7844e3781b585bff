"""Options and renderers shared by subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit.errors import InvalidInput

InventoryOpt = Annotated[
    list[Path] | None,
    typer.Option("--inventory", "-i",
                 help="Inventory file or directory (repeatable). Default: the sandbox's."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
LimitOpt = Annotated[str | None, typer.Option("--limit", "-l", help="Limit to hosts/groups.")]
TagsOpt = Annotated[str | None, typer.Option("--tags", "-t", help="Only run tasks with tags.")]
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile to run.")]


def inventories_or_default(inventories: list[Path] | None) -> list[Path]:
    if inventories:
        paths = [p.expanduser().resolve() for p in inventories]
        for path in paths:
            # Every command, not only those that resolve variables first: ansible itself
            # only warns about a missing source and runs against no host (`facts` said ok).
            if not path.exists():
                raise InvalidInput(f"inventory {path} does not exist",
                                   hint="pass -i with an inventory file or directory "
                                        "(`gpuforge sandbox up` writes one)")
        from toolkit.inventory import preflight

        # Every command, not only check: `facts -i DIR` would otherwise hand Ansible a key
        # file in DIR, and print its content as a host name.
        preflight(paths)
        return paths
    from toolkit.sandbox.state import default_inventory

    default = default_inventory()
    if default is None:
        raise InvalidInput(
            "no inventory given and no sandbox is up",
            hint="pass -i INVENTORY, or start local hosts with `gpuforge sandbox up`")
    return [default]


def host_table(title: str, rows: list[list[str]], columns: list[str]) -> None:
    from rich.table import Table

    from toolkit.console import err

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    err().print(table)


def end_read_only_run(outcome: Any, what: str) -> None:
    """After a read-only recorded run (facts, usage): list each host's failure on stderr and
    exit with the run's code when it is not OK."""
    from toolkit.console import err
    from toolkit.errors import ExitCode, GpuforgeError

    failures = outcome.result.summary.failures
    for failure in failures:
        err().print(f"{failure.kind}: {failure.host}: {failure.message}", markup=False,
                    highlight=False)
    if outcome.exit_code != ExitCode.OK:
        raise GpuforgeError(f"{what} could not be read from {len(failures)} host(s)",
                            hint="see the lines above", code=outcome.exit_code)
