"""wait()/run() and batches share one learned duration estimate per client."""

from __future__ import annotations

import pytest
from conftest import ManualClock

import akool_async as akool
from akool_async.testing import AkoolSimulator

pytestmark = pytest.mark.anyio

#: No jitter, so every wait is exactly what the timing asked for.
POLICY = akool.PollPolicy(initial=5.0, factor=1.5, max_interval=60.0, jitter=0.0)
DURATION = 50.0  # under max_interval, which caps any single wait


def _swap(n: int) -> akool.CharacterSwap:
    return akool.CharacterSwap(f"https://img.example/{n}.png", "https://vid.example/v.mp4")


async def test_run_learns_durations_and_aims_the_next_first_poll_at_them() -> None:
    """After a few run()s, the next run() sleeps about one job duration before its first poll."""
    async with AkoolSimulator(manual_clock=True, durations={"character_swap": DURATION}) as sim:
        clock = ManualClock(sim)
        async with akool.AkoolClient(
            sim.api_key, base_url=sim.base_url, clock=clock, poll=POLICY
        ) as client:
            for n in range(3):
                await client.character_swap.run(_swap(n))
            assert clock.sleeps[0] == POLICY.initial  # nothing learned yet: plain backoff
            clock.sleeps.clear()
            result = await client.character_swap.run(_swap(99))
    assert result.status is akool.TaskStatus.COMPLETED
    # The first wait aims at the learned duration (within one backoff step of it).
    assert DURATION * 0.8 <= clock.sleeps[0] <= DURATION * 1.2
    assert len(clock.sleeps) <= 3


async def _batch_polls(sim: AkoolSimulator, *, learn_first: bool, first: int) -> int:
    """Polls a 10-job batch spends on a fresh client, after 3 run()s when ``learn_first``."""
    clock = ManualClock(sim, settle=True)
    async with akool.AkoolClient(
        sim.api_key, base_url=sim.base_url, clock=clock, poll=POLICY
    ) as client:
        if learn_first:
            for n in range(3):
                await client.character_swap.run(_swap(first + n))
        before = sum(sim.stats.polls.values())
        jobs = [_swap(n) for n in range(first + 10, first + 20)]
        async with client.batch(jobs) as outcomes:
            results = [o async for o in outcomes]
        assert all(o.ok for o in results)
        return sum(sim.stats.polls.values()) - before


async def test_a_batch_uses_what_single_runs_learned() -> None:
    """A batch on the client's PollPolicy starts from the durations run() observed."""
    async with AkoolSimulator(manual_clock=True, durations={"character_swap": DURATION}) as sim:
        cold = await _batch_polls(sim, learn_first=False, first=0)
        learned = await _batch_polls(sim, learn_first=True, first=100)
    # Cold, each job polls at 5, 12.5, 23.75, ... s (about 5 polls to reach 50 s); a batch
    # that starts from the learned duration aims its first poll near the end (measured:
    # 10 polls against 47-49 cold, on the clock's virtual time).
    assert learned < 0.5 * cold  # the mutant (timing not shared) measures about 1.0x
