"""Unit tests of the request pacer and the poll scheduler (pure logic, logical time)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import anyio
import attrs
import pytest
from conftest import ManualClock

from akool_async._batch._estimate import (
    FIRST_JOBS_PROBING,
    FIRST_POLL_FLOOR,
    FIRST_POLL_LAG,
    FIRST_POLL_QUANTILE,
    MAX_EARLY_COMPLETIONS,
    MIN_EVIDENCE,
    MIN_SAMPLES,
    AdaptiveTiming,
    DurationEstimate,
    latest_first_poll,
)
from akool_async._batch._scheduler import PollScheduler, observed_duration
from akool_async._config import PollPolicy
from akool_async._errors import NotFoundError, RateLimitError, ServerError, WaitTimeoutError
from akool_async._models import CharacterSwapResult, HeadSwapResult, TaskStatus
from akool_async._pacing import COOLDOWN, DECREASE, FLOOR, Pacer, share_cut

pytestmark = pytest.mark.anyio


@attrs.frozen
class FakeResult:
    status: TaskStatus


async def test_pacer_spaces_slots_at_the_configured_rate() -> None:
    """Ten acquisitions at 5 req/s occupy exactly 1.8 logical seconds (first slot is free)."""
    clock = ManualClock(settle=True)
    pacer = Pacer(5.0, clock)
    for _ in range(10):
        await pacer.acquire()
    assert clock.now == pytest.approx(1.8)


async def test_pacer_throttle_cuts_rate_once_per_burst_and_honours_retry_after() -> None:
    """A burst of throttles cuts the rate once, and Retry-After pauses the next slot."""
    clock = ManualClock(settle=True)
    pacer = Pacer(10.0, clock)
    pacer.throttled(2.0)
    pacer.throttled(2.0)
    pacer.throttled(2.0)
    assert pacer.rate == pytest.approx(10.0 * DECREASE)
    assert pacer.throttles == 3
    await pacer.acquire()
    assert clock.now == pytest.approx(2.0)


async def test_pacer_recovers_additively_to_its_ceiling() -> None:
    """Successes raise a throttled rate back to, and never above, the ceiling."""
    clock = ManualClock(settle=True)
    pacer = Pacer(10.0, clock)
    pacer.throttled(None)
    assert pacer.rate < 10.0
    for _ in range(1000):
        pacer.succeeded()
    assert pacer.rate == 10.0


async def test_unbounded_pacer_starts_from_the_observed_rate_when_throttled() -> None:
    """An infinite-ceiling pacer sends freely, then slows below its observed rate."""
    clock = ManualClock(settle=True)
    pacer = Pacer(math.inf, clock)
    for _ in range(33):
        await pacer.acquire()
        clock.advance(0.01)  # the caller's own work: 100 requests per second
    assert clock.now == pytest.approx(0.33)
    pacer.throttled(None)
    assert pacer.rate == pytest.approx(100.0 * DECREASE, rel=0.05)


async def test_random_throttling_slows_the_pacer_but_never_below_its_floor() -> None:
    """429s on one request in ten slow the pacer down to, and not past, its floor."""
    clock = ManualClock(settle=True)
    pacer = Pacer(100.0, clock)
    rates = []
    for i in range(COOLDOWN * 100):
        await pacer.acquire()
        if i % 10 == 0:
            pacer.throttled(None)
        else:
            pacer.succeeded()
        rates.append(pacer.rate)
    assert min(rates) == pytest.approx(100.0 * FLOOR)
    assert rates[-1] < 100.0


async def test_pacer_holds_a_real_server_limit_with_few_rejections() -> None:
    """Against a 50 req/s token bucket, an unbounded pacer settles at >= 85 % of the limit."""
    clock = ManualClock(settle=True)
    pacer = Pacer(math.inf, clock)
    limit, tokens, last = 50.0, 50.0, 0.0
    accepted: list[float] = []
    rejected = 0
    for _ in range(6000):
        await pacer.acquire()
        clock.advance(0.001)  # each request costs the caller a little time
        tokens = min(limit, tokens + (clock.now - last) * limit)
        last = clock.now
        if tokens >= 1.0:
            tokens -= 1.0
            accepted.append(clock.now)
            pacer.succeeded()
        else:
            rejected += 1
            pacer.throttled(None)
    # Judge the steady state: the last 3,000 accepted requests.
    window = accepted[-3000:]
    sustained = (len(window) - 1) / (window[-1] - window[0])
    assert sustained >= 0.85 * limit
    assert rejected < 0.05 * (len(accepted) + rejected)


async def _two_pacers_against_one_bucket(*, shared: bool) -> tuple[int, list[float]]:
    """GET (50/s) and create (20/s) pacers against one 20 req/s bucket, in slot order."""
    clock = ManualClock(settle=True)
    gets, creates = Pacer(50.0, clock), Pacer(20.0, clock)
    limit, tokens, last = 20.0, 20.0, 0.0
    accepted: list[float] = []
    rejected = 0
    for _ in range(3000):
        pacer = gets if gets._next <= creates._next else creates
        await pacer.acquire()
        tokens = min(limit, tokens + (clock.now - last) * limit)
        last = clock.now
        if tokens >= 1.0:
            tokens -= 1.0
            accepted.append(clock.now)
            pacer.succeeded()
        else:
            rejected += 1
            gets.throttled(None)
            creates.throttled(None)
            if shared:
                share_cut((gets, creates))
    return rejected, accepted


async def test_two_pacers_sharing_one_limit_stay_under_it() -> None:
    """Pacers sharing a server limit hold it, and the shared cut rejects less than solo cuts."""
    rejected, accepted = await _two_pacers_against_one_bucket(shared=True)
    solo_rejected, _ = await _two_pacers_against_one_bucket(shared=False)
    window = accepted[-1500:]
    assert (len(window) - 1) / (window[-1] - window[0]) >= 0.85 * 20.0
    assert rejected < 0.05 * (len(accepted) + rejected)
    assert rejected < solo_rejected


def test_estimator_quantiles_need_min_samples_and_slide() -> None:
    """The estimator answers only after enough samples and forgets the oldest ones."""
    est = DurationEstimate()
    for d in range(MIN_SAMPLES - 1):
        est.observe("b", float(d))
    assert est.quantile("b", 0.5) is None
    est.observe("b", 10.0)
    assert est.quantile("b", 0.0) == 0.0
    for _ in range(300):
        est.observe("b", 50.0)
    assert est.quantile("b", 0.0) == 50.0
    assert est.samples("b") == 256


def test_a_finished_duration_comes_from_akools_timestamps_within_the_poll_interval() -> None:
    """Akool's update minus create time is used, clamped to the interval the client saw."""
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def swap(took: float) -> CharacterSwapResult:
        return CharacterSwapResult(id="a", status=TaskStatus.COMPLETED, created_at=t0,
                                   updated_at=t0 + timedelta(seconds=took))

    # The job was created at 100; the client polled at 110 (running) and 140 (done).
    assert observed_duration(swap(12.5), 110.0, 140.0, 100.0) == 12.5
    assert observed_duration(swap(3.0), 110.0, 140.0, 100.0) == 10.0
    assert observed_duration(swap(90.0), 110.0, 140.0, 100.0) == 40.0
    # Without both timestamps (a head swap has no update time): the middle of the interval.
    head = HeadSwapResult(id="h", status=TaskStatus.COMPLETED, created_at=t0)
    assert observed_duration(head, 110.0, 140.0, 100.0) == 25.0


