"""Behaviour of client.batch() against the simulator over real loopback HTTP."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

import akool_async as akool
from akool_async._converters import analyze_to_wire, request_fingerprint
from akool_async.testing import AkoolSimulator, Duration, Fault, FaultPlan

pytestmark = pytest.mark.anyio

#: Real seconds per simulated second on both sides: a 30 s job takes 30 ms.
SCALE = 0.001
FAST_RETRY = akool.RetryPolicy(attempts=6, timeout=30.0, initial=0.001, max_delay=0.01)
FAST_POLL = akool.PollPolicy().scaled(SCALE)


def char(i: int, **kw: object) -> akool.CharacterSwap:
    """A character swap whose video length varies with i (a per-job fingerprint)."""
    return akool.CharacterSwap(
        f"https://example.com/img/{i}.png",
        f"https://example.com/video/{i}.mp4?duration={5 + i % 20}",
        **kw,  # type: ignore[arg-type]
    )


def key_of(req: akool.CharacterSwap | akool.HeadSwap) -> str:
    """The default batch key of the first occurrence of ``req`` (its content, not position)."""
    return request_fingerprint(req)[:16]


def head(i: int, video: int | None = None, faces: dict[int, str] | None = None) -> akool.HeadSwap:
    """A head swap; jobs sharing ``video`` share a source video (and so an analysis)."""
    v = i if video is None else video
    return akool.HeadSwap(
        f"https://example.com/source/{v}.mp4?people=2&duration=8",
        faces or {0: f"https://example.com/face/{i}.png"},
    )


async def endless(pulled: Counter[str]) -> AsyncIterator[akool.CharacterSwap]:
    """Character swaps without end, counting in ``pulled["jobs"]`` how many were taken."""
    i = 0
    while True:
        pulled["jobs"] += 1
        yield char(i)
        i += 1


def client_for(sim: AkoolSimulator, **kw: object) -> akool.AkoolClient:
    """An SDK client pointed at the simulator with time compressed like the simulator's."""
    return akool.AkoolClient(
        sim.api_key,
        base_url=sim.base_url,
        retry=FAST_RETRY,
        poll=FAST_POLL,
        limits=akool.Limits().scaled(SCALE),
        **kw,  # type: ignore[arg-type]
    )


def swap_creates(sim: AkoolSimulator) -> int:
    """Create requests the simulator received for both swap kinds (analyses excluded)."""
    requests = sim.stats.requests
    return requests.get("character_swap.create", 0) + requests.get("head_swap.create", 0)


def fast_sim(**kw: object) -> AkoolSimulator:
    """A simulator whose jobs take tens of simulated seconds, compressed by SCALE."""
    durations = {
        "character_swap": Duration(queue=2.0, process=20.0, sigma=0.2),
        "head_swap": Duration(queue=2.0, process=25.0, sigma=0.2),
        "analysis": Duration(queue=1.0, process=5.0),
    }
    kw.setdefault("durations", durations)
    return AkoolSimulator(time_scale=SCALE, **kw)  # type: ignore[arg-type]


async def test_every_job_gets_exactly_one_outcome() -> None:
    """Mixed character and head swaps each yield one successful outcome, keyed by content."""
    jobs: list[akool.CharacterSwap | akool.HeadSwap] = [char(i) for i in range(30)]
    jobs += [head(i) for i in range(10)]
    async with fast_sim() as sim, client_for(sim) as client:
        async with client.batch(jobs, concurrency=8) as outcomes:
            got = [o async for o in outcomes]
        stats = sim.stats
        creates = swap_creates(sim)
    assert sorted(o.key for o in got) == sorted(key_of(j) for j in jobs)
    assert all(o.ok and o.error is None for o in got), [o.error for o in got if not o.ok]
    for o in got:
        assert o.result is not None
        assert o.result.status is akool.TaskStatus.COMPLETED
        assert o.result.output_url is not None
        assert o.key == key_of(o.job)
        assert o.task_id == o.result.id
    assert stats.duplicate_creates == 0
    assert creates == 40


