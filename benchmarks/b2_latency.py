"""B2 latency-bound: 1,000 creates with 100 ms simulated latency at concurrency 50.

The simulator delays every create answer by 100 ms (real time); nothing else is slow.
Ideal: 1000 / 50 * 0.1 = 2.0 s. Measured side by side in one run:

- ``aiohttp floor``: a hand-written aiohttp script, 50 workers creating (the stack's floor);
- ``create x1000``: ``client.character_swap.create`` under an anyio ``CapacityLimiter(50)``;
- ``batch``: ``client.batch(jobs, concurrency=50)`` with zero processing time, from the
  first job to the last outcome (creates plus one poll per job, polls are not delayed).

Each is run three times, interleaved; figures are medians.
Target: at most 1.10x the ideal (the SDK's two figures).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import anyio

import akool_async as akool

from ._common import SimProcess, emit, median, row

N_JOBS = 1_000
#: The create budget must not bind: B2 measures latency-bound throughput.
UNPACED = akool.Limits(max_creates_per_second=1e6)
CONCURRENCY = 50
LATENCY = 0.1
IDEAL = N_JOBS / CONCURRENCY * LATENCY
TARGET = 1.10
ROUNDS = 3
CREATE = "/api/open/v4/characterSwap/create"
DURATIONS = {"character_swap": {"queue": 0.0, "process": 0.0, "per_video_second": 0.0}}
POLL = akool.PollPolicy(
    initial=0.0,
    factor=1.5,
    max_interval=0.01,
    jitter=0.0,
    max_polls_per_second=1e9,
    adaptive=False,
)


def job(run: int, i: int) -> akool.CharacterSwap:
    return akool.CharacterSwap(
        f"https://example.com/img/{run}/{i}.png", f"https://example.com/video/{i}.mp4?duration=5"
    )


async def floor(url: str, key: str, run: int) -> float:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(url, connector=connector, headers={"x-api-key": key}) as s:
        jobs = iter(range(N_JOBS))

        async def worker() -> None:
            for i in jobs:
                body = {
                    "image": f"https://example.com/img/{run}/{i}.png",
                    "video": f"https://example.com/video/{i}.mp4?duration=5",
                }
                async with s.post(CREATE, json=body) as r:
                    (await r.json())["data"]["_id"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def creates(url: str, key: str, run: int) -> float:
    async with akool.AkoolClient(key, base_url=url, limits=UNPACED) as client:
        limiter = anyio.CapacityLimiter(CONCURRENCY)
        ids: list[str] = []

        async def one(i: int) -> None:
            async with limiter:
                task = await client.character_swap.create(job(run, i))
            ids.append(task.id)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(N_JOBS):
                tg.start_soon(one, i)
        wall = time.perf_counter() - started
    assert len(set(ids)) == N_JOBS
    return wall


async def batch(url: str, key: str, run: int) -> float:
    async with akool.AkoolClient(key, base_url=url, poll=POLL, limits=UNPACED) as client:
        ok = 0
        started = time.perf_counter()
        jobs = (job(run, i) for i in range(N_JOBS))
        async with client.batch(jobs, concurrency=CONCURRENCY) as outcomes:
            async for outcome in outcomes:
                ok += outcome.ok
        wall = time.perf_counter() - started
    assert ok == N_JOBS
    return wall


def main() -> None:
    latency = {"character_swap.create": LATENCY}
    with SimProcess(durations=DURATIONS, latency=latency, seed=2, log_size=100) as sim:
        asyncio.run(batch(sim.url, sim.api_key, 0))  # warm-up: imports, first connections
        runs: dict[str, list[float]] = {"floor": [], "create": [], "batch": []}
        for r in range(ROUNDS):  # interleaved, so drifts in machine speed hit all three
            runs["floor"].append(asyncio.run(floor(sim.url, sim.api_key, 1 + 3 * r)))
            runs["create"].append(asyncio.run(creates(sim.url, sim.api_key, 2 + 3 * r)))
            runs["batch"].append(asyncio.run(batch(sim.url, sim.api_key, 3 + 3 * r)))
        stats = sim.stats()
    for name, times in runs.items():
        print(f"  {name:<7} runs: " + ", ".join(f"{t:.2f} s" for t in times))
    t_floor, t_create, t_batch = (median(runs[k]) for k in ("floor", "create", "batch"))
    print(
        f"{N_JOBS} creates, {LATENCY * 1000:.0f} ms latency, concurrency {CONCURRENCY} "
        f"(medians of {ROUNDS} interleaved rounds):"
    )
    print(f"  ideal          {IDEAL:.2f} s")
    for name, t in (("aiohttp floor", t_floor), ("create x1000", t_create), ("batch", t_batch)):
        print(f"  {name:<14} {t:.2f} s  = {t / IDEAL:.3f}x ideal")
    print(f"  server: max concurrent creates {stats['max_concurrent_creates']}")
    emit(
        [
            row(
                "B2",
                "create x1000 under CapacityLimiter(50) / ideal",
                t_create / IDEAL,
                f"<= {TARGET}x",
                t_create / IDEAL <= TARGET,
                unit="x",
                note=f"{t_create:.2f} s vs ideal {IDEAL:.1f} s",
            ),
            row(
                "B2",
                "client.batch (create + poll) / ideal",
                t_batch / IDEAL,
                f"<= {TARGET}x",
                t_batch / IDEAL <= TARGET,
                unit="x",
                note=f"{t_batch:.2f} s",
            ),
            row(
                "B2",
                "aiohttp floor / ideal (baseline)",
                t_floor / IDEAL,
                "(baseline)",
                None,
                unit="x",
                note=f"{t_floor:.2f} s",
            ),
        ]
    )


if __name__ == "__main__":
    main()
