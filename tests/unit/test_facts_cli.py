"""`gpuforge facts` reads the gpu_facts module's result from runner events and tabulates it."""

from __future__ import annotations

from typing import Any

from toolkit.cli.facts import facts_from_events, host_rows

H100 = {"pci_address": "0000:18:00.0", "name": "H100 SXM5 80GB", "generation": "hopper",
        "memory_mib": 81559, "driver": "nvidia", "vendor_id": "0x10de", "device_id": "0x2330"}


def _event(host: str, action: str, facts: dict[str, Any],
           kind: str = "runner_on_ok") -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "task_action": action,
                                          "res": {"ansible_facts": {"gpuforge_gpu": facts}}}}


def test_only_gpu_facts_results_of_ok_events_are_read() -> None:
    events = [
        _event("a", "gpuforge.infra.gpu_facts", {"gpu_count": 1}),
        _event("b", "ansible.builtin.setup", {"gpu_count": 9}),
        _event("c", "gpuforge.infra.gpu_facts", {"gpu_count": 2}, kind="runner_on_failed"),
        {"event": "playbook_on_stats", "event_data": {}},
    ]
    assert facts_from_events(events) == {"a": {"gpu_count": 1}}


def test_rows_per_gpu_with_driver_and_flavour() -> None:
    rows = host_rows({"gpus": [H100], "nvidia_driver": {"version": "580.95.05",
                                                         "kernel_module": "open"}})
    assert rows == [["0000:18:00.0", "H100 SXM5 80GB", "hopper", "81559 MiB", "nvidia",
                     "580.95.05 (open)"]]


def test_row_for_a_host_without_gpu_says_so_and_names_nouveau() -> None:
    assert host_rows({"gpus": [], "nvidia_driver": None, "modules_loaded": []}) == [
        ["-", "no GPU", "-", "-", "-", "none"]]
    unknown = {**H100, "name": None, "generation": None, "memory_mib": None, "driver": None}
    [row] = host_rows({"gpus": [unknown], "modules_loaded": ["nouveau"]})
    assert row[1:] == ["0x10de:0x2330", "?", "-", "none", "nouveau"]
