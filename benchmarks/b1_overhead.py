"""B1 overhead: 5,000 character swaps, zero processing time, concurrency 64.

The SDK (``client.batch``) against the floor of this stack: a minimal hand-written aiohttp
script making the same requests (create, then poll the v3 result endpoint until status 3)
with 64 workers over one ClientSession. Both poll right after the create (the SDK with
``PollPolicy(initial=0)``, not adaptive, no rate cap), so both make 2 requests per job.
Runs alternate script, sdk, script, sdk ... against one simulator process; the figure is the
median of the per-pair ratios (seven pairs). Target: SDK wall time at most 1.15x the script's.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time

import aiohttp

import akool_async as akool

from ._common import SimProcess, emit, median, row

N_JOBS = 5_000
#: The create budget must not bind: B1 measures the SDK's own cost.
UNPACED = akool.Limits(max_creates_per_second=1e6)
CONCURRENCY = 64
#: Alternating pairs; the figure is their median ratio (single pairs swing +-30 % on a
#: shared 2-core machine, see RESULTS.md).
PAIRS = 7
WARMUP_JOBS = 300
CREATE = "/api/open/v4/characterSwap/create"
RESULT = "/api/open/v3/content/video/infobymodelid"
TARGET = 1.15
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


def main() -> None:
    with SimProcess(durations=DURATIONS, seed=1, log_size=100) as sim:
        # Warm both paths (imports, connection setup, simulator caches) before timing.
        asyncio.run(script(sim.url, sim.api_key, 0, WARMUP_JOBS))
        asyncio.run(sdk(sim.url, sim.api_key, 1, WARMUP_JOBS))
        before = sim.stats()["total"]
        ratios: list[float] = []
        cpu_ratios: list[float] = []
        walls: dict[str, list[float]] = {"script": [], "sdk": []}
        for pair in range(PAIRS):
            t_script, c_script = timed(script, sim.url, sim.api_key, 10 + 2 * pair, N_JOBS)
            t_sdk, c_sdk = timed(sdk, sim.url, sim.api_key, 11 + 2 * pair, N_JOBS)
            walls["script"].append(t_script)
            walls["sdk"].append(t_sdk)
            ratios.append(t_sdk / t_script)
            cpu_ratios.append(c_sdk / c_script)
            print(
                f"pair {pair + 1}: script {t_script:.2f} s wall / {c_script:.2f} s client CPU "
                f"({N_JOBS / t_script:.0f} jobs/s), sdk {t_sdk:.2f} s / {c_sdk:.2f} s CPU "
                f"({N_JOBS / t_sdk:.0f} jobs/s); wall ratio {t_sdk / t_script:.3f}, "
                f"CPU ratio {c_sdk / c_script:.3f}",
                flush=True,
            )
        stats = sim.stats()
    requests = stats["total"] - before
    per_job = requests / (2 * PAIRS * N_JOBS)
    print(
        f"{N_JOBS} jobs x {PAIRS} pairs at concurrency {CONCURRENCY}; server saw "
        f"{per_job:.2f} requests per job (both sides); ratios {[round(r, 3) for r in ratios]}"
    )
    ratio = median(ratios)
    emit(
        [
            row(
                "B1",
                "SDK wall / aiohttp script (median of pairs)",
                ratio,
                f"<= {TARGET}x",
                ratio <= TARGET,
                unit="x",
                note=f"script median {median(walls['script']):.2f} s, "
                f"sdk median {median(walls['sdk']):.2f} s",
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
