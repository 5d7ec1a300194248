"""The simulator's clock (simulated seconds, scaled from real time or manual) and its ids."""

from __future__ import annotations

import random
import time


class SimClock:
    """Simulated seconds since start: ``real elapsed / time_scale`` plus manual advances.

    With ``manual=True`` only :meth:`advance` moves it. ``epoch`` maps simulated seconds to
    epoch seconds (the real start time plus simulated elapsed).
    """

    def __init__(self, *, time_scale: float, manual: bool) -> None:
        self.time_scale = time_scale
        self.manual = manual
        self._epoch0 = time.time()
        self._mono0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        """Simulated seconds since the clock was made."""
        if self.manual:
            return self._offset
        return (time.monotonic() - self._mono0) / self.time_scale + self._offset

    def epoch(self, at: float | None = None) -> float:
        """Epoch seconds of simulated time ``at`` (default: now)."""
        return self._epoch0 + (self.now() if at is None else at)

    def epoch_ms(self, at: float | None = None) -> int:
        """Epoch milliseconds of simulated time ``at`` (default: now)."""
        return round(self.epoch(at) * 1000)

    def advance(self, seconds: float) -> None:
        """Move simulated time forward."""
        self._offset += seconds

    def to_real(self, sim_seconds: float) -> float | None:
        """Real seconds that ``sim_seconds`` take (None with the manual clock: never)."""
        if self.manual:
            return None
        return max(0.0, sim_seconds * self.time_scale)


class IdMaker:
    """24-hex-character ids like Akool's (MongoDB ObjectId-looking), unique per simulator.

    Epoch seconds, a salt seeded by ``seed``, then a counter: deterministic for a seed and
    a start time.
    """

    def __init__(self, clock: SimClock, seed: int) -> None:
        self._clock = clock
        self._salt = random.Random(f"{seed}/ids").getrandbits(24)
        self._counter = 0

    def new(self) -> str:
        """The next id."""
        self._counter += 1
        stamp = int(self._clock.epoch()) & 0xFFFFFFFF
        return f"{stamp:08x}{self._salt:06x}{self._counter:010x}"
