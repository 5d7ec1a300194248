"""When to poll a job: exponential backoff, steered by the durations of finished jobs.

Jobs are grouped in buckets (kind, resolution, video length class): jobs of one bucket take
similar time. :class:`AdaptiveTiming` answers the two questions every poller asks, the wait
before the first poll and the wait after a poll that found the job still running, and
learns from every finished job (:meth:`AdaptiveTiming.observe`). The batch's scheduler and
a single ``wait()`` use the same object.

While a bucket has few completions (:class:`EarlyCompletions`), the fraction of its jobs
finished by an age is a product-limit (Kaplan-Meier) estimate over its completions *and*
its jobs still running, so that a burst's first completions (its fastest jobs) do not pass
for typical ones. That estimate also lets the scheduler skip a poll that would almost
surely find the job still running.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import deque
from collections.abc import Hashable
from typing import Protocol

from akool_async._config import PollPolicy
from akool_async._resources import size_bucket
from akool_async._retry import poll_delay

__all__ = [
    "AdaptiveTiming",
    "DurationEstimate",
    "EarlyCompletions",
    "PollTiming",
    "jittered",
    "size_bucket",
]

#: Completed jobs of a bucket needed before its durations steer first polls.
MIN_SAMPLES = 3
#: The first poll goes as late as it can while the jobs that finish before it add at most
#: this to the mean relative lag (such a job of duration d, found at age t, lags t/d - 1 of
#: its duration): a narrow spread of durations allows a late first poll, a wide one asks
#: for an early one. Against the best geometric poll grid spending as many polls, this
#: rule followed by LAG_FRACTION steps lags 1.00-1.02x on lognormal spreads sigma 0.25-0.9
#: (a fixed 10 % quantile: 1.00x at sigma 0.25, 1.21x at 0.6). About a quarter of the
#: lag the LAG_FRACTION steps leave (their mean is about LAG_FRACTION / 2).
FIRST_POLL_LAG = 0.008
#: The first poll is never later than this quantile of the durations ...
FIRST_POLL_QUANTILE = 0.10
#: ... nor earlier than this fraction of that quantile (bounds the polls of a bucket with
#: a few near-instant jobs).
FIRST_POLL_FLOOR = 0.25
#: After the first poll, the wait is this fraction of the job's age: the detection lag
#: stays under this fraction of a job's duration (about half of it on average).
#: These two were chosen with the polling benchmark (mean lag against the best geometric
#: grid spending as many polls per job; two seeds each): 0.25 and 0.10 lagged 1.31x on a
#: narrow spread (lognormal sigma 0.25, jobs arriving over time), 0.10 and 0.07 1.12-1.15x,
#: at about 1.5x the polls; on sigma 0.6 both pairs sit near 1.25x (1.18-1.32x, load moves it).
LAG_FRACTION = 0.07
#: Durations remembered per bucket (a sliding window: the service's speed drifts).
WINDOW = 256
#: Jobs an early estimate must rest on: the fraction finished by an age is trusted only
#: where at least this many jobs were observed at that age or beyond. With none finished,
#: the rule of three bounds the share finishing that early below 3/30 (95 % confidence).
MIN_EVIDENCE = 30
#: A poll is skipped when the estimated fraction of jobs finished by the job's age is under
#: this (and the estimate is trusted there).
SKIP_BELOW_FINISHED = 0.05
#: A bucket leaves its early phase once the product-limit estimate says this fraction of
#: its jobs finished: before, the completed durations are its fastest jobs, and their
#: window would aim first polls too early.
SETTLED_FINISHED = 0.5
#: A bucket leaves its early phase once this many jobs finished, however few that is.
MAX_EARLY_COMPLETIONS = 1024
#: The first jobs watched in a new bucket probe for its first completion; the others send
#: no poll until something finished, while at least MIN_EVIDENCE probes are still running
#: (a few more than MIN_EVIDENCE, so that one failing early does not end the probing).
FIRST_JOBS_PROBING = 40


class PollTiming(Protocol):
    """The waits of one poller; ``bucket`` groups jobs of similar duration."""

    def first_delay(self, bucket: Hashable) -> float:
        """Seconds from the create to the first poll."""
        ...

    def next_delay(self, bucket: Hashable, age: float, polls: int) -> float:
        """Seconds to the next poll of a job ``age`` seconds old, polled ``polls`` times."""
        ...

    def observe(self, bucket: Hashable, duration: float) -> None:
        """A job of ``bucket`` finished ``duration`` seconds after its create."""
        ...


def jittered(delay: float, policy: PollPolicy, rng: random.Random) -> float:
    """``delay`` times ``uniform(1 - jitter, 1 + jitter)``."""
    j = policy.jitter
    return delay * rng.uniform(1.0 - j, 1.0 + j) if j else delay


def latest_first_poll(ages: list[float], shares: list[float], budget: float) -> float | None:
    """The latest first poll at which the jobs finished before it lag ``budget`` on average.

    ``ages``: durations, ascending; ``shares``: the fraction of all jobs finishing at each.
    Polled first at age t, a job of duration d < t lags t/d - 1 of its duration; the mean
    over all jobs, t * sum(share/d) - sum(share) over d < t, grows with t. None when it
    stays under ``budget`` up to the last age (the evidence ends before the answer).
    """
    finished = 0.0  # share of the jobs finished before the current age
    inverse = 0.0  # the sum of share / duration over them
    for age, share in zip(ages, shares, strict=True):
        if age <= 0.0:
            return 0.0  # a job done at once: any wait is an unbounded relative lag
        if age * inverse - finished > budget:
            return (budget + finished) / inverse
        finished += share
        inverse += share / age
    return None


def _nearest_rank(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted, non-empty ``values`` (nearest rank)."""
    return values[min(len(values) - 1, int(q * len(values)))]


