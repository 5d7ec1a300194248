"""One poll scheduler per batch: a heap of due times, not a sleeping coroutine per job.

Each watched id is an entry ``(due, seq, watch)`` in a heap. One driver task sleeps until
the earliest due time (or until a new, earlier entry arrives), takes a send slot from the
shared :class:`~akool_async._pacing.Pacer` if one is set (a batch leaves pacing to its
client), and hands the id straight to one of ``max_concurrent_polls`` long-lived poll
workers that is idle: when every worker is busy the driver waits, so polls in flight are
bounded and the heap keeps its order. An id that is due at once while a worker
is idle skips the heap and goes straight to that worker. Ten thousand jobs in flight are ten
thousand small objects in a heap, not ten thousand timers, and no task is spawned per poll.

Intervals per id:

- Cold start: ``initial * factor**n`` capped at ``max_interval``, jittered.
- Adaptive (once ``ADAPTIVE_MIN_SAMPLES`` jobs of the same kind and size have completed):
  the first poll aims at a low quantile of the observed durations, and later polls follow
  ``ADAPTIVE_LAG`` times the elapsed time (geometric in elapsed time), so the detection lag
  stays a small fraction of a job's duration whatever its length, with a few polls per job.
- Webhook-backed ids poll only every ``reconcile_interval``: the webhook completes them; the
  slow poll is the safety net for a webhook that never arrives.
- Young kinds (until their estimate reaches ``ADAPTIVE_FIRST_QUANTILE`` with
  ``COLD_EVIDENCE`` completions): a due poll is skipped, as a step taken without a request,
  when enough other jobs of the kind were observed at that age or beyond and almost none
  had finished by it. The first jobs probe; the rest follow their evidence. The fraction
  finished is a product-limit (Kaplan-Meier) estimate over completions *and* the jobs
  still running, so a burst's first completions (its fastest jobs) do not pass for typical
  ones. Until the first completion of a young kind, only its first ``COLD_SCOUTS`` jobs
  (the scouts) poll at all: the others look again every step without a request, and fall
  in with the evidence as soon as something has finished. ``poll_now()`` and
  webhook-backed ids are never skipped.

A job's observed duration is taken as the midpoint between its last non-terminal poll and
the poll that saw it finished: the true end lies in that window.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import anyio
import attrs

from ._clock import Clock
from ._config import PollPolicy
from ._errors import AkoolError, RateLimitError, WaitTimeoutError
from ._models import TaskStatus
from ._pacing import Pacer
from ._retry import poll_delay

__all__ = ["DurationEstimator", "PollScheduler", "Watch"]

# Module constants: an Enum member read through its class costs ~3x a global read.
_COMPLETED = TaskStatus.COMPLETED
_FAILED = TaskStatus.FAILED

#: Completed jobs of a bucket needed before its estimate steers first polls.
ADAPTIVE_MIN_SAMPLES = 3
#: Quantile of observed durations the first adaptive poll aims at (low, so that most jobs
#: are still running at the first poll and are then caught by the fine-grained follow-ups).
ADAPTIVE_FIRST_QUANTILE = 0.25
#: Adaptive follow-up interval as a fraction of the time elapsed since the create: the
#: detection lag is at most this fraction of a job's duration (about half of it on average).
ADAPTIVE_LAG = 0.15
#: Durations remembered per bucket (a sliding window: the service's speed drifts).
ESTIMATOR_WINDOW = 256
#: Young buckets: a due poll is skipped, and counts as a backoff step, when the bucket's own
#: evidence says it would almost surely find the job still running: at least COLD_EVIDENCE
#: jobs were observed at that age or beyond (seen running at it or later, or finished after
#: it), and the estimated fraction finished by that age is under COLD_DONE_FRACTION. With
#: no finished job at all, the rule of three bounds the fraction that can be finishing that
#: early below 3/COLD_EVIDENCE (10 %, 95 % confidence). A burst of 1,000 new jobs then pays
#: for about one worker pool of probes per step, not 1,000 polls. The estimate is trusted
#: only where it rests on at least COLD_EVIDENCE jobs.
COLD_EVIDENCE = 30
#: See COLD_EVIDENCE: the largest estimated fraction finished by an age that still skips.
COLD_DONE_FRACTION = 0.05
#: A young bucket grows up (its sliding window of durations takes over) once it has
#: COLD_EVIDENCE completions and its estimate reaches ADAPTIVE_FIRST_QUANTILE, or at the
#: latest after this many completions (it bounds the young evidence kept per bucket).
YOUTH_MAX_COMPLETIONS = 1024
#: The first jobs watched in a young bucket are its scouts. Until the bucket's first
#: completion, a job that is not a scout sends no poll while at least COLD_EVIDENCE scouts
#: are still running: they are older, and their polls will see the first completions. It
#: looks again one backoff step later, without taking the step, so that it falls in with the
#: evidence-based rule above as soon as something has finished. Without scouts, the jobs
#: older than all the evidence probe: with staggered creates and jittered steps that was a
#: fifth to a third of a 1,000-job burst on every step before anything could finish. A few
#: more scouts than COLD_EVIDENCE, so that one failing early does not end the scouting.
COLD_SCOUTS = 40


def _plain_quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted, non-empty ``values`` (nearest rank, no interpolation)."""
    return values[min(len(values) - 1, int(q * len(values)))]


