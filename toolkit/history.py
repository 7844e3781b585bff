"""Run history in SQLite: the one record of every run: its outcome, per-host counts,
timings, failures, changes, the facts it published and (validate) its checks with what
each host measured. `runs`, `report` and every `--json` read only this.

The database lives under the state dir (GPUFORGE_STATE_DIR overrides it, or
GPUFORGE_HISTORY_DB for the file itself). Schema changes bump `SCHEMA_VERSION` and add
a migration step; a database newer than this code, a corrupt file or another program's
database is refused (exit 3, naming the file) and never written to.

A run records the process that runs it (pid and that process's start time, so a reused
pid is not mistaken for it); a run still `running` whose process is gone is marked
`interrupted` the next time the history is opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import InvalidInput
from toolkit.paths import state_dir
from toolkit.process_tree import process_alive, process_start
from toolkit.run_status import RunStatus
from toolkit.summary import Change, Failure, HostCounts, RunSummary, TaskTiming
from toolkit.validate import Check

SCHEMA_VERSION = 4
# version reached -> the statements that reach it from the one before.
MIGRATIONS = {
    2: "ALTER TABLE runs ADD COLUMN process_start TEXT;",
    # Validate's checks and every published fact move in (they were files under the state
    # dir's validate/); runs.extra, never written, goes.
    3: """
ALTER TABLE runs DROP COLUMN extra;
CREATE TABLE checks (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    host TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    measured TEXT NOT NULL, threshold TEXT NOT NULL, message TEXT NOT NULL
);
CREATE TABLE facts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    host TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (run_id, host, name)
);
CREATE INDEX checks_run ON checks(run_id);
""",
    # Runs gpuforge did not play itself (`gpuforge runs import`: an AWX job's artifacts):
    # where they came from, and the job's own id, so one job is recorded once.
    4: """
ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT 'gpuforge';
ALTER TABLE runs ADD COLUMN source_ref TEXT;
CREATE UNIQUE INDEX runs_source_ref ON runs(source_ref);
""",
}

# Schema 1, where every history starts; MIGRATIONS take it to SCHEMA_VERSION.
SCHEMA_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    inventory TEXT NOT NULL,
    profile TEXT,
    playbook TEXT,
    limit_pattern TEXT,
    tags TEXT,
    check_mode INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL,
    rc INTEGER,
    exit_code INTEGER,
    duration_s REAL,
    pid INTEGER,
    artifact_dir TEXT,
    reboot_required TEXT NOT NULL DEFAULT '[]',
    warnings TEXT NOT NULL DEFAULT '[]',
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE host_results (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    ok INTEGER NOT NULL, changed INTEGER NOT NULL, failed INTEGER NOT NULL,
    unreachable INTEGER NOT NULL, skipped INTEGER NOT NULL,
    rescued INTEGER NOT NULL, ignored INTEGER NOT NULL,
    PRIMARY KEY (run_id, host)
);
CREATE TABLE task_timings (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    host TEXT NOT NULL, task TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL,
    start TEXT NOT NULL, duration_s REAL NOT NULL, status TEXT NOT NULL
);
CREATE TABLE failures (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    host TEXT NOT NULL, task TEXT NOT NULL, message TEXT NOT NULL, kind TEXT NOT NULL
);
CREATE TABLE changes (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    host TEXT NOT NULL, task TEXT NOT NULL, diff TEXT NOT NULL
);
CREATE INDEX task_timings_run ON task_timings(run_id);
"""
TABLES = {"runs", "host_results", "task_timings", "failures", "changes", "checks", "facts",
          "sqlite_sequence"}


def db_path() -> Path:
    override = os.environ.get("GPUFORGE_HISTORY_DB")
    return Path(override) if override else state_dir() / "history.sqlite3"


@dataclass
class RunRecord:
    id: int
    command: str
    inventory: str
    profile: str | None
    playbook: str | None
    limit_pattern: str | None
    tags: str | None
    check_mode: bool
    started_at: str
    ended_at: str | None
    status: str
    rc: int | None
    exit_code: int | None
    duration_s: float | None
    artifact_dir: str | None
    reboot_required: list[str]
    warnings: list[str]
    # `gpuforge` for a run gpuforge played; else where an imported run came from (`awx`...).
    source: str = "gpuforge"
    summary: RunSummary | None = None
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("summary")
        data.pop("checks")
        # One spelling for a run's id in every document: `run_id`, as apply, plan,
        # validate and demo print it (docs/json-contract.md).
        data["run_id"] = data.pop("id")
        if self.summary is not None:
            data.update(self.summary.to_dict())
            data["reboot_required"] = self.reboot_required
            data["facts"] = self.summary.facts
            data["checks"] = [c.to_dict() for c in self.checks]
        return data