async def _run_scheduler(sched: PollScheduler, clock: ManualClock, until: anyio.Event) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await until.wait()
        tg.cancel_scope.cancel()


async def test_scheduler_polls_each_id_until_terminal_and_reports_once() -> None:
    """Every watched id gets exactly one outcome, after as many polls as it needed."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=0.001, factor=1.5, max_interval=0.01, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=False)
    sched = PollScheduler(policy, clock, rng=random.Random(1))
    needed = {f"t{i}": 1 + i % 4 for i in range(40)}
    seen: dict[str, int] = dict.fromkeys(needed, 0)
    outcomes: dict[str, list[object]] = {k: [] for k in needed}
    all_done = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        seen[task_id] += 1
        done = seen[task_id] >= needed[task_id]
        return FakeResult(TaskStatus.COMPLETED if done else TaskStatus.PROCESSING)

    def on_done_for(task_id: str) -> Callable[[object], None]:
        def on_done(value: object) -> None:
            outcomes[task_id].append(value)
            if all(outcomes.values()):
                all_done.set()
        return on_done

    for task_id in needed:
        sched.watch(task_id, kind="k", poll=poll, on_done=on_done_for(task_id))
    await _run_scheduler(sched, clock, all_done)
    assert seen == needed
    assert all(len(v) == 1 for v in outcomes.values())
    assert sched.watching == 0


async def test_scheduler_backs_off_exponentially_per_id() -> None:
    """Without adaptation, successive polls of one id are initial * factor**n apart."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=1.0, factor=2.0, max_interval=5.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=False)
    sched = PollScheduler(policy, clock)
    times: list[float] = []
    finished = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        times.append(clock.now)
        return FakeResult(TaskStatus.COMPLETED if len(times) == 5 else TaskStatus.QUEUEING)

    sched.watch("a", kind="k", poll=poll, on_done=lambda _v: finished.set())
    await _run_scheduler(sched, clock, finished)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == pytest.approx(1.0)
    assert gaps == pytest.approx([2.0, 4.0, 5.0, 5.0])


