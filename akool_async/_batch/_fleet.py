"""A batch on a shared (Postgres) job store: one member of a fleet of processes.

What the member does besides its own jobs, in a task of the batch's group:

- heartbeats (``store.keep_alive``), so its leases stay live while it works;
- LISTENs for webhook events any replica stored and polls its own task at once;
- takes every request of its client's API key from the store's token bucket
  (:class:`~akool_async._fleet_budget.SharedBudget`), so the fleet shares one rate;
- seeds its duration estimate from the durations the fleet learnt, and adds its own;
- once its input is exhausted (at once for a job given to ``submit()``), waits for the
  jobs of its input that other live members own (:meth:`FleetMember.leave`): those
  finished elsewhere get no outcome here, except submitted ones, whose caller waits on a
  handle: they get the fleet's outcome from the store; those whose owner died (lease
  lapsed) are claimed and resumed — created ones poll by id, ``sending`` ones come back
  uncertain, never re-created.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import anyio
from anyio.abc import TaskGroup

from akool_async._clock import Clock
from akool_async._errors import RateLimitError
from akool_async._fleet_budget import SharedBudget, budget_rate
from akool_async._store import JobRecord, JobState, PostgresStore

from ._estimate import AdaptiveTiming
from ._intake import Todo

if TYPE_CHECKING:
    from akool_async._api import Api

    from ._scheduler import PollScheduler

__all__ = ["FleetMember", "RecordingTiming", "bucket_name"]

_J = TypeVar("_J")
_logger = logging.getLogger("akool_async")

#: Jobs of the input read at a time, so that one query finds those another member holds.
WINDOW = 64
#: Stored durations a new member seeds each bucket with.
SEEDED_DURATIONS = 256
#: States in which a job has had (or will get from its live owner) its one outcome.
_FINISHED = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.UNCERTAIN, JobState.REJECTED})


def bucket_name(bucket: Hashable) -> str:
    """A bucket as stored: its parts joined by ``:``
    (``("character_swap", ("1080p", 3))`` -> ``"character_swap:1080p:3"``)."""
    if isinstance(bucket, tuple):
        return ":".join(bucket_name(part) for part in bucket)
    return str(bucket)


def _finished(record: JobRecord) -> bool:
    # A create refused for rate is rejected only until its member sends it again.
    return record.state in _FINISHED and not (
        record.state is JobState.REJECTED and isinstance(record.error, RateLimitError)
    )


class RecordingTiming(AdaptiveTiming):
    """The batch's timing (same estimate), also handing each learnt duration to ``record``."""

    def __init__(self, base: AdaptiveTiming, record: Callable[[Hashable, float], None]) -> None:
        super().__init__(base.policy, base.rng, base.estimate)
        self._record = record

    def observe(self, bucket: Hashable, duration: float) -> None:
        """Learn ``duration`` locally and share it with the fleet."""
        super().observe(bucket, duration)
        self._record(bucket, duration)

    def seed(self, bucket: Hashable, duration: float) -> None:
        """Learn a duration another member (or an earlier run) recorded."""
        super().observe(bucket, duration)


