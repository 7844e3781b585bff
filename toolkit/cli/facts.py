"""`gpuforge facts`: what GPUs each host has, read by the collection's gpu_facts module.

The CLI runs `playbooks/facts.yml` through the recorded-run path (check, run, record) and
takes the module's result from the run's record, where the events put it; it never reads
sysfs itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from toolkit.cli.common import InventoryOpt, JsonOpt, LimitOpt, inventories_or_default
from toolkit.summary import EventSummariser, RunSummary

FACTS_ACTIONS = ("gpuforge.infra.gpu_facts", "gpu_facts")
# The fact the gpu_facts module publishes on each host.
GPU_FACT = "gpuforge_gpu"


def facts_from_events(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """host -> gpuforge_gpu facts, from runner events of the gpu_facts task (what the runner
    adapter keeps of a run that publishes them)."""
    summariser = EventSummariser(published_facts={GPU_FACT: FACTS_ACTIONS})
    for event in events:
        summariser.add(event)
    return gpu_facts(summariser.summary())


def gpu_facts(summary: RunSummary) -> dict[str, dict[str, Any]]:
    return {host: facts[GPU_FACT] for host, facts in sorted(summary.facts.items())
            if isinstance(facts.get(GPU_FACT), dict)}


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
    from toolkit.cli.common import end_read_only_run, host_table
    from toolkit.console import emit_json
    from toolkit.paths import content_root
    from toolkit.profiles import Profile
    from toolkit.recorded_run import run_profile

    read_only = Profile(name="facts", description="GPU facts of each host (read-only)",
                        playbook=content_root() / "playbooks" / "facts.yml", roles=(),
                        validate={})
    outcome = run_profile(command="facts", profile=read_only,
                          inventories=inventories_or_default(inventory), limit=limit,
                          tags=None, check=False, quiet=True, lock=False,
                          published_facts={GPU_FACT: FACTS_ACTIONS})
    result = outcome.result
    found = gpu_facts(result.summary)
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
    end_read_only_run(outcome, "facts")
