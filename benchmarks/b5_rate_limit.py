"""B5 rate limit: the simulator allows 20 requests/s; how much of it does the SDK sustain?

Real time (no compression): the simulator's token bucket admits 20 requests per second
(burst 20) and answers code 1005 beyond it. Jobs take 8 s. The client is configured as a
user would: ``PollPolicy(max_polls_per_second=50)`` (defaults otherwise, a budget *above*
the server's limit, so the AIMD discovery is what is tested) and
``client.batch(jobs, concurrency=16)``. There are more jobs than the limit can serve in the
window, so demand exceeds the limit throughout; after ``WINDOW`` seconds the batch is left
(cancelling local work). The simulator's request log gives, per second, requests accepted
and rejected (1005).

Targets: accepted requests >= 85 % of 20/s over the window; < 5 % of requests rejected;
no job failed by throttling (no outcome carrying a RateLimitError).

A second run keeps every default (``PollPolicy()``, ``Limits()``: 20 polls/s and 20
creates/s, together above the server's 20 req/s): accepted requests >= 85 % of the limit
over the middle 90 % of the window.
"""

from __future__ import annotations

import asyncio
import time

import anyio

import akool_async as akool

from ._common import SimProcess, emit, row

LIMIT = 20.0
WINDOW = 30.0
N_JOBS = 1_000
CONCURRENCY = 16
DURATIONS = {"character_swap": {"queue": 1.0, "process": 7.0, "per_video_second": 0.0}}
POLL = akool.PollPolicy(max_polls_per_second=50.0)


def job(i: int) -> akool.CharacterSwap:
    return akool.CharacterSwap(
        f"https://example.com/img/{i}.png", f"https://example.com/video/{i}.mp4?duration=5"
    )


async def run(sim: SimProcess, poll: akool.PollPolicy = POLL) -> dict[str, float]:
    throttled_jobs = 0
    failed = 0
    completed = 0
    async with akool.AkoolClient(sim.api_key, base_url=sim.url, poll=poll) as client:
        started = time.monotonic()
        with anyio.move_on_after(WINDOW):
            jobs = (job(i) for i in range(N_JOBS))
            async with client.batch(jobs, concurrency=CONCURRENCY) as outcomes:
                async for outcome in outcomes:
                    if outcome.ok:
                        completed += 1
                    else:
                        failed += 1
                        throttled_jobs += isinstance(outcome.error, akool.RateLimitError)
    return {
        "start": started,
        "completed": completed,
        "failed": failed,
        "throttled_jobs": throttled_jobs,
    }


def defaults_run() -> tuple[float, float, float]:
    """Every default: accepted rate over the middle 90 % of the window, its share, throttled
    jobs."""
    with SimProcess(rate_limit=LIMIT, durations=DURATIONS, seed=6, log_size=100_000) as sim:
        r = asyncio.run(run(sim, akool.PollPolicy()))
        log = sim.log()
    lo, hi = 0.05 * WINDOW, 0.95 * WINDOW
    accepted = sum(1 for t, _, code in log if lo <= t - r["start"] < hi and code != 1005)
    rate = accepted / (hi - lo)
    print(
        f"defaults (PollPolicy(), Limits()): {rate:.1f}/s accepted over the middle 90 % "
        f"({rate / LIMIT:.1%}); jobs failed by throttling {r['throttled_jobs']:.0f}"
    )
    return rate, rate / LIMIT, r["throttled_jobs"]


def main() -> None:
    default_rate, default_share, default_throttled = defaults_run()
    with SimProcess(rate_limit=LIMIT, durations=DURATIONS, seed=5, log_size=100_000) as sim:
        r = asyncio.run(run(sim))
        log = sim.log()
        stats = sim.stats()
    start = r["start"]
    in_window = [(t - start, code) for t, _, code in log if 0 <= t - start < WINDOW]
    accepted = sum(1 for _, code in in_window if code != 1005)
    rejected = sum(1 for _, code in in_window if code == 1005)
    rate = accepted / WINDOW
    reject_share = rejected / max(1, accepted + rejected)
    steady = [code for t, code in in_window if t >= 5.0]
    steady_rate = sum(1 for c in steady if c != 1005) / (WINDOW - 5.0)
    print(
        f"limit {LIMIT:.0f}/s, window {WINDOW:.0f} s: {accepted} accepted ({rate:.1f}/s = "
        f"{rate / LIMIT:.1%}), {rejected} rejected ({reject_share:.1%}); after the first 5 s "
        f"{steady_rate:.1f}/s ({steady_rate / LIMIT:.1%})"
    )
    per_second = [0] * int(WINDOW)
    rejects = [0] * int(WINDOW)
    for t, code in in_window:
        (rejects if code == 1005 else per_second)[int(t)] += 1
    print("  accepted/s: " + " ".join(str(n) for n in per_second))
    print("  rejected/s: " + " ".join(str(n) for n in rejects))
    print(
        f"  jobs completed {r['completed']:.0f}, failed {r['failed']:.0f} "
        f"(by throttling {r['throttled_jobs']:.0f}); server: "
        f"{stats['requests'].get('character_swap.create', 0)} creates, "
        f"{stats['requests'].get('character_swap.result', 0)} polls, "
        f"{stats['rate_limited']} code-1005 answers in total"
    )
    emit(
        [
            row(
                "B5",
                "accepted requests / server limit (30 s)",
                rate / LIMIT * 100,
                ">= 85 %",
                rate / LIMIT >= 0.85,
                unit=" %",
                note=f"{rate:.1f}/s of {LIMIT:.0f}/s; after 5 s {steady_rate / LIMIT:.0%}",
            ),
            row(
                "B5",
                "requests rejected (1005)",
                reject_share * 100,
                "< 5 %",
                reject_share < 0.05,
                unit=" %",
                note=f"{rejected} of {accepted + rejected}",
            ),
            row(
                "B5",
                "jobs failed by throttling",
                r["throttled_jobs"],
                "0",
                r["throttled_jobs"] == 0,
                note=f"{r['completed']:.0f} completed in the window",
            ),
            row(
                "B5",
                "defaults: accepted / limit, middle 90 %",
                default_share * 100,
                ">= 85 %",
                default_share >= 0.85 and default_throttled == 0,
                unit=" %",
                note=f"{default_rate:.1f}/s; throttled jobs {default_throttled:.0f}",
            ),
        ]
    )


if __name__ == "__main__":
    main()
