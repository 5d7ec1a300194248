"""One request budget for every process on a shared job store (a token bucket in the store).

Akool limits requests per API key, whatever the number of processes sending them. With a
Postgres store each attempt of a batch's client takes one token from the account's bucket
in the store (``PostgresStore.take_tokens``, a few per transaction): the bucket refills
at ``rate * factor`` per second of the database server's clock, so N members together
never exceed it. A 1005/429
seen by any member cuts the shared ``factor`` (multiplicative decrease, at most once per
:data:`COOLDOWN` requests' worth of time, so one burst of refusals cuts once); every
granted token raises it by ``recovery`` (additive increase). The local pacer still runs
on top, so a member alone never sends faster than its own budget.

Why a bucket in the store rather than each member pacing at ``rate / live members`` from
the heartbeats: a share must be re-learnt whenever a member joins, leaves or dies (a dead
member's share is idle for a whole lease, 30 s), and members with little to do leave
their share unused while busy ones queue. The bucket lends every idle token to whoever
asks, and reacts to a throttle in one transaction. Its cost is one short transaction per
:data:`TOKENS_PER_TAKE` requests; B6 keeps 1 to 8 members at 96-100 % of the limit.
"""

from __future__ import annotations

import math
from typing import Protocol

import anyio

from ._clock import Clock
from ._pacing import COOLDOWN, DECREASE, FLOOR

__all__ = [
    "RECOVERY",
    "STOCK_SECONDS",
    "TOKENS_PER_TAKE",
    "BudgetStore",
    "SharedBudget",
    "budget_rate",
]

#: Tokens a member takes from the store per transaction (its burst share, roughly).
TOKENS_PER_TAKE = 4
#: Seconds after which tokens taken but not used lapse.
STOCK_SECONDS = 0.25
#: Added to the fleet's rate factor per granted token (additive increase): a full climb
#: from a cut takes some thousand requests, so overshoots of the limit stay short.
RECOVERY = 0.0001


class BudgetStore(Protocol):
    """The store's side of the shared budget (``PostgresStore``)."""

    async def take_tokens(
        self, account: str, rate: float, burst: float, count: int, *, recovery: float = ...
    ) -> tuple[int, float]:
        """Take up to ``count`` tokens: (granted, seconds until one is due if none)."""
        ...

    async def throttled(
        self, account: str, factor: float = ..., *, floor: float = ..., cooldown: float = ...
    ) -> float:
        """Cut the fleet's rate factor once per ``cooldown``; returns the factor."""
        ...


def budget_rate(max_polls_per_second: float, max_creates_per_second: float) -> float:
    """The fleet's ceiling in requests per second: the client's poll and create budgets."""
    total = max_polls_per_second + max_creates_per_second
    if not math.isfinite(total):
        raise ValueError("a shared budget needs finite poll and create budgets")
    return total


class SharedBudget:
    """Every request of an account, fleet-wide, at most ``rate`` per second (AIMD on it)."""

    def __init__(self, store: BudgetStore, account: str, rate: float, clock: Clock) -> None:
        self._store = store
        self._account = account
        self.rate = rate
        # A small burst: tokens saved while idle must not hit the server all at once.
        self._burst = max(1.0, rate / 20)
        self._clock = clock
        self.throttles = 0
        self._stock = 0  # tokens taken from the store and not used yet
        self._stock_until = 0.0  # monotonic time they lapse
        self._refill = anyio.Lock()

    async def acquire(self) -> None:
        """Wait for this request's token from the fleet's bucket.

        Tokens are taken :data:`TOKENS_PER_TAKE` at a time (one store transaction per few
        requests, not per request) and lapse unused after :data:`STOCK_SECONDS`, so a
        member never saves tokens for a later burst.
        """
        async with self._refill:
            while not self._take_from_stock():
                granted, wait = await self._store.take_tokens(
                    self._account, self.rate, self._burst, TOKENS_PER_TAKE, recovery=RECOVERY
                )
                if granted:
                    self._stock = granted
                    self._stock_until = self._clock.monotonic() + STOCK_SECONDS
                else:
                    await self._clock.sleep(wait)

    def _take_from_stock(self) -> bool:
        if self._stock > 0 and self._clock.monotonic() < self._stock_until:
            self._stock -= 1
            return True
        return False

    async def throttled(self) -> None:
        """The server refused a request for rate: slow every member down (once per burst)."""
        self.throttles += 1
        self._stock = 0  # as the store's bucket is emptied: no burst right after a cut
        await self._store.throttled(
            self._account, DECREASE, floor=FLOOR, cooldown=COOLDOWN / self.rate
        )

    def __repr__(self) -> str:
        return f"SharedBudget(rate={self.rate:.3g})"