async def test_outcomes_are_yielded_in_completion_order() -> None:
    """Jobs that finish in an order unlike their input order are yielded as they finished."""
    lengths = [5, 3, 4, 1, 2]  # source seconds: job i takes 10 + 10 * lengths[i] seconds
    durations = {"character_swap": Duration(queue=0.0, process=10.0, per_video_second=10.0)}
    jobs = [
        akool.CharacterSwap(
            f"https://example.com/img/{i}.png", f"https://example.com/video/{i}.mp4?duration={n}"
        )
        for i, n in enumerate(lengths)
    ]
    all_running = anyio.Event()
    completed = [anyio.Event() for _ in range(len(jobs) + 1)]

    def progress(stats: akool.BatchStats) -> None:
        if stats.running == len(jobs):
            all_running.set()
        completed[stats.completed].set()

    # Simulated time moves only when the test says so: one job finishes at a time.
    async with (
        AkoolSimulator(manual_clock=True, durations=durations) as sim,
        client_for(sim) as client,
        client.batch(jobs, progress=progress) as outcomes,
    ):
        await all_running.wait()
        now = 0.0
        for rank, n in enumerate(sorted(lengths), start=1):
            sim.advance(10.0 + 10.0 * n - now)
            now = 10.0 + 10.0 * n
            await completed[rank].wait()
        keys = [o.key async for o in outcomes]
    assert keys == [key_of(jobs[i]) for i in (3, 4, 1, 2, 0)]


async def test_failures_are_values_and_do_not_touch_other_jobs() -> None:
    """A failed task, a bad mapping and a non-request each fail only their own outcome."""
    failing = akool.CharacterSwap(
        "https://example.com/i.png", "https://example.com/v.mp4?fail=1&duration=5"
    )
    bad_face = head(1, video=7, faces={5: "https://example.com/face/x.png"})
    jobs: list[object] = [char(0), failing, bad_face, "not a job", akool.Job(char(1), key="k1")]
    async with fast_sim() as sim, client_for(sim) as client:
        async with client.batch(jobs, concurrency=4) as outcomes:  # type: ignore[arg-type]
            got = {o.key: o async for o in outcomes}
        creates = swap_creates(sim)
    k0, k1, k2 = key_of(char(0)), key_of(failing), key_of(bad_face)
    assert set(got) == {k0, k1, k2, "3", "k1"}  # a non-job is named by its position
    assert got[k0].ok
    assert got["k1"].ok
    err1 = got[k1].error
    assert isinstance(err1, akool.TaskFailedError)
    assert err1.task_id == got[k1].task_id
    assert got[k1].result is None
    err2 = got[k2].error
    assert isinstance(err2, akool.FaceMappingError)
    assert err2.missing == (5,)
    assert err2.detected == (0, 1)
    assert isinstance(got["3"].error, akool.ValidationError)
    assert creates == 3  # the bad mapping and the non-request never reached a create


async def test_jobs_with_the_same_video_share_one_analysis() -> None:
    """Ten head swaps of one source video cost one analyze call, not ten."""
    jobs = [head(i, video=42) for i in range(10)] + [head(100, video=43)]
    async with fast_sim() as sim, client_for(sim) as client:
        async with client.batch(jobs, concurrency=4) as outcomes:
            got = [o async for o in outcomes]
        requests = sim.stats.requests
    assert all(o.ok for o in got)
    assert requests["head_swap.analyze"] == 2
    assert requests["head_swap.create"] == 11


async def test_concurrency_cap_is_never_exceeded_server_side() -> None:
    """With slow creates, the server never sees more creates at once than `concurrency`."""
    async with fast_sim(latency={"character_swap.create": 0.02}) as sim, client_for(sim) as client:
        async with client.batch([char(i) for i in range(40)], concurrency=5) as outcomes:
            got = [o async for o in outcomes]
        peak = sim.stats.max_concurrent_creates
    assert len(got) == 40
    assert all(o.ok for o in got)
    assert 1 <= peak <= 5


async def test_intake_is_lazy_for_an_endless_input() -> None:
    """An endless async generator is pulled only as far as in-flight capacity allows."""
    pulled: Counter[str] = Counter()

    async with fast_sim() as sim, client_for(sim) as client:
        consumed = 0
        async with client.batch(endless(pulled), concurrency=3, max_in_flight=6) as outcomes:
            async for outcome in outcomes:
                assert outcome.ok
                consumed += 1
                if consumed == 25:
                    break
    # Each consumed outcome frees one slot; at most max_in_flight more were pulled.
    assert 25 <= pulled["jobs"] <= 25 + 6


