"""One apply at a time per inventory: an flock the kernel releases if we die."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO

from toolkit.errors import ExitCode, GpuforgeError
from toolkit.paths import state_dir


class InventoryLocked(GpuforgeError):
    code = ExitCode.INVALID_INPUT


def lock_path(inventories: list[Path]) -> Path:
    key = "\n".join(sorted(str(p.resolve()) for p in inventories))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    directory = state_dir() / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"inventory-{digest}.lock"


class InventoryLock:
    def __init__(self, inventories: list[Path], what: str) -> None:
        self.path = lock_path(inventories)
        self.inventories = inventories
        self.what = what
        self._fh: IO[str] | None = None

    def __enter__(self) -> InventoryLock:
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "{}"
            fh.close()
            try:
                info = json.loads(holder)
            except json.JSONDecodeError:
                info = {}
            raise InventoryLocked(
                f"another gpuforge run holds inventory {', '.join(map(str, self.inventories))}"
                f" ({info.get('what', 'apply')}, pid {info.get('pid', '?')})",
                hint="wait for it to finish (`gpuforge runs list` shows it); two applies "
                     "against the same hosts would fight over them") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "what": self.what}))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
