"""Bulk submission: bounded concurrent creates, one poll scheduler, outcomes as they complete.

Shape of a batch (all tasks live in ONE anyio task group owned by the batch)::

    intake ──(lazy pull, one in-flight slot per job)──► create workers: [journal] ► create
                                                   (``concurrency`` long-lived workers and
                                                    a CapacityLimiter of ``concurrency``)
                                                                 │ task id
                                                                 ▼
                          PollScheduler (heap of due ids, shared poll budget, AIMD)
                                                                 │ terminal result / error
                                                                 ▼
                                   outcome stream ──► ``async for outcome in batch``

- Intake is lazy: a free create worker pulls the next job itself, once an in-flight slot is
  free; a slot is freed when the caller *consumes* the job's outcome (by iterating or by a
  handle), so a slow consumer slows intake and memory stays bounded by ``max_in_flight``.
  (``submit()`` hands jobs to the workers through a stream instead.)
- A head swap waits for its shared analysis in a task of its own, so slow analyses never
  hold a worker. After its create, a job is no coroutine at all: it is one entry in the
  scheduler's heap until its terminal poll (or webhook) completes it through a callback;
  a first poll due at once may be sent by the worker first (``PollScheduler.follow``).
- Exactly one :class:`Outcome` per job. A job's failure is a value; only bugs and
  cancellation propagate. Leaving the ``async with`` block early cancels intake and every
  local task; tasks already created remotely keep running on Akool's side (with a journal,
  a later run resumes them).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._config import PollPolicy
from ._converters import request_fingerprint, request_to_dict, result_from_raw
from ._download import Downloader, DownloadError
from ._errors import (
    AkoolError,
    ClientStateError,
    FaceMappingError,
    RateLimitError,
    ResponseError,
    SubmissionUncertainError,
    TaskFailedError,
    ValidationError,
)
from ._journal import JobRecord, JobState, Journal
from ._models import (
    CharacterSwap,
    CharacterSwapResult,
    HeadSwap,
    HeadSwapAnalysis,
    HeadSwapResult,
    Job,
    TaskStatus,
)
from ._scheduler import PollScheduler

if TYPE_CHECKING:
    from ._client import AkoolClient
    from .webhooks import WebhookEvent, WebhookReceiver

__all__ = ["Batch", "BatchStats", "JobHandle", "Outcome"]

Request = CharacterSwap | HeadSwap
Result = CharacterSwapResult | HeadSwapResult
JobSource = Iterable[Request | Job] | AsyncIterable[Request | Job]
#: A job waiting for a create worker: (key, request, handle of a submit() or None).
_Todo = tuple[str, Request, "JobHandle | None"]

# An Enum member read through its class costs ~3x a global read (every job's end).
_COMPLETED = TaskStatus.COMPLETED

#: Jobs in flight (pulled from the input, outcome not yet consumed) by default.
DEFAULT_MAX_IN_FLIGHT = 10_000
#: Completed head-swap analyses kept for reuse by later jobs with the same video_url.
ANALYSIS_CACHE_SIZE = 1024
#: A create refused for rate (proving no task) is re-queued at most this many times.
MAX_THROTTLED_CREATES = 50
#: Akool deletes character-swap outputs after 7 days; warn a day ahead.
EXPIRY_WARNING_AGE = 6 * 24 * 3600.0

_logger = logging.getLogger("akool_async")


@attrs.frozen
class Outcome:
    """The single outcome of one job: exactly one of ``result`` and ``error`` is set.

    With ``download_dir``, ``path`` is where the output was saved, or ``download_error``
    says why it was not (the job itself still succeeded: ``result`` is set).
    """

    key: str
    job: Request
    result: Result | None = None
    error: AkoolError | None = None
    task_id: str | None = None
    path: Path | None = None
    download_error: DownloadError | None = None

    @property
    def ok(self) -> bool:
        """True when the job completed (``result`` is set)."""
        return self.error is None


@attrs.frozen
class BatchStats:
    """A snapshot of a batch's progress. ``credits`` sums character-swap credits charged."""

    pending: int = 0
    submitting: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    uncertain: int = 0
    credits: float = 0.0

    @property
    def done(self) -> int:
        """Jobs with an outcome."""
        return self.completed + self.failed + self.uncertain