async def test_a_slow_consumer_slows_intake() -> None:
    """While nobody consumes outcomes, no more than max_in_flight jobs are pulled."""
    pulled = 0
    ninth_pulled = anyio.Event()
    eight_done = anyio.Event()

    def source() -> Iterator[akool.CharacterSwap]:
        nonlocal pulled
        for i in range(100):
            pulled += 1
            if pulled == 9:
                ninth_pulled.set()
            yield char(i)

    def progress(stats: akool.BatchStats) -> None:
        if stats.done >= 8:
            eight_done.set()

    async with fast_sim() as sim, client_for(sim) as client, client.batch(
        source(), concurrency=4, max_in_flight=8, progress=progress
    ) as batch:
        await eight_done.wait()  # all admitted jobs finished; none consumed
        await anyio.wait_all_tasks_blocked()
        assert pulled == 8
        first = await batch.__anext__()
        assert first.ok
        await ninth_pulled.wait()  # consuming one outcome admitted exactly one more job
        await anyio.wait_all_tasks_blocked()
        assert pulled == 9


async def test_intake_pulls_only_the_jobs_the_create_workers_take() -> None:
    """While every create is stuck, the input was read once per create worker, no further."""
    pulled: Counter[str] = Counter()

    # Creates hang far longer than the test: the workers stay busy.
    async with (
        fast_sim(latency={"character_swap.create": 3600.0}) as sim,
        client_for(sim) as client,
        client.batch(endless(pulled), concurrency=3, max_in_flight=1000) as batch,
    ):
        await anyio.wait_all_tasks_blocked()
        read = pulled["jobs"]
        stats = batch.stats
        # Leaving the block cancels the stuck creates and the waiting workers.
    # One job inside each of the 3 create workers: not 1000 (max_in_flight).
    assert read == 3
    assert stats.submitting == 3
    assert stats.pending == 0


async def test_progress_moves_each_job_between_states_atomically() -> None:
    """Every progress snapshot accounts for every job started so far, never one less."""
    totals: list[int] = []

    def progress(s: akool.BatchStats) -> None:
        totals.append(
            s.pending + s.submitting + s.running + s.completed + s.failed + s.uncertain
        )

    failing = akool.CharacterSwap(
        "https://example.com/img/f.png", "https://example.com/video/f.mp4?duration=5&fail=1"
    )
    jobs = [*(char(i) for i in range(10)), failing]
    async with (
        fast_sim() as sim,
        client_for(sim) as client,
        client.batch(jobs, concurrency=4, progress=progress) as outcomes,
    ):
        got = [o async for o in outcomes]
    assert len(got) == 11
    assert not all(o.ok for o in got)  # the failing job went through a failure state too
    # A job enters (+1) once; every later change moves it, so the total never dips.
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(totals))
    assert totals[-1] == 11


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_cancellation_at_a_random_point_leaves_nothing_behind(seed: int) -> None:
    """Cancelling a batch mid-flight ends every local task and leaves the client usable."""
    rng = random.Random(seed)
    stop_after = rng.randint(0, 15)
    async with fast_sim() as sim, client_for(sim) as client:
        with anyio.CancelScope() as scope:
            async with client.batch([char(i) for i in range(60)], concurrency=6) as outcomes:
                n = 0
                async for _ in outcomes:
                    n += 1
                    if n >= stop_after:
                        scope.cancel()
        assert scope.cancelled_caught or stop_after == 0
        # The client is intact: a fresh call works after the cancelled batch.
        credits = await client.get_credits()
    assert credits > 0


async def test_per_job_deadline_yields_wait_timeout_with_task_id() -> None:
    """A job still running at its deadline ends as WaitTimeoutError carrying the task id."""
    slow = {"character_swap": Duration(queue=1.0, process=100_000.0)}
    async with (
        fast_sim(durations=slow) as sim,
        client_for(sim) as client,
        client.batch([char(0), char(1)], deadline=0.2) as outcomes,
    ):
        got = [o async for o in outcomes]
    assert len(got) == 2
    for o in got:
        assert isinstance(o.error, akool.WaitTimeoutError)
        assert o.error.task_id is not None
        assert o.error.task_id == o.task_id


async def test_long_lived_batch_submit_handles_and_close() -> None:
    """submit() returns handles whose outcomes arrive once; iteration ends after close()."""
    async with (
        fast_sim() as sim,
        client_for(sim) as client,
        client.batch(concurrency=4) as batch,
    ):
        handles = [await batch.submit(char(i), key=f"order-{i}") for i in range(5)]
        extra = await batch.submit(akool.Job(char(9), key="from-job"))
        outcomes = [await h.outcome() for h in handles]
        batch.close()
        rest = [o async for o in batch]
    assert [o.key for o in outcomes] == [f"order-{i}" for i in range(5)]
    assert all(o.ok for o in outcomes)
    # Outcomes already taken through a handle are not yielded a second time.
    assert [o.key for o in rest] == ["from-job"]
    assert extra.done()


