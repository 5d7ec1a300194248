"""Live progress of a run: a rich display on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import math
import time
from typing import Any

import anyio
import attrs

from akool_async import Batch, BatchStats

from ._common import Ui, format_duration

__all__ = ["Progress", "Snapshot"]


@attrs.frozen
class Snapshot:
    """Progress numbers derived from a :class:`BatchStats` at one instant."""

    total: int
    stats: BatchStats
    elapsed: float

    @property
    def waiting(self) -> int:
        """Jobs not yet submitting or running (queued in the batch or not yet read)."""
        s = self.stats
        return max(0, self.total - s.done - s.running - s.submitting)

    @property
    def rate(self) -> float:
        """Outcomes per second so far."""
        return self.stats.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds until every job has an outcome at the current rate (inf if unknown)."""
        remaining = self.total - self.stats.done
        if remaining <= 0:
            return 0.0
        return remaining / self.rate if self.rate > 0 else math.inf

    def line(self) -> str:
        """The plain progress line."""
        s = self.stats
        return (
            f"[{format_duration(self.elapsed):>6}] {s.done}/{self.total} done: "
            f"{s.completed} completed, {s.failed} failed, {s.uncertain} uncertain | "
            f"{s.running} running, {s.submitting} submitting, {self.waiting} waiting | "
            f"{s.credits:,.0f} credits | {self.rate:.1f} jobs/s | ETA {format_duration(self.eta)}"
        )


class Progress:
    """Live progress of one batch: a rich display, plain periodic lines, or nothing."""

    def __init__(self, ui: Ui, total: int, *, interval: float, started: float) -> None:
        self.ui = ui
        self.total = total
        self.interval = interval
        self.started = started
        self.batch: Batch | None = None

    def snapshot(self) -> Snapshot:
        """Now's numbers."""
        stats = self.batch.stats if self.batch is not None else BatchStats()
        return Snapshot(self.total, stats, time.monotonic() - self.started)

    async def run(self) -> None:
        """Draw until cancelled (run it in the batch's task group)."""
        if self.ui.mode == "rich":
            await self._run_rich()
        elif self.ui.mode == "plain":
            while True:
                await anyio.sleep(self.interval)
                self.ui.print(self.snapshot().line())
        else:
            await anyio.sleep_forever()

    async def _run_rich(self) -> None:
        from rich.console import Console  # noqa: PLC0415 - optional, lazy
        from rich.live import Live  # noqa: PLC0415

        console = Console(file=self.ui.stream)
        with Live(self._render(), console=console, auto_refresh=False, transient=False) as live:
            try:
                while True:
                    await anyio.sleep(0.2)
                    live.update(self._render(), refresh=True)
            finally:
                live.update(self._render(), refresh=True)

    def _render(self) -> Any:
        from rich.console import Group  # noqa: PLC0415 - optional, lazy
        from rich.progress_bar import ProgressBar  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        snap = self.snapshot()
        s = snap.stats
        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        grid.add_row(
            f"[green]completed {s.completed}[/]",
            f"[red]failed {s.failed}[/]",
            f"[yellow]uncertain {s.uncertain}[/]",
            f"credits {s.credits:,.0f}",
        )
        grid.add_row(
            f"[cyan]running {s.running}[/]",
            f"submitting {s.submitting}",
            f"waiting {snap.waiting}",
            f"{snap.rate:.1f} jobs/s  ETA {format_duration(snap.eta)}",
        )
        header = Table.grid(padding=(0, 2))
        header.add_row(
            ProgressBar(total=max(1, self.total), completed=s.done, width=40),
            f"{s.done}/{self.total} done  [{format_duration(snap.elapsed)}]",
        )
        return Group(header, grid)
