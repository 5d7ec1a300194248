"""One poll scheduler per batch: a heap of due polls, not a sleeping coroutine per job.

Each watched id is an entry ``(due, seq, generation, watch)`` in a heap. One driver task
sleeps until the earliest due time (or until an earlier entry arrives), takes a send slot
from the optional shared :class:`~akool_async._pacing.Pacer`, and hands the id to a pool of
``max_concurrent_polls`` workers through an unbuffered stream, so polls in flight are
bounded and the heap keeps its order. The waits come from an
:class:`~._estimate.AdaptiveTiming`; webhook-backed ids poll only every
``reconcile_interval`` (the webhook completes them, the poll is the safety net).

A finished job's duration is Akool's own (``update_time - create_time``), clamped between
its last poll that saw it running and the poll that saw it finished (the midpoint when
Akool gives no times; see :func:`observed_duration`). While its bucket is early (few
completions), a due poll is skipped when the evidence says it would almost surely find the
job running, and only the first jobs probe before the bucket's first completion (see
``_estimate``). A poll asked for by ``poll_now()``, a webhook-backed one, or the last one
before a deadline is never skipped.

With nothing due, the driver waits on an event that a new entry sets; a timed sleep (on the
injectable clock) is cancelled instead when an earlier entry arrives.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime
from typing import Any

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from akool_async._clock import Clock
from akool_async._config import PollPolicy
from akool_async._errors import AkoolError, RateLimitError, WaitTimeoutError
from akool_async._models import TaskStatus
from akool_async._pacing import Pacer

from ._estimate import AdaptiveTiming, jittered

__all__ = ["PollScheduler", "Watch", "observed_duration"]


@attrs.define(eq=False)
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
    #: Bumped on every (re)schedule: heap entries of an older generation are stale.
    generation: int = 0
    in_flight: bool = False
    #: poll_now() arrived while a poll was in flight: poll again right after it.
    poll_again: bool = False
    last_poll: float | None = None
    #: The age at which the estimate last recorded this job running (None: not recorded).
    running_age: float | None = None
    #: poll_now() asked for this poll: never skipped.
    forced: bool = False
    #: One of its new bucket's first jobs, which probe for the first completion.
    probe: bool = False
    done: bool = False
    #: The last poll's status, for the timeout message.
    status: TaskStatus = TaskStatus.QUEUEING


class PollScheduler:
    """Polls every watched id until it is terminal, within one shared budget.

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
        timing: AdaptiveTiming | None = None,
    ) -> None:
        if max_concurrent_polls < 1:
            raise ValueError(f"max_concurrent_polls must be >= 1, got {max_concurrent_polls!r}")
        self.policy = policy
        self.clock = clock
        self.pacer = pacer  # optional: a batch leaves pacing to its client
        self.timing = timing or AdaptiveTiming(policy, rng)
        self._workers = max_concurrent_polls
        self._heap: list[tuple[float, int, int, Watch]] = []
        self._seq = itertools.count()
        # How to wake the sleeping driver for an earlier entry: set the event it waits on
        # while the heap is empty, or cancel its timed sleep.
        self._wake: anyio.Event | None = None
        self._sleep_scope: anyio.CancelScope | None = None
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

        Raises ValueError if ``task_id`` is already watched (the first watcher would never
        get its outcome).
        """
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
            w.probe = self.timing.estimate.start_probe(w.bucket)
        if webhook:
            first = jittered(self.policy.reconcile_interval, self.policy, self.timing.rng)
        else:
            first = self.timing.first_delay(w.bucket)
        self._schedule(w, now + first)
        return w

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

    async def run(self) -> None:
        """Drive the heap and the poll workers forever (until cancelled)."""
        send, receive = anyio.create_memory_object_stream[Watch](0)
        async with anyio.create_task_group() as tg, send, receive:
            for _ in range(self._workers):
                tg.start_soon(self._worker, receive.clone())
            await self._drive(send)

    # -- delays ---------------------------------------------------------------------------

    def next_delay(self, w: Watch, now: float) -> float:
        """Seconds from ``now`` to ``w``'s next poll."""
        if w.webhook:
            return jittered(self.policy.reconcile_interval, self.policy, self.timing.rng)
        return self.timing.next_delay(w.bucket, now - w.started, w.polls)

    # -- the heap -------------------------------------------------------------------------

    def _schedule(self, w: Watch, due: float) -> None:
        """(Re)schedule ``w`` at ``due`` (at the latest its deadline)."""
        if w.deadline is not None and due > w.deadline:
            due = w.deadline
        w.generation += 1  # any older heap entry of this id is now stale
        earliest = self._heap[0][0] if self._heap else math.inf
        heapq.heappush(self._heap, (due, next(self._seq), w.generation, w))
        if due < earliest:
            if self._wake is not None:
                self._wake.set()
            elif self._sleep_scope is not None:
                self._sleep_scope.cancel()

    def _forget(self, w: Watch) -> None:
        """Withdraw ``w``'s early evidence (it finished or is no longer watched)."""
        estimate = self.timing.estimate
        if w.running_age is not None:
            estimate.seen_running(w.bucket, w.running_age, None)
            w.running_age = None
        if w.probe:
            w.probe = False
            estimate.end_probe(w.bucket)

    def _finish(self, w: Watch, outcome: Any) -> None:
        w.done = True
        self._by_id.pop(w.task_id, None)
        self._forget(w)
        w.on_done(outcome)

    # -- the driver -----------------------------------------------------------------------

    async def _drive(self, send: MemoryObjectSendStream[Watch]) -> None:
        while True:
            w = await self._next_due()
            if self.pacer is not None:
                await self.pacer.acquire()
            if w.done:
                continue
            w.in_flight = True
            try:
                # A worker is free: hand over without a loop turn, so every due poll
                # leaves in this turn, not one per turn.
                send.send_nowait(w)
            except anyio.WouldBlock:
                await send.send(w)  # every worker is busy: wait for one

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep ``seconds`` (None: until woken) unless ``_schedule`` wakes the driver.

        An empty heap waits on an event: every new job of a batch with nothing due wakes
        the driver, and setting an event costs far less than cancelling a scope (which
        throws into the task). A timed sleep runs on the clock, so it is cancelled instead.
        """
        if seconds is None:
            self._wake = anyio.Event()
            try:
                await self._wake.wait()
            finally:
                self._wake = None
            return
        with anyio.CancelScope() as scope:
            self._sleep_scope = scope
            try:
                await self.clock.sleep(seconds)
            finally:
                self._sleep_scope = None

    async def _next_due(self) -> Watch:
        """Pop the next live watch once it is due (waiting as long as needed)."""
        heap = self._heap
        while True:
            if not heap:
                await self._sleep(None)
                continue
            due, _, generation, w = heap[0]
            if w.done or generation != w.generation:
                heapq.heappop(heap)
                continue
            now = self.clock.monotonic()
            if due > now:
                await self._sleep(due - now)
                continue
            heapq.heappop(heap)
            if w.in_flight:  # one poll per id at a time; poll again when it returns
                w.poll_again = True
                continue
            if not self._skipped(w, due, now):
                return w

    def _skipped(self, w: Watch, due: float, now: float) -> bool:
        """True when the early evidence makes this poll pointless (``w`` is rescheduled)."""
        if not self.policy.adaptive or w.forced or w.webhook:
            return False
        if w.deadline is not None and now >= w.deadline:
            return False
        estimate = self.timing.estimate
        if estimate.likely_still_running(w.bucket, now - w.started):
            # Take the step from the due time (not from now), so a skipped job stays on
            # the grid of instants the probes were sent at.
            return self._step_without_poll(w, due, count_step=True)
        if not w.probe and estimate.waiting_for_probes(w.bucket):
            # Look again one step later without taking it, so nothing is skipped once
            # the first job of the bucket has finished.
            return self._step_without_poll(w, due, count_step=False)
        return False

    def _step_without_poll(self, w: Watch, due: float, *, count_step: bool) -> bool:
        """Reschedule ``w`` one step after ``due`` without polling; False (nothing done)
        when that step is zero or would reach the deadline: then the poll is sent."""
        polls = w.polls + count_step
        w.polls = polls
        step = self.next_delay(w, due)
        if step > 0 and (w.deadline is None or due + step < w.deadline):
            self._schedule(w, due + step)
            return True
        w.polls = polls - count_step
        return False

    # -- the workers ----------------------------------------------------------------------

    async def _worker(self, receive: MemoryObjectReceiveStream[Watch]) -> None:
        async with receive:
            async for w in receive:
                try:
                    await self._poll_one(w)
                finally:
                    w.in_flight = False

    async def _poll_one(self, w: Watch) -> None:
        """Poll ``w`` once unless it finished on the way or its deadline has passed."""
        if w.done or self._by_id.get(w.task_id) is not w:
            return  # a webhook (or cancel) finished it on the way
        if w.deadline is not None and self.clock.monotonic() >= w.deadline:
            self._finish(w, self._timeout_error(w))
            return
        self.polls_sent += 1
        w.polls += 1
        w.forced = False
        try:
            result = await w.poll(w.task_id)
        except RateLimitError as err:
            if self.pacer is not None:
                self.pacer.throttled(err.retry_after)
            if not w.done:
                self._reschedule(w, err.retry_after)
            return
        except AkoolError as err:
            if not w.done:
                if err.retryable:
                    self._reschedule(w, None)
                else:
                    self._finish(w, err)
            return
        if not w.done:
            self._record(w, result)

    def _record(self, w: Watch, result: Any) -> None:
        """Finish ``w`` on a terminal result, else note it running and schedule the next."""
        if self.pacer is not None:
            self.pacer.succeeded()
        w.status = result.status
        now = self.clock.monotonic()
        if result.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
            previous = w.last_poll if w.last_poll is not None else w.started
            self.timing.observe(w.bucket, observed_duration(result, previous, now, w.started))
            self._finish(w, result)
            return
        w.last_poll = now
        if self.policy.adaptive and not w.webhook:
            estimate = self.timing.estimate
            age = now - w.started
            estimate.seen_running(w.bucket, w.running_age, age)
            w.running_age = age if estimate.is_early(w.bucket) else None
        self._reschedule(w, None)

    def _reschedule(self, w: Watch, at_least: float | None) -> None:
        now = self.clock.monotonic()
        if w.poll_again and at_least is None:
            w.poll_again = False
            self._schedule(w, now)
            return
        delay = self.next_delay(w, now)
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


def observed_duration(result: object, previous: float, now: float, started: float) -> float:
    """How long a finished task took, in seconds from its create, for the estimate.

    The client knows the end lies between its previous poll (or the create) and ``now``.
    Akool's own ``updated_at - created_at`` (the completed answer's ``update_time`` minus
    ``create_time``) says where, clamped to that interval; without them, the midpoint. (A
    job found finished at its first poll would otherwise count as half its age: with first
    polls aimed at a low quantile, the estimate then drifts down and polls come too early.)
    """
    low, high = previous - started, now - started
    created: datetime | None = getattr(result, "created_at", None)
    updated: datetime | None = getattr(result, "updated_at", None)
    if created is None or updated is None:
        return (low + high) / 2
    return min(high, max(low, (updated - created).total_seconds()))