async def test_an_earlier_entry_wakes_the_driver_when_idle_and_when_sleeping() -> None:
    """An idle driver (empty heap) and one sleeping until a later poll both wake for it."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=10.0, factor=2.0, max_interval=10.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=False)
    sched = PollScheduler(policy, clock)
    polled: list[tuple[str, float]] = []

    async def poll(task_id: str) -> FakeResult:
        polled.append((task_id, clock.now))
        return FakeResult(TaskStatus.COMPLETED)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        await clock.sleep(3.0)  # the driver waits with nothing to poll
        sched.watch("idle", kind="k", poll=poll, on_done=lambda _v: None)  # due at 13
        await clock.sleep(17.0)
        sched.watch("sleeping", kind="k", poll=poll, on_done=lambda _v: None)  # due at 30
        await clock.sleep(2.0)  # the driver sleeps until 30
        sched.poll_now("sleeping")  # due now, at 22
        await clock.sleep(18.0)
        tg.cancel_scope.cancel()
    assert polled == [("idle", 13.0), ("sleeping", 22.0)]


async def test_scheduler_adaptive_first_poll_aims_at_observed_duration() -> None:
    """After a few completions, a new job's first poll lands near the observed duration."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=1.0, factor=1.5, max_interval=100.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=True)
    sched = PollScheduler(policy, clock)
    for _ in range(MIN_SAMPLES):
        sched.timing.estimate.observe(("k", "b"), 30.0)
    first_poll: list[float] = []
    finished = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        first_poll.append(clock.now)
        finished.set()
        return FakeResult(TaskStatus.COMPLETED)

    sched.watch("x", kind="k", bucket="b", poll=poll, on_done=lambda _v: None)
    await _run_scheduler(sched, clock, finished)
    assert first_poll == [pytest.approx(30.0)]


async def test_scheduler_deadline_gives_wait_timeout_with_task_id() -> None:
    """A job still running at its deadline ends as WaitTimeoutError carrying its id."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=1.0, factor=1.0, max_interval=1.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=False)
    sched = PollScheduler(policy, clock)
    got: list[object] = []
    finished = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        return FakeResult(TaskStatus.PROCESSING)

    def on_done(value: object) -> None:
        got.append(value)
        finished.set()

    sched.watch("slow", kind="k", poll=poll, on_done=on_done, deadline=3.5)
    await _run_scheduler(sched, clock, finished)
    assert clock.now == pytest.approx(3.5)
    assert len(got) == 1
    assert isinstance(got[0], WaitTimeoutError)
    assert got[0].task_id == "slow"
    assert "processing" in str(got[0])


async def test_scheduler_retries_transient_errors_and_reports_permanent_ones() -> None:
    """A retryable poll error is polled again; a permanent one becomes the outcome."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=0.001, factor=1.0, max_interval=0.001, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=False)
    sched = PollScheduler(policy, clock, pacer=Pacer(1e6, clock))
    calls = {"flaky": 0, "gone": 0}
    got: dict[str, object] = {}
    finished = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        calls[task_id] += 1
        if task_id == "gone":
            raise NotFoundError("no such task", code=1008, task_id=task_id)
        if calls[task_id] == 1:
            raise ServerError("boom", http_status=503)
        if calls[task_id] == 2:
            raise RateLimitError("slow down", code=1005, retry_after=0.5)
        return FakeResult(TaskStatus.COMPLETED)

    def on_done_for(task_id: str) -> Callable[[object], None]:
        def on_done(value: object) -> None:
            got[task_id] = value
            if len(got) == 2:
                finished.set()
        return on_done

    for task_id in calls:
        sched.watch(task_id, kind="k", poll=poll, on_done=on_done_for(task_id))
    await _run_scheduler(sched, clock, finished)
    assert calls == {"flaky": 3, "gone": 1}
    assert isinstance(got["gone"], NotFoundError)
    assert got["flaky"] == FakeResult(TaskStatus.COMPLETED)
    assert sched.pacer.throttles == 1


