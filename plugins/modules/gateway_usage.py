#!/usr/bin/python
# Copyright: gpuforge contributors
# Apache License 2.0 (see LICENSE)
"""Ansible module gpuforge.infra.gateway_usage: a gateway's routed requests and tokens, summed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gateway_usage
short_description: Sum the requests and tokens a gpuforge gateway logged, per key and model
version_added: "0.1.0"
author:
  - gpuforge maintainers (@gpuforge)
description:
  - Reads the gateway's metrics log (one JSON object per request, log_format gf_metrics of
    role gateway) and its rotated copies (C(.1), C(.N.gz)), keeps the requests routed to a
    model, and sums them per key name, model and status.
  - Read-only. Requests refused before routing (401, 429, 404, 400; model C(-)) are not
    usage and are left out.
  - The key name is the one the gateway logged, never a key.
options:
  log:
    description: The metrics log on the host.
    type: path
    default: /var/log/nginx/gpuforge-metrics.log
  since:
    description:
      - Only requests logged at or after this time (ISO 8601 with an offset, e.g.
        C(2026-12-03T05:00:00+00:00)). Empty = all.
    type: str
    default: ""
attributes:
  check_mode:
    description: Reads in check mode too.
    support: full
  diff_mode:
    description: No diff.
    support: none
"""

EXAMPLES = r"""
- name: Sum the gateway's usage of the last day
  gpuforge.infra.gateway_usage:
    since: "2026-12-02T06:00:00+00:00"
"""

RETURN = r"""
ansible_facts:
  description: C(gpuforge_usage) with C(rows), C(lines), C(skipped), C(log_found).
  returned: always
  type: dict
  contains:
    gpuforge_usage:
      description: The sums.
      type: dict
      contains:
        rows:
          description: >-
            One per key, model and status: requests, prompt_tokens, completion_tokens,
            without_usage (responses without a usage object), latency_s (sum of request
            times), ttft_s (sum of times to the first token) and ttft_n (how many had one).
          type: list
          elements: dict
        lines: {description: Lines read., type: int}
        skipped: {description: Lines that were not a gateway JSON entry., type: int}
        log_found: {description: Whether the log exists., type: bool}
"""

import glob
import gzip
import json
import os
import re
from datetime import datetime
from typing import Any, Iterable

from ansible.module_utils.basic import AnsibleModule

SUM_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "without_usage", "latency_s",
              "ttft_s", "ttft_n")


def _number(value: Any) -> float | None:
    """A logged time ("0.412"; "0.1, 0.3" after a retry: the last one) or None."""
    if isinstance(value, (int, float)):
        return float(value)
    parts = [p.strip() for p in str(value or "").split(",")]
    try:
        return float(parts[-1]) if parts[-1] not in ("", "-") else None
    except ValueError:
        return None


def _tokens(value: Any) -> int | None:
    text = str(value if value is not None else "").strip()
    return int(text) if text.isdigit() else None


def parse_line(line: str) -> dict[str, Any] | None:
    """One routed request of the metrics log, or None (not JSON, or not routed to a model)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("status"), int):
        return None
    model = entry.get("model")
    if not isinstance(model, str) or model in ("", "-"):
        return None
    prompt, completion = _tokens(entry.get("prompt_tokens")), _tokens(entry.get("completion_tokens"))
    return {"time": str(entry.get("time") or ""), "key": str(entry.get("key") or "-"),
            "model": model, "status": entry["status"],
            "prompt_tokens": prompt, "completion_tokens": completion,
            "latency_s": _number(entry.get("request_s")),
            # the first token's time the gateway measured; older lines: the runtime's headers
            "ttft_s": _number(entry["ttft_s"]) if "ttft_s" in entry
            else _number(entry.get("upstream_header_s"))}


def parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def summarise(lines: Iterable[str], since: datetime | None = None) -> dict[str, Any]:
    """The sums per (key, model, status) of the routed requests in lines."""
    sums: dict[tuple[str, str, int], dict[str, Any]] = {}
    count = skipped = 0
    for line in lines:
        if not line.strip():
            continue
        count += 1
        entry = parse_line(line)
        if entry is None:
            skipped += json_entry(line) is None
            continue
        if since is not None:
            when = parse_time(entry["time"])
            if when is None or when < since:
                continue
        row = sums.setdefault((entry["key"], entry["model"], entry["status"]),
                              dict.fromkeys(SUM_FIELDS, 0))
        row["requests"] += 1
        if entry["prompt_tokens"] is None:
            row["without_usage"] += 1
        else:
            row["prompt_tokens"] += entry["prompt_tokens"]
            row["completion_tokens"] += entry["completion_tokens"] or 0
        row["latency_s"] += entry["latency_s"] or 0.0
        if entry["ttft_s"] is not None:
            row["ttft_s"] += entry["ttft_s"]
            row["ttft_n"] += 1
    rows = [{"key": k, "model": m, "status": s, **v} for (k, m, s), v in sorted(sums.items())]
    return {"rows": rows, "lines": count, "skipped": skipped}


def json_entry(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and "status" in entry else None


def _rotation(path: str) -> int:
    match = re.search(r"\.(\d+)(\.gz)?$", path)
    return int(match.group(1)) if match else 0


def log_files(log: str) -> list[str]:
    """The log and its rotated copies, oldest first."""
    rotated = [p for p in glob.glob(glob.escape(log) + ".*") if re.search(r"\.\d+(\.gz)?$", p)]
    files = sorted(rotated, key=_rotation, reverse=True)
    return files + ([log] if os.path.isfile(log) else [])


def read_lines(paths: list[str]) -> Iterable[str]:
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
            yield from fh


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "log": {"type": "path", "default": "/var/log/nginx/gpuforge-metrics.log"},
            "since": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    since = None
    if module.params["since"]:
        since = parse_time(module.params["since"])
        if since is None:
            module.fail_json(msg=f"since: {module.params['since']!r} is not an ISO 8601 time "
                                 "with an offset (e.g. 2026-12-03T05:00:00+00:00)")
    log = module.params["log"]
    files = log_files(log)
    try:
        found = summarise(read_lines(files), since)
    except OSError as exc:
        module.fail_json(msg=f"cannot read the gateway's metrics log {log}: {exc}")
    found["log_found"] = bool(files)
    module.exit_json(changed=False, ansible_facts={"gpuforge_usage": found})


if __name__ == "__main__":
    main()