class JobHandle:
    """Returned by :meth:`Batch.submit`; ``await handle.outcome()`` waits for that job."""

    __slots__ = ("_event", "_outcome", "_queue", "_release", "_token", "consumed", "key")

    def __init__(self, key: str, release: Callable[[], None], queue: _OutcomeQueue) -> None:
        self.key = key
        self._event = anyio.Event()
        self._outcome: Outcome | None = None
        self._release = release
        self._queue = queue
        self._token = 0
        self.consumed = False

    def done(self) -> bool:
        """True once the job has an outcome."""
        return self._outcome is not None

    def _consume(self) -> Outcome:
        if not self.consumed:
            self.consumed = True
            self._queue.discard(self._token)
            self._release()
        assert self._outcome is not None
        return self._outcome

    async def outcome(self) -> Outcome:
        """Wait for and return this job's outcome (it is then not yielded by iteration)."""
        await self._event.wait()
        return self._consume()

    def __repr__(self) -> str:
        return f"JobHandle(key={self.key!r}, done={self.done()})"


class _OutcomeQueue:
    """Outcomes waiting for the iterator, in completion order.

    An outcome taken through its :class:`JobHandle` is removed from here at once, so a web
    backend that only awaits handles never accumulates anything.
    """

    __slots__ = ("_closed", "_items", "_seq", "_waiter")

    def __init__(self) -> None:
        self._items: collections.OrderedDict[int, Outcome | JobHandle] = (
            collections.OrderedDict()
        )
        self._seq = 0
        # The consumer's wait: a bare asyncio future (one per empty-queue wait; an anyio
        # Event costs several times more and this is on every job's path).
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def put(self, item: Outcome | JobHandle) -> int:
        self._seq += 1
        self._items[self._seq] = item
        self._wake()
        return self._seq

    def discard(self, token: int) -> None:
        self._items.pop(token, None)

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Outcome | JobHandle | None:
        """The oldest waiting item, or None when there is none yet."""
        items = self._items
        return items.popitem(last=False)[1] if items else None

    async def get(self) -> Outcome | JobHandle:
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.popitem(last=False)[1]

    def __len__(self) -> int:
        return len(self._items)


class _AnalysisShare:
    """One head-swap analysis shared by every job with the byte-identical video_url."""

    __slots__ = ("event", "outcome")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.outcome: HeadSwapAnalysis | AkoolError | None = None