async def test_scheduler_complete_from_outside_stops_polling() -> None:
    """An id completed externally (webhook) is not polled again and reports once."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=10.0, jitter=0.0, adaptive=False)
    sched = PollScheduler(policy, clock)
    got: list[object] = []
    polled: list[str] = []

    async def poll(task_id: str) -> FakeResult:
        polled.append(task_id)
        return FakeResult(TaskStatus.PROCESSING)

    sched.watch("w", kind="k", poll=poll, on_done=got.append, webhook=True)
    assert sched.complete("w", FakeResult(TaskStatus.COMPLETED))
    assert not sched.complete("w", FakeResult(TaskStatus.COMPLETED))
    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        # The finished entry still sits in the heap; the driver must drop it without a poll.
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert sched._heap == []
    assert got == [FakeResult(TaskStatus.COMPLETED)]
    assert polled == []


async def test_polls_in_flight_never_exceed_the_worker_pool() -> None:
    """Twenty ids due at once are polled by at most max_concurrent_polls workers, once each."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=0.0, factor=1.5, max_interval=0.01, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=False)
    sched = PollScheduler(policy, clock, max_concurrent_polls=3)
    in_flight = peak = 0
    polled: list[str] = []
    release = anyio.Event()
    done: list[str] = []
    all_done = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        polled.append(task_id)
        await release.wait()
        in_flight -= 1
        return FakeResult(TaskStatus.COMPLETED)

    def on_done(value: object) -> None:
        done.append("x")
        if len(done) == 20:
            all_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        for i in range(20):
            sched.watch(f"t{i}", kind="k", poll=poll, on_done=on_done)
        await anyio.wait_all_tasks_blocked()
        assert in_flight == 3  # the pool is full; the other 17 wait in the heap
        release.set()
        await all_done.wait()
        tg.cancel_scope.cancel()
    assert peak == 3
    assert sorted(polled) == sorted(f"t{i}" for i in range(20))  # exactly one poll each


async def test_poll_now_during_a_poll_polls_again_right_after_it() -> None:
    """A webhook nudge that arrives mid-poll is not lost: the id is polled again at once."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=5.0, factor=1.5, max_interval=60.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=False)
    sched = PollScheduler(policy, clock)
    times: list[float] = []
    first_poll_started = anyio.Event()
    release = anyio.Event()
    finished = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        times.append(clock.now)
        if len(times) == 1:
            first_poll_started.set()
            await release.wait()
            return FakeResult(TaskStatus.PROCESSING)
        return FakeResult(TaskStatus.COMPLETED)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        sched.watch("a", kind="k", poll=poll, on_done=lambda _v: finished.set())
        await first_poll_started.wait()
        assert sched.poll_now("a")  # the task finished remotely while we were asking
        release.set()
        await finished.wait()
        tg.cancel_scope.cancel()
    # The second poll follows the first at once, not after the 7.5 s backoff step.
    assert times == [5.0, 5.0]


def test_watching_an_id_twice_is_refused() -> None:
    """A second watch of a live id raises instead of orphaning the first watcher."""
    sched = PollScheduler(PollPolicy(), ManualClock(settle=True))

    async def poll(task_id: str) -> FakeResult:
        raise AssertionError("never polled")

    sched.watch("a", kind="k", poll=poll, on_done=lambda _v: None)
    assert sched.is_watching("a")
    with pytest.raises(ValueError, match="already being watched"):
        sched.watch("a", kind="k", poll=poll, on_done=lambda _v: None)
    sched.cancel("a")
    assert not sched.is_watching("a")


async def test_a_new_burst_probes_with_a_few_jobs_and_detects_every_job_on_time() -> None:
    """With no completed job yet, polls that other jobs' evidence covers are skipped."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=1.0, factor=2.0, max_interval=1000.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=True)
    sched = PollScheduler(policy, clock, max_concurrent_polls=8)
    n, duration = 100, 50.0  # backoff polls at 1, 3, 7, 15, 31, then 63 finds every job done
    polls: Counter[str] = Counter()
    detected: dict[str, float] = {}
    all_done = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        polls[task_id] += 1
        finished = clock.now >= duration
        return FakeResult(TaskStatus.COMPLETED if finished else TaskStatus.PROCESSING)

    def on_done_for(task_id: str) -> Callable[[object], None]:
        def on_done(_value: object) -> None:
            detected[task_id] = clock.now
            if len(detected) == n:
                all_done.set()
        return on_done

    for i in range(n):
        sched.watch(f"t{i}", kind="k", poll=poll, on_done=on_done_for(f"t{i}"))
    await _run_scheduler(sched, clock, all_done)
    assert set(detected.values()) == {63.0}  # skipping never delayed a detection
    assert sum(polls.values()) < n * 6 // 2  # polling all six steps would cost 600
    assert min(polls.values()) == 1  # most jobs were polled only once, when it mattered
    assert max(polls.values()) == 6  # the probes polled every step


