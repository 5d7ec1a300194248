"""Request pacing with AIMD: one budget shared by many callers, slowed by throttling.

A :class:`Pacer` hands out send slots spaced ``1 / rate`` apart (smooth, not bursty, so a
server-side per-second limit sees an even stream). When the server throttles (HTTP 429 or
code 1005), Retry-After pauses every caller and the rate is cut to :data:`DECREASE` times
the rate at which requests were recently *accepted* (or the current rate, if lower): above
a real limit the accepted rate is the limit, so one cut lands just under it whatever the
overshoot. Each success then raises the rate by :data:`INCREASE` (a slow probe upward)
until the ceiling. A pacer with an infinite ceiling sends freely until the first throttle.

Cuts and probes are counted in requests, not seconds, so the sawtooth has the same shape
at 20 requests/s as in a simulation compressed to 20,000/s. At most one cut per
:data:`COOLDOWN` requests (the rejections of one burst arrive together and must not
compound), sooner if a quarter of that span was rejected. Throttling that does not depend
on our rate (a flaky gateway) still slows us: the server asked for less. :data:`FLOOR`
bounds how far: 10 % of the ceiling (an unbounded pacer: 0.1 % of the first rate seen).

Slots are reserved synchronously before sleeping, so concurrent callers never double-book.
"""

from __future__ import annotations

import math
from collections import deque

from ._clock import Clock

__all__ = ["COOLDOWN", "DECREASE", "INCREASE", "Pacer", "share_cut"]

#: A cut sets the rate to this fraction of the accepted rate: just under a discovered limit
#: (halving, as classic TCP does, would average ~75 % of it).
DECREASE = 0.9
#: Multiplicative increase per successful request (about +3.2 % per COOLDOWN requests): a
#: slow probe, so overshoots of a limit (each costs a few rejections) stay rare.
INCREASE = 0.0005
#: Requests between two cuts.
COOLDOWN = 64
#: The rate never falls below this fraction of the ceiling (or of the first observed rate).
FLOOR = 0.1
#: Waits shorter than this are skipped (see acquire).
_MIN_SLEEP = 1e-4
#: Acquisitions remembered to measure the observed rate.
_WINDOW = 32


class Pacer:
    """Spaces requests at most ``max_rate`` per second (``math.inf``: unpaced until throttled)."""

    __slots__ = (
        "_accepted",
        "_clock",
        "_min_rate",
        "_next",
        "_paused_until",
        "_recent",
        "_since_cut",
        "_throttles_since_cut",
        "max_rate",
        "rate",
        "throttles",
    )

    def __init__(self, max_rate: float, clock: Clock) -> None:
        if not max_rate > 0:
            raise ValueError(f"max_rate must be > 0, got {max_rate!r}")
        self.max_rate = max_rate
        self.rate = max_rate
        self._clock = clock
        self._min_rate = max_rate * FLOOR if math.isfinite(max_rate) else 0.0
        self._next = -math.inf
        self._paused_until = -math.inf
        self._since_cut = COOLDOWN
        self._throttles_since_cut = 0
        self._recent: deque[float] = deque(maxlen=_WINDOW)
        self._accepted: deque[float] = deque(maxlen=_WINDOW)
        self.throttles = 0

    async def acquire(self) -> None:
        """Wait for this caller's send slot."""
        wait = self.reserve(self._clock.monotonic())
        if wait:
            await self._clock.sleep(wait)

    def reserve(self, now: float) -> float:
        """Book a send slot at or after ``now`` (the clock's monotonic time); return the
        seconds to sleep before sending (0.0: send now). Synchronous, so a caller with a
        free slot awaits nothing."""
        slot = max(now, self._paused_until)
        rate = self.rate
        if rate != math.inf:
            slot = max(slot, self._next)
            self._next = slot + 1.0 / rate
        self._recent.append(slot)
        self._since_cut += 1
        # Sub-0.1 ms offsets are not worth an event-loop turn: the reservation above still
        # holds the average rate, this only skips micro-spacing within a burst.
        return slot - now if slot - now > _MIN_SLEEP else 0.0

    def observed_rate(self) -> float:
        """Acquisitions per second over the recent window (``inf`` when unknown)."""
        return _rate(self._recent)

    def accepted_rate(self) -> float:
        """Successes per second over the recent window (``inf`` when unknown)."""
        return _rate(self._accepted)

    def pause(self, retry_after: float | None) -> None:
        """Send nothing for ``retry_after`` seconds (a Retry-After), without a cut."""
        if retry_after is not None and retry_after > 0:
            self._paused_until = max(self._paused_until, self._clock.monotonic() + retry_after)

    def throttled(self, retry_after: float | None = None) -> None:
        """The server refused a request for rate: pause for Retry-After, cut the rate once."""
        self.throttles += 1
        self.pause(retry_after)
        self._throttles_since_cut += 1
        if self._since_cut < COOLDOWN and self._throttles_since_cut < COOLDOWN // 4:
            return
        self._since_cut = 0
        self._throttles_since_cut = 0
        current = self.rate
        if not math.isfinite(current):
            current = self.observed_rate()
            if not math.isfinite(current):
                return  # nothing sent yet to measure: rely on the pause alone
            # How fast we could send says nothing about what the server takes: floor low.
            self._min_rate = current * FLOOR * FLOOR * FLOOR
        self.rate = max(self._min_rate, min(current, self.accepted_rate()) * DECREASE)

    def scale(self, factor: float) -> None:
        """Multiply the rate by ``factor`` (never below the floor); for shared budgets."""
        if math.isfinite(self.rate):
            self.rate = max(self._min_rate, self.rate * factor)

    def succeeded(self, sent: float | None = None) -> None:
        """A request (sent at monotonic time ``sent``, default now) went through: creep
        back toward ``max_rate``. The accepted rate is measured over send times."""
        self._accepted.append(self._clock.monotonic() if sent is None else sent)
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate * (1.0 + INCREASE))

    def __repr__(self) -> str:
        return f"Pacer(rate={self.rate:.3g}, max_rate={self.max_rate:.3g})"


def _rate(stamps: deque[float]) -> float:
    if len(stamps) < 2:
        return math.inf
    span = stamps[-1] - stamps[0]
    return (len(stamps) - 1) / span if span > 0 else math.inf


def share_cut(pacers: tuple[Pacer, ...]) -> None:
    """Pacers sharing one server limit: keep their sum just under what it accepts.

    Each pacer cuts itself from its own rates; when their *sum* still exceeds ``DECREASE``
    times the combined accepted rate (the server's limit is on the sum), all are scaled
    down in proportion.
    """
    accepted = [p.accepted_rate() for p in pacers]
    if not all(math.isfinite(a) for a in accepted):
        return
    total_rate = sum(p.rate for p in pacers)
    target = sum(accepted) * DECREASE
    if math.isfinite(total_rate) and total_rate > target > 0:
        for p in pacers:
            p.scale(target / total_rate)
