"""stdout is for data, stderr is for people. Colour: NO_COLOR > FORCE_COLOR > TTY.

Data is never markup: the console reads no Rich markup in anything it prints (a host
name, a path, a model's `[/INST]`), tables and live progress included; the few styled
words are built as `Text` here.
"""

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
                       highlight=False, markup=False, emoji=False, width=None if tty else 160,
                       soft_wrap=not tty)
    return _err


_emitted = {"json": False}


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
    _emitted["json"] = True


def json_emitted() -> bool:
    """Whether this invocation already printed its one JSON document on stdout."""
    return _emitted["json"]


def reset_json_emitted() -> None:
    _emitted["json"] = False


def error_json(message: str, hint: str, exit_code: int) -> None:
    """The `--json` error object: what `error()` says to people, for scripts on stdout.

    Printed only when the command has not printed its own document yet, so stdout
    always holds exactly one JSON document.
    """
    if not json_emitted():
        emit_json({"error": message, "hint": hint or None, "exit_code": int(exit_code)})


def error(message: str, hint: str = "") -> None:
    from rich.text import Text

    console = err()
    console.print(Text.assemble(("Error:", "bold red"), " ", message), highlight=False)
    if hint:
        console.print(Text.assemble(("Hint:", "yellow"), " ", hint), highlight=False)
