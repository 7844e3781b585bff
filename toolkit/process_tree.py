"""Processes below gpuforge, read from /proc: find ansible-playbook, interrupt it, stop
what is left.

ansible-playbook's workers run in process groups of their own, so a signal to one group
(what ansible-runner sends) leaves them running; these functions walk the tree instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def process_start(pid: int) -> str | None:
    """When process `pid` started, as `boot id:start ticks` (None: no such process, or no
    /proc to ask). Two processes that share a pid never share this."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    # Field 22 (starttime), counted after the command name, which may hold spaces.
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def process_alive(pid: int | None, started: str | None) -> bool:
    """Whether the process that recorded a run still runs (same pid, same start)."""
    if not pid:
        return False
    if started is not None:
        return process_start(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def children_map() -> dict[int, list[int]]:
    """parent pid -> its children's pids, for every process visible in /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def state(pid: int) -> str:
    """The process's state letter (Z: a zombie; X: gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def alive(pid: int) -> bool:
    return state(pid) not in ("Z", "X")


def named_children(parent: int, name: str) -> list[int]:
    """`parent`'s children whose command line names `name`."""
    return [pid for pid in children_map().get(parent, []) if name in cmdline(pid)]


def tree_of(roots: list[int]) -> list[int]:
    """`roots` and every process below them."""
    children = children_map()
    tree: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def send(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def interrupt(parent: int, name: str) -> list[int]:
    """SIGINT to `parent`'s children named `name` (as Ctrl-C would): ansible-playbook
    then stops its play, runs what it runs on an interrupt and exits. Their pids."""
    roots = named_children(parent, name)
    send(roots, signal.SIGINT)
    return roots


def terminate_tree(parent: int, name: str, grace_s: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process below `parent`'s children named `name`."""
    tree = tree_of(named_children(parent, name))
    send(tree, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(pid) for pid in tree):
        time.sleep(0.1)
    send(tree, signal.SIGKILL)
    return tree
