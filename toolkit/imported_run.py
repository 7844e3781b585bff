"""A run gpuforge did not play itself, recorded in its history: the artifacts an AWX job
(or any `ansible-runner process`) brings back, read as gpuforge reads its own runs.

`ansible-runner process OUT` leaves OUT/artifacts/ with the job's events (job_events/),
its `status`, `rc` and `stdout`. Those events go through the same summariser a local run's
do, and the run is recorded through the same `History.start`/`finish`, so `runs show`,
`report` and `--json` show it like a local run, with its `source`. Only job_events/,
status, rc and stdout are kept (under the state dir's artifacts/): never runner's `command`
file, which holds the job's environment and command line. A job is recorded once: its
runner ident is the run's `source_ref`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import ExitCode, InvalidInput
from toolkit.history import History
from toolkit.inventory import resolve
from toolkit.paths import state_dir
from toolkit.profiles import get_profile, load_profiles
from toolkit.run_status import RunStatus, from_runner, judged_status
from toolkit.runner import outcome_code
from toolkit.summary import EventSummariser
from toolkit.validate import Check
from toolkit.validate_run import MEASUREMENTS_FACT, PUBLISHED_BY, judge_summary

# Where an imported run came from (`runs list`/`show`: `source`).
SOURCES = ("awx", "navigator", "runner")
# What is kept of a job's artifacts; runner's `command` (environment, argv) never is.
KEPT = ("job_events", "status", "rc", "stdout")


@dataclass
class Imported:
    run_id: int
    artifacts: Path
    events: int


def artifact_dir(path: Path) -> Path:
    """The directory holding job_events/ and status: PATH itself, PATH/artifacts (as
    `ansible-runner process PATH` leaves it) or PATH/artifacts/<ident> (a local
    ansible-runner run's private data dir). InvalidInput naming PATH when none is."""
    if not path.exists():
        raise InvalidInput(f"{path} does not exist",
                           hint="give the directory `ansible-runner process` wrote to")
    if not path.is_dir():
        raise InvalidInput(f"{path} is not a directory",
                           hint="give the directory `ansible-runner process` wrote to")
    candidates = [path, path / "artifacts"]
    if (path / "artifacts").is_dir():
        candidates += sorted(p for p in (path / "artifacts").iterdir() if p.is_dir())
    found = [c for c in candidates if (c / "job_events").is_dir() and (c / "status").is_file()]
    if len(found) != 1:
        why = "no" if not found else f"{len(found)}"
        raise InvalidInput(
            f"{path} is not an ansible-runner artifact directory: {why} directory there "
            "holds both job_events/ and status",
            hint="give the directory `ansible-runner process` wrote to (it holds "
                 "artifacts/job_events/), or one artifacts/<ident> directory")
    return found[0]


def read_events(directory: Path) -> list[dict[str, Any]]:
    """The job's events in the order they happened (runner's `counter`)."""
    events: list[dict[str, Any]] = []
    for path in (directory / "job_events").glob("*.json"):
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{path} is not a readable ansible-runner event: {exc}",
                               hint="import the artifacts as `ansible-runner process` "
                                    "left them") from None
        if not isinstance(event, dict) or not isinstance(event.get("counter"), int):
            raise InvalidInput(f"{path} is not an ansible-runner event (no counter)",
                               hint="import the artifacts as `ansible-runner process` "
                                    "left them")
        events.append(event)
    if not events:
        raise InvalidInput(f"{directory / 'job_events'} holds no event",
                           hint="the job never started: nothing to record")
    return sorted(events, key=lambda e: int(e["counter"]))


def _utc(stamp: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=when.tzinfo or UTC).astimezone(UTC)