async def test_a_staggered_jittered_burst_polls_only_its_first_jobs_before_a_completion() -> None:
    """Before anything of a kind has finished, only its first FIRST_JOBS_PROBING jobs are polled."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=1.0, factor=1.5, max_interval=1000.0, jitter=0.2,
                        max_polls_per_second=1e6, adaptive=True)
    sched = PollScheduler(policy, clock, max_concurrent_polls=8, rng=random.Random(7))
    n, duration = 300, 40.0
    first_completion_seen: list[float] = []
    early_polls: Counter[str] = Counter()  # polls sent before a completion was seen
    detected: dict[str, float] = {}
    all_done = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        if not first_completion_seen:
            early_polls[task_id] += 1
        if clock.now - created[task_id] < duration:
            return FakeResult(TaskStatus.PROCESSING)
        if not first_completion_seen:
            first_completion_seen.append(clock.now)
        return FakeResult(TaskStatus.COMPLETED)

    def on_done_for(task_id: str) -> Callable[[object], None]:
        def on_done(_value: object) -> None:
            detected[task_id] = clock.now
            if len(detected) == n:
                all_done.set()
        return on_done

    created: dict[str, float] = {}
    probes = []
    for i in range(n):  # creates staggered over three seconds
        created[f"t{i}"] = clock.now
        w = sched.watch(f"t{i}", kind="k", poll=poll, on_done=on_done_for(f"t{i}"))
        if w.probe:
            probes.append(w.task_id)
        clock.advance(0.01)
    await _run_scheduler(sched, clock, all_done)
    assert probes == [f"t{i}" for i in range(FIRST_JOBS_PROBING)]  # the first ones watched
    assert set(early_polls) <= set(probes)  # nobody else polled before a completion
    assert sum(early_polls.values()) >= MIN_EVIDENCE * 4  # the probes did probe
    assert len(detected) == n
    # Once a completion was seen, the others were polled within about a step of it.
    assert max(detected.values()) < first_completion_seen[0] + duration * 0.5


async def test_jobs_of_a_kind_poll_as_before_once_probing_cannot_work() -> None:
    """Fewer than MIN_EVIDENCE probes still running: jobs no longer hold back their polls."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=1.0, factor=2.0, max_interval=1000.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=True)
    sched = PollScheduler(policy, clock)
    first_polled: dict[str, float] = {}
    enough = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        first_polled.setdefault(task_id, clock.now)
        if clock.now >= 3.0:  # past the first two steps (1 and 3): stop there
            enough.set()
        return FakeResult(TaskStatus.PROCESSING)

    watches = [
        sched.watch(f"t{i}", kind="k", poll=poll, on_done=lambda _v: None)
        for i in range(FIRST_JOBS_PROBING + 1)
    ]
    assert [w.probe for w in watches] == [True] * FIRST_JOBS_PROBING + [False]
    for w in watches[: FIRST_JOBS_PROBING - MIN_EVIDENCE + 1]:
        sched.cancel(w.task_id)  # probes gone: MIN_EVIDENCE - 1 remain
    await _run_scheduler(sched, clock, enough)
    assert first_polled[f"t{FIRST_JOBS_PROBING}"] == 1.0  # the non-probe probed at its first step


def test_a_fleet_member_probes_its_share_of_a_new_bucket() -> None:
    """With probe_share 1/4, a quarter of the first jobs probe, and a quarter of the
    evidence keeps the others waiting."""
    est = DurationEstimate()
    est.probe_share = 0.25
    bucket = ("k", None)
    share = math.ceil(FIRST_JOBS_PROBING / 4)
    assert [est.start_probe(bucket) for _ in range(share + 2)] == [True] * share + [False] * 2
    for _ in range(share - math.ceil(MIN_EVIDENCE / 4)):
        est.end_probe(bucket)
    assert est.waiting_for_probes(bucket)  # exactly a quarter of MIN_EVIDENCE still running
    est.end_probe(bucket)
    assert not est.waiting_for_probes(bucket)


def test_probing_lasts_until_the_first_completion_of_an_early_bucket() -> None:
    """The first FIRST_JOBS_PROBING jobs probe; others wait while enough run and none finished."""
    est = DurationEstimate()
    bucket = ("k", None)
    assert not est.waiting_for_probes(bucket)
    assert [est.start_probe(bucket) for _ in range(FIRST_JOBS_PROBING + 5)] == (
        [True] * FIRST_JOBS_PROBING + [False] * 5
    )
    assert est.waiting_for_probes(bucket)
    for _ in range(FIRST_JOBS_PROBING - MIN_EVIDENCE):
        est.end_probe(bucket)
    assert est.waiting_for_probes(bucket)  # exactly MIN_EVIDENCE probes still running
    est.end_probe(bucket)
    assert not est.waiting_for_probes(bucket)  # too few to see a completion early
    est.end_probe(bucket)
    est.observe(bucket, 50.0)
    assert not est.start_probe(bucket)  # probing is once per early bucket, not per wave
    other = ("other", None)
    for _ in range(MIN_EVIDENCE):
        est.start_probe(other)
    assert est.waiting_for_probes(other)
    est.observe(other, 50.0)
    assert not est.waiting_for_probes(other)  # something finished: evidence rules from now on
    for _ in range(MIN_EVIDENCE + 1):
        est.observe(other, 50.0)
    assert not est.is_early(other)
    assert not est.start_probe(other)  # a settled bucket needs no probes
    est.end_probe(other)  # a probe finishing after that is harmless