class EarlyCompletions:
    """A new bucket's evidence: its completions, and the age each running job was last seen at.

    The fraction finished by an age is a product-limit estimate: each completion removes
    one of the jobs still known to be at risk at its age. Ages where fewer than
    ``MIN_EVIDENCE`` jobs were observed are left out (too thin to conclude anything).
    """

    def __init__(self) -> None:
        self.durations: list[float] = []  # sorted completion durations
        self.running: list[float] = []  # sorted last-seen-running ages
        self.probes_started = 0  # at most FIRST_JOBS_PROBING
        self.probes_running = 0
        self._curve: tuple[list[float], list[float]] | None = None

    def changed(self) -> None:
        """Forget the cached curve after a change of ``durations`` or ``running``."""
        self._curve = None

    def at_risk(self, age: float) -> int:
        """Jobs observed at ``age`` or later (running then, or finished at or after it)."""
        return (len(self.running) - bisect.bisect_left(self.running, age)) + (
            len(self.durations) - bisect.bisect_left(self.durations, age)
        )

    def curve(self) -> tuple[list[float], list[float]]:
        """Completion ages and the estimated fraction finished by each (non-decreasing)."""
        if self._curve is not None:
            return self._curve
        done, running = self.durations, self.running
        ages: list[float] = []
        finished: list[float] = []
        surviving = 1.0
        i = 0
        while i < len(done):
            d = done[i]
            j = bisect.bisect_right(done, d, i)  # ties finish together
            at_risk = (len(done) - i) + (len(running) - bisect.bisect_left(running, d))
            if at_risk < MIN_EVIDENCE:
                break
            surviving *= 1.0 - (j - i) / at_risk
            ages.append(d)
            finished.append(1.0 - surviving)
            i = j
        self._curve = (ages, finished)
        return self._curve

    def finished_by(self, age: float) -> float:
        """The estimated fraction of jobs finished by ``age``."""
        ages, finished = self.curve()
        k = bisect.bisect_right(ages, age)
        return finished[k - 1] if k else 0.0

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile; where the curve has not reached it yet, a lower bound."""
        if len(self.durations) < MIN_SAMPLES:
            return None
        ages, finished = self.curve()
        k = bisect.bisect_left(finished, q)
        if k < len(ages):
            return ages[k]
        plain = _nearest_rank(self.durations, q)
        return max(plain, ages[-1]) if ages else plain

    def has_enough_completions(self) -> bool:
        """True when the plain window of durations can take over from this estimate."""
        n = len(self.durations)
        if n >= MAX_EARLY_COMPLETIONS:
            return True
        if n < MIN_EVIDENCE:
            return False
        finished = self.curve()[1]
        return bool(finished) and finished[-1] >= SETTLED_FINISHED

    def empty(self) -> bool:
        """No evidence and no probe left: the bucket can be forgotten."""
        return not (self.running or self.durations or self.probes_running)


class DurationEstimate:
    """Observed durations per bucket: a sliding window, plus early evidence for new buckets.

    ``probe_share`` (1.0) scales how many of a new bucket's first jobs probe: a member of a
    fleet of N processes started together probes 1/N of them, since the fleet's probes
    find the first completion for everyone.
    """

    def __init__(self) -> None:
        self.probe_share = 1.0
        self._sorted: dict[Hashable, list[float]] = {}
        self._order: dict[Hashable, deque[float]] = {}
        self._early: dict[Hashable, EarlyCompletions] = {}
        self._settled: set[Hashable] = set()
        self._first_poll: dict[Hashable, float | None] = {}  # cached until the next change

    def _early_for(self, bucket: Hashable) -> EarlyCompletions | None:
        """The bucket's early evidence, created on first use; None once settled."""
        if bucket in self._settled:
            return None
        early = self._early.get(bucket)
        if early is None:
            early = self._early[bucket] = EarlyCompletions()
        return early

    def _forget_if_empty(self, bucket: Hashable, early: EarlyCompletions) -> None:
        if early.empty():
            del self._early[bucket]

    def observe(self, bucket: Hashable, duration: float) -> None:
        """Record one finished job's duration (seconds)."""
        self._first_poll.pop(bucket, None)
        order = self._order.setdefault(bucket, deque())
        values = self._sorted.setdefault(bucket, [])
        if len(order) >= WINDOW:
            del values[bisect.bisect_left(values, order.popleft())]
        order.append(duration)
        bisect.insort(values, duration)
        early = self._early_for(bucket)
        if early is None:
            return
        bisect.insort(early.durations, duration)
        early.changed()
        if early.has_enough_completions():
            del self._early[bucket]
            self._settled.add(bucket)

    def quantile(self, bucket: Hashable, q: float) -> float | None:
        """The ``q`` quantile of the bucket's durations; None before ``MIN_SAMPLES`` jobs."""
        early = self._early.get(bucket)
        if early is not None:
            return early.quantile(q)
        values = self._sorted.get(bucket)
        if not values or len(values) < MIN_SAMPLES:
            return None
        return _nearest_rank(values, q)

    def first_poll(self, bucket: Hashable) -> float | None:
        """The age to poll a new job of ``bucket`` at first (see ``FIRST_POLL_LAG``); None
        before ``MIN_SAMPLES`` completions."""
        if bucket in self._first_poll:
            return self._first_poll[bucket]
        cap = self.quantile(bucket, FIRST_POLL_QUANTILE)
        if cap is not None:
            early = self._early.get(bucket)
            if early is not None:
                ages, finished = early.curve()
                shares = [b - a for a, b in itertools.pairwise([0.0, *finished])]
            else:
                ages = self._sorted[bucket]
                shares = [1.0 / len(ages)] * len(ages)
            latest = latest_first_poll(ages, shares, FIRST_POLL_LAG)
            if latest is not None:
                cap = min(cap, max(latest, FIRST_POLL_FLOOR * cap))
        self._first_poll[bucket] = cap
        return cap

    def samples(self, bucket: Hashable) -> int:
        """How many durations the bucket's sliding window holds."""
        return len(self._sorted.get(bucket, ()))

    def is_early(self, bucket: Hashable) -> bool:
        """True while the bucket's early evidence steers it (see :class:`EarlyCompletions`)."""
        return bucket not in self._settled

    def seen_running(self, bucket: Hashable, before: float | None, age: float | None) -> None:
        """A job last recorded running at age ``before`` is now seen running at ``age``.

        ``age`` None withdraws the job (it finished or is no longer watched). Recorded only
        while the bucket is early.
        """
        early = self._early.get(bucket) if age is None else self._early_for(bucket)
        if early is None:
            return
        self._first_poll.pop(bucket, None)
        if before is not None:
            i = bisect.bisect_left(early.running, before)
            if i < len(early.running) and early.running[i] == before:
                del early.running[i]
        if age is not None:
            bisect.insort(early.running, age)
        early.changed()
        self._forget_if_empty(bucket, early)

    def start_probe(self, bucket: Hashable) -> bool:
        """True when a job now watched in ``bucket`` is one of its first jobs, which probe
        for the first completion; call :meth:`end_probe` when it is no longer watched."""
        early = self._early_for(bucket)
        if early is None or early.probes_started >= self._share(FIRST_JOBS_PROBING):
            return False
        early.probes_started += 1
        early.probes_running += 1
        return True

    def end_probe(self, bucket: Hashable) -> None:
        """A probing job of ``bucket`` finished or is no longer watched."""
        early = self._early.get(bucket)
        if early is not None:  # else the bucket settled meanwhile: probing is over
            early.probes_running -= 1
            self._forget_if_empty(bucket, early)

    def waiting_for_probes(self, bucket: Hashable) -> bool:
        """True while nothing of ``bucket`` finished and enough probes still run to see it."""
        early = self._early.get(bucket)
        return (
            early is not None
            and not early.durations
            and early.probes_running >= self._share(MIN_EVIDENCE)
        )

    def _share(self, count: int) -> int:
        return max(1, math.ceil(count * self.probe_share))

    def likely_still_running(self, bucket: Hashable, age: float) -> bool:
        """True when the early evidence says a job of age ``age`` has almost surely not
        finished (under ``SKIP_BELOW_FINISHED`` of ``MIN_EVIDENCE``+ jobs had)."""
        early = self._early.get(bucket)
        if early is None or early.at_risk(age) < MIN_EVIDENCE:
            return False
        return early.finished_by(age) < SKIP_BELOW_FINISHED


