"""stdout is for data, stderr is for people. Colour: NO_COLOR > FORCE_COLOR > TTY."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console


def colour_wanted(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def plain_progress() -> bool:
    """Plain progress lines when stderr is not a terminal or when running in CI."""
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


_err: Console | None = None


def err() -> Console:
    global _err
    if _err is None:
        colour = colour_wanted(sys.stderr)
        tty = sys.stderr.isatty()
        _err = Console(stderr=True, no_color=not colour, force_terminal=colour or None,
                       highlight=False, width=None if tty else 160,
                       soft_wrap=not tty)
    return _err


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def error(message: str, hint: str = "") -> None:
    console = err()
    console.print(f"[bold red]Error:[/] {message}", markup=True, highlight=False)
    if hint:
        console.print(f"[yellow]Hint:[/] {hint}", markup=True, highlight=False)
