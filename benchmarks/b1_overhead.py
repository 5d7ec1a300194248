"""B1 overhead: 5,000 character swaps, zero processing time, concurrency 64.

The SDK (``client.batch``) against two hand-written scripts making the same requests
(create, then poll the v3 result endpoint until status 3):

- ``script``: the floor of this stack, 64 aiohttp workers over one ClientSession;
- ``httpx``: what a user of openai-style SDKs writes, an ``httpx.AsyncClient`` and an
  ``asyncio.Semaphore(64)`` around one coroutine per job.

All poll right after the create (the SDK with ``PollPolicy(initial=0)``, not adaptive, no
rate cap), so all make 2 requests per job. Runs alternate script, httpx, sdk, script ...
against one simulator process; the figures are the medians of the per-round ratios (seven
rounds). Targets: SDK wall time at most 1.5x the aiohttp script's, and below the httpx
script's.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time

import aiohttp
import httpx

import akool_async as akool

from ._common import SimProcess, emit, median, row

N_JOBS = 5_000
#: The create budget must not bind: B1 measures the SDK's own cost.
UNPACED = akool.Limits(max_creates_per_second=1e6)
CONCURRENCY = 64
#: Alternating rounds; the figures are their median ratios (single rounds swing +-30 % on
#: a shared 2-core machine, see RESULTS.md).
PAIRS = 7
WARMUP_JOBS = 300
CREATE = "/api/open/v4/characterSwap/create"
RESULT = "/api/open/v3/content/video/infobymodelid"
TARGET = 1.5
#: The SDK must beat the httpx script: sdk / httpx below this.
HTTPX_TARGET = 1.0
#: Zero processing time: a task is completed the moment it is created.
DURATIONS = {"character_swap": {"queue": 0.0, "process": 0.0, "per_video_second": 0.0}}
SDK_POLL = akool.PollPolicy(
    initial=0.0,
    factor=1.5,
    max_interval=0.01,
    jitter=0.0,
    max_polls_per_second=1e9,
    adaptive=False,
)


def image(run: int, i: int) -> str:
    return f"https://example.com/img/{run}/{i}.png"


def video(i: int) -> str:
    return f"https://example.com/video/{i}.mp4?duration=5"


async def script(url: str, key: str, run: int, n: int) -> float:
    """The baseline: what a careful user writes by hand with aiohttp."""
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(url, connector=connector, headers={"x-api-key": key}) as s:
        jobs = iter(range(n))

        async def worker() -> None:
            for i in jobs:
                body = {"image": image(run, i), "video": video(i), "resolution": "720p"}
                async with s.post(CREATE, json=body) as r:
                    task_id = (await r.json())["data"]["_id"]
                while True:
                    async with s.get(RESULT, params={"video_model_id": task_id}) as r:
                        data = (await r.json())["data"]
                    if data["video_status"] == 3:
                        break

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def httpx_script(url: str, key: str, run: int, n: int) -> float:
    """What a user of openai-style SDKs writes: httpx, a semaphore, one coroutine per job."""
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}, limits=limits) as c:
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            async with semaphore:
                body = {"image": image(run, i), "video": video(i), "resolution": "720p"}
                task_id = (await c.post(CREATE, json=body)).json()["data"]["_id"]
                while True:
                    r = await c.get(RESULT, params={"video_model_id": task_id})
                    if r.json()["data"]["video_status"] == 3:
                        break

        await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


async def sdk(url: str, key: str, run: int, n: int) -> float:
    """The same jobs through ``client.batch``."""
    started = time.perf_counter()
    async with akool.AkoolClient(key, base_url=url, poll=SDK_POLL, limits=UNPACED) as client:
        jobs = (akool.CharacterSwap(image(run, i), video(i)) for i in range(n))
        ok = 0
        async with client.batch(jobs, concurrency=CONCURRENCY) as outcomes:
            async for outcome in outcomes:
                ok += outcome.ok
    if ok != n:
        raise RuntimeError(f"only {ok}/{n} jobs succeeded")
    return time.perf_counter() - started


def cpu_seconds() -> float:
    """User + system CPU time of this process (the client side only)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(coro_fn: object, *args: object) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) of one run."""
    cpu0 = cpu_seconds()
    wall = asyncio.run(coro_fn(*args))  # type: ignore[operator]
    return wall, cpu_seconds() - cpu0


SIDES = {"script": script, "httpx": httpx_script, "sdk": sdk}


def main() -> None:
    with SimProcess(durations=DURATIONS, seed=1, log_size=100) as sim:
        # Warm every path (imports, connection setup, simulator caches) before timing.
        for i, side in enumerate(SIDES.values()):
            asyncio.run(side(sim.url, sim.api_key, i, WARMUP_JOBS))
        before = sim.stats()["total"]
        walls: dict[str, list[float]] = {name: [] for name in SIDES}
        cpus: dict[str, list[float]] = {name: [] for name in SIDES}
        for pair in range(PAIRS):
            for i, (name, side) in enumerate(SIDES.items()):
                wall, cpu = timed(side, sim.url, sim.api_key, 10 + len(SIDES) * pair + i, N_JOBS)
                walls[name].append(wall)
                cpus[name].append(cpu)
            print(
                f"round {pair + 1}: "
                + ", ".join(
                    f"{name} {walls[name][-1]:.2f} s wall / {cpus[name][-1]:.2f} s CPU "
                    f"({N_JOBS / walls[name][-1]:.0f} jobs/s)"
                    for name in SIDES
                )
                + f"; sdk/script {walls['sdk'][-1] / walls['script'][-1]:.3f}, "
                f"sdk/httpx {walls['sdk'][-1] / walls['httpx'][-1]:.3f}",
                flush=True,
            )
        stats = sim.stats()
    requests = stats["total"] - before
    per_job = requests / (len(SIDES) * PAIRS * N_JOBS)
    ratios = {
        base: [s / b for s, b in zip(walls["sdk"], walls[base], strict=True)]
        for base in ("script", "httpx")
    }
    cpu_ratios = [s / b for s, b in zip(cpus["sdk"], cpus["script"], strict=True)]
    print(
        f"{N_JOBS} jobs x {PAIRS} rounds at concurrency {CONCURRENCY}; server saw "
        f"{per_job:.2f} requests per job (all sides)"
    )
    print(
        "median wall: "
        + ", ".join(f"{name} {median(walls[name]):.2f} s" for name in SIDES)
        + f"; ratios sdk/script {median(ratios['script']):.3f}, "
        f"sdk/httpx {median(ratios['httpx']):.3f}, httpx/script "
        f"{median(walls['httpx']) / median(walls['script']):.3f}"
    )
    to_script, to_httpx = median(ratios["script"]), median(ratios["httpx"])
    emit(
        [
            row(
                "B1",
                "SDK wall / aiohttp script (median of rounds)",
                to_script,
                f"<= {TARGET}x",
                to_script <= TARGET,
                unit="x",
                note=f"script median {median(walls['script']):.2f} s, "
                f"sdk median {median(walls['sdk']):.2f} s",
            ),
            row(
                "B1",
                "SDK wall / httpx script (median of rounds)",
                to_httpx,
                f"< {HTTPX_TARGET}x",
                to_httpx < HTTPX_TARGET,
                unit="x",
                note=f"httpx median {median(walls['httpx']):.2f} s",
            ),
            row(
                "B1",
                "SDK client CPU / script client CPU (median)",
                median(cpu_ratios),
                "(diagnostic)",
                None,
                unit="x",
            ),
        ]
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
