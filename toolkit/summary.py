"""Turn ansible-runner events into what a person wants to know about a run.

Pure: no I/O. The runner adapter feeds events in the order they arrive; the CLI
reads `HostState` for live progress and `RunSummary` at the end.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

COUNT_KEYS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
REDACTED = "********"
# What ssh says when a host's key is unknown or differs from the recorded one.
HOST_KEY_ERRORS = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
                   "No matching host key", "host key for", "Host key for")
HOST_KEY_HINT = ("the host's SSH key is unknown or not the one recorded: check the "
                 "fingerprint with `gpuforge hosts trust -i INVENTORY --limit HOST`, which "
                 "records it once you confirm")
# A key that names a secret: its value never reaches output, history or reports.
SECRET_KEY_RE = re.compile(r"(token|secret|password|passwd|api_?key|private_key)", re.I)


@dataclass
class HostCounts:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    message: str
    kind: str  # "failed" | "unreachable"


@dataclass(frozen=True)
class TaskTiming:
    host: str
    task: str
    role: str
    action: str
    start: str
    duration_s: float
    status: str  # ok | changed | failed | unreachable | skipped


@dataclass(frozen=True)
class Change:
    """A task that changed (or would change, in check mode) a host."""

    host: str
    task: str
    diff: str


@dataclass
class HostState:
    """Live view of one host for progress display."""

    current_task: str = ""
    counts: HostCounts = field(default_factory=HostCounts)
    done: bool = False


@dataclass
class RunSummary:
    hosts: dict[str, HostCounts]
    failures: list[Failure]
    timings: list[TaskTiming]
    changes: list[Change]
    reboot_required: list[str]
    warnings: list[str]
    # host -> {fact: value} for the facts the run was asked to keep (RunRequest.published_facts)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def totals(self) -> HostCounts:
        total = HostCounts()
        for counts in self.hosts.values():
            for key in COUNT_KEYS:
                setattr(total, key, getattr(total, key) + getattr(counts, key))
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "hosts": {h: asdict(c) for h, c in sorted(self.hosts.items())},
            "failures": [asdict(f) for f in self.failures],
            "timings": [asdict(t) for t in self.timings],
            "changes": [asdict(c) for c in self.changes],
            "reboot_required": sorted(self.reboot_required),
            "warnings": self.warnings,
        }


def _base64_forms(raw: bytes) -> set[str]:
    """The stable middle of `raw`'s base64 at each of the 3 byte alignments it can have
    inside a longer encoded text (standard and URL-safe alphabets)."""
    forms: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
        # Drop the 4-char group mixed with the prefix, and a trailing partial group.
        core = encoded[4 if shift else 0:]
        if (shift + len(raw)) % 3:
            core = core[:-(len(core) % 4 or 4)]
        if len(core) >= 8:
            forms.update({core, core.replace("+", "-").replace("/", "_")})
    return forms


@functools.lru_cache(maxsize=256)
def secret_forms(secret: str) -> frozenset[str]:
    """Every form a secret value takes in text gpuforge stores or prints: as is,
    JSON-escaped, URL-encoded (path and form styles) and base64-encoded."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret),
             urllib.parse.quote_plus(secret)}
    forms |= _base64_forms(secret.encode("utf-8"))
    return frozenset(f for f in forms if len(f) >= 4)


@functools.lru_cache(maxsize=64)
def _scrubber(secrets: frozenset[str]) -> re.Pattern[str] | None:
    """One pattern for every form of every secret, longest first: one pass per text."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= 4:
            forms |= secret_forms(secret)
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret value, in each of its forms, in `text`."""
    pattern = _scrubber(frozenset(s for s in secrets if s))
    return pattern.sub(REDACTED, text) if pattern is not None else text


def scrub_data(value: Any, secrets: Iterable[str], *, keys: bool = True) -> Any:
    """Deep-copy `value` with secret values redacted, and (keys=True) the values of
    secret-named keys too."""
    secret_list = list(secrets)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if keys and isinstance(k, str) and SECRET_KEY_RE.search(k) and v else
                scrub_data(v, secret_list, keys=keys))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_data(v, secret_list, keys=keys) for v in value]
    if isinstance(value, str):
        return scrub(value, secret_list)
    return value


def failure_message(res: Mapping[str, Any]) -> str:
    """The one line a person needs from a failed or unreachable result."""
    if res.get("censored"):
        return str(res["censored"])
    if res.get("msg") == "non-zero return code" and str(res.get("stderr", "")).strip():
        return _last_line(str(res["stderr"]))
    for key in ("msg", "reason", "stderr", "module_stderr", "stdout"):
        value = res.get(key)
        if isinstance(value, str) and value.strip():
            lines = [ln for ln in value.strip().splitlines() if ln.strip()]
            return lines[-1] if key in ("module_stderr", "stderr") and lines else value.strip()
    results = res.get("results")
    if isinstance(results, list):
        for item in results:
            if isinstance(item, Mapping) and item.get("failed"):
                return failure_message(item)
    return "task failed (no message)"


def unreachable_message(res: Mapping[str, Any]) -> str:
    """Why a host was unreachable; a host key problem names the way to trust the host."""
    message = failure_message(res)
    if any(marker in message for marker in HOST_KEY_ERRORS):
        return f"{message} ({HOST_KEY_HINT})"
    return message


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _diff_text(res: Mapping[str, Any]) -> str:
    diffs = res.get("diff")
    if isinstance(diffs, Mapping):
        diffs = [diffs]
    if not isinstance(diffs, list):
        return ""
    parts: list[str] = []
    for d in diffs:
        if not isinstance(d, Mapping):
            continue
        if d.get("prepared"):
            parts.append(str(d["prepared"]).strip())
            continue
        before = d.get("before_header") or ""
        after = d.get("after_header") or ""
        if before or after:
            parts.append(f"{before} -> {after}".strip(" ->"))
        elif "before" in d or "after" in d:
            b, a = d.get("before"), d.get("after")
            if isinstance(b, Mapping) and isinstance(a, Mapping):
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                parts.append(", ".join(f"{k}: {b.get(k)!r} -> {a.get(k)!r}" for k in keys))
            else:
                parts.append("content differs")
    return "; ".join(p for p in parts if p)


