"""Live progress on stderr: a per-host table on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from toolkit.console import err, plain_progress
from toolkit.summary import EventSummariser


class Progress:
    def __init__(self, title: str, *, quiet: bool = False) -> None:
        self.title = title
        self.quiet = quiet
        self.plain = plain_progress()
        self._printed = 0
        self._failures = 0
        self._live: Any = None
        self._last = 0.0

    def __enter__(self) -> Progress:
        if self.quiet:
            return self
        if self.plain:
            err().print(self.title, markup=False)
        else:
            from rich.live import Live

            self._live = Live(self._table(None), console=err(), refresh_per_second=4,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(et, ev, tb)

    def update(self, summariser: EventSummariser) -> None:
        if self.quiet:
            return
        if self.plain:
            self._print_new(summariser)
        elif self._live is not None and time.monotonic() - self._last > 0.2:
            self._last = time.monotonic()
            self._live.update(self._table(summariser))

    def _print_new(self, summariser: EventSummariser) -> None:
        summary = summariser.summary()
        console = err()
        for timing in summary.timings[self._printed:]:
            if timing.status == "skipped":
                continue
            console.print(f"{timing.host:<16} {timing.status:<11} {timing.task} "
                          f"({timing.duration_s:.1f}s)", markup=False, highlight=False)
        self._printed = len(summary.timings)
        for failure in summary.failures[self._failures:]:
            console.print(f"{failure.host:<16} {failure.kind.upper():<11} {failure.message}",
                          markup=False, highlight=False)
        self._failures = len(summary.failures)

    def _table(self, summariser: EventSummariser | None) -> Any:
        from rich.table import Table

        table = Table(title=self.title, expand=False)
        for col in ("host", "current task", "ok", "changed", "failed", "unreachable"):
            table.add_column(col)
        if summariser is not None:
            for host, state in sorted(summariser.hosts.items()):
                c = state.counts
                table.add_row(host, state.current_task[:60], str(c.ok), str(c.changed),
                              str(c.failed), str(c.unreachable))
        return table
