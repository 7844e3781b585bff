"""The SQLite run store: every run, its outcome, hosts, timings and failures."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from toolkit.errors import GpuforgeError, InvalidInput
from toolkit.history import SCHEMA_V1, SCHEMA_VERSION, History
from toolkit.process_tree import process_alive, process_start
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


# --- Damaged, foreign and newer databases: exit 3 naming the file, never written to ---


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def _refused(path: Path) -> str:
    before = _files(path.parent)
    with pytest.raises(InvalidInput) as info:
        History(path)
    assert info.value.code == 3 and str(path) in info.value.message
    assert "left as it is" in info.value.message
    assert _files(path.parent) == before, "a refused history must not be written to"
    return info.value.message


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(bytes(range(256)) * 20)
    assert "not an SQLite database" in _refused(path)


def test_a_truncated_history_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    History(path).start(command="apply", inventory="i", profile=None, playbook=None,
                        limit=None, tags=None, check_mode=False, started_at="t")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path.write_bytes(path.read_bytes()[:2000])
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    _refused(path)


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (name TEXT)")
    conn.close()
    assert "another program's database" in _refused(path)


def test_newer_schema_exits_3_and_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    History(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    assert "upgrade gpuforge" in _refused(path)


def test_a_directory_in_its_place_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.mkdir()
    with pytest.raises(InvalidInput, match="is not a file"):
        History(path)


def test_schema_1_is_migrated_keeping_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO runs (command, inventory, started_at, status) "
                     "VALUES ('apply', 'i', 't', 'successful')")
    conn.close()
    history = History(path)
    assert [r.status for r in history.list()] == ["successful"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_out_of_range_ids_are_no_run(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    assert history.get(2**63) is None and history.get(-1) is None


# --- Runs whose process died are marked interrupted ---


def _start(history: History) -> int:
    return history.start(command="apply", inventory="i", profile="base", playbook=None,
                         limit=None, tags=None, check_mode=False, started_at="t")


def test_a_run_of_a_dead_process_is_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    history = History(path)
    run_id = _start(history)
    dead_pid = subprocess.Popen(["true"])  # a pid that has exited
    dead_pid.wait()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET pid=?, process_start=? WHERE id=?",
                     (dead_pid.pid, process_start(os.getpid()), run_id))
    conn.close()
    assert [r.status for r in History(path).list()] == ["interrupted"]


def test_a_reused_pid_does_not_keep_a_run_alive(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    run_id = _start(History(path))
    with sqlite3.connect(path) as conn:  # our pid, but another process's start time
        conn.execute("UPDATE runs SET process_start='other-boot:1' WHERE id=?", (run_id,))
    conn.close()
    assert History(path).get(run_id).status == "interrupted"  # type: ignore[union-attr]


def test_a_live_run_stays_running(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    run_id = _start(History(path))
    assert History(path).get(run_id).status == "running"  # type: ignore[union-attr]
    assert History(path).mark_interrupted() == []


def test_process_start_tells_processes_apart() -> None:
    me = process_start(os.getpid())
    assert me is not None and me == process_start(os.getpid())
    other = subprocess.Popen(["sleep", "5"])
    try:
        assert process_start(other.pid) not in (None, me)
        assert process_alive(other.pid, process_start(other.pid))
    finally:
        other.kill()
        other.wait()
    assert not process_alive(other.pid, me)


def test_runs_list_shows_interrupted_runs(state_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from toolkit.cli.app import main
    from toolkit.history import db_path

    run_id = _start(History())
    gone = subprocess.Popen(["true"])
    gone.wait()
    with sqlite3.connect(db_path()) as conn:
        conn.execute("UPDATE runs SET pid=? WHERE id=?", (gone.pid, run_id))
    conn.close()
    assert main(["runs", "list", "--json"]) == 0
    assert [(r["run_id"], r["status"]) for r in json.loads(capsys.readouterr().out)] == [
        (run_id, "interrupted")]


def test_schema_2_is_migrated_in_place_keeping_its_runs(tmp_path: Path) -> None:
    from toolkit.history import MIGRATIONS

    path = tmp_path / "h.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1 + MIGRATIONS[2])
        conn.execute("PRAGMA user_version = 2")
        conn.execute("INSERT INTO runs (command, inventory, started_at, status, exit_code) "
                     "VALUES ('validate', 'i', 't', 'failed', 2)")
    conn.close()
    inode = path.stat().st_ino
    history = History(path)
    assert [(r.command, r.status, r.exit_code) for r in history.list()] == [
        ("validate", "failed", 2)]
    assert path.stat().st_ino == inode  # upgraded in place, not replaced
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert "extra" not in columns and {"pid", "process_start", "source"} <= columns
    assert {"checks", "facts"} <= tables
    record = history.get(1)
    assert record is not None and record.checks == [] and record.to_dict()["facts"] == {}
    assert record.source == "gpuforge"  # runs from before imports were gpuforge's own


def test_checks_and_published_facts_are_kept_with_the_run(tmp_path: Path) -> None:
    from toolkit.validate import Check

    history = History(tmp_path / "h.sqlite3")
    run_id = history.start(command="validate", inventory="i", profile="validate",
                           playbook="validate.yml", limit=None, tags=None, check_mode=False,
                           started_at="t")
    done = summary()
    done.facts = {"h1": {"validate_measurements": {"host": "h1", "health": [200]}}}
    checks = [Check("h1", "gateway.tokens_per_s", "fail", 3.2, ">= 5", "too slow"),
              Check("h1", "runtime.m.health", "pass", 200, "== 200"),
              Check("h2", "host.measured", "fail", None, "measurements published", "gone")]
    history.finish(run_id, status="failed", rc=0, exit_code=2, ended_at="t2", duration_s=1.0,
                   artifact_dir=None, summary=done, checks=checks)
    record = History(tmp_path / "h.sqlite3").get(run_id)
    assert record is not None and record.summary is not None
    assert record.checks == checks  # order, types (float, int, None) and messages kept
    assert record.summary.facts == done.facts
    data = record.to_dict()
    assert data["checks"][0] == {"host": "h1", "name": "gateway.tokens_per_s", "status": "fail",
                                 "measured": 3.2, "threshold": ">= 5", "message": "too slow"}
    assert data["facts"]["h1"]["validate_measurements"]["health"] == [200]
    assert "extra" not in data