class AdaptiveTiming:
    """:class:`PollTiming` from a :class:`PollPolicy` and the bucket's observed durations.

    Before ``MIN_SAMPLES`` completions of a bucket: the policy's backoff. After: the first
    poll goes at ``DurationEstimate.first_poll``, later ones wait
    ``LAG_FRACTION`` of the job's age (capped at ``max_interval``). ``adaptive=False``
    keeps the plain backoff.
    """

    def __init__(
        self,
        policy: PollPolicy,
        rng: random.Random | None = None,
        estimate: DurationEstimate | None = None,
    ) -> None:
        self.policy = policy
        self.rng = rng or random.Random()
        self.estimate = estimate or DurationEstimate()

    def _aim(self, bucket: Hashable) -> float | None:
        if not self.policy.adaptive:
            return None
        return self.estimate.first_poll(bucket)

    def first_delay(self, bucket: Hashable) -> float:
        """Seconds from the create to the first poll."""
        return self.next_delay(bucket, 0.0, 0)

    def next_delay(self, bucket: Hashable, age: float, polls: int) -> float:
        """Seconds to the next poll of a job ``age`` seconds old, polled ``polls`` times."""
        aim = self._aim(bucket)
        if aim is None:
            return poll_delay(polls, self.policy, self.rng)
        # Before the expected end, jump to it; after, follow the age so that the lag stays
        # a fixed fraction of the job's duration. The jitter spreads polls over a fraction
        # of one such step, not of the whole wait: +-20 % of a first poll aimed at minutes
        # would scatter it over more than the spread of the durations.
        step = min(self.policy.max_interval, LAG_FRACTION * max(aim, age))
        delay = min(self.policy.max_interval, max(aim - age, step))
        spread = self.policy.jitter * step
        return max(0.0, delay + self.rng.uniform(-spread, spread))

    def observe(self, bucket: Hashable, duration: float) -> None:
        """A job of ``bucket`` finished ``duration`` seconds after its create."""
        if self.policy.adaptive:
            self.estimate.observe(bucket, duration)