def _word(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _profile_of(events: list[dict[str, Any]], profile: str | None) -> str | None:
    """--profile, checked; else the profile whose name the job's playbook has (the AWX
    project's playbooks are `<profile>.yml`, `-` written `_`)."""
    if profile is not None:
        return get_profile(profile).name
    playbook = next((str(e["event_data"].get("playbook") or "") for e in events
                     if e.get("event") == "playbook_on_start"
                     and isinstance(e.get("event_data"), dict)), "")
    name = Path(playbook).stem.replace("_", "-")
    return name if name in load_profiles() else None


def import_run(path: Path, *, profile: str | None = None, source: str = "awx",
               inventories: list[Path] | None = None,
               thresholds: str | None = None) -> Imported:
    """Record the job whose artifacts are under `path`; InvalidInput (exit 3) for a
    path that is not such a job, an unknown profile or source, or a job already there.
    A validate job imported with the job's inventory is judged as `gpuforge validate`
    judges (thresholds of profile `thresholds`, else the roles' defaults): its checks and
    verdict are recorded with it."""
    if source not in SOURCES:
        raise InvalidInput(f"unknown source {source!r}",
                           hint=f"choose one of: {', '.join(SOURCES)}")
    directory = artifact_dir(path)
    events = read_events(directory)
    runner_status = _word(directory / "status")
    if not runner_status:
        raise InvalidInput(f"{directory / 'status'} is empty: the job has not finished",
                           hint="import a job once `ansible-runner process` has returned")
    ident = next((str(e["runner_ident"]) for e in events if e.get("runner_ident")), "")
    if not ident:
        raise InvalidInput(f"the events under {directory} name no runner_ident",
                           hint="import the artifacts as `ansible-runner process` left them")
    ref = f"{source}:{ident}"
    history = History()
    known = history.find_source_ref(ref)
    if known is not None:
        raise InvalidInput(f"{path} (job {ident}) is already in the history as run {known}; "
                           "it was not recorded again",
                           hint=f"`gpuforge runs show {known}` shows it")
    name = _profile_of(events, profile)
    if inventories and name != "validate":
        raise InvalidInput(f"-i judges a validate job; {path} is a {name or 'unknown'} job",
                           hint="import it without -i")
    block = get_profile(thresholds).validate if thresholds else {}
    resolved = resolve(inventories) if inventories else None
    playbook = next((str(e["event_data"].get("playbook") or "") for e in events
                     if e.get("event") == "playbook_on_start"), "") or None
    published = {MEASUREMENTS_FACT: PUBLISHED_BY} if name == "validate" else {}
    summariser = EventSummariser(published_facts=published)
    for event in events:
        summariser.add(event)
    summary = summariser.summary()
    status = from_runner(runner_status)
    rc_text = _word(directory / "rc")
    rc = int(rc_text) if rc_text.lstrip("-").isdigit() else (
        0 if status is RunStatus.SUCCESSFUL else 1)
    times = [t for t in (_utc(str(e.get("created", ""))) for e in events) if t is not None]
    started = min(times) if times else datetime.now(UTC)
    ended = max(times) if times else started
    run_id = history.start(
        command="validate" if name == "validate" else "apply",
        inventory=f"({source} job {ident})", profile=name, playbook=playbook, limit=None,
        tags=None, check_mode=False, started_at=started.isoformat(timespec="seconds"),
        source=source, source_ref=ref)
    kept = state_dir() / "artifacts" / f"import-{run_id}-{ident}"
    try:
        kept.mkdir(parents=True, exist_ok=True)
        for part in KEPT:
            if (directory / part).is_dir():
                shutil.copytree(directory / part, kept / part)
            elif (directory / part).is_file():
                shutil.copy2(directory / part, kept / part)
    except OSError as exc:
        kept_dir: str | None = None
        summary.warnings.append(f"the job's artifacts were not kept: {exc}")
    else:
        kept_dir = str(kept)
    code: ExitCode = outcome_code(status, rc, summary)
    checks: list[Check] = []
    if resolved is not None:
        verdict, checks = judge_summary(summary, int(code), resolved, block)
        status, code = judged_status(verdict, code, status), verdict
    history.finish(run_id, status=status, rc=rc, exit_code=int(code),
                   ended_at=ended.isoformat(timespec="seconds"),
                   duration_s=round((ended - started).total_seconds(), 2),
                   artifact_dir=kept_dir, summary=summary, checks=checks)
    return Imported(run_id=run_id, artifacts=directory, events=len(events))
