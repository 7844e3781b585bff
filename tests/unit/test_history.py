"""The SQLite run store: every run, its outcome, hosts, timings and failures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from toolkit.errors import GpuforgeError
from toolkit.history import SCHEMA_VERSION, History
from toolkit.summary import Change, Failure, HostCounts, RunSummary, TaskTiming


def summary() -> RunSummary:
    return RunSummary(
        hosts={"h1": HostCounts(ok=3, changed=1), "h2": HostCounts(unreachable=1)},
        failures=[Failure("h2", "Gather facts", "ssh: connect refused", "unreachable")],
        timings=[TaskTiming("h1", "Install", "base", "ansible.builtin.apt",
                            "2026-01-01T00:00:00", 2.5, "changed")],
        changes=[Change("h1", "Install", "pkg: absent -> present")],
        reboot_required=["h1"], warnings=["a warning"])


def test_round_trip(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    run_id = history.start(command="apply", inventory="inv.yml", profile="base",
                           playbook="base.yml", limit=None, tags=None, check_mode=False,
                           started_at="2026-01-01T00:00:00+00:00")
    assert history.list()[0].status == "running"  # recorded before anything runs
    history.finish(run_id, status="failed", rc=4, exit_code=4, ended_at="2026-01-01T00:01:00",
                   duration_s=60.0, artifact_dir="/a", summary=summary())
    record = history.get(run_id)
    assert record is not None and record.summary is not None
    assert record.status == "failed" and record.exit_code == 4
    assert record.summary.hosts["h1"].changed == 1
    assert record.summary.failures[0].message == "ssh: connect refused"
    assert record.summary.timings[0].duration_s == 2.5
    assert record.reboot_required == ["h1"]
    data = record.to_dict()
    assert data["hosts"]["h2"]["unreachable"] == 1 and data["run_id"] == run_id and "id" not in data
    assert history.get(run_id + 1) is None


def test_list_is_newest_first(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    ids = [history.start(command=c, inventory="i", profile=None, playbook=None, limit=None,
                         tags=None, check_mode=False, started_at="t") for c in ("a", "b", "c")]
    assert [r.id for r in history.list(2)] == [ids[2], ids[1]]


def test_newer_schema_is_refused_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    History(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(GpuforgeError, match="newer than this gpuforge"):
        History(path)
