"""Per-key usage of the gateways: what `gpuforge usage` sums.

Each host's gateway logs one JSON line per request (role gateway, log_format gf_metrics) with
the key's name, the model, the status, the times and the tokens of the response's usage. The
module gpuforge.infra.gateway_usage sums them on each host per (key, model, status); this
module merges the hosts' sums and groups them by key, model or host. No key is ever read:
only the names the gateways logged.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from toolkit.errors import InvalidInput

GROUPS = ("key", "model", "host")
COLUMNS = ("requests", "failed", "prompt_tokens", "completion_tokens", "without_usage",
           "mean_latency_s", "mean_ttft_s")
_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """--since: an ISO 8601 time (UTC when it has no offset) or a span back from now
    (30m, 1h, 1d, 2w). None: all."""
    if not text:
        return None
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"--since {text!r}: neither an ISO 8601 time nor a span such as 30m, 1h, 1d, 2w",
            hint="e.g. --since 2026-12-03T05:00:00+00:00 or --since 1d") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def host_rows(hosts: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The hosts' rows (gateway_usage's `rows`), each with its host."""
    return [{**row, "host": host} for host, found in sorted(hosts.items())
            for row in found.get("rows") or []]


def group(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Totals per value of `by` (key, model or host), largest token count first."""
    if by not in GROUPS:
        raise InvalidInput(f"--by {by!r}: one of {', '.join(GROUPS)}")
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        t = totals.setdefault(str(row[by]), {
            by: str(row[by]), "requests": 0, "failed": 0, "prompt_tokens": 0,
            "completion_tokens": 0, "without_usage": 0, "_latency": 0.0, "_ttft": 0.0,
            "_ttft_n": 0})
        t["requests"] += int(row["requests"])
        if int(row["status"]) >= 400:
            t["failed"] += int(row["requests"])
        t["prompt_tokens"] += int(row["prompt_tokens"])
        t["completion_tokens"] += int(row["completion_tokens"])
        t["without_usage"] += int(row["without_usage"])
        t["_latency"] += float(row["latency_s"])
        t["_ttft"] += float(row["ttft_s"])
        t["_ttft_n"] += int(row["ttft_n"])
    out = []
    for t in totals.values():
        latency, ttft, ttft_n = t.pop("_latency"), t.pop("_ttft"), t.pop("_ttft_n")
        t["mean_latency_s"] = round(latency / t["requests"], 3) if t["requests"] else None
        t["mean_ttft_s"] = round(ttft / ttft_n, 3) if ttft_n else None
        out.append(t)
    return sorted(out, key=lambda t: (-(t["prompt_tokens"] + t["completion_tokens"]), t[by]))


def totals(groups: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(int(g[k]) for g in groups)
            for k in ("requests", "failed", "prompt_tokens", "completion_tokens",
                      "without_usage")}


def table_rows(groups: list[dict[str, Any]], by: str) -> list[list[str]]:
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)
    return [[g[by], *(cell(g[c]) for c in COLUMNS)] for g in groups]


def to_csv(groups: list[dict[str, Any]], by: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([by, *COLUMNS])
    for g in groups:
        writer.writerow([g[by], *("" if g[c] is None else g[c] for c in COLUMNS)])
    return buf.getvalue()
