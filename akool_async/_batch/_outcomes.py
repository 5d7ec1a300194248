"""The outcome stream: one :class:`Outcome` per job, handed out in completion order.

Every job gets a :class:`JobHandle` when it enters the batch. Its outcome is taken either
through the handle (``await handle.outcome()``) or by iterating the batch, whichever comes
first; taking it frees the job's in-flight slot, so a slow consumer slows intake.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import anyio
import attrs

from akool_async._clock import SYSTEM_CLOCK, Clock
from akool_async._download import DownloadError
from akool_async._errors import AkoolError
from akool_async._models import CharacterSwap, CharacterSwapResult, HeadSwap, HeadSwapResult
from akool_async._tracing import JobActivity

__all__ = ["BatchStats", "JobHandle", "Outcome", "OutcomeStream"]

Request = CharacterSwap | HeadSwap
Result = CharacterSwapResult | HeadSwapResult


@attrs.frozen
class Outcome:
    """The single outcome of one job: exactly one of ``result`` and ``error`` is set.

    ``key`` is ``Job.key``, or one derived from the request's content (fingerprint, plus
    ``#n`` for the n-th identical request), never the job's input position.

    With ``download_dir``, ``path`` is where the output was saved, or ``download_error``
    says why it was not (the job itself still succeeded: ``result`` is set).

    Set by the batch (client clock, aware UTC): ``submitted_at``, when the job's latest
    create was sent (None if none was); ``finished_at``, when this outcome was produced;
    ``attempts``, creates sent (re-sends after throttling included); ``replayed``, True
    when the outcome was taken from the journal and nothing was sent for it in this run
    (its times and attempts are then the earlier run's, as the journal recorded them).
    """

    key: str
    job: Request
    result: Result | None = None
    error: AkoolError | None = None
    task_id: str | None = None
    path: Path | None = None
    download_error: DownloadError | None = None
    submitted_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    attempts: int = 0
    replayed: bool = False

    @property
    def ok(self) -> bool:
        """True when the job completed (``result`` is set)."""
        return self.error is None


@attrs.frozen
class BatchStats:
    """A snapshot of a batch's progress. ``credits`` sums character-swap credits charged.

    ``replayed`` counts the outcomes (among ``done``) taken from the journal, nothing sent;
    ``webhooks_accepted`` / ``webhooks_rejected`` are the batch's webhook receiver's
    delivery counts (0 without a receiver).
    """

    pending: int = 0
    submitting: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    uncertain: int = 0
    credits: float = 0.0
    replayed: int = 0
    webhooks_accepted: int = 0
    webhooks_rejected: int = 0

    @property
    def done(self) -> int:
        """Jobs with an outcome."""
        return self.completed + self.failed + self.uncertain


class JobHandle:
    """Returned by :meth:`Batch.submit`; ``await handle.outcome()`` waits for that job.

    ``activity`` records what the job did in this run (creates, times, trace span).
    """

    def __init__(self, key: str, take: Callable[[JobHandle], Outcome]) -> None:
        self.key = key
        self.activity = JobActivity(key)
        self.settled: Outcome | None = None
        self.consumed = False
        self._take = take
        self._event = anyio.Event()

    def done(self) -> bool:
        """True once the job has an outcome."""
        return self.settled is not None

    def settle(self, outcome: Outcome) -> None:
        """Give the job its outcome (once) and wake whoever awaits it."""
        self.settled = outcome
        self._event.set()

    async def outcome(self) -> Outcome:
        """Wait for and return this job's outcome (it is then not yielded by iteration)."""
        await self._event.wait()
        return self._take(self)

    def __repr__(self) -> str:
        return f"JobHandle(key={self.key!r}, done={self.done()})"


class OutcomeStream:
    """Settled jobs whose outcome nobody took yet, oldest first.

    An outcome taken through its handle leaves at once, so a web backend that only awaits
    handles never accumulates anything here.
    """

    def __init__(self, release_slot: Callable[[], None], clock: Clock = SYSTEM_CLOCK) -> None:
        self._release_slot = release_slot
        self._clock = clock
        self._ready: dict[JobHandle, None] = {}  # insertion-ordered: completion order
        self._arrived = anyio.Event()
        self._closed = False

    def new_handle(self, key: str) -> JobHandle:
        """A handle for a job entering the batch."""
        return JobHandle(key, self.take)

    def deliver(self, handle: JobHandle, outcome: Outcome) -> None:
        """Settle ``handle`` with ``outcome``, stamped with its job's times and attempts,
        and queue it for the consumer."""
        handle.settle(handle.activity.stamp(outcome, self._clock.wall()))
        self._ready[handle] = None
        self._arrived.set()

    def take(self, handle: JobHandle) -> Outcome:
        """The settled outcome of ``handle``; the first take frees the job's slot."""
        if not handle.consumed:
            handle.consumed = True
            self._ready.pop(handle, None)
            self._release_slot()
        assert handle.settled is not None
        return handle.settled

    def close(self) -> None:
        """No more outcomes: :meth:`next` ends once the queued ones are taken."""
        self._closed = True
        self._arrived.set()

    async def next(self) -> Outcome:
        """The oldest outcome nobody took; ``anyio.EndOfStream`` once closed and empty."""
        while not self._ready:
            if self._closed:
                raise anyio.EndOfStream
            if self._arrived.is_set():
                self._arrived = anyio.Event()
            await self._arrived.wait()
        return self.take(next(iter(self._ready)))

    def __len__(self) -> int:
        return len(self._ready)
