"""ansible-runner's artifacts of a run (events, stdout) under the state dir: how many
are kept, their secrets scrubbed in place, the last lines of a run's output."""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.summary import scrub

# Artifacts of this many runs are kept under the state dir; older ones are rotated out.
ARTIFACTS_KEPT = 20


def scrub_artifacts(directory: Path, secrets: list[str]) -> None:
    """Defence in depth: no secret value stays in runner's artifacts (events, stdout)."""
    if not secrets or not directory.is_dir():
        return
    for path in directory.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        cleaned = scrub(text, secrets)
        if cleaned != text:
            tmp = path.with_name(path.name + ".scrub")
            tmp.write_text(cleaned, encoding="utf-8")
            os.replace(tmp, path)


def tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
