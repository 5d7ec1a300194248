"""Shared test configuration: anyio on asyncio in debug mode, the simulator, one fake clock."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from typing import Protocol

import anyio
import anyio.lowlevel
import pytest

from akool_async.testing import AkoolSimulator

#: The wall time a ManualClock starts at (a fixed instant, so stored timestamps are stable).
START_WALL = 1_700_000_000.0


class _Timeline(Protocol):
    def now(self) -> float: ...
    def advance(self, seconds: float) -> None: ...


class ManualClock:
    """The one fake clock of the test suite: time moves only when someone sleeps.

    - ``ManualClock()``: its own logical time from 0.
    - ``ManualClock(sim)``: the simulator's manual clock, so sleeping advances the server too.
    - ``settle=True``: virtual time for concurrent sleepers (schedulers, batches): sleepers
      wake in deadline order, and time jumps to the next deadline only once every other
      task is blocked, so work already due runs at the instant it was due.
    - ``start_wall``: what ``wall()`` reads at logical time 0 (assignable: a test can move
      the wall clock of a ``frozen`` clock by setting it).
    - ``wall_step``: seconds ``wall()`` advances per read (distinct stored timestamps).
    - ``frozen=True``: sleeping does not move time (receivers that only read the wall clock).
    Every sleep is recorded in ``sleeps``.
    """

    def __init__(
        self,
        sim: _Timeline | None = None,
        *,
        settle: bool = False,
        start_wall: float = START_WALL,
        wall_step: float = 0.0,
        frozen: bool = False,
    ) -> None:
        self.sim = sim
        self.settle = settle
        self.start_wall = start_wall
        self.wall_step = wall_step
        self.frozen = frozen
        self._now = 0.0
        self._wall_reads = 0
        self.sleeps: list[float] = []
        self._due: list[list[object]] = []  # heap of [deadline, seq, Event] (settle)
        self._seq = itertools.count()

    @property
    def now(self) -> float:
        """Logical seconds since the clock started."""
        return self.sim.now() if self.sim is not None else self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without sleeping."""
        if self.sim is not None:
            self.sim.advance(seconds)
        else:
            self._now += seconds

    @property
    def slept(self) -> float:
        """Total seconds slept."""
        return sum(max(0.0, s) for s in self.sleeps)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        self._wall_reads += 1
        return self.start_wall + self.now + self.wall_step * self._wall_reads

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.settle:
            await self._sleep_in_turn(max(0.0, seconds))
        elif not self.frozen:
            self.advance(max(0.0, seconds))
        await anyio.lowlevel.checkpoint()

    async def _sleep_in_turn(self, seconds: float) -> None:
        """Wait until this sleeper has the earliest deadline and everything else is blocked."""
        entry: list[object] = [self.now + seconds, next(self._seq), anyio.Event()]
        heapq.heappush(self._due, entry)
        self._wake_earliest()
        try:
            while True:
                await entry[2].wait()  # type: ignore[attr-defined]
                await all_other_tasks_blocked()
                if self._due[0] is entry:
                    break
                entry[2] = anyio.Event()  # an earlier sleeper arrived meanwhile
                self._wake_earliest()
        finally:
            self._due.remove(entry)
            heapq.heapify(self._due)
            self._wake_earliest()
        deadline = entry[0]
        assert isinstance(deadline, float)
        if not self.frozen and deadline > self.now:
            self.advance(deadline - self.now)

    def _wake_earliest(self) -> None:
        if self._due:
            self._due[0][2].set()  # type: ignore[attr-defined]


async def all_other_tasks_blocked() -> None:
    """``anyio.wait_all_tasks_blocked()`` polling every millisecond instead of every 0.1 s.

    A task is blocked when it awaits a future that is not done (asyncio's ``_fut_waiter``).
    The poll itself awaits a timer, so two settling sleepers see each other as blocked.
    """
    this = asyncio.current_task()
    await asyncio.sleep(0)
    while True:
        waiters = (getattr(t, "_fut_waiter", None) for t in asyncio.all_tasks() if t is not this)
        if all(w is not None and not w.done() for w in waiters):
            return
        await asyncio.sleep(0.001)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """Run every async test on asyncio with debug mode on (slow callbacks, unawaited coros)."""
    return ("asyncio", {"debug": True})


@pytest.fixture
async def simulator() -> AsyncIterator[AkoolSimulator]:
    """An Akool simulator on 127.0.0.1 with a manual clock (time moves only via advance())."""
    async with AkoolSimulator(manual_clock=True) as sim:
        yield sim


@pytest.fixture
def clock() -> ManualClock:
    """A logical clock of its own: sleeping returns at once and moves time."""
    return ManualClock()


@pytest.fixture
def sim_clock(simulator: AkoolSimulator) -> ManualClock:
    """A client clock on the simulator's manual clock: sleeping advances both at once."""
    return ManualClock(simulator)