async def test_stats_and_progress_track_every_job() -> None:
    """Progress snapshots end with every job completed and the credits charged summed."""
    snapshots: list[akool.BatchStats] = []
    jobs = [char(i, duration=10, resolution="720p") for i in range(12)]
    async with (
        fast_sim() as sim,
        client_for(sim) as client,
        client.batch(jobs, progress=snapshots.append) as outcomes,
    ):
        got = [o async for o in outcomes]
        final = outcomes.stats
    assert final.completed == 12
    assert final.failed == 0
    assert final.uncertain == 0
    assert final.pending == final.submitting == final.running == 0
    assert final.credits == sum(o.result.credits or 0 for o in got if o.result)
    assert final.credits == 12 * 20  # 10 s at 720p: two 5-second blocks of 10 credits
    assert snapshots[-1] == final
    assert any(s.running > 0 for s in snapshots)


async def test_chaos_2000_jobs_one_outcome_each_and_no_duplicate_create() -> None:
    """Under the chaos profile, 2,000 mixed jobs end with one outcome each, never paid twice."""
    jobs: list[akool.CharacterSwap | akool.HeadSwap] = [
        char(i) if i % 4 else head(i, video=i % 50) for i in range(2000)
    ]
    async with fast_sim(faults="chaos", seed=7) as sim, client_for(sim) as client:
        async with client.batch(jobs, concurrency=64) as outcomes:
            got = [o async for o in outcomes]
        stats = sim.stats
        # Analyses are free and retried when their answer is lost; count swap creates only.
        analyses = {sim.fingerprint(analyze_to_wire(head(0, video=v).video_url)) for v in range(50)}
    keys = Counter(o.key for o in got)
    assert len(keys) == 2000
    assert set(keys.values()) == {1}
    assert sum(n - 1 for fp, n in stats.creates.items() if fp not in analyses) == 0
    kinds = Counter(type(o.error).__name__ for o in got if not o.ok)
    # Ambiguous create failures surface as uncertain, never as silent resubmits.
    assert all(o.ok or isinstance(o.error, akool.AkoolError) for o in got)
    assert kinds["SubmissionUncertainError"] > 0
    # Most jobs still complete: faults are retried wherever retrying cannot pay twice.
    assert sum(1 for o in got if o.ok) > 1000, kinds


async def test_a_task_id_answered_twice_fails_the_second_job_instead_of_hanging() -> None:
    """If Akool gives two creates one task id, the second job is uncertain, not lost."""
    # Tasks that never finish within the test: the first job is surely still being polled
    # when the second create returns the same id.
    forever = {"character_swap": Duration(queue=10**9, process=0.0)}
    async with fast_sim(durations=forever) as sim, client_for(sim) as client:
        new_id = sim._new_id
        ids: list[str] = []

        def repeat_the_first_swap_id() -> str:
            # Each create draws two ids (the task's, then an internal one): give the second
            # task the first task's id.
            ids.append(ids[0] if len(ids) == 2 else new_id())
            return ids[-1]

        sim._new_id = repeat_the_first_swap_id  # type: ignore[method-assign]
        async with client.batch([char(0), char(1)], concurrency=1) as outcomes:
            first = await outcomes.__anext__()
            stats = outcomes.stats
    assert ids[0] == ids[2]
    assert first.key == key_of(char(1))
    assert isinstance(first.error, akool.SubmissionUncertainError)
    assert first.task_id == ids[0]
    assert stats.running == 1  # job "0" is still polled under its (genuine) id


async def test_a_rerun_reuses_the_journaled_analysis_instead_of_analysing_again(
    tmp_path: Path,
) -> None:
    """A head swap rejected after its analysis is resent by a rerun without a new analyze."""
    # The first create is refused for credit (a definite rejection: nothing was created).
    plan = FaultPlan(scripts={"head_swap.create": [Fault(kind="code", code=1104)]})
    db = tmp_path / "run.db"
    async with fast_sim(faults=plan) as sim:
        async with client_for(sim) as client, client.batch([head(0)], journal=db) as outcomes:
            first = [o async for o in outcomes]
        async with client_for(sim) as client, client.batch([head(0)], journal=db) as outcomes:
            second = [o async for o in outcomes]
        requests = sim.stats.requests
    assert isinstance(first[0].error, akool.InsufficientCreditError)
    assert second[0].ok
    assert requests["head_swap.analyze"] == 1  # the rerun fetched the recorded analysis
    assert requests["head_swap.create"] == 2
