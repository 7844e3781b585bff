"""One apply at a time per host: an flock per host the kernel releases if we die.

The lock is keyed on the machines an apply would touch, not on the inventory's path: two
inventories naming the same host (same address and port) exclude each other, while applies
to different hosts run side by side. Locks are taken in sorted order so two runs wanting
overlapping hosts cannot deadlock; each is non-blocking and a refusal releases what was
taken.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from toolkit.errors import ExitCode, GpuforgeError
from toolkit.paths import state_dir


class InventoryLocked(GpuforgeError):
    code = ExitCode.INVALID_INPUT


def host_key(name: str, hostvars: dict[str, Any]) -> str:
    """What identifies the machine behind an inventory host: how and where it is reached."""
    from toolkit.inventory import reach

    where = reach(name, hostvars)
    return (f"ssh:{where.address}:{where.port}" if where.ssh
            else f"{where.connection}:{where.address}")


def hosts_to_lock(inventories: list[Path], limit: str | None = None) -> list[str]:
    """The host keys an apply with this inventory and --limit would touch, sorted."""
    from ansible.inventory.manager import InventoryManager

    from toolkit.inventory import make_loader

    manager = InventoryManager(loader=make_loader(), sources=[str(p) for p in inventories])
    if limit:
        manager.subset(limit)
    return sorted({host_key(h.name, dict(h.get_vars())) for h in manager.get_hosts()})


def lock_path(key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    directory = state_dir() / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"host-{digest}.lock"


def _holder(fh: IO[str]) -> dict[str, Any]:
    fh.seek(0)
    try:
        info = json.loads(fh.read().strip() or "{}")
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


class InventoryLock:
    """Hold every host an apply touches; `hosts` (keys) given, or read from the inventory."""

    def __init__(self, inventories: list[Path], what: str, *, limit: str | None = None,
                 hosts: Iterable[str] | None = None) -> None:
        self.inventories = inventories
        self.what = what
        self.keys = sorted(set(hosts)) if hosts is not None else hosts_to_lock(inventories,
                                                                               limit)
        self._held: list[IO[str]] = []

    def __enter__(self) -> InventoryLock:
        for key in self.keys:
            fh = open(lock_path(key), "a+", encoding="utf-8")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _holder(fh)
                fh.close()
                self._release()
                raise InventoryLocked(
                    f"another gpuforge run holds host {key} "
                    f"({info.get('what', 'apply')}, pid {info.get('pid', '?')}); inventory "
                    f"{', '.join(map(str, self.inventories))}",
                    hint="wait for it to finish (`gpuforge runs list` shows it); two applies "
                         "against the same hosts would fight over them") from None
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), "what": self.what, "host": key}))
            fh.flush()
            self._held.append(fh)
        return self

    def _release(self) -> None:
        for fh in reversed(self._held):
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
        self._held = []

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._release()
