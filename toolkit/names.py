"""Names that become paths: validated against a safe pattern before any path is built.

A sandbox name, a run id, a model, instance, revision or file name, a host name: each one
ends up as a path component on the controller or, as root, on a host. One pattern per kind,
pure functions, and `within()` as the last guard: a path is resolved and must stay inside
its directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from toolkit.errors import InvalidInput

# One path component: starts with a letter or digit (so never "." or ".."), then letters,
# digits, dot, underscore, hyphen; no separator, no space, no shell or markup character.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Host names as inventories spell them: DNS names, IPv4 and IPv6 addresses.
HOST_RE = re.compile(r"[A-Za-z0-9_:\[][A-Za-z0-9._:\[\]-]{0,252}")
# Ollama model names: `library/llama3.2:1b` (a registry path and a tag).
OLLAMA_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}")
# SQLite's INTEGER is signed 64-bit.
MAX_RUN_ID = 2**63 - 1


def name_problem(value: object, pattern: re.Pattern[str] = NAME_RE) -> str | None:
    """Why `value` cannot be used as a path component, or None when it can."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not pattern.fullmatch(value):
        return (f"{value!r} is not a safe name (letters, digits, '.', '_', '-'; starting "
                "with a letter or digit; at most 128 characters)")
    if ".." in value.split("/") or ".." in value.split(":"):
        return f"{value!r} contains '..'"
    return None


def relative_path_problem(value: object) -> str | None:
    """A relative file path (`onnx/model.onnx`): every component a safe name."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    for part in value.split("/"):
        problem = name_problem(part)
        if problem:
            return f"{value!r} is not a safe relative path ({problem})"
    return None


def host_problem(value: str) -> str | None:
    if not HOST_RE.fullmatch(value) or ".." in value or "/" in value:
        return (f"host name {value!r} is not a safe name (letters, digits, '.', '_', '-', "
                "':'; no '/' or '..'): it becomes a file name on the controller")
    return None


def ollama_problem(value: object) -> str | None:
    if not isinstance(value, str) or not OLLAMA_RE.fullmatch(value):
        return f"{value!r} is not a valid Ollama model name (like library/llama3.2:1b)"
    if any(part in ("", ".", "..") for part in value.split(":")[0].split("/")):
        return f"{value!r} contains an empty, '.' or '..' path component"
    return None


def safe_name(kind: str, value: str) -> str:
    """`value` unchanged, or InvalidInput naming the option."""
    problem = name_problem(value)
    if problem:
        raise InvalidInput(f"{kind}: {problem}",
                           hint="use letters, digits, '.', '_' and '-' only")
    return value


def parse_run_id(value: str) -> int:
    """A run id as the user typed it: a positive integer that SQLite can store."""
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,19}", text) or not 1 <= int(text) <= MAX_RUN_ID:
        raise InvalidInput(f"run id {value!r} is not a run id (a whole number from 1 to "
                           f"{MAX_RUN_ID})", hint="`gpuforge runs list` shows the recorded runs")
    return int(text)


def within(base: Path, *parts: str) -> Path:
    """base/parts resolved; InvalidInput when the result leaves `base` (.., links)."""
    root = base.resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root):
        raise InvalidInput(f"{'/'.join(parts)!r} leads outside {root}",
                           hint="names may not contain '..' or '/'")
    return path