class History:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._refused(f"cannot create its directory: {exc.strerror}") from exc
        self._inspect()
        self._migrate()
        self.mark_interrupted()

    def _refused(self, why: str) -> InvalidInput:
        return InvalidInput(
            f"run history {self.path} {why}; it was left as it is",
            hint="move the file aside (gpuforge then starts a new history), or point "
                 "GPUFORGE_HISTORY_DB at another file")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as exc:
            raise self._refused(f"cannot be opened: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            with conn:
                yield conn
        except sqlite3.OperationalError as exc:
            raise self._refused(f"cannot be used: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise self._refused(f"is damaged: {exc}") from exc
        finally:
            conn.close()

    def _inspect(self) -> None:
        """Refuse, reading only, a file that is not a gpuforge history this code can use."""
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise self._refused("is not a file")
        if self.path.stat().st_size == 0:
            return  # an empty file is an empty database
        try:
            # immutable: read the file as it is, creating no -wal or -shm beside it
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1",
                                   uri=True)
        except sqlite3.Error as exc:
            raise self._refused(f"cannot be opened: {exc}") from exc
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise self._refused(f"is not an SQLite database or is damaged ({exc})") from exc
        finally:
            conn.close()
        if version > SCHEMA_VERSION:
            raise self._refused(f"has schema {version}, newer than this gpuforge "
                                f"({SCHEMA_VERSION}): upgrade gpuforge")
        if (version == 0 and tables) or (version and "runs" not in tables) \
                or not tables <= TABLES:
            raise self._refused("is another program's database, not a gpuforge run history")

    def _migrate(self) -> None:
        with self._connect() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:  # seen here when the change is still in the WAL
                raise self._refused(f"has schema {version}, newer than this gpuforge "
                                    f"({SCHEMA_VERSION}): upgrade gpuforge")
            conn.execute("PRAGMA journal_mode = WAL")
            if version == 0:
                conn.executescript(SCHEMA_V1)
                version = 1
            for step in range(version + 1, SCHEMA_VERSION + 1):
                conn.executescript(MIGRATIONS[step])
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def mark_interrupted(self) -> list[int]:
        """Runs still `running` whose process is gone: marked `interrupted`; their ids."""
        with self._connect() as conn:
            rows = conn.execute("SELECT id, pid, process_start FROM runs WHERE status=?",
                                (RunStatus.RUNNING.value,)).fetchall()
            dead = [r["id"] for r in rows if not process_alive(r["pid"], r["process_start"])]
            conn.executemany("UPDATE runs SET status=? WHERE id=?",
                             [(RunStatus.INTERRUPTED.value, i) for i in dead])
        return dead

    def start(self, *, command: str, inventory: str, profile: str | None,
              playbook: str | None, limit: str | None, tags: str | None,
              check_mode: bool, started_at: str, source: str = "gpuforge",
              source_ref: str | None = None) -> int:
        """A new run, `running`. `source_ref` (an imported job's own id) is recorded once:
        a second run with it is refused (InvalidInput naming the run that has it)."""
        with self._connect() as conn:
            try:
                cur = conn.execute(
                    "INSERT INTO runs (command, inventory, profile, playbook, limit_pattern,"
                    " tags, check_mode, started_at, status, pid, process_start, source,"
                    " source_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (command, inventory, profile, playbook, limit, tags, int(check_mode),
                     started_at, RunStatus.RUNNING.value, os.getpid(),
                     process_start(os.getpid()), source, source_ref))
            except sqlite3.IntegrityError:
                row = conn.execute("SELECT id FROM runs WHERE source_ref=?",
                                   (source_ref,)).fetchone()
                raise InvalidInput(
                    f"job {source_ref} is already in the history as run "
                    f"{row['id'] if row else '?'}; it was not recorded again",
                    hint="`gpuforge runs show RUN_ID` shows it") from None
            return int(cur.lastrowid or 0)

    def find_source_ref(self, source_ref: str) -> int | None:
        """The run recorded from the job `source_ref`, if any."""
        with self._connect() as conn:
            row = conn.execute("SELECT id FROM runs WHERE source_ref=?",
                               (source_ref,)).fetchone()
        return None if row is None else int(row["id"])

    def finish(self, run_id: int, *, status: RunStatus | str, rc: int, exit_code: int,
               ended_at: str, duration_s: float, artifact_dir: str | None,
               summary: RunSummary, checks: list[Check] | None = None) -> None:
        """Everything the run produced, in one transaction."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE runs SET status=?, rc=?, exit_code=?, ended_at=?, duration_s=?,"
                " artifact_dir=?, reboot_required=?, warnings=? WHERE id=?",
                (RunStatus(status).value, rc, exit_code, ended_at, duration_s, artifact_dir,
                 json.dumps(summary.reboot_required), json.dumps(summary.warnings), run_id))
            conn.executemany(
                "INSERT OR REPLACE INTO host_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, host, c.ok, c.changed, c.failed, c.unreachable, c.skipped,
                  c.rescued, c.ignored) for host, c in summary.hosts.items()])
            conn.executemany(
                "INSERT INTO task_timings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, i, t.host, t.task, t.role, t.action, t.start, t.duration_s, t.status)
                 for i, t in enumerate(summary.timings)])
            conn.executemany(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?)",
                [(run_id, f.host, f.task, f.message, f.kind) for f in summary.failures])
            conn.executemany(
                "INSERT INTO changes VALUES (?, ?, ?, ?)",
                [(run_id, c.host, c.task, c.diff) for c in summary.changes])
            conn.executemany(
                "INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?)",
                [(run_id, host, name, json.dumps(value))
                 for host, facts in summary.facts.items() for name, value in facts.items()])
            conn.executemany(
                "INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, i, c.host, c.name, c.status, json.dumps(c.measured), c.threshold,
                  c.message) for i, c in enumerate(checks or [])])

    def list(self, limit: int = 20) -> list[RunRecord]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_record(r) for r in rows]

    def get(self, run_id: int) -> RunRecord | None:
        from toolkit.names import MAX_RUN_ID

        if not 1 <= run_id <= MAX_RUN_ID:
            return None  # SQLite cannot even compare it
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                return None
            record = _record(row)
            hosts = {
                r["host"]: HostCounts(**{k: r[k] for k in (
                    "ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")})
                for r in conn.execute(
                    "SELECT * FROM host_results WHERE run_id=? ORDER BY host", (run_id,))}
            timings = [
                TaskTiming(r["host"], r["task"], r["role"], r["action"], r["start"],
                           r["duration_s"], r["status"])
                for r in conn.execute(
                    "SELECT * FROM task_timings WHERE run_id=? ORDER BY seq", (run_id,))]
            failures = [
                Failure(r["host"], r["task"], r["message"], r["kind"])
                for r in conn.execute("SELECT * FROM failures WHERE run_id=?", (run_id,))]
            changes = [
                Change(r["host"], r["task"], r["diff"])
                for r in conn.execute("SELECT * FROM changes WHERE run_id=?", (run_id,))]
            facts: dict[str, dict[str, Any]] = {}
            for r in conn.execute(
                    "SELECT * FROM facts WHERE run_id=? ORDER BY host, name", (run_id,)):
                facts.setdefault(r["host"], {})[r["name"]] = json.loads(r["value"])
            record.checks = [
                Check(r["host"], r["name"], r["status"], json.loads(r["measured"]),
                      r["threshold"], r["message"])
                for r in conn.execute(
                    "SELECT * FROM checks WHERE run_id=? ORDER BY seq", (run_id,))]
        record.summary = RunSummary(
            hosts=hosts, failures=failures, timings=timings, changes=changes,
            reboot_required=record.reboot_required, warnings=record.warnings, facts=facts)
        return record


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], command=row["command"], inventory=row["inventory"],
        profile=row["profile"], playbook=row["playbook"], limit_pattern=row["limit_pattern"],
        tags=row["tags"], check_mode=bool(row["check_mode"]), started_at=row["started_at"],
        ended_at=row["ended_at"], status=row["status"], rc=row["rc"],
        exit_code=row["exit_code"], duration_s=row["duration_s"],
        artifact_dir=row["artifact_dir"],
        reboot_required=json.loads(row["reboot_required"]),
        warnings=json.loads(row["warnings"]), source=row["source"])
