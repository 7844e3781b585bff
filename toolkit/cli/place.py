"""`gpuforge place`: which host serves which model, from recorded facts (no host touched)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit.cli.common import InventoryOpt, JsonOpt, inventories_or_default

FactsOpt = Annotated[Path | None, typer.Option(
    "--facts", help="A `gpuforge facts --json` document: GPU count and memory per host where "
                    "the inventory does not set gpuforge_gpu_count/gpuforge_gpu_memory_mib.")]


def read_recorded_facts(path: Path | None) -> dict[str, Any] | None:
    from toolkit.errors import InvalidInput

    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"--facts {path}: cannot be read as JSON ({exc})",
                           hint="save the output of `gpuforge facts -i INV --json`") from exc
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict):
        raise InvalidInput(f"--facts {path}: no `hosts` mapping",
                           hint="save the output of `gpuforge facts -i INV --json`")
    return hosts


def print_placement(placement: Any) -> None:
    from toolkit.cli.common import host_table
    from toolkit.console import err

    doc = placement.to_dict()
    rows = []
    for host, h in doc["hosts"].items():
        gpus = (f"{h['gpu_count']} x {h['gpu_memory_mib'][0]} MiB" if h["gpu_count"]
                else "none")
        memory = "unknown" if h["memory_mb"] is None else f"{h['memory_mb']} MB"
        rows.append([host, gpus, memory, f"{h['vram_used_mib']} MiB", f"{h['ram_used_mb']} MB",
                     ", ".join(h["models"]) or "-"])
    host_table("placement", rows, ["host", "GPUs", "memory", "VRAM placed", "RAM placed",
                                   "models"])
    for a in doc["assignments"]:
        where = f"GPU {','.join(map(str, a['gpus']))}" if a["gpus"] else "CPU"
        err().print(f"  {a['model']} replica {a['replica']} -> {a['host']} ({where})",
                    markup=False, highlight=False)
    for r in doc["refusals"]:
        err().print(f"refused: {r['message']}", markup=False, highlight=False)


def place(inventory: InventoryOpt = None, facts: FactsOpt = None, as_json: JsonOpt = False
          ) -> None:
    """Assign models to hosts from GPU and host memory facts (exit 3 on overcommit)."""
    from toolkit.console import emit_json, err
    from toolkit.errors import ExitCode
    from toolkit.inventory import resolve
    from toolkit.placement import resolved_placement

    inventories = inventories_or_default(inventory)
    placement = resolved_placement(resolve(inventories), recorded=read_recorded_facts(facts))
    if as_json:
        emit_json(placement.to_dict())
    else:
        print_placement(placement)
    if not placement.ok:
        err().print(f"{len(placement.refusals)} model(s) cannot be placed", markup=False)
        raise typer.Exit(int(ExitCode.INVALID_INPUT))