async def test_a_policy_without_initial_delay_polls_instead_of_skipping() -> None:
    """``initial`` 0 makes a skipped step zero long: the poll is sent, the driver never spins."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=0.0, factor=1.5, max_interval=1.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=True)
    est = DurationEstimate()
    bucket = ("k", None)
    for _ in range(FIRST_JOBS_PROBING):
        assert est.start_probe(bucket)  # its probes are out, nothing has finished
    for j in range(MIN_EVIDENCE):
        est.seen_running(("e", None), None, 100.0 + j)  # thirty seen running at 100+
    timing = AdaptiveTiming(policy, estimate=est)
    sched = PollScheduler(policy, clock, timing=timing, max_concurrent_polls=1)
    polled: list[str] = []
    done: list[str] = []
    all_done = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        polled.append(task_id)
        return FakeResult(TaskStatus.COMPLETED)

    def on_done(_value: object) -> None:
        done.append("x")
        if len(done) == 2:
            all_done.set()

    sched.watch("held_back", kind="k", poll=poll, on_done=on_done)
    sched.watch("evidenced", kind="e", poll=poll, on_done=on_done)
    assert est.waiting_for_probes(bucket)
    assert est.likely_still_running(("e", None), 0.0)
    await _run_scheduler(sched, clock, all_done)
    assert sorted(polled) == ["evidenced", "held_back"]
    assert clock.now == 0.0


async def test_a_job_held_back_by_probing_is_polled_before_its_deadline() -> None:
    """Skipping never lets a deadline arrive unpolled: the last step before it is a poll."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=1.0, factor=1.5, max_interval=1000.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=True)
    sched = PollScheduler(policy, clock)
    follower_polls: list[float] = []
    outcome: list[object] = []
    finished = anyio.Event()
    never = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        if task_id != "follower":
            await never.wait()  # the probes' answers never come: no evidence, no completion
        follower_polls.append(clock.now)
        if clock.now >= 8.5:  # it finished at 8.5, well before any probe
            return FakeResult(TaskStatus.COMPLETED)
        return FakeResult(TaskStatus.PROCESSING)

    def on_done(value: object) -> None:
        outcome.append(value)
        finished.set()

    for i in range(FIRST_JOBS_PROBING):
        sched.watch(f"probe{i}", kind="k", poll=poll, on_done=lambda _v: None)
    sched.watch("follower", kind="k", poll=poll, on_done=on_done, deadline=10.0)
    await _run_scheduler(sched, clock, finished)
    assert follower_polls == [9.0]  # held back at 1 .. 8, polled on its last step
    assert len(outcome) == 1
    assert isinstance(outcome[0], FakeResult)  # the result, not a WaitTimeoutError