class Batch:
    """A running batch; see :meth:`AkoolClient.batch`. Use as ``async with``."""

    def __init__(
        self,
        client: AkoolClient,
        jobs: JobSource | None = None,
        *,
        concurrency: int = 16,
        deadline: float | None = None,
        poll: PollPolicy | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        progress: Callable[[BatchStats], None] | None = None,
        journal: str | os.PathLike[str] | Journal | None = None,
        resubmit_uncertain: bool = False,
        webhook_url: str | None = None,
        webhooks: WebhookReceiver | None = None,
        download_dir: str | os.PathLike[str] | None = None,
        download_concurrency: int = 4,
    ) -> None:
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValidationError(
                "batch.concurrency", f"must be an integer >= 1 (got {concurrency!r})"
            )
        if deadline is not None and not (isinstance(deadline, (int, float)) and deadline > 0):
            raise ValidationError(
                "batch.deadline", f"must be None or seconds > 0 (got {deadline!r})"
            )
        if max_in_flight < 1:
            raise ValidationError("batch.max_in_flight", "must be >= 1")
        self._client = client
        self._jobs = jobs
        self._concurrency = concurrency
        self._deadline = deadline
        self._policy = poll or client.poll_policy
        self._clock = client.clock
        self._max_in_flight = max_in_flight
        self._progress = progress
        self._create_limiter = anyio.CapacityLimiter(concurrency)
        self._slots = anyio.Semaphore(max_in_flight)
        # Request pacing (every attempt, AIMD on 429/1005) is the client's: one budget per
        # API key. The scheduler only orders polls by due time and bounds them in flight.
        self._scheduler = PollScheduler(self._policy, self._clock)
        self._queue = _OutcomeQueue()
        self._tg: TaskGroup | None = None
        # submit() hands jobs to the create workers through this stream; with a jobs
        # iterable the workers pull from it themselves (_pull), so nothing is queued.
        self._todo: MemoryObjectSendStream[_Todo] | None = None
        self._source: _Source | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._intake_open = True
        self._outstanding = 0
        self._counter = 0
        self._analyses: collections.OrderedDict[str, _AnalysisShare] = collections.OrderedDict()
        # A plain dict with every state: Counter's lookups cost more on every move.
        self._counts: dict[str, int] = dict.fromkeys(
            ("pending", "submitting", "running", "completed", "failed", "uncertain"), 0
        )
        self._credits = 0.0
        self._journal_spec = journal
        self._journal: Journal | None = None
        self._owns_journal = False
        self._resubmit_uncertain = resubmit_uncertain
        self._keys: set[str] = set()
        if webhook_url is not None:
            # Validate like a request field, before anything is sent.
            CharacterSwap("https://x.invalid/i.png", "https://x.invalid/v.mp4",
                          webhook_url=webhook_url)
        self._webhook_url = webhook_url
        self._webhooks = webhooks
        self._unsubscribe: Callable[[], None] | None = None
        self._downloader = (
            None
            if download_dir is None
            else Downloader(client._api, download_dir, concurrency=download_concurrency)
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Batch:
        if self._state != "new":
            raise ClientStateError("a Batch can be entered only once")
        self._state = "open"
        spec = self._journal_spec
        if isinstance(spec, Journal):
            self._journal = spec
        elif spec is not None:
            self._journal = await Journal.open(spec)
            self._owns_journal = True
        if self._webhooks is not None:
            self._unsubscribe = self._webhooks.add_listener(self._on_webhook)
        todo: MemoryObjectReceiveStream[_Todo] | None = None
        if self._jobs is not None:
            self._source = _Source(self._jobs)
        else:
            # submit()ted jobs waiting for a create worker. Unbounded on purpose: what
            # bounds it is the in-flight slot every job takes first (max_in_flight).
            self._todo, todo = anyio.create_memory_object_stream[_Todo](math.inf)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._scheduler.run)
        # A pool of long-lived create workers, not a task per job: the CapacityLimiter in
        # _create() still bounds creates and analyses together; the pool only saves
        # spawning (and tearing down) one task per job.
        for _ in range(self._concurrency):
            tg.start_soon(self._create_worker, None if todo is None else todo.clone())
        if todo is not None:
            todo.close()
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        assert self._tg is not None
        # Whatever happened, local work ends with the block: the scheduler runs forever by
        # design, and an early exit must not leave intake or polls running.
        self._tg.cancel_scope.cancel()
        self._state = "closed"
        try:
            return await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]
        finally:
            if self._todo is not None:
                self._todo.close()
            self._queue.close()
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            if self._owns_journal and self._journal is not None:
                with anyio.CancelScope(shield=True):
                    await self._journal.aclose()

    def close(self) -> None:
        """No more submissions: iteration ends once every submitted job has its outcome."""
        self._intake_open = False
        self._maybe_finish()

    # -- submission -----------------------------------------------------------------------

    async def submit(self, job: Request | Job, *, key: str | None = None) -> JobHandle:
        """Submit one job (waits while ``max_in_flight`` outcomes are unconsumed)."""
        if self._state != "open" or self._jobs is not None:
            raise ClientStateError(
                "submit() needs an open batch created without a jobs iterable: "
                "`async with client.batch() as batch: await batch.submit(job)`"
            )
        if not self._intake_open:
            raise ClientStateError("this batch was closed: no more submissions")
        request, job_key = self._unpack(job, key)
        await _acquire(self._slots)
        handle = JobHandle(job_key, self._slots.release, self._queue)
        self._start(job_key, request, handle)
        return handle

    def _unpack(self, job: object, key: str | None) -> tuple[Request, str]:
        index = self._counter
        self._counter += 1
        if isinstance(job, Job):
            request, job_key = job.request, key or job.key
        elif isinstance(job, (CharacterSwap, HeadSwap)):
            request, job_key = job, key
        else:
            raise ValidationError(
                "batch job",
                f"must be a CharacterSwap, HeadSwap or Job (got {type(job).__name__})",
            )
        return request, job_key if job_key is not None else str(index)

    async def _pull(self) -> _Todo | None:
        """The next job of the input for a free create worker; None once it is exhausted.

        Intake is lazy: a worker pulls only when it is free and an in-flight slot is taken
        first, so the input is never read ahead of the workers, and a slow consumer (who
        frees slots) slows intake.
        """
        source = self._source
        assert source is not None
        slots = self._slots
        while not source.exhausted:
            try:  # _acquire() inline: every job passes here
                slots.acquire_nowait()
            except anyio.WouldBlock:
                await slots.acquire()
            try:
                job = source.next_nowait()
                if job is _AWAIT:
                    job = await source.next()
            except BaseException:
                slots.release()
                raise
            if job is _END:
                slots.release()
                if self._intake_open:
                    self._intake_open = False
                    self._maybe_finish()
                break
            try:
                request, job_key = self._unpack(job, None)
            except ValidationError as err:
                # Not a job at all: report it as this position's outcome and go on.
                self._outstanding += 1
                self._emit(Outcome(key=str(self._counter - 1), job=job, error=err), None, None)
                continue
            self._outstanding += 1
            self._move(None, "pending")
            return job_key, request, None
        return None

    def _start(self, key: str, request: Request, handle: JobHandle) -> None:
        assert self._todo is not None
        self._outstanding += 1
        self._move(None, "pending")
        self._todo.send_nowait((key, request, handle))

    async def _create_worker(self, todo: MemoryObjectReceiveStream[_Todo] | None) -> None:
        """Take jobs (pulled from the input, or submitted) and create them, one at a time."""
        try:
            while True:
                item = await self._pull() if todo is None else await _receive(todo)
                if item is None:
                    return
                key, request, handle = item
                if isinstance(request, HeadSwap):
                    # Its shared analysis may take minutes: wait for it in a task of its
                    # own instead of holding a create worker.
                    assert self._tg is not None
                    self._tg.start_soon(self._run_job, key, request, handle)
                else:
                    await self._run_job(key, request, handle)
        finally:
            if todo is not None:
                todo.close()

    # -- one job --------------------------------------------------------------------------

    async def _run_job(self, key: str, request: Request, handle: JobHandle | None) -> None:
        """Create the job's task; polling continues in the scheduler, not here."""
        deadline = None if self._deadline is None else self._clock.monotonic() + self._deadline
        journal = self._journal
        task_id: str | None = None
        known_analysis: str | None = None
        state = "pending"  # for progress: the state the job leaves next
        try:
            if journal is not None:
                record = await self._journal_begin(journal, key, request)
                known_analysis = record.analysis_id
                if record.state is JobState.COMPLETED or record.state is JobState.FAILED:
                    outcome = await self._replayed(journal, key, request, record)
                    self._emit(outcome, handle, "pending")
                    return
                if record.state is JobState.CREATED:
                    task_id = record.task_id
                elif record.state in (JobState.SENDING, JobState.UNCERTAIN):
                    uncertain = await self._left_uncertain(journal, key, request, record)
                    if not self._resubmit_uncertain:
                        raise uncertain
            if task_id is None:
                if isinstance(request, HeadSwap):
                    analysis = await self._shared_analysis(request.video_url, known_analysis)
                    if journal is not None and analysis.id != known_analysis:
                        # A resumed run reuses it instead of analysing the video again.
                        await journal.set_analysis_id(key, analysis.id)
                    detected = analysis.obj_ids
                    missing = [f.obj_id for f in request.faces if f.obj_id not in detected]
                    if missing:
                        raise FaceMappingError(missing, detected, request.video_url)
                self._move("pending", "submitting")
                state = "submitting"
                task_id = await self._create(key, request)
        except AkoolError as err:
            if journal is not None and task_id is None:
                await self._journal_rejected(journal, key, err)
            self._emit(Outcome(key=key, job=request, error=err), handle, state)
            return
        if self._scheduler.is_watching(task_id):
            # Akool answered two creates with one task id: this job's task cannot be told
            # apart from the other's. Never resend it; say so instead of hanging forever.
            clash = SubmissionUncertainError(
                f"Akool returned task id {task_id} for this job and for another job of this "
                "batch; this job's own task (if any) cannot be identified and was not resent",
                request=request,
                task_id=task_id,
            )
            outcome = Outcome(key=key, job=request, error=clash, task_id=task_id)
            self._emit(outcome, handle, state)
            return
        self._move(state, "running")
        is_head = isinstance(request, HeadSwap)
        resource: Any = self._client.head_swap if is_head else self._client.character_swap
        # A first poll due at once is sent from this task, right after its create.
        await self._scheduler.follow(
            task_id,
            kind="head_swap" if is_head else "character_swap",
            bucket=_size_bucket(request) if self._policy.adaptive else None,
            poll=resource.get,
            on_done=_Running(self, key, request, task_id, handle),
            deadline=deadline,
            webhook=self._webhooks is not None,
        )
        if self._webhooks is not None:
            # The webhook may have beaten the create's answer: look at what already arrived.
            early = self._webhooks.recent(task_id)
            if early is not None and early.is_terminal:
                self._scheduler.poll_now(task_id)

    # -- journal --------------------------------------------------------------------------

    async def _journal_begin(self, journal: Journal, key: str, request: Request) -> JobRecord:
        if key in self._keys:
            raise ValidationError("Job.key", f"duplicate key {key!r} in this batch")
        self._keys.add(key)
        return await journal.begin(
            key,
            kind="head_swap" if isinstance(request, HeadSwap) else "character_swap",
            fingerprint=request_fingerprint(request),
            request=request_to_dict(request),
        )

    async def _replayed(
        self, journal: Journal, key: str, request: Request, record: JobRecord
    ) -> Outcome:
        """The outcome a previous run recorded, re-emitted without any API request."""
        raw = record.result_raw or {}
        result = result_from_raw(record.kind, raw)
        outcome = self._outcome_for(key, request, result.id, result)
        if not outcome.ok:
            return outcome
        if record.local_path is not None and await anyio.Path(record.local_path).exists():
            return attrs.evolve(outcome, path=Path(record.local_path))
        age = self._clock.wall() - record.updated_at
        if age > EXPIRY_WARNING_AGE:
            _logger.warning(
                "job %r (task %s) completed %.1f days ago and its output was never "
                "downloaded: Akool deletes outputs after 7 days",
                key,
                result.id,
                age / 86400,
            )
        return await self._download(journal, outcome)

    async def _download(self, journal: Journal | None, outcome: Outcome) -> Outcome:
        if self._downloader is None or outcome.result is None:
            return outcome
        try:
            path = await self._downloader.download(outcome.key, outcome.result)
        except DownloadError as err:
            return attrs.evolve(outcome, download_error=err)
        if journal is not None:
            await journal.set_local_path(outcome.key, path)
        return attrs.evolve(outcome, path=path)

    async def _left_uncertain(
        self, journal: Journal, key: str, request: Request, record: JobRecord
    ) -> SubmissionUncertainError:
        previous = record.error
        err = SubmissionUncertainError(
            "a create for this job was sent by an earlier run and never acknowledged: a task "
            "may exist and may be charged. Check the Akool dashboard, then pass "
            "resubmit_uncertain=True to send it again",
            request=request,
        )
        err.__cause__ = previous
        if record.state is JobState.SENDING:
            await journal.mark_uncertain(key, err)
        return err

    @staticmethod
    async def _journal_rejected(journal: Journal, key: str, err: AkoolError) -> None:
        record = await journal.get(key)
        if record is None or record.state in (JobState.UNCERTAIN, JobState.REJECTED):
            return
        if isinstance(err, SubmissionUncertainError):
            if record.state is JobState.SENDING:
                await journal.mark_uncertain(key, err)
        elif record.state in (JobState.PENDING, JobState.SENDING):
            await journal.mark_rejected(key, err)

    async def _finish_async(
        self, journal: Journal | None, outcome: Outcome, value: Any, handle: JobHandle | None
    ) -> None:
        """Record a terminal value in the journal and download the output, then emit."""
        key = outcome.key
        if journal is None:
            pass
        elif isinstance(value, AkoolError):
            # Not terminal remotely (deadline, lost task): keep `created` so a rerun resumes.
            await journal.record_error(key, value)
        elif value.status is TaskStatus.FAILED:
            assert outcome.error is not None
            await journal.mark_failed(key, value.raw, outcome.error)
        else:
            await journal.mark_completed(key, value.raw)
        if outcome.ok:
            outcome = await self._download(journal, outcome)
        self._emit(outcome, handle, "running")

    # -- webhooks -------------------------------------------------------------------------

    def _on_webhook(self, event: WebhookEvent) -> None:
        # The event says "done"; one poll fetches the whole result (credits, reasons ...).
        if event.is_terminal:
            self._scheduler.poll_now(event.id)

    async def _create(self, key: str, request: Request) -> str:
        """Create under the concurrency cap; re-queue a create the server refused for rate.

        With a journal the job is marked ``sending`` (committed) before the request leaves
        and ``created`` with its id right after the answer: a kill in between leaves
        ``sending``, which a rerun reports as uncertain instead of paying twice.
        """
        resource: Any = (
            self._client.head_swap if isinstance(request, HeadSwap) else self._client.character_swap
        )
        if self._webhook_url is not None and request.webhook_url is None:
            request = attrs.evolve(request, webhook_url=self._webhook_url)
        journal = self._journal
        limiter = self._create_limiter
        last: RateLimitError | None = None
        # This create is the borrower: anyio's default, the current task, costs a lookup.
        borrower = object()
        for _attempt in range(MAX_THROTTLED_CREATES):
            try:  # _hold(), inline: this is every job's path
                limiter.acquire_on_behalf_of_nowait(borrower)
            except anyio.WouldBlock:
                await limiter.acquire_on_behalf_of(borrower)
            try:
                if journal is not None:
                    await journal.mark_sending(key, resubmit_uncertain=self._resubmit_uncertain)
                try:
                    task_id: str = (await resource.create(request)).id
                except RateLimitError as err:
                    # 429/1005 prove no task was created: safe to send again. The client's
                    # pacer has slowed down; the next attempt waits its turn.
                    if journal is not None:
                        await journal.mark_rejected(key, err)
                    last = err
                    continue
                if journal is not None:
                    # The id is paid for: record it even if we are being cancelled.
                    with anyio.CancelScope(shield=True):
                        await journal.mark_created(key, task_id)
            finally:
                limiter.release_on_behalf_of(borrower)
            return task_id
        assert last is not None
        raise last

    async def _shared_analysis(
        self, video_url: str, known_id: str | None = None
    ) -> HeadSwapAnalysis:
        """One analyze call per distinct video_url; every job with that URL waits for it.

        ``known_id``: an analysis of this video recorded by an earlier run (journal); it is
        fetched and reused if it still exists and succeeded, else the video is analysed anew.
        """
        share = self._analyses.get(video_url)
        if share is None:
            share = self._analyses[video_url] = _AnalysisShare()
            while len(self._analyses) > ANALYSIS_CACHE_SIZE:
                self._analyses.popitem(last=False)
            head_swap = self._client.head_swap
            try:
                reused = None if known_id is None else await self._reusable(known_id, video_url)
                if reused is not None:
                    share.outcome = reused
                else:
                    await _hold(self._create_limiter)
                    try:
                        analysis = await head_swap.analyze(video_url)
                    finally:
                        self._create_limiter.release()
                    share.outcome = await self._await_terminal(
                        analysis.id, "analysis", head_swap.get_analysis
                    )
            except AkoolError as err:
                share.outcome = err
            finally:
                share.event.set()
        else:
            self._analyses.move_to_end(video_url)
            await share.event.wait()
        outcome = share.outcome
        if isinstance(outcome, AkoolError):
            raise outcome
        assert outcome is not None
        if outcome.status is TaskStatus.FAILED:
            raise TaskFailedError(
                f"head-swap analysis of {video_url} failed: {outcome.failure_reason}",
                result=outcome,
                task_id=outcome.id,
            )
        return outcome

    async def _reusable(self, analysis_id: str, video_url: str) -> HeadSwapAnalysis | None:
        """The earlier run's analysis if it finished well for this very URL, else None."""
        try:
            analysis: HeadSwapAnalysis = await self._await_terminal(
                analysis_id, "analysis", self._client.head_swap.get_analysis
            )
        except AkoolError as err:
            _logger.info("analysis %s from the journal is unusable (%s): analysing again",
                         analysis_id, type(err).__name__)
            return None
        if analysis.status is not TaskStatus.COMPLETED or analysis.video_url != video_url:
            return None
        _logger.debug("reusing analysis %s of %s from the journal", analysis_id, video_url)
        return analysis

    async def _await_terminal(self, task_id: str, kind: str, poll: Any) -> Any:
        """Wait (through the scheduler) for a terminal value of ``task_id``."""
        done = anyio.Event()
        box: list[Any] = []

        def on_done(value: Any) -> None:
            box.append(value)
            done.set()

        if self._scheduler.is_watching(task_id):
            raise ResponseError(
                f"Akool returned {kind} id {task_id} that this batch already waits for",
                task_id=task_id,
            )
        self._scheduler.watch(task_id, kind=kind, poll=poll, on_done=on_done)
        await done.wait()
        value = box[0]
        if isinstance(value, AkoolError):
            raise value
        return value

    def _done(self, running: _Running, value: Any) -> None:
        """A watched job reached its end (terminal result, or an error such as a deadline)."""
        journal = self._journal
        if (
            journal is None
            and self._downloader is None
            and not isinstance(value, AkoolError)
            and value.status is _COMPLETED
        ):
            # The common end (every job's, in bulk): a result to hand out as is.
            outcome = Outcome(
                key=running.key,
                job=running.request,
                result=value,
                error=None,
                task_id=running.task_id,
                path=None,
                download_error=None,
            )
            self._emit(outcome, running.handle, "running")
            return
        outcome = self._outcome_for(running.key, running.request, running.task_id, value)
        if journal is None and (self._downloader is None or not outcome.ok):
            self._emit(outcome, running.handle, "running")
        else:
            assert self._tg is not None
            self._tg.start_soon(self._finish_async, journal, outcome, value, running.handle)

    def _outcome_for(self, key: str, request: Request, task_id: str, value: Any) -> Outcome:
        if isinstance(value, AkoolError):
            return Outcome(key=key, job=request, error=value, task_id=task_id)
        if value.status is TaskStatus.FAILED:
            err = TaskFailedError(
                f"task failed: {value.failure_reason or 'no reason given'}",
                result=value,
                task_id=task_id,
            )
            return Outcome(key=key, job=request, error=err, task_id=task_id)
        return Outcome(key=key, job=request, result=value, task_id=task_id)

    # -- outcomes -------------------------------------------------------------------------

    def _emit(self, outcome: Outcome, handle: JobHandle | None, source: str | None) -> None:
        """Deliver a job's one outcome; ``source`` is the state it leaves (None: none)."""
        self._outstanding -= 1
        if outcome.error is None:
            credits = getattr(outcome.result, "credits", None)
            if isinstance(credits, (int, float)):
                self._credits += credits
            self._move(source, "completed")
        elif isinstance(outcome.error, SubmissionUncertainError):
            self._move(source, "uncertain")
        else:
            self._move(source, "failed")
        if handle is not None:
            handle._outcome = outcome
            handle._token = self._queue.put(handle)
            handle._event.set()
        else:
            self._queue.put(outcome)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self._intake_open and self._outstanding == 0:
            self._queue.close()

    def __aiter__(self) -> AsyncIterator[Outcome]:
        return self

    async def __anext__(self) -> Outcome:
        if self._state != "open":
            raise ClientStateError("iterate a batch inside its `async with` block")
        queue = self._queue
        while True:
            # Outcomes usually arrive in bursts: take a waiting one without a coroutine.
            item = queue.get_nowait()
            if item is None:
                try:
                    item = await queue.get()
                except anyio.EndOfStream:
                    raise StopAsyncIteration from None
            if isinstance(item, JobHandle):
                if item.consumed:
                    continue
                return item._consume()
            self._slots.release()
            return item

    # -- progress -------------------------------------------------------------------------

    def _move(self, source: str | None, target: str | None) -> None:
        """One job changes state: both counts move together, then progress hears of it."""
        counts = self._counts
        if source is not None:
            counts[source] -= 1
        if target is not None:
            counts[target] += 1
        if self._progress is not None:
            self._progress(self.stats)

    @property
    def stats(self) -> BatchStats:
        """Counts per state and credits charged so far."""
        c = self._counts
        return BatchStats(
            pending=c["pending"],
            submitting=c["submitting"],
            running=c["running"],
            completed=c["completed"],
            failed=c["failed"],
            uncertain=c["uncertain"],
            credits=self._credits,
        )