class FleetMember(Generic[_J]):
    """The batch's side of the fleet; ``_J`` is the batch's job object."""

    def __init__(
        self, store: PostgresStore, scheduler: PollScheduler, clock: Clock, api: Api | None
    ) -> None:
        self.store = store
        self._clock = clock
        self._scheduler = scheduler
        self._api = api
        self._foreign: dict[str, _J] = {}
        self._submitted: set[str] = set()  # foreign keys whose jobs came from submit()
        self._input_done = anyio.Event()
        self._left = anyio.Event()
        self._seeded: dict[str, anyio.Event] = {}
        self._durations_in, self._durations_out = anyio.create_memory_object_stream[
            tuple[str, float]
        ](max_buffer_size=math.inf)
        self.timing = RecordingTiming(scheduler.timing, self._record_duration)
        scheduler.timing = self.timing
        self._tg: TaskGroup | None = None
        self._window: collections.deque[Todo] = collections.deque()
        self._window_lock = anyio.Lock()
        self.budget: SharedBudget | None = None
        if api is not None:
            rate = budget_rate(api.poll_policy.max_polls_per_second,
                               api.limits.max_creates_per_second)
            self.budget = SharedBudget(store, api.account_digest, rate, api.clock)

    # -- running ----------------------------------------------------------------------

    async def run(
        self,
        resume: Callable[[_J], Awaitable[None]],
        settled: Callable[[_J, JobRecord], Awaitable[None]],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Heartbeat, listen, share the budget and durations; after the input, take over."""
        api = self._api
        if api is not None:
            api.shared_budget = self.budget
        try:
            async with anyio.create_task_group() as tg, self.store.listen(self._on_event):
                self._tg = tg
                tg.start_soon(self.store.keep_alive)
                tg.start_soon(self._write_durations)
                task_status.started()
                await self._take_over(resume, settled, tg)
        finally:
            if api is not None and api.shared_budget is self.budget:
                api.shared_budget = None
            self._durations_in.close()
            with anyio.CancelScope(shield=True):
                await self._flush_durations()
            self._durations_out.close()

    def input_done(self) -> None:
        """The batch's own input is exhausted: start taking over lapsed jobs."""
        self._input_done.set()
        self._left.set()

    async def next_unheld(
        self, next_job: Callable[[], Awaitable[Todo | None]], held: Callable[[Todo], None]
    ) -> Todo | None:
        """The next job of the input that no other live member holds (None at its end).

        Jobs are read :data:`WINDOW` at a time and checked with one query, instead of one
        transaction each that the store would refuse; each held one goes to ``held``.
        """
        async with self._window_lock:
            while not self._window:
                todos: list[Todo] = []
                while len(todos) < WINDOW and (todo := await next_job()) is not None:
                    todos.append(todo)
                if not todos:
                    return None
                taken = await self.store.held_elsewhere(
                    t.key for t in todos if t.request is not None
                )
                for todo in todos:
                    if todo.key in taken and todo.key not in self._foreign:
                        held(todo)
                    else:
                        self._window.append(todo)
            return self._window.popleft()

    def leave(self, key: str, job: _J, *, submitted: bool = False) -> None:
        """``key`` is owned by another live member: this batch gives no outcome unless its
        owner dies before finishing it, or the job was ``submitted`` (its caller waits)."""
        self._foreign[key] = job
        if submitted:
            self._submitted.add(key)
        self._left.set()

    def _watching_now(self) -> bool:
        return self._input_done.is_set() or bool(self._submitted)

    async def _take_over(
        self,
        resume: Callable[[_J], Awaitable[None]],
        settled: Callable[[_J, JobRecord], Awaitable[None]],
        tg: TaskGroup,
    ) -> NoReturn:
        while True:
            while not (self._foreign and self._watching_now()):
                # A create worker may still meet a key another member holds.
                self._left = anyio.Event()
                await self._left.wait()
            stored = await self.store.records_for(self._foreign)
            for key, record in stored.items():
                if _finished(record):
                    self._submitted.discard(key)
                    await settled(self._foreign.pop(key), record)
            if not self._foreign:
                continue
            resumed = 0
            for record in await self.store.claim(self._foreign):
                job = self._foreign.pop(record.key)
                self._submitted.discard(record.key)
                if _finished(record) and record.state is not JobState.UNCERTAIN:
                    # Finished by its owner, who then let it go: not ours to report. (An
                    # uncertain one was sending when read above: our claim made it so.)
                    await self.store.release([record.key])
                    await settled(job, record)
                else:
                    resumed += 1
                    tg.start_soon(self._resume, resume, job, record)
            if resumed:
                _logger.info("took over %d job(s) whose owner's lease lapsed", resumed)
            if self._foreign:
                await self._clock.sleep(self.store.lease_ttl / 3)

    async def _resume(
        self, resume: Callable[[_J], Awaitable[None]], job: _J, record: JobRecord
    ) -> None:
        await resume(job)
        if record.task_id is not None:
            await self.check_events(record.task_id)

    # -- webhooks ---------------------------------------------------------------------

    def _on_event(self, task_id: str) -> None:
        self._scheduler.poll_now(task_id)

    def watching(self, task_id: str) -> None:
        """The batch now polls ``task_id``: look at events stored before it was watched."""
        if self._tg is not None:
            self._tg.start_soon(self.check_events, task_id)

    async def check_events(self, task_id: str) -> None:
        """Poll ``task_id`` now if a webhook event for it is already in the store."""
        if await self.store.pending_events([task_id]):
            self._scheduler.poll_now(task_id)

    # -- durations --------------------------------------------------------------------

    async def seed(self, bucket: Hashable | None) -> None:
        """Before the first job of ``bucket``: learn the durations the fleet stored for it."""
        if bucket is None:
            return
        name = bucket_name(bucket)
        ready = self._seeded.get(name)
        if ready is not None:
            await ready.wait()
            return
        ready = self._seeded[name] = anyio.Event()
        try:
            for seconds in reversed(await self.store.durations(name, SEEDED_DURATIONS)):
                self.timing.seed(bucket, seconds)
            # Members starting together each probe their share of a new bucket's first jobs.
            alive = sum(member.alive for member in await self.store.members())
            self.timing.estimate.probe_share = 1 / max(1, alive)
        finally:
            ready.set()

    def _record_duration(self, bucket: Hashable, seconds: float) -> None:
        self._durations_in.send_nowait((bucket_name(bucket), seconds))

    async def _write_durations(self) -> None:
        async for name, seconds in self._durations_out:
            await self.store.record_duration(name, seconds)

    async def _flush_durations(self) -> None:
        """Write what the batch learnt after the writer was stopped (at the batch's end)."""
        with contextlib.suppress(anyio.EndOfStream, anyio.WouldBlock, anyio.ClosedResourceError):
            while True:
                name, seconds = self._durations_out.receive_nowait()
                await self.store.record_duration(name, seconds)

    @staticmethod
    def wants(store: Any) -> bool:
        """Whether ``store`` is shared by a fleet (a Postgres store)."""
        return isinstance(store, PostgresStore)
