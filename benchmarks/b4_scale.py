"""B4 scale: 10,000 jobs in flight at once.

Jobs last 600 simulated seconds at ``SCALE`` = 0.1 (a minute of real time), far longer than
the run, so every job is created and then polled without finishing. The client uses
``PollPolicy().scaled(SCALE)`` (the defaults, compressed 10x: up to 200 polls/s) and
``client.batch(jobs, concurrency=64)`` with the default ``max_in_flight`` of 10,000.

Side by side in one process:

- memory: RSS of an idle, open client (after a 50-job warm-up batch, so imports, the
  connection pool and the first-use caches are paid) against the peak RSS (VmHWM, reset to
  the idle RSS first) while 10,000 jobs are in flight. Target: growth <= 50 MB.
- event-loop lag: a probe task sleeps 10 ms in a loop and records how late it wakes, during
  the idle period (baseline) and from the first create until the end. Target: p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import gc
import time

import anyio

import akool_async as akool

from ._common import SimProcess, emit, percentile, reset_hwm, row, rss_kib

N_JOBS = 10_000
#: The create budget must not bind: B4 measures memory and loop lag at 10k in flight.
UNPACED = akool.Limits(max_creates_per_second=1e6)
SCALE = 0.1
CONCURRENCY = 64
HOLD = 3.0  # real seconds to keep all jobs in flight after the last create
PROBE = 0.01
POLL = akool.PollPolicy().scaled(SCALE)
DURATIONS = {"character_swap": {"queue": 60.0, "process": 540.0, "per_video_second": 0.0}}


def job(i: int) -> akool.CharacterSwap:
    return akool.CharacterSwap(
        f"https://example.com/img/{i}.png", f"https://example.com/video/{i}.mp4?duration=5"
    )


async def probe(lags: list[float]) -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(PROBE)
        lags.append(time.perf_counter() - before - PROBE)


async def measure(sim: SimProcess) -> dict[str, float]:
    async with akool.AkoolClient(
        sim.api_key, base_url=sim.url, poll=POLL, limits=UNPACED
    ) as client:
        # Warm-up: a small batch pays imports, connections and first-use caches.
        warm = (job(-i - 1) for i in range(50))
        async with client.batch(warm, concurrency=CONCURRENCY) as b:
            while b.stats.running < 50:  # noqa: ASYNC110 - a cheap monitor, no SDK hook
                await anyio.sleep(0.05)
        gc.collect()
        idle_lags: list[float] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe, idle_lags)
            await anyio.sleep(1.0)
            tg.cancel_scope.cancel()
        gc.collect()
        idle_rss, _ = rss_kib()
        reset_hwm()
        lags: list[float] = []
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe, lags)
            async with client.batch((job(i) for i in range(N_JOBS)), concurrency=CONCURRENCY) as b:
                while b.stats.running < N_JOBS:  # noqa: ASYNC110 - as above
                    await anyio.sleep(0.1)
                all_created = time.perf_counter() - started
                await anyio.sleep(HOLD)
                running = b.stats.running
                polls = b._scheduler.polls_sent
                _, peak = rss_kib()
            tg.cancel_scope.cancel()
    return {
        "idle_rss": idle_rss / 1024,
        "peak_rss": peak / 1024,
        "growth": (peak - idle_rss) / 1024,
        "p99": percentile(lags, 0.99) * 1000,
        "max": max(lags) * 1000,
        "idle_p99": percentile(idle_lags, 0.99) * 1000,
        "created_in": all_created,
        "running": running,
        "polls": polls,
    }


def main() -> None:
    with SimProcess(time_scale=SCALE, durations=DURATIONS, seed=4, log_size=100) as sim:
        m = asyncio.run(measure(sim))
        stats = sim.stats()
    print(
        f"{N_JOBS} jobs created in {m['created_in']:.1f} s, {m['running']:.0f} in flight after "
        f"{HOLD:.0f} s more; {m['polls']:.0f} polls sent; server saw {stats['total']} requests"
    )
    print(
        f"  RSS: idle client {m['idle_rss']:.1f} MiB, peak with {N_JOBS} in flight "
        f"{m['peak_rss']:.1f} MiB, growth {m['growth']:.1f} MiB"
    )
    print(
        f"  loop lag (10 ms probe): idle p99 {m['idle_p99']:.1f} ms; under load p99 "
        f"{m['p99']:.1f} ms, max {m['max']:.1f} ms"
    )
    emit(
        [
            row(
                "B4",
                "peak RSS growth, 10k in flight vs idle client",
                m["growth"],
                "<= 50 MB",
                m["growth"] <= 50,
                unit=" MiB",
                note=f"idle {m['idle_rss']:.0f} MiB, peak {m['peak_rss']:.0f} MiB",
            ),
            row(
                "B4",
                "event-loop lag p99 (10 ms probe)",
                m["p99"],
                "<= 50 ms",
                m["p99"] <= 50,
                unit=" ms",
                note=f"idle p99 {m['idle_p99']:.1f} ms, max {m['max']:.0f} ms",
            ),
        ]
    )


if __name__ == "__main__":
    main()