class _Youth:
    """A young bucket's evidence: every completion so far, and the age at which each job
    still watched was last seen running (a job is either one or the other).

    Jobs seen running at different ages make a plain fraction of finished durations biased
    low (a burst's first completions are its fastest jobs), so the fraction finished by an
    age is the product-limit (Kaplan-Meier) estimate: each completion removes one of the
    jobs still known to be at risk at its age. The curve is rebuilt lazily, once per change.
    """

    __slots__ = (
        "_curve_version", "ages", "done", "enlisted", "finished", "running", "scouts", "version"
    )

    def __init__(self) -> None:
        self.done: list[float] = []  # sorted completion durations
        self.running: list[float] = []  # sorted last-seen-running ages
        self.enlisted = 0  # scouts ever enlisted (at most COLD_SCOUTS)
        self.scouts = 0  # scouts still watched
        self.version = 0
        self._curve_version = -1
        # The trusted curve: ages[i] is a completion age, finished[i] the estimated
        # fraction finished by it (non-decreasing).
        self.ages: list[float] = []
        self.finished: list[float] = []

    def at_risk(self, age: float) -> int:
        """Jobs known to have been running at ``age`` or later (or finished at or after it)."""
        return (len(self.running) - bisect.bisect_left(self.running, age)) + (
            len(self.done) - bisect.bisect_left(self.done, age)
        )

    def curve(self) -> tuple[list[float], list[float]]:
        if self._curve_version == self.version:
            return self.ages, self.finished
        done, running = self.done, self.running
        n_done, n_running = len(done), len(running)
        ages: list[float] = []
        finished: list[float] = []
        surviving = 1.0
        i = 0
        while i < n_done:
            d = done[i]
            j = bisect.bisect_right(done, d, i)  # ties finish together
            at_risk = (n_done - i) + (n_running - bisect.bisect_left(running, d))
            if at_risk < COLD_EVIDENCE:
                break  # from here on the estimate would rest on too few jobs
            surviving *= 1.0 - (j - i) / at_risk
            ages.append(d)
            finished.append(1.0 - surviving)
            i = j
        self.ages, self.finished, self._curve_version = ages, finished, self.version
        return ages, finished

    def finished_by(self, age: float) -> float:
        """The estimated fraction of jobs finished by ``age`` (trusted part of the curve)."""
        ages, finished = self.curve()
        k = bisect.bisect_right(ages, age)
        return finished[k - 1] if k else 0.0

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile; where the curve has not reached it, a lower bound."""
        done = self.done
        if len(done) < ADAPTIVE_MIN_SAMPLES:
            return None
        ages, finished = self.curve()
        k = bisect.bisect_left(finished, q)
        if k < len(ages):
            return ages[k]
        # Not reached yet: at least the trusted frontier, and at least the plain quantile
        # of what has finished (which the censoring only pushes later).
        plain = _plain_quantile(done, q)
        return max(plain, ages[-1]) if ages else plain

    def grown_up(self) -> bool:
        n = len(self.done)
        if n >= YOUTH_MAX_COMPLETIONS:
            return True
        if n < COLD_EVIDENCE:
            return False
        finished = self.curve()[1]
        return bool(finished) and finished[-1] >= ADAPTIVE_FIRST_QUANTILE


class DurationEstimator:
    """Observed job durations per bucket (kind, resolution, video length class).

    A grown-up bucket answers from a sliding window of its latest durations. A young one
    (see :data:`YOUTH_MAX_COMPLETIONS`) also counts the jobs still running, by the latest
    age each was seen at, so that its first completions (the fastest jobs) do not pass for
    typical ones and cold-start polls can be skipped (see :data:`COLD_EVIDENCE`).
    """

    __slots__ = ("_grown", "_order", "_sorted", "_youth")

    def __init__(self) -> None:
        self._sorted: dict[Hashable, list[float]] = {}
        self._order: dict[Hashable, deque[float]] = {}
        self._youth: dict[Hashable, _Youth] = {}
        self._grown: set[Hashable] = set()

    def observe(self, bucket: Hashable, duration: float) -> None:
        """Record one completed job's duration (seconds)."""
        order = self._order.setdefault(bucket, deque())
        values = self._sorted.setdefault(bucket, [])
        if len(order) >= ESTIMATOR_WINDOW:
            old = order.popleft()
            del values[bisect.bisect_left(values, old)]
        order.append(duration)
        bisect.insort(values, duration)
        if bucket in self._grown:
            return
        youth = self._youth.get(bucket)
        if youth is None:
            youth = self._youth[bucket] = _Youth()
        bisect.insort(youth.done, duration)
        youth.version += 1
        if youth.grown_up():
            del self._youth[bucket]
            self._grown.add(bucket)

    def quantile(self, bucket: Hashable, q: float) -> float | None:
        """The ``q`` quantile of the bucket, or None before ``ADAPTIVE_MIN_SAMPLES`` jobs.

        For a young bucket this is the product-limit estimate over its completions and its
        jobs still running; where that estimate has not reached ``q`` yet, a lower bound.
        """
        youth = self._youth.get(bucket)
        if youth is not None:
            return youth.quantile(q)
        values = self._sorted.get(bucket)
        if not values or len(values) < ADAPTIVE_MIN_SAMPLES:
            return None
        return _plain_quantile(values, q)

    def samples(self, bucket: Hashable) -> int:
        """How many durations the bucket's sliding window holds."""
        return len(self._sorted.get(bucket, ()))

    def young(self, bucket: Hashable) -> bool:
        """True until the bucket grows up (see :data:`YOUTH_MAX_COMPLETIONS`)."""
        return bucket not in self._grown

    def seen_running(self, bucket: Hashable, before: float | None, age: float | None) -> None:
        """A job of ``bucket`` last seen running at ``before`` is now seen at ``age``.

        ``age`` None drops the job's evidence (it finished or is no longer watched). Kept
        only while the bucket is young: later, its durations are the better guide.
        """
        if bucket in self._grown:
            return
        youth = self._youth.get(bucket)
        if youth is None:
            if age is None:
                return
            youth = self._youth[bucket] = _Youth()
        running = youth.running
        if before is not None:
            i = bisect.bisect_left(running, before)
            if i < len(running) and running[i] == before:
                del running[i]
        if age is not None:
            bisect.insort(running, age)
        elif self._prune(bucket, youth):
            return
        youth.version += 1

    def _prune(self, bucket: Hashable, youth: _Youth) -> bool:
        """Forget a young bucket left with no evidence and no scouts (True if forgotten)."""
        if youth.running or youth.done or youth.scouts:
            return False
        del self._youth[bucket]
        return True

    def enlist(self, bucket: Hashable) -> bool:
        """True when a job now watched in ``bucket`` is to be one of its scouts (see
        :data:`COLD_SCOUTS`); :meth:`discharge` it once it is no longer watched."""
        if bucket in self._grown:
            return False
        youth = self._youth.get(bucket)
        if youth is None:
            youth = self._youth[bucket] = _Youth()
        if youth.enlisted >= COLD_SCOUTS:
            return False
        youth.enlisted += 1
        youth.scouts += 1
        return True

    def discharge(self, bucket: Hashable) -> None:
        """A scout of ``bucket`` finished or is no longer watched."""
        youth = self._youth.get(bucket)
        if youth is None:
            return  # grown up meanwhile: scouting is over
        youth.scouts -= 1
        self._prune(bucket, youth)

    def scouted(self, bucket: Hashable) -> bool:
        """True while no job of the young ``bucket`` has finished and at least
        ``COLD_EVIDENCE`` of its scouts are still watched (see :data:`COLD_SCOUTS`)."""
        youth = self._youth.get(bucket)
        return youth is not None and not youth.done and youth.scouts >= COLD_EVIDENCE

    def probably_running(self, bucket: Hashable, age: float) -> bool:
        """True when the young bucket's evidence says a job of age ``age`` is almost surely
        still running (see :data:`COLD_EVIDENCE`): a poll now would be wasted."""
        youth = self._youth.get(bucket)
        if youth is None or youth.at_risk(age) < COLD_EVIDENCE:
            return False
        return youth.finished_by(age) < COLD_DONE_FRACTION