class _Running:
    """A created job while the scheduler polls it; called once with its terminal value.

    One small object per job instead of a closure (a function, its cells and their tuple):
    ten thousand running jobs are ten thousand of these.
    """

    __slots__ = ("batch", "handle", "key", "request", "task_id")

    def __init__(
        self, batch: Batch, key: str, request: Request, task_id: str, handle: JobHandle | None
    ) -> None:
        self.batch = batch
        self.key = key
        self.request = request
        self.task_id = task_id
        self.handle = handle

    def __call__(self, value: Any) -> None:
        self.batch._done(self, value)


async def _receive(todo: MemoryObjectReceiveStream[_Todo]) -> _Todo | None:
    """The next submitted job (None once the batch is closing), without an event-loop turn
    when one is already queued."""
    try:
        return todo.receive_nowait()
    except anyio.WouldBlock:
        try:
            return await todo.receive()
        except anyio.EndOfStream:
            return None
    except anyio.EndOfStream:
        return None


async def _acquire(semaphore: anyio.Semaphore) -> None:
    """``semaphore.acquire()`` without its event-loop turn when a token is free.

    anyio's ``acquire()`` always checkpoints; on the hot path of every job that turn costs
    more than the rest of the bookkeeping. The slow path still waits (and checkpoints).
    """
    try:
        semaphore.acquire_nowait()
    except anyio.WouldBlock:
        await semaphore.acquire()