class EventSummariser:
    """Accumulates runner events; `summary()` gives the result at any time."""

    def __init__(self, secrets: Iterable[str] = (),
                 published_facts: Mapping[str, Iterable[str]] | None = None) -> None:
        self._secrets = [s for s in secrets if s]
        # fact -> the task actions that publish it (no other task's copy is taken)
        self._published = {k: frozenset(v) for k, v in (published_facts or {}).items()}
        self._facts: dict[str, dict[str, Any]] = {}
        self.hosts: dict[str, HostState] = {}
        self._failures: list[Failure] = []
        self._timings: list[TaskTiming] = []
        self._changes: list[Change] = []
        # host -> each role's latest <role>_reboot_required fact: a role that rebooted the
        # host sets its flag back to false, and the host then needs no reboot.
        self._reboot: dict[str, dict[str, bool]] = {}
        self._warnings: list[str] = []
        self._stats: dict[str, HostCounts] | None = None

    def _host(self, name: str) -> HostState:
        return self.hosts.setdefault(name, HostState())

    def add(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if kind == "playbook_on_task_start":
            return
        if kind == "runner_on_start" and host:
            self._host(host).current_task = self._scrub(str(data.get("task", "")))
            return
        if kind == "playbook_on_stats":
            self._stats = _stats_counts(data)
            for state in self.hosts.values():
                state.done = True
            return
        if kind == "warning":
            self._warnings.append(self._scrub(str(event.get("stdout", "")).strip()))
            return
        if not host or not kind.startswith("runner_on_"):
            return
        status = kind.removeprefix("runner_on_")
        res = data.get("res") or {}
        state = self._host(host)
        counts = state.counts
        task = self._scrub(str(data.get("task", "")))
        if status == "ok":
            counts.ok += 1
            if res.get("changed"):
                counts.changed += 1
                status = "changed"
                self._changes.append(Change(host, task, self._scrub(_diff_text(res))))
            self._note_reboot(host, res)
            self._note_warning(host, res)
            self._note_facts(host, str(data.get("task_action", "")), res)
        elif status == "failed":
            if data.get("ignore_errors"):
                counts.ignored += 1
            else:
                counts.failed += 1
                self._failures.append(
                    Failure(host, task, self._scrub(failure_message(res)), "failed"))
        elif status == "unreachable":
            counts.unreachable += 1
            self._failures.append(
                Failure(host, task, self._scrub(unreachable_message(res)), "unreachable"))
        elif status == "skipped":
            counts.skipped += 1
        else:
            return
        self._timings.append(TaskTiming(
            host=host, task=task, role=str(data.get("role", "") or ""),
            action=str(data.get("task_action", "") or ""),
            start=str(data.get("start", "") or event.get("created", "")),
            duration_s=_duration(data), status=status))

    def _note_reboot(self, host: str, res: Mapping[str, Any]) -> None:
        facts = res.get("ansible_facts") or {}
        for key, value in facts.items():
            if key.endswith("_reboot_required"):
                self._reboot.setdefault(host, {})[key] = bool(value)

    def _note_facts(self, host: str, action: str, res: Mapping[str, Any]) -> None:
        facts = res.get("ansible_facts") or {}
        for key in facts.keys() & self._published.keys():
            if action in self._published[key]:
                self._facts.setdefault(host, {})[key] = scrub_data(
                    facts[key], self._secrets, keys=False)

    def _note_warning(self, host: str, res: Mapping[str, Any]) -> None:
        # A play or role says something the run summary must show (a GPU host left on the
        # CPU...) by setting the fact gpuforge_run_warning.
        text = str((res.get("ansible_facts") or {}).get("gpuforge_run_warning") or "").strip()
        if text:
            self._warnings.append(self._scrub(f"{host}: {text}"))

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def summary(self) -> RunSummary:
        hosts = {h: s.counts for h, s in self.hosts.items()}
        if self._stats is not None:
            # The recap is authoritative: it counts what handlers and loops did too.
            hosts = {**hosts, **self._stats}
        return RunSummary(
            hosts=hosts, failures=list(self._failures), timings=list(self._timings),
            changes=list(self._changes),
            reboot_required=sorted(h for h, flags in self._reboot.items() if any(flags.values())),
            warnings=list(self._warnings),
            facts={h: dict(f) for h, f in self._facts.items()})


def _stats_counts(data: Mapping[str, Any]) -> dict[str, HostCounts]:
    names = {
        "ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
        "skipped": "skipped", "rescued": "rescued", "ignored": "ignored",
    }
    out: dict[str, HostCounts] = {}
    for src, dst in names.items():
        per_host = data.get(src) or {}
        for host, n in per_host.items():
            setattr(out.setdefault(host, HostCounts()), dst, int(n))
    for host in data.get("processed") or {}:
        out.setdefault(host, HostCounts())
    return out


def _duration(data: Mapping[str, Any]) -> float:
    value = data.get("duration")
    if isinstance(value, int | float):
        return round(float(value), 3)
    start, end = data.get("start"), data.get("end")
    if isinstance(start, str) and isinstance(end, str):
        try:
            delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
            return round(delta.total_seconds(), 3)
        except ValueError:
            return 0.0
    return 0.0