@attrs.define(eq=False, slots=True)
class Watch:
    """One id being polled. ``on_done`` receives the terminal result or an AkoolError."""

    task_id: str
    kind: str
    bucket: Hashable
    poll: Callable[[str], Awaitable[Any]]
    on_done: Callable[[Any], None]
    started: float
    deadline: float | None = None
    webhook: bool = False
    polls: int = 0
    # Bumped on every (re)schedule: heap entries of an older generation are stale.
    gen: int = 0
    in_flight: bool = False
    # poll_now() arrived while a poll was in flight: poll again right after it.
    urgent: bool = False
    last_poll: float | None = None
    # The age (seconds since started) at which this job was last seen running, as recorded
    # in the estimator's cold-start evidence; None once recorded nowhere.
    running_age: float | None = None
    # poll_now() asked for this poll: never skipped as a cold-start probe.
    forced: bool = False
    # One of its young bucket's scouts (see COLD_SCOUTS): polls through the cold start.
    scout: bool = False
    done: bool = False
    # The last poll's status, for progress reporting.
    status: TaskStatus = TaskStatus.QUEUEING


class PollScheduler:
    """Polls every watched id until it is terminal, within one shared rate budget.

    ``run()`` must be started in the owner's task group; it returns only when cancelled.
    """

    def __init__(
        self,
        policy: PollPolicy,
        clock: Clock,
        *,
        pacer: Pacer | None = None,
        max_concurrent_polls: int = 64,
        rng: random.Random | None = None,
        estimator: DurationEstimator | None = None,
        on_throttle: Callable[[float | None], None] | None = None,
        room_to_hand_off: Callable[[], bool] | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        # Optional: a batch leaves pacing to its client (per attempt, retries included).
        self.pacer = pacer
        self.estimator = estimator or DurationEstimator()
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, int, Watch]] = []
        self._seq = itertools.count()
        # The driver's current wait; cancelling it wakes the driver (an earlier entry arrived).
        self._wait_scope: anyio.CancelScope | None = None
        if max_concurrent_polls < 1:
            raise ValueError(f"max_concurrent_polls must be >= 1, got {max_concurrent_polls!r}")
        self._workers = max_concurrent_polls
        # Idle workers, each waiting on its own future for the next watch. A hand-off sets
        # one future: no queue between driver and workers, so nothing is taken beyond what
        # idle workers can poll. (Bare asyncio futures: anyio's memory streams cost several
        # times more per hand-off, and the SDK runs on aiohttp, i.e. on asyncio, anyway.)
        self._idle: deque[asyncio.Future[Watch]] = deque()
        # The driver parks on this future when the heap is empty (woken by _schedule) or
        # when a due watch finds no idle worker (woken by the next worker to go idle).
        self._poke: asyncio.Future[None] | None = None
        self._wants_work = False
        self._wants_worker = False
        self._on_throttle = on_throttle
        # follow(): True when a first poll handed to a worker would not wait for a
        # connection (None: always hand off to an idle worker).
        self._room_to_hand_off = room_to_hand_off
        self._by_id: dict[str, Watch] = {}
        self.polls_sent = 0

    # -- public API -----------------------------------------------------------------------

    def watch(
        self,
        task_id: str,
        *,
        kind: str,
        poll: Callable[[str], Awaitable[Any]],
        on_done: Callable[[Any], None],
        bucket: Hashable = None,
        deadline: float | None = None,
        webhook: bool = False,
        started: float | None = None,
    ) -> Watch:
        """Start polling ``task_id``; ``deadline`` is absolute on the scheduler's clock.

        Raises ValueError if ``task_id`` is already watched: two watchers of one id would
        silently orphan the first (its job would never get an outcome).
        """
        w, due = self._new_watch(
            task_id, kind=kind, poll=poll, on_done=on_done, bucket=bucket, deadline=deadline,
            webhook=webhook, started=started,
        )
        self._schedule(w, due)
        return w

    async def follow(
        self,
        task_id: str,
        *,
        kind: str,
        poll: Callable[[str], Awaitable[Any]],
        on_done: Callable[[Any], None],
        bucket: Hashable = None,
        deadline: float | None = None,
        webhook: bool = False,
    ) -> Watch:
        """:meth:`watch`; a first poll due at once is sent from this task when handing it
        to a poll worker would only make it wait (no idle worker, or
        ``room_to_hand_off()`` says no connection is spare for it).

        A create whose task should be polled right away (``PollPolicy.initial`` 0) on a
        saturated connection pool is then one task's two requests in a row, as in a
        hand-written loop: no hand-off, no second request queueing for a connection (the
        CPU-bound benchmark B1). With connections to spare, a worker polls while this task
        moves on (the latency-bound B2). Later polls are the scheduler's as usual.
        """
        w, due = self._new_watch(
            task_id, kind=kind, poll=poll, on_done=on_done, bucket=bucket, deadline=deadline,
            webhook=webhook, started=None,
        )
        now = self.clock.monotonic()
        room = self._room_to_hand_off
        if (
            self.pacer is None
            and due <= now
            and (not self._idle or (room is not None and not room()))
        ):
            if deadline is not None and now >= deadline:
                self._finish(w, self._timeout_error(w))
                return w
            w.in_flight = True
            try:
                await self._poll_body(w)
            finally:
                w.in_flight = False
        else:
            self._schedule(w, due)
        return w

    def _new_watch(
        self,
        task_id: str,
        *,
        kind: str,
        poll: Callable[[str], Awaitable[Any]],
        on_done: Callable[[Any], None],
        bucket: Hashable,
        deadline: float | None,
        webhook: bool,
        started: float | None,
    ) -> tuple[Watch, float]:
        """A registered watch and the instant its first poll is due."""
        if task_id in self._by_id:
            raise ValueError(f"task {task_id} is already being watched")
        now = self.clock.monotonic()
        w = Watch(
            task_id=task_id,
            kind=kind,
            bucket=(kind, bucket),
            poll=poll,
            on_done=on_done,
            started=now if started is None else started,
            deadline=deadline,
            webhook=webhook,
        )
        self._by_id[task_id] = w
        if self.policy.adaptive and not webhook:
            w.scout = self.estimator.enlist(w.bucket)
        due = now + self._first_delay(w)
        if deadline is not None and due > deadline:
            due = deadline
        return w, due

    def is_watching(self, task_id: str) -> bool:
        """True while ``task_id`` is being polled."""
        return task_id in self._by_id

    def complete(self, task_id: str, outcome: Any) -> bool:
        """Finish a watched id from outside (a webhook event); False if not watched."""
        w = self._by_id.get(task_id)
        if w is None or w.done:
            return False
        self._finish(w, outcome)
        return True

    def poll_now(self, task_id: str) -> bool:
        """Poll ``task_id`` as soon as the budget allows (a webhook said it is done)."""
        w = self._by_id.get(task_id)
        if w is None or w.done:
            return False
        w.forced = True
        self._schedule(w, self.clock.monotonic())
        return True

    def cancel(self, task_id: str) -> None:
        """Stop watching ``task_id`` without an outcome."""
        w = self._by_id.pop(task_id, None)
        if w is not None:
            w.done = True
            self._forget(w)

    @property
    def watching(self) -> int:
        """Ids still being polled."""
        return len(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    # -- delays ---------------------------------------------------------------------------

    def _jitter(self, delay: float) -> float:
        j = self.policy.jitter
        return delay * self._rng.uniform(1.0 - j, 1.0 + j) if j else delay

    def _first_delay(self, w: Watch) -> float:
        policy = self.policy
        if w.webhook:
            return self._jitter(policy.reconcile_interval)
        if policy.adaptive:
            aim = self.estimator.quantile(w.bucket, ADAPTIVE_FIRST_QUANTILE)
            if aim is not None:
                return self._jitter(aim)
        if not policy.initial > 0:
            return 0.0  # poll_delay(0, ...) of a zero initial delay, without the call
        return poll_delay(0, policy, self._rng)

    def _next_delay(self, w: Watch, now: float) -> float:
        p = self.policy
        if w.webhook:
            return self._jitter(p.reconcile_interval)
        aim = self.estimator.quantile(w.bucket, ADAPTIVE_FIRST_QUANTILE) if p.adaptive else None
        if aim is not None:
            elapsed = now - w.started
            # Before the expected end, jump to it; after, follow the elapsed time so the lag
            # stays a fixed fraction of the job's duration.
            return self._jitter(min(p.max_interval, max(aim - elapsed, elapsed * ADAPTIVE_LAG)))
        # The plain backoff (pure maths in _retry, overflow-safe for days-long jobs).
        return poll_delay(w.polls, p, self._rng)

    # -- the driver -----------------------------------------------------------------------

    def _schedule(self, w: Watch, due: float, *, hand_off: bool = True) -> None:
        """(Re)schedule ``w`` at ``due``; a watch already due goes straight to an idle worker
        unless ``hand_off`` is False (it is then judged by the driver like any other)."""
        if w.deadline is not None and due > w.deadline:
            due = w.deadline
        w.gen += 1  # any older heap entry of this id is now stale
        if (
            hand_off
            and self.pacer is None
            and not w.in_flight
            and due <= self.clock.monotonic()
            and self._hand_off(w)
        ):
            return
        earliest = self._heap[0][0] if self._heap else math.inf
        heapq.heappush(self._heap, (due, next(self._seq), w.gen, w))
        if due < earliest:
            if self._wait_scope is not None:
                self._wait_scope.cancel()
            elif self._wants_work:
                self._wake_driver()

    def _hand_off(self, w: Watch) -> bool:
        """Give ``w`` to an idle worker now; False when every worker is busy."""
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():  # a worker cancelled at shutdown leaves a done future
                waiter.set_result(w)
                w.in_flight = True
                return True
        return False

    def _wake_driver(self) -> None:
        poke = self._poke
        if poke is not None and not poke.done():
            poke.set_result(None)

    async def _park_driver(self) -> None:
        self._poke = poke = asyncio.get_running_loop().create_future()
        try:
            await poke
        finally:
            self._poke = None

    def _forget(self, w: Watch) -> None:
        """Drop ``w``'s cold-start evidence (it finished or is no longer watched)."""
        if w.running_age is not None:
            self.estimator.seen_running(w.bucket, w.running_age, None)
            w.running_age = None
        if w.scout:
            w.scout = False
            self.estimator.discharge(w.bucket)

    def _finish(self, w: Watch, outcome: Any) -> None:
        w.done = True
        self._by_id.pop(w.task_id, None)
        self._forget(w)
        w.on_done(outcome)

    async def run(self) -> None:
        """Drive the heap and the poll workers forever (until cancelled)."""
        async with anyio.create_task_group() as tg:
            for _ in range(self._workers):
                tg.start_soon(self._worker)
            await self._drive()

    async def _drive(self) -> None:
        while True:
            w, gen = await self._next_due()
            if self.pacer is not None:
                await self.pacer.acquire()
            while not self._hand_off(w):
                if w.done or w.in_flight or gen != w.gen:
                    break  # finished, polled or rescheduled while we waited
                # Every worker is busy: wait for the next one to go idle.
                self._wants_worker = True
                try:
                    await self._park_driver()
                finally:
                    self._wants_worker = False

    async def _next_due(self) -> tuple[Watch, int]:
        """Pop the next live watch once it is due (waiting as long as needed)."""
        heap = self._heap
        while True:
            if not heap:
                self._wants_work = True
                try:
                    await self._park_driver()
                finally:
                    self._wants_work = False
                continue
            due, _, gen, w = heap[0]
            if w.done or gen != w.gen:
                heapq.heappop(heap)
                continue
            now = self.clock.monotonic()
            if due > now:
                await self._wait_for_wakeup(due - now)
                continue
            heapq.heappop(heap)
            if w.in_flight:  # one poll per id at a time; poll again when it returns
                w.urgent = True
                continue
            if (
                self.policy.adaptive
                and not w.forced
                and not w.webhook
                and (w.deadline is None or now < w.deadline)
            ):
                if self.estimator.probably_running(w.bucket, now - w.started):
                    # Enough jobs of this kind were observed at this age or beyond and
                    # almost none had finished: this poll would almost surely be wasted.
                    # Take the step without it, from the due time (not from now), so a
                    # skipped job stays on the grid of instants the probes were sent at.
                    take_step = True
                elif not w.scout and self.estimator.scouted(w.bucket):
                    # Nothing of this kind has finished and enough older jobs (the scouts)
                    # are polled to see the first completion: look again one step later,
                    # without taking the step, so nothing is skipped once one has finished.
                    take_step = False
                else:
                    return w, gen
                if self._step_without_poll(w, due, take_step=take_step):
                    continue
            return w, gen

    def _step_without_poll(self, w: Watch, due: float, *, take_step: bool) -> bool:
        """Reschedule ``w`` one backoff step after ``due`` without polling it (and count
        the step if ``take_step``). False, and nothing done, when the poll is to be sent
        instead: the step is zero (``initial`` 0: the policy polls without delay), or it
        would reach the job's deadline (its last chance to be seen finished in time)."""
        w.polls += take_step
        step = self._next_delay(w, due)
        if step > 0 and (w.deadline is None or due + step < w.deadline):
            # A driver running late may find the next step due already: it is judged
            # again, not polled unseen.
            self._schedule(w, due + step, hand_off=False)
            return True
        w.polls -= take_step
        return False

    async def _wait_for_wakeup(self, seconds: float) -> None:
        # Sleep through the injected clock (tests and compressed benchmarks control time),
        # in a scope that _schedule() cancels when an earlier entry arrives.
        with anyio.CancelScope() as scope:
            self._wait_scope = scope
            try:
                await self.clock.sleep(seconds)
            finally:
                self._wait_scope = None

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiter: asyncio.Future[Watch] = loop.create_future()
            self._idle.append(waiter)
            if self._wants_worker:
                self._wake_driver()
            try:
                w = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # Handed a watch just as we were cancelled: give it back.
                    lost = waiter.result()
                    lost.in_flight = False
                    self._schedule(lost, self.clock.monotonic())
                raise
            await self._poll_one(w)

    async def _poll_one(self, w: Watch) -> None:
        """Poll ``w`` once (it is marked in flight) unless it finished on the way."""
        try:
            if w.done or self._by_id.get(w.task_id) is not w:
                return  # a webhook (or cancel) finished it on the way
            if w.deadline is not None and self.clock.monotonic() >= w.deadline:
                self._finish(w, self._timeout_error(w))
                return
            await self._poll_body(w)
        finally:
            w.in_flight = False

    async def _poll_body(self, w: Watch) -> None:
        self.polls_sent += 1
        w.polls += 1
        w.forced = False
        try:
            result = await w.poll(w.task_id)
        except RateLimitError as err:
            if self.pacer is not None:
                self.pacer.throttled(err.retry_after)
            if self._on_throttle is not None:
                self._on_throttle(err.retry_after)
            if not w.done:
                self._reschedule(w, err.retry_after)
            return
        except AkoolError as err:
            if w.done:
                return
            if err.retryable:
                self._reschedule(w, None)
            else:
                self._finish(w, err)
            return
        if w.done:
            return
        if self.pacer is not None:
            self.pacer.succeeded()
        status: TaskStatus = result.status
        w.status = status
        adaptive = self.policy.adaptive
        if status is _COMPLETED or status is _FAILED:
            if adaptive:
                # The true end lies between the previous poll and this one.
                now = self.clock.monotonic()
                previous = w.last_poll if w.last_poll is not None else w.started
                self.estimator.observe(w.bucket, (previous + now) / 2 - w.started)
            self._finish(w, result)
            return
        now = self.clock.monotonic()
        w.last_poll = now
        if adaptive and not w.webhook:
            age = now - w.started
            self.estimator.seen_running(w.bucket, w.running_age, age)
            # Recorded only while the bucket is young (the estimator drops the others).
            w.running_age = age if self.estimator.young(w.bucket) else None
        self._reschedule(w, None)

    def _reschedule(self, w: Watch, at_least: float | None) -> None:
        now = self.clock.monotonic()
        if w.urgent and at_least is None:
            w.urgent = False
            self._schedule(w, now)
            return
        delay = self._next_delay(w, now)
        if at_least is not None:
            delay = max(delay, at_least)
        self._schedule(w, now + delay)

    @staticmethod
    def _timeout_error(w: Watch) -> WaitTimeoutError:
        return WaitTimeoutError(
            f"task {w.task_id} did not finish before its deadline (last status "
            f"{w.status.name.lower()}); it may still complete remotely",
            task_id=w.task_id,
            deadline=w.deadline,
        )
