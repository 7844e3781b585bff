"""`gpuforge report`: one self-contained HTML page for a recorded run.

Everything the page needs is inline (CSS, a few lines of JS, SVG drawn here from the
recorded task timings), so the file can be attached to a ticket or opened offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from toolkit.history import RunRecord
from toolkit.summary import TaskTiming

TEMPLATE = "report.html.j2"
TIMELINE_WIDTH = 1000  # px of the time axis inside the SVG
LABEL_WIDTH = 160  # px left of the axis for host names
ROW_HEIGHT = 26
STATUS_COLOURS = {"ok": "#3b82f6", "changed": "#f59e0b", "failed": "#dc2626",
                  "unreachable": "#7c3aed", "skipped": "#9ca3af"}


@dataclass(frozen=True)
class Bar:
    host: str
    task: str
    role: str
    status: str
    start_s: float
    duration_s: float
    x: float
    width: float
    y: float
    colour: str


def _parse(ts: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=None)


def timeline(timings: list[TaskTiming]) -> tuple[list[str], list[Bar], float]:
    """Hosts (rows), bars and the time span in seconds. Tasks without a parsable start are
    laid end to end after their host's previous task."""
    hosts = sorted({t.host for t in timings})
    starts = [p for p in (_parse(t.start) for t in timings) if p is not None]
    origin = min(starts) if starts else None
    placed: list[tuple[TaskTiming, float]] = []
    cursor: dict[str, float] = {}
    for t in timings:
        parsed = _parse(t.start)
        offset = (parsed - origin).total_seconds() if parsed and origin else cursor.get(t.host, 0)
        cursor[t.host] = offset + t.duration_s
        placed.append((t, offset))
    span = max((o + t.duration_s for t, o in placed), default=0.0) or 1.0
    scale = TIMELINE_WIDTH / span
    bars = [
        Bar(host=t.host, task=t.task, role=t.role, status=t.status, start_s=round(o, 3),
            duration_s=t.duration_s, x=round(LABEL_WIDTH + o * scale, 2),
            width=round(max(t.duration_s * scale, 1.5), 2),
            y=hosts.index(t.host) * ROW_HEIGHT + 24,
            colour=STATUS_COLOURS.get(t.status, "#6b7280"))
        for t, o in placed]
    return hosts, bars, span


def ticks(span: float, count: int = 8) -> list[tuple[float, str]]:
    step = span / count
    return [(round(LABEL_WIDTH + i * step * TIMELINE_WIDTH / span, 2), f"{i * step:.1f}s")
            for i in range(count + 1)]


def render(record: RunRecord, checks: list[dict[str, Any]] | None = None) -> str:
    import jinja2

    assert record.summary is not None
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    hosts, bars, span = timeline(record.summary.timings)
    slowest = sorted(record.summary.timings, key=lambda t: t.duration_s, reverse=True)[:10]
    return env.get_template(TEMPLATE).render(
        run=record, summary=record.summary, totals=record.summary.totals(),
        hosts=hosts, bars=bars, span=span, ticks=ticks(span), slowest=slowest,
        checks=checks or [], colours=STATUS_COLOURS, label_width=LABEL_WIDTH,
        svg_width=LABEL_WIDTH + TIMELINE_WIDTH + 20,
        svg_height=max(len(hosts), 1) * ROW_HEIGHT + 44, row_height=ROW_HEIGHT,
        generated=datetime.now().astimezone().isoformat(timespec="seconds"))
