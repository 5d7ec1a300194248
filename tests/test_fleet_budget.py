"""The fleet's shared request budget as each member uses it: tokens taken a few per store
transaction, lapsing unused, emptied by a throttle; and a throttle in a fleet cuts the
shared bucket, not the member's own pacers."""

from __future__ import annotations

import random

import pytest
from conftest import ManualClock

import akool_async as akool
from akool_async._fleet_budget import STOCK_SECONDS, TOKENS_PER_TAKE, SharedBudget
from akool_async._pacing import Pacer
from akool_async.testing import AkoolSimulator

pytestmark = pytest.mark.anyio


class Bucket:
    """An in-memory BudgetStore: ``level`` tokens now, ``wait`` seconds when empty."""

    def __init__(self, level: int, wait: float = 0.5) -> None:
        self.level = level
        self.wait = wait
        self.takes: list[int] = []
        self.cuts = 0

    async def take_tokens(
        self, account: str, rate: float, burst: float, count: int, *, recovery: float = 0.0
    ) -> tuple[int, float]:
        self.takes.append(count)
        granted = min(count, self.level)
        self.level -= granted
        return granted, 0.0 if granted else self.wait

    async def throttled(
        self, account: str, factor: float = 0.9, *, floor: float = 0.1, cooldown: float = 0.0
    ) -> float:
        self.cuts += 1
        return factor


async def test_tokens_are_taken_a_few_per_store_transaction() -> None:
    """Eight requests cost two store transactions of TOKENS_PER_TAKE tokens each."""
    bucket = Bucket(level=100)
    budget = SharedBudget(bucket, "acct", 100.0, ManualClock())
    for _ in range(2 * TOKENS_PER_TAKE):
        await budget.acquire()
    assert bucket.takes == [TOKENS_PER_TAKE, TOKENS_PER_TAKE]
    assert bucket.level == 100 - 2 * TOKENS_PER_TAKE


async def test_unused_tokens_lapse_and_a_throttle_drops_them() -> None:
    """A token kept past STOCK_SECONDS is not used; after a throttle none is kept."""
    clock = ManualClock()
    bucket = Bucket(level=100)
    budget = SharedBudget(bucket, "acct", 100.0, clock)
    await budget.acquire()
    clock.advance(STOCK_SECONDS)
    await budget.acquire()  # the three left lapsed: a new take
    assert len(bucket.takes) == 2
    await budget.throttled()
    await budget.acquire()  # the three left were dropped by the throttle
    assert len(bucket.takes) == 3
    assert bucket.cuts == 1


async def test_an_empty_bucket_is_waited_for_on_the_clock() -> None:
    """No token: the member sleeps the store's wait, then takes again."""
    clock = ManualClock()
    bucket = Bucket(level=0, wait=0.5)
    budget = SharedBudget(bucket, "acct", 10.0, clock)

    async def refill(seconds: float) -> None:
        clock.sleeps.append(seconds)
        clock.advance(seconds)
        bucket.level = 1

    clock.sleep = refill  # type: ignore[method-assign]
    await budget.acquire()
    assert clock.sleeps == [0.5]
    assert len(bucket.takes) == 2


def test_pause_honours_retry_after_without_a_cut() -> None:
    """pause() delays the next slot but keeps the rate (a fleet member's pacer on 1005)."""
    clock = ManualClock()
    pacer = Pacer(10.0, clock)
    pacer.pause(2.0)
    assert pacer.rate == 10.0
    assert pacer.throttles == 0


class _LongestBackoff(random.Random):
    """Every jittered delay at its upper bound."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_in_a_fleet_a_throttle_cuts_the_shared_bucket_not_the_members_pacers() -> None:
    """A 1005 answer with a shared budget: one cut of the bucket, the client's pacers keep
    their rates (they see only this member's share of the traffic)."""
    async with AkoolSimulator(manual_clock=True, rate_limit=1) as sim:
        clock = ManualClock(sim)
        bucket = Bucket(level=1000)
        retry = akool.RetryPolicy(attempts=4, initial=1.0, max_delay=2.0)  # the sim refills 1/s
        async with akool.AkoolClient(
            sim.api_key, base_url=sim.base_url, clock=clock, retry=retry
        ) as client:
            api = client._api
            api.shared_budget = SharedBudget(bucket, "acct", 100.0, clock)
            api.rng = _LongestBackoff()  # full jitter could retry before the sim refills
            before = (api._get_pacer.rate, api._create_pacer.rate)
            for _ in range(3):
                await client.get_credits()
        throttled = sim.stats.rate_limited
    assert throttled >= 1
    assert bucket.cuts == throttled
    assert (api._get_pacer.rate, api._create_pacer.rate) == before