async def _hold(limiter: anyio.CapacityLimiter) -> None:
    """``limiter.acquire()`` without anyio's shielded checkpoint when a token is free.

    Same bound, same borrower (the current task); only the extra event-loop turn of
    ``CapacityLimiter.acquire()`` is saved on the uncontended path. Release it with
    ``limiter.release()`` in a ``finally``.
    """
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()


def _size_bucket(request: Request) -> tuple[str, int]:
    """Jobs of similar size take similar time: resolution and a log2 class of the duration."""
    duration = getattr(request, "duration", None)
    size = -1 if duration is None else int(math.log2(max(1.0, float(duration))))
    return (request.resolution, size)


#: What _Source.next() returns once the input is exhausted.
_END: Any = object()
#: What _Source.next_nowait() returns for an async input: await next() instead.
_AWAIT: Any = object()


class _Source:
    """The batch's input, sync or async, shared by the create workers.

    A plain iterator is advanced inline (no event-loop turn); an async one under a lock,
    because an async generator refuses a second ``__anext__`` while one is running.
    """

    __slots__ = ("_async", "_lock", "_sync", "exhausted")

    def __init__(self, jobs: JobSource) -> None:
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if isinstance(jobs, AsyncIterable):
            self._async = aiter(jobs)
        else:
            self._sync = iter(jobs)
        self._lock = anyio.Lock()
        self.exhausted = False

    def next_nowait(self) -> Any:
        """The next item of a plain iterator, or :data:`_END` (then and ever after);
        :data:`_AWAIT` for an async input."""
        if self._sync is None:
            return _AWAIT
        if not self.exhausted:
            item = next(self._sync, _END)
            if item is not _END:
                return item
            self.exhausted = True
        return _END

    async def next(self) -> Any:
        """The next item, or :data:`_END` (then and ever after)."""
        if self._sync is not None:
            return self.next_nowait()
        assert self._async is not None
        async with self._lock:
            if not self.exhausted:
                try:
                    return await self._async.__anext__()
                except StopAsyncIteration:
                    self.exhausted = True
            return _END
