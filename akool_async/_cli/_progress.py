"""Live progress of a run: a rich display on a terminal, plain periodic lines otherwise.

The rate and the time left count this run's outcomes only: outcomes replayed from the
journal arrive at once and say nothing about how fast the rest will go.
"""

from __future__ import annotations

import time
from typing import Any, Final

import anyio
import attrs

from akool_async import Batch, BatchStats

from ._common import Ui, format_duration

__all__ = ["NO_ESTIMATE", "Progress", "Snapshot", "format_eta"]

#: Shown for a time left that cannot be estimated yet (no outcome of this run so far).
NO_ESTIMATE: Final = "\u2014"


def format_eta(remaining: int, rate: float) -> str:
    """Time for ``remaining`` outcomes at ``rate`` per second; an em dash while no rate is
    known, and never ``0.0s`` while jobs remain."""
    if remaining <= 0:
        return format_duration(0.0)
    if rate <= 0:
        return NO_ESTIMATE
    return format_duration(max(remaining / rate, 0.1))


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
        """This run's outcomes per second so far (replayed ones excluded)."""
        done = self.stats.done - self.stats.replayed
        return done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> str:
        """Time until every job has an outcome at this run's rate (``NO_ESTIMATE`` while
        no rate is known)."""
        return format_eta(self.total - self.stats.done, self.rate)

    def line(self) -> str:
        """The plain progress line."""
        s = self.stats
        return (
            f"[{format_duration(self.elapsed):>6}] {s.done}/{self.total} done: "
            f"{s.completed} completed, {s.failed} failed, {s.uncertain} uncertain | "
            f"{s.running} running, {s.submitting} submitting, {self.waiting} waiting | "
            f"{s.credits:,.0f} credits | {self.rate:.1f} jobs/s | ETA {self.eta}"
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
            f"{snap.rate:.1f} jobs/s  ETA {snap.eta}",
        )
        header = Table.grid(padding=(0, 2))
        header.add_row(
            ProgressBar(total=max(1, self.total), completed=s.done, width=40),
            f"{s.done}/{self.total} done  [{format_duration(snap.elapsed)}]",
        )
        return Group(header, grid)
