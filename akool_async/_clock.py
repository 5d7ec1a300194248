"""The one place the SDK reads time and sleeps.

Everything that waits (retry backoff, the poll scheduler, deadlines) goes through a
:class:`Clock`, so tests can run at full speed and simulations can compress time by
scaling policy values together with the simulator's ``time_scale``. Nothing here assumes a minimum
interval: a zero or sub-millisecond sleep is valid.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Monotonic time source and sleeper used by every waiting part of the SDK."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock (only differences are meaningful)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (for timestamps stored in journals)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` (negative or zero still yields to the event loop)."""
        ...


class SystemClock:
    """The real clock: the event loop's monotonic time and ``anyio.sleep``."""

    __slots__ = ()

    def monotonic(self) -> float:
        # The asyncio loop's clock is time.monotonic too.
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