async def test_a_job_held_back_by_early_evidence_is_polled_before_its_deadline() -> None:
    """A job skipped on its bucket's evidence is still polled on the last step before its
    deadline."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=1.0, factor=1.5, max_interval=1000.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=True)
    sched = PollScheduler(policy, clock)
    for j in range(MIN_EVIDENCE):  # thirty other jobs of the kind seen running at 100+
        sched.timing.estimate.seen_running(("k", None), None, 100.0 + j)
    polls: list[float] = []
    outcome: list[object] = []
    finished = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        polls.append(clock.now)
        return FakeResult(TaskStatus.COMPLETED if clock.now >= 8.0 else TaskStatus.PROCESSING)

    def on_done(value: object) -> None:
        outcome.append(value)
        finished.set()

    sched.watch("job", kind="k", poll=poll, on_done=on_done, deadline=10.0)
    await _run_scheduler(sched, clock, finished)
    # Skipped at 1, 2.5 and 4.75 (steps counted); 8.125 + 5.06 would pass the deadline.
    assert polls == [8.125]
    assert isinstance(outcome[0], FakeResult)


async def test_poll_now_is_never_skipped_on_early_evidence() -> None:
    """A webhook nudge polls the id even when early evidence says it is running."""
    clock = ManualClock(settle=True)
    policy = PollPolicy(initial=10.0, factor=2.0, max_interval=1000.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=True)
    sched = PollScheduler(policy, clock)
    est = sched.timing.estimate
    for j in range(40):  # forty other jobs of the kind were seen running at age 100
        est.seen_running(("k", None), None, 100.0 + j)
    polled = anyio.Event()
    finished = anyio.Event()

    async def poll(task_id: str) -> FakeResult:
        polled.set()
        return FakeResult(TaskStatus.COMPLETED)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sched.run)
        sched.watch("a", kind="k", poll=poll, on_done=lambda _v: finished.set())
        assert est.likely_still_running(("k", None), 0.0)
        assert sched.poll_now("a")
        await finished.wait()
        tg.cancel_scope.cancel()
    assert polled.is_set()
    assert clock.now == 0.0  # polled at once, not after the (skippable) early steps


def test_early_evidence_skips_only_while_almost_none_finished_by_that_age() -> None:
    """A poll counts as wasted when <5 % of 30+ jobs seen at that age had finished by it."""
    est = DurationEstimate()
    bucket = ("k", None)
    for j in range(40):  # forty jobs seen still running at ages 100-139
        est.seen_running(bucket, None, 100.0 + j)
    assert est.likely_still_running(bucket, 60.0)  # nobody finished: a poll at 60 is wasted
    est.observe(bucket, 50.0)
    assert est.likely_still_running(bucket, 60.0)  # 1 of 41 finished by 60 (2.4 %)
    for _ in range(4):
        est.observe(bucket, 55.0)
    assert not est.likely_still_running(bucket, 60.0)  # 5 of 45 (11 %): worth polling
    assert est.likely_still_running(bucket, 40.0)  # ... but nobody was done by 40
    assert not est.likely_still_running(bucket, 150.0)  # no evidence that old
    for _ in range(30):
        est.observe(bucket, 90.0)
    assert est.is_early(bucket)  # 35 of 75 finished: under half, the fast ones alone
    for _ in range(20):
        est.observe(bucket, 90.0)
    assert not est.is_early(bucket)  # 55 of 95: durations now guide polling instead
    assert not est.likely_still_running(bucket, 40.0)


def test_early_estimate_counts_jobs_still_running_and_those_last_seen_early() -> None:
    """An early bucket's quantile is the product-limit estimate, not the finished ones'."""
    est = DurationEstimate()
    bucket = ("k", None)
    for _ in range(100):  # a hundred jobs seen running at age 100
        est.seen_running(bucket, None, 100.0)
    for _ in range(50):  # fifty last seen running at 15, not since
        est.seen_running(bucket, None, 15.0)
    for d in (10.0, 20.0, 30.0):
        for _ in range(10):
            est.observe(bucket, d)
    est.observe(bucket, 40.0)
    # At risk at 10: 181 jobs; at 20: 121 (the fifty seen only until 15 drop out); at 30:
    # 111; at 40: 101. Finished by 20: 1 - 171/181 * 111/121 = 13.3 %; by 30: 21.1 %;
    # by 40: 21.9 %.
    assert est.is_early(bucket)
    assert est.quantile(bucket, 0.10) == 20.0
    assert est.quantile(bucket, 0.20) == 30.0
    assert est.quantile(bucket, 0.215) == 40.0
    # The plain quantiles of the 31 finished durations say 10 for all three; counting every
    # job ever seen running as unfinished (30 of 181 = 16.6 % by 30) would say 40 for 0.2.
    assert est.quantile(bucket, 0.25) == 40.0  # not reached yet: the frontier, a floor
    assert est.likely_still_running(bucket, 5.0)  # nothing finished by 5, 181 jobs say so
    assert not est.likely_still_running(bucket, 15.0)  # 5.5 % finished by 15
    for _ in range(9):
        est.observe(bucket, 40.0)
    assert est.is_early(bucket)  # 28 % by 40: under half finished, still early
    for _ in range(71):
        est.observe(bucket, 40.0)
    assert not est.is_early(bucket)  # 52 % by 40, over 30 completions: settled
    assert est.quantile(bucket, 0.10) == 20.0  # the sliding window answers from now on


def test_a_burst_bucket_stays_early_until_half_has_finished() -> None:
    """Thirty completions out of a thousand jobs are the fastest few, not a typical sample."""
    est = DurationEstimate()
    bucket = ("k", None)
    for _ in range(970):
        est.seen_running(bucket, None, 60.0)
    for i in range(30):
        est.observe(bucket, 30.0 + i)  # 30 .. 59: 3 % of the jobs
    assert est.is_early(bucket)
    assert est.quantile(bucket, 0.25) == 59.0  # not reached: the trusted frontier, a floor
    assert est.likely_still_running(bucket, 59.5)  # 3 % finished by then: skip
    for _ in range(720):  # 720 of the 970 are seen running at 75 ...
        est.seen_running(bucket, 60.0, 75.0)
    for i in range(250):  # ... the others finish by 70: 28 % of the burst
        est.seen_running(bucket, 60.0, None)
        est.observe(bucket, 60.0 + i / 25)
    assert est.is_early(bucket)
    for i in range(250):  # 53 % by 85
        est.seen_running(bucket, 75.0, None)
        est.observe(bucket, 75.0 + i / 25)
    assert not est.is_early(bucket)


def test_the_early_estimate_ignores_its_thinly_observed_tail() -> None:
    """Beyond the ages at least MIN_EVIDENCE jobs were observed at, nothing is concluded."""
    est = DurationEstimate()
    bucket = ("k", None)
    for _ in range(200):
        est.seen_running(bucket, None, 100.0)
    for _ in range(30):
        est.observe(bucket, 10.0)  # 13 % finished by 10
    est.observe(bucket, 200.0)  # the only job observed at 200: it alone would say 100 %
    assert est.is_early(bucket)
    assert est.quantile(bucket, 0.25) == 10.0  # the trusted frontier, not 200


def test_an_early_bucket_settles_after_at_most_its_completion_cap() -> None:
    """However little has finished, the early evidence kept per bucket is bounded."""
    est = DurationEstimate()
    bucket = ("k", None)
    for _ in range(20 * MAX_EARLY_COMPLETIONS):
        est.seen_running(bucket, None, 1e6)
    for i in range(MAX_EARLY_COMPLETIONS - 1):
        est.observe(bucket, float(i))
    assert est.is_early(bucket)  # under 5 % finished: still early
    est.observe(bucket, 1e5)
    assert not est.is_early(bucket)
    est.seen_running(bucket, None, 5.0)  # ignored once settled
    assert not est.likely_still_running(bucket, 0.0)


def test_backoff_stays_at_its_cap_for_a_job_polled_thousands_of_times() -> None:
    """After ~1,750 polls factor**n overflows a float; the delay must stay max_interval."""
    policy = PollPolicy(initial=5.0, factor=1.5, max_interval=60.0, jitter=0.0,
                        max_polls_per_second=1e6, adaptive=False)
    sched = PollScheduler(policy, ManualClock(settle=True))

    async def poll(task_id: str) -> FakeResult:
        raise AssertionError("never polled")

    w = sched.watch("a", kind="k", poll=poll, on_done=lambda _v: None)
    w.polls = 5_000  # a job running for days at the 60 s cap
    assert sched.next_delay(w, 0.0) == 60.0


def test_the_latest_first_poll_keeps_the_early_jobs_lag_within_its_budget() -> None:
    """Jobs of 10, 20 and 40 s: a first poll at t lags the 10 s job t/10 - 1 of its duration."""
    third = [1 / 3] * 3
    # Up to 20 s only the 10 s job is early: (t/10 - 1) / 3 <= 0.05 gives t <= 11.5.
    assert latest_first_poll([10.0, 20.0, 40.0], third, 0.05) == pytest.approx(11.5)
    # Past 20 s both early jobs count: ((t/10 - 1) + (t/20 - 1)) / 3 <= 0.5 gives t <= 70/3.
    assert latest_first_poll([10.0, 20.0, 40.0], third, 0.5) == pytest.approx(70 / 3)
    # Equal durations: nothing finishes before the last age, the evidence ends first.
    assert latest_first_poll([10.0, 10.0, 10.0], third, 0.05) is None
    assert latest_first_poll([0.0, 10.0, 10.0], third, 0.05) == 0.0


def test_the_first_poll_is_earlier_for_a_wide_spread_of_durations() -> None:
    """A narrow spread keeps the 10 % quantile; a wide one polls earlier, within the floor."""
    est = DurationEstimate()
    narrow, wide = ("k", "narrow"), ("k", "wide")
    for i in range(100):
        est.observe(narrow, 50.0 + i / 10)  # 50 .. 59.9 s
        est.observe(wide, 10.0 * 1.03**i)  # 10 .. 186 s, geometric
    assert not est.is_early(narrow)  # the sliding windows answer
    assert not est.is_early(wide)
    assert est.first_poll(narrow) == est.quantile(narrow, FIRST_POLL_QUANTILE)
    q10 = est.quantile(wide, FIRST_POLL_QUANTILE)
    first = est.first_poll(wide)
    assert q10 is not None
    assert first is not None
    assert FIRST_POLL_FLOOR * q10 <= first < q10
    expected = latest_first_poll([10.0 * 1.03**i for i in range(100)], [0.01] * 100,
                                 FIRST_POLL_LAG)
    assert first == pytest.approx(expected)
