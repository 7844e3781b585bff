"""`gpuforge facts`: what GPUs each host has, read by the collection's gpu_facts module.

The CLI runs `playbooks/facts.yml` through the runner adapter and reads the module's result
from the run's events; it never reads sysfs itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from toolkit.cli.common import InventoryOpt, JsonOpt, LimitOpt, inventories_or_default

FACTS_ACTIONS = ("gpuforge.infra.gpu_facts", "gpu_facts")


def facts_from_events(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """host -> gpuforge_gpu facts, from runner events of the gpu_facts task."""
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("event") != "runner_on_ok":
            continue
        data = event.get("event_data") or {}
        if data.get("task_action") not in FACTS_ACTIONS:
            continue
        facts = ((data.get("res") or {}).get("ansible_facts") or {}).get("gpuforge_gpu")
        if isinstance(facts, dict) and data.get("host"):
            out[str(data["host"])] = facts
    return out


def read_job_events(artifact_dir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted((artifact_dir / "job_events").glob("*.json")):
        try:
            events.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return events


def host_rows(facts: Mapping[str, Any]) -> list[list[str]]:
    """One table row per GPU (or one row saying there is none)."""
    driver = facts.get("nvidia_driver") or {}
    drv = (f"{driver.get('version')} ({driver.get('kernel_module') or '?'})"
           if driver else ", ".join(m for m in facts.get("modules_loaded", [])
                                    if m in ("nouveau", "amdgpu")) or "none")
    gpus = facts.get("gpus") or []
    if not gpus:
        return [["-", "no GPU", "-", "-", "-", drv]]
    rows = []
    for gpu in gpus:
        memory = f"{gpu['memory_mib']} MiB" if gpu.get("memory_mib") else "-"
        rows.append([gpu.get("pci_address", "?"),
                     gpu.get("name") or f"{gpu.get('vendor_id')}:{gpu.get('device_id')}",
                     gpu.get("generation") or "?", memory,
                     gpu.get("driver") or "none", drv])
    return rows


def facts(inventory: InventoryOpt = None, limit: LimitOpt = None, as_json: JsonOpt = False) -> None:
    """Show each host's GPUs, NVSwitches, GPU driver, Secure Boot and IOMMU (read-only)."""
    from toolkit.cli.common import host_table
    from toolkit.console import emit_json, err
    from toolkit.errors import ExitCode, GpuforgeError
    from toolkit.paths import content_root
    from toolkit.runner import RunRequest, _now, run_playbook

    inventories = inventories_or_default(inventory)
    request = RunRequest(playbook=content_root() / "playbooks" / "facts.yml",
                         inventories=inventories, limit=limit)
    result = run_playbook(request, ident=f"facts-{_now().replace(':', '')}")
    found = facts_from_events(read_job_events(Path(result.artifact_dir)))
    failures = result.summary.failures
    if as_json:
        emit_json({"ok": not failures and result.rc == 0, "hosts": found,
                   "failures": [{"host": f.host, "message": f.message} for f in failures]})
    else:
        for host, data in sorted(found.items()):
            host_table(
                f"{host}: {data.get('gpu_count', 0)} GPU(s), {data.get('nvswitch_count', 0)} "
                f"NVSwitch(es), Secure Boot {data.get('secure_boot')}, "
                f"IOMMU {'on' if data.get('iommu') else 'off'}",
                host_rows(data), ["PCI", "GPU", "generation", "memory", "bound to", "driver"])
    for failure in failures:
        err().print(f"{failure.kind}: {failure.host}: {failure.message}", markup=False,
                    highlight=False)
    code = result.exit_code()
    if code != ExitCode.OK:
        raise GpuforgeError(f"facts could not be read from {len(failures)} host(s)",
                            hint="see the lines above", code=code)
