"""B3 polling efficiency: 1,000 jobs with lognormal durations, time-compressed.

Jobs are character swaps of a 10 s clip at 720p with the simulator's default durations
(queue 5 s + processing 30 s + 6 s per video second, each times a lognormal draw of sigma
``SIGMA``: a median of about 95 simulated seconds), on two spreads: sigma 0.25 (narrow) and
0.6 (wide). Time runs ``SCALE`` = 0.05 (20x) on both sides: the simulator's ``time_scale``
and ``PollPolicy().scaled(SCALE)``. The SDK's poll budget is raised to 200 polls/s
(unscaled) so that the scheduler's *timing*, not its rate cap, is measured.

Two arrival patterns per spread (each in a fresh simulator with the same seed):

- ``gradual``: jobs arrive steadily over 200 simulated seconds (about two job durations), so
  the adaptive first poll has completed jobs to learn from, as in a long-running service;
- ``burst``: all 1,000 at once (concurrency 50 creates); most jobs are scheduled before any
  has completed, so their first polls cannot use an estimate.

Detection lag per job = the instant the outcome reached the consumer minus the task's true
end (the simulator's ``update_time``), as a fraction of the job's duration. Polls per job
and total requests are counted by the simulator.

The **frontier** of a run: over geometric poll grids (first poll ``t0``, ratio ``r``: a job
of duration ``d`` is detected at the first grid point >= ``d``), chosen knowing the very
durations of the run, the best mean relative lag reachable with no more polls per job (on
average) than the SDK spent in that run. Fixed-interval pollers (1 s, 5 s, 30 s) are
evaluated on the same durations exactly (no jitter, no network time).

Bar: on both spreads and both arrival patterns, SDK mean lag <= 1.25x the frontier lag, and
fewer requests than the fixed 5 s poller.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import akool_async as akool

from ._common import SimProcess, emit, percentile, row

N_JOBS = 1_000
SIGMAS = (0.25, 0.6)
FRONTIER_BAR = 1.25
SCALE = 0.05
CONCURRENCY = 50
ARRIVAL_SPAN = 200.0  # simulated seconds over which gradual jobs arrive
FIXED_INTERVALS = (1.0, 5.0, 30.0)
POLL = akool.PollPolicy(max_polls_per_second=200.0).scaled(SCALE)
LIMITS = akool.Limits(max_creates_per_second=200.0).scaled(SCALE)
SEED = 3


def job(i: int) -> akool.CharacterSwap:
    return akool.CharacterSwap(
        f"https://example.com/img/{i}.png", f"https://example.com/video/{i}.mp4?duration=10"
    )


async def arriving(gradual: bool) -> AsyncIterator[akool.CharacterSwap]:
    gap = ARRIVAL_SPAN / N_JOBS * SCALE
    start = time.monotonic()
    for i in range(N_JOBS):
        if gradual:
            delay = start + i * gap - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield job(i)


async def run_sdk(sim: SimProcess, gradual: bool) -> list[tuple[str, float, float]]:
    """(task id, duration, lag) in simulated seconds per job."""
    found: list[tuple[str, float, float]] = []
    client = akool.AkoolClient(sim.api_key, base_url=sim.url, poll=POLL, limits=LIMITS)
    async with client, client.batch(arriving(gradual), concurrency=CONCURRENCY) as outcomes:
        async for outcome in outcomes:
            seen = time.monotonic()
            assert outcome.result is not None, outcome.error
            raw: dict[str, Any] = outcome.result.raw
            done_sim = raw["update_time"] / 1000 - sim.epoch0
            duration = (raw["update_time"] - raw["create_time"]) / 1000
            lag = (seen - sim.sim_to_mono(done_sim)) / SCALE
            found.append((outcome.result.id, duration, lag))
    return found


def summarize(
    name: str, found: list[tuple[str, float, float]], polls: dict[str, int], total: int
) -> dict[str, float]:
    fractions = [lag / d for _, d, lag in found]
    per_job = [polls.get(task_id, 0) for task_id, _, _ in found]
    result = {
        "lag": statistics.fmean(fractions),
        "lag_p90": percentile(fractions, 0.9),
        "polls": statistics.fmean(per_job),
        "polls_max": float(max(per_job)),
        "requests": float(total),
    }
    print(
        f"  {name:<22} mean lag {result['lag']:6.1%} (p90 {result['lag_p90']:6.1%})  "
        f"polls/job {result['polls']:5.2f} (max {result['polls_max']:.0f})  "
        f"requests {total:6d}"
    )
    return result


def fixed(durations: list[float], interval: float) -> tuple[list[float], list[int]]:
    """Lag fractions and polls per job of an ideal fixed-interval poller."""
    polls = [max(1, math.ceil(d / interval)) for d in durations]
    lags = [(n * interval - d) / d for n, d in zip(polls, durations, strict=True)]
    return lags, polls


def grid_cost(
    durations: list[float], inverse_sums: list[float], t0: float, ratio: float
) -> tuple[float, float]:
    """(mean polls per job, mean relative lag) of the grid ``t0 * ratio**k`` on sorted
    ``durations``; ``inverse_sums[i]`` is the sum of ``1 / d`` over the first ``i``."""
    n = len(durations)
    polls = lag = 0.0
    done = 0
    point, k = t0, 1
    while done < n:
        upto = bisect.bisect_right(durations, point, done)
        count = upto - done
        if count:
            # Jobs done..upto are detected at ``point`` with ``k`` polls each.
            lag += point * (inverse_sums[upto] - inverse_sums[done]) - count
            polls += k * count
            done = upto
        point *= ratio
        k += 1
    return polls / n, lag / n


def frontier(durations: list[float], budget: float) -> tuple[float, float, float, float]:
    """The geometric grid with the least mean relative lag at <= ``budget`` polls per job:
    (lag, polls, t0, ratio). A coarse search over (t0, ratio), then a finer one around it."""
    ds = sorted(durations)
    inverse_sums = [0.0]
    for d in ds:
        inverse_sums.append(inverse_sums[-1] + 1.0 / d)

    def search(t0s: list[float], ratios: list[float]) -> tuple[float, float, float, float]:
        best = (math.inf, math.inf, 0.0, 0.0)
        for ratio in ratios:
            for t0 in t0s:
                polls, lag = grid_cost(ds, inverse_sums, t0, ratio)
                if polls <= budget and lag < best[0]:
                    best = (lag, polls, t0, ratio)
        return best

    def geometric(lo: float, hi: float, n: int) -> list[float]:
        return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]

    coarse = search(geometric(ds[0] * 0.3, ds[-1], 300), geometric(1.02, 4.0, 120))
    _, _, t0, ratio = coarse
    if not math.isfinite(coarse[0]):
        return coarse
    fine = search(geometric(t0 / 1.03, t0 * 1.03, 41), geometric(ratio / 1.03, ratio * 1.03, 41))
    return min(coarse, fine)


def run_spread(sigma: float) -> dict[str, dict[str, float]]:
    """The SDK (gradual and burst), its frontier, and the fixed pollers on one spread."""
    durations_spec = {
        "character_swap": {
            "queue": 5.0,
            "process": 30.0,
            "per_video_second": 6.0,
            "resolution_factor": {"480p": 0.7, "720p": 1.0, "1080p": 1.6},
            "sigma": sigma,
        }
    }
    results: dict[str, dict[str, float]] = {}
    print(f"sigma {sigma}:")
    for mode in ("gradual", "burst"):
        with SimProcess(
            time_scale=SCALE, seed=SEED, log_size=100, durations=durations_spec
        ) as sim:
            found = asyncio.run(run_sdk(sim, gradual=mode == "gradual"))
            stats = sim.stats()
        assert len(found) == N_JOBS
        r = summarize(f"SDK adaptive, {mode}", found, stats["polls"], stats["total"])
        durations = [d for _, d, _ in found]
        lag, polls, t0, ratio = frontier(durations, r["polls"])
        r["frontier"] = lag
        print(
            f"  {'frontier, ' + mode:<22} mean lag {lag:6.1%}                "
            f"polls/job {polls:5.2f}            (t0 {t0:.1f} s, ratio {ratio:.3f})"
        )
        print(
            f"    durations: median {statistics.median(durations):.0f} s, "
            f"p10 {percentile(durations, 0.1):.0f} s, p90 {percentile(durations, 0.9):.0f} s; "
            f"SDK lag / frontier lag {r['lag'] / lag:.2f}x"
        )
        results[mode] = r
        if mode == "gradual":
            for interval in FIXED_INTERVALS:
                lags, fixed_polls = fixed(durations, interval)
                name = f"fixed {interval:g} s"
                results[name] = {
                    "lag": statistics.fmean(lags),
                    "polls": statistics.fmean(fixed_polls),
                    "requests": float(N_JOBS + sum(fixed_polls)),
                }
                print(
                    f"  {name:<22} mean lag {results[name]['lag']:6.1%}                "
                    f"polls/job {results[name]['polls']:5.2f}            requests "
                    f"{int(results[name]['requests']):6d}"
                )
    return results


def main() -> None:
    print(
        f"{N_JOBS} jobs, lognormal durations, time x{1 / SCALE:.0f}; "
        f"SDK PollPolicy(max_polls_per_second=200).scaled({SCALE})"
    )
    rows = []
    for sigma in SIGMAS:
        results = run_spread(sigma)
        fixed5 = results["fixed 5 s"]["requests"]
        for mode in ("gradual", "burst"):
            r = results[mode]
            ratio = r["lag"] / r["frontier"]
            rows += [
                row(
                    "B3",
                    f"sigma {sigma} {mode}: SDK lag / frontier lag",
                    ratio,
                    f"<= {FRONTIER_BAR}x",
                    ratio <= FRONTIER_BAR,
                    unit="x",
                    note=f"{r['lag']:.1%} vs {r['frontier']:.1%} at {r['polls']:.2f} polls/job",
                ),
                row(
                    "B3",
                    f"sigma {sigma} {mode}: requests / fixed-5s requests",
                    r["requests"] / fixed5,
                    "< 1.0x",
                    r["requests"] < fixed5,
                    unit="x",
                    note=f"{r['requests']:.0f} vs {fixed5:.0f}",
                ),
            ]
        for interval in FIXED_INTERVALS:
            r = results[f"fixed {interval:g} s"]
            rows.append(
                row(
                    "B3",
                    f"sigma {sigma} fixed {interval:g} s poller: lag %",
                    r["lag"] * 100,
                    "(baseline)",
                    None,
                    unit=" %",
                    note=f"{r['polls']:.1f} polls/job",
                )
            )
    emit(rows)


if __name__ == "__main__":
    main()
