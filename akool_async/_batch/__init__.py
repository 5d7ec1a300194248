"""Bulk submission: a pipeline of stages, wired together by :class:`Batch`.

::

    intake (lazy pull, in-flight slots)            _intake.py
      -> [resume policy: replay / resume / report]  _resume.py
      -> submission (concurrency, journal, create)  _submit.py
      -> scheduler (heap of due polls, estimate)    _scheduler.py, _estimate.py
      -> completion (journal write, download)       _complete.py
      -> outcome stream (completion order)          _outcomes.py
    stop switch, recovery file of paid ids          _recovery.py
    balance preflight (estimate vs credit)          _preflight.py

All tasks live in one anyio task group owned by the batch: ``concurrency`` create workers,
the scheduler, and short tasks for head swaps waiting on their analysis and for
completions that write or download. Exactly one :class:`Outcome` per job; a job's failure
is a value, only bugs and cancellation propagate. Leaving the ``async with`` block early
cancels every local task; tasks already created keep running on Akool's side (with a
journal, a later run resumes them).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
import attrs
from anyio.abc import TaskGroup

from akool_async._config import PollPolicy
from akool_async._converters import request_kind
from akool_async._download import Downloader
from akool_async._errors import (
    AkoolError,
    BatchAbortedError,
    ClientStateError,
    JournalError,
    ResponseError,
    SubmissionUncertainError,
    TaskFailedError,
    ValidationError,
)
from akool_async._journal import Journal
from akool_async._models import CharacterSwap, HeadSwap, Job
from akool_async._store import JobLeasedError, JobRecord, JobState, StoreSpec, open_store

from ._complete import Completion, outcome_for
from ._estimate import AdaptiveTiming, size_bucket
from ._fleet import FleetMember
from ._intake import Intake, JobSource, Todo
from ._outcomes import BatchStats, JobHandle, Outcome, OutcomeStream, Request
from ._preflight import BalanceCheck, check_balance
from ._recovery import RECOVERY_SUFFIX, BatchStop, RecoveryLog, StoreGuard, stops_intake
from ._resume import ResumeAction, resume_action
from ._scheduler import PollScheduler
from ._submit import SharedAnalyses, Submitter, check_faces

if TYPE_CHECKING:
    from akool_async._api import Api
    from akool_async._client import AkoolClient
    from akool_async.webhooks import WebhookEvent, WebhookReceiver

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "BalanceCheck",
    "Batch",
    "BatchStats",
    "JobHandle",
    "JobSource",
    "Outcome",
    "check_balance",
]

#: Jobs in flight (pulled from the input, outcome not yet consumed) by default.
DEFAULT_MAX_IN_FLIGHT = 10_000

_STATES = ("pending", "submitting", "running", "completed", "failed", "uncertain")


@attrs.define(eq=False)
class _Job:
    """One job in the batch, and the progress state it is counted in (None: not yet)."""

    key: str
    request: Request
    handle: JobHandle
    state: str | None = None
    submitted: bool = False  # given to submit(): its caller waits on the handle


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
        journal: StoreSpec | None = None,
        resubmit_uncertain: bool = False,
        retry_failed: bool = False,
        webhook_url: str | None = None,
        webhooks: WebhookReceiver | None = None,
        downloader: Downloader | None = None,
        timing: AdaptiveTiming | None = None,
        api: Api | None = None,
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
        if webhook_url is not None:
            # Validate like a request field, before anything is sent.
            CharacterSwap("https://x.invalid/i.png", "https://x.invalid/v.mp4",
                          webhook_url=webhook_url)
        self._client = client
        self._concurrency = concurrency
        self._deadline = deadline
        self._policy = poll or client.poll_policy
        self._clock = client.clock
        self._progress = progress
        self._journal_spec = journal
        self._journal: Journal | None = None
        self._resubmit_uncertain = resubmit_uncertain
        self._retry_failed = retry_failed
        self._stop = BatchStop()
        self._guard = StoreGuard(self._stop, RecoveryLog(None))
        self._running: dict[str, str] = {}  # key -> task id: created, no outcome yet
        self._webhook_url = webhook_url
        self._webhooks = webhooks
        self._downloader = downloader
        self._intake = Intake(jobs, max_in_flight)
        self._stream = OutcomeStream(self._intake.release_slot, self._clock)
        # Pacing (every request, AIMD on 429/1005) is the client's: one budget per API key.
        self._scheduler = PollScheduler(self._policy, self._clock, timing=timing)
        self._state: Literal["new", "open", "closed"] = "new"
        self._intake_open = True
        self._outstanding = 0
        self._counts: Counter[str] = Counter()
        self._credits = 0.0
        self._replayed = 0
        self._keys: set[str] = set()
        self._tg: TaskGroup | None = None
        self._owns_journal = False
        self._api = api  # a fleet shares its request budget through it
        self._fleet: FleetMember[_Job] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Batch:
        if self._state != "new":
            raise ClientStateError("a Batch can be entered only once")
        self._state = "open"
        spec = self._journal_spec
        if spec is not None:
            try:
                # Bound to this account and server: another one is refused before any create.
                store = await open_store(
                    spec, account=self._client.account_digest, base_url=self._client.base_url
                )
            except BaseException:
                # Nothing started: release what __init__ made, then report the journal.
                self._state = "closed"
                self._intake.discard()
                self._stream.close()
                raise
            # Stages are typed against the SQLite Journal; other JobStores quack alike.
            self._journal = cast("Journal", store)
            self._owns_journal = store is not spec
            if isinstance(store, Journal):
                self._guard.recovery.path = Path(store.path + RECOVERY_SUFFIX)
        self._submitter = Submitter(
            self._client,
            concurrency=self._concurrency,
            journal=self._journal,
            webhook_url=self._webhook_url,
            resubmit_uncertain=self._resubmit_uncertain,
            guard=self._guard,
            stop=self._stop,
        )
        self._analyses = SharedAnalyses(
            self._client, self._submitter.limiter, self._wait_terminal
        )
        self._completion = Completion(
            self._clock, self._journal, self._downloader, self._guard, self._stop
        )
        self._unsubscribe = (
            None if self._webhooks is None else self._webhooks.add_listener(self._on_webhook)
        )
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._scheduler.run)
        if FleetMember.wants(self._journal):
            self._fleet = FleetMember(self._journal, self._scheduler, self._clock, self._api)  # type: ignore[arg-type]
            await tg.start(self._fleet.run, self._run_job, self._settled_elsewhere)
        for _ in range(self._concurrency):
            tg.start_soon(self._create_worker)
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        assert self._tg is not None
        # Local work ends with the block: the scheduler runs forever by design, and an
        # early exit must not leave intake or polls running.
        self._tg.cancel_scope.cancel()
        self._state = "closed"
        try:
            return await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]
        finally:
            self._intake.discard()
            self._stream.close()
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            if self._owns_journal and self._journal is not None:
                with anyio.CancelScope(shield=True):
                    await self._journal.aclose()

    def unfinished(self) -> list[tuple[str, str]]:
        """``(key, task_id)`` of every job created (paid) whose outcome is not out yet.

        After an interrupt, these are the ids a caller without a journal must keep (e.g.
        write to its results file) to find the tasks again.
        """
        return list(self._running.items())

    @property
    def recovery_path(self) -> Path | None:
        """``<journal path>.recovery.jsonl``: paid task ids the journal could not record
        are appended there (None without a journal file). Absent while nothing failed."""
        return self._guard.recovery.path

    @property
    def stopped(self) -> BatchAbortedError | None:
        """The shared error of jobs not sent once the batch stopped intake, or None."""
        return self._stop.error

    def close(self) -> None:
        """No more submissions: iteration ends once every submitted job has its outcome."""
        self._intake_open = False
        self._intake.close()
        if self._fleet is not None:
            self._fleet.input_done()
        self._maybe_finish()

    # -- intake ---------------------------------------------------------------------------

    async def submit(self, job: Request | Job, *, key: str | None = None) -> JobHandle:
        """Submit one job (waits while ``max_in_flight`` outcomes are unconsumed)."""
        if self._state != "open" or self._intake.from_iterable:
            raise ClientStateError(
                "submit() needs an open batch created without a jobs iterable: "
                "`async with client.batch() as batch: await batch.submit(job)`"
            )
        if not self._intake_open:
            raise ClientStateError("this batch was closed: no more submissions")
        request, job_key = self._intake.unpack(job, key)
        await self._intake.take_slot()
        handle = self._stream.new_handle(job_key)
        self._enter()
        self._intake.queue(Todo(key=job_key, job=job, request=request, handle=handle))
        return handle

    def _enter(self) -> None:
        """A job entered the batch: counted outstanding and pending."""
        self._outstanding += 1
        self._move(None, "pending")

    async def _create_worker(self) -> None:
        """Take jobs one at a time and create them (head swaps wait in a task of their own)."""
        while True:
            if self._fleet is not None and self._intake.from_iterable:
                todo = await self._fleet.next_unheld(self._intake.next_job, self._leave_held)
            else:
                todo = await self._intake.next_job()
            if todo is None:
                if self._intake.from_iterable and self._intake_open:
                    self._intake_open = False
                    if self._fleet is not None:
                        self._fleet.input_done()
                    self._maybe_finish()
                return
            if todo.request is None:
                # Not a job at all: report it as this position's outcome and go on.
                job = _Job(todo.key, todo.job, self._stream.new_handle(todo.key))  # type: ignore[arg-type]
                self._outstanding += 1
                self._emit(job, Outcome(key=todo.key, job=todo.job, error=todo.error))  # type: ignore[arg-type]
                continue
            if todo.handle is None:
                self._enter()
            handle = todo.handle or self._stream.new_handle(todo.key)
            job = _Job(
                todo.key, todo.request, handle, state="pending", submitted=todo.handle is not None
            )
            if isinstance(job.request, HeadSwap):
                # Its shared analysis may take minutes: do not hold a create worker.
                assert self._tg is not None
                self._tg.start_soon(self._run_job, job)
            else:
                await self._run_job(job)

    def _leave_held(self, todo: Todo) -> None:
        """A job another live member holds: theirs to report, unless they die first."""
        assert self._fleet is not None
        assert todo.request is not None
        self._enter()
        handle = self._stream.new_handle(todo.key)
        self._fleet.leave(todo.key, _Job(todo.key, todo.request, handle, state="pending"))

    # -- one job --------------------------------------------------------------------------

    async def _run_job(self, job: _Job) -> None:
        """Resume or create the job's task, then leave it to the scheduler."""
        deadline = None if self._deadline is None else self._clock.monotonic() + self._deadline
        try:
            stop = self._stop.error
            if stop is not None and (self._journal is None or not stops_intake(stop.cause)):
                # Stopped: the job ends at once, nothing sent. (With a journal and a refusal
                # by Akool, jobs an earlier run finished or created are still replayed or
                # polled; only their creates are refused, in _task_id_for.)
                raise stop
            with job.handle.activity.current(request_kind(job.request)):
                task_id = await self._task_id_for(job)
        except JobLeasedError:
            # Another live member of the fleet owns this key: its outcome is theirs.
            assert self._fleet is not None
            self._keys.discard(job.key)
            self._fleet.leave(job.key, job, submitted=job.submitted)
            return
        except AkoolError as err:
            if stops_intake(err):
                self._stop.stop(err)
            with contextlib.suppress(JournalError):  # the store failed: the outcome still goes
                await self._submitter.record_failure(job.key, err)
            paid = err.task_id if isinstance(err, JournalError) else None
            self._emit(job, Outcome(key=job.key, job=job.request, error=err, task_id=paid))
            return
        if task_id is not None:
            if self._fleet is not None and self._policy.adaptive:
                kind = "head_swap" if isinstance(job.request, HeadSwap) else "character_swap"
                await self._fleet.seed((kind, size_bucket(job.request)))
            self._watch(job, task_id, deadline)

    async def _task_id_for(self, job: _Job) -> str | None:
        """The job's task id: resumed from the journal or freshly created (None: the job
        already has its outcome, replayed from the journal)."""
        journal = self._journal
        known_analysis: str | None = None
        if journal is not None:
            if job.key in self._keys:
                raise ValidationError("Job.key", f"duplicate key {job.key!r} in this batch")
            self._keys.add(job.key)
            record = await self._submitter.begin(journal, job.key, job.request)
            known_analysis = record.analysis_id
            action = resume_action(
                record.state,
                resubmit_uncertain=self._resubmit_uncertain,
                retry_failed=self._retry_failed,
                task_failed=isinstance(record.error, TaskFailedError),
            )
            if action in (ResumeAction.REPLAY, ResumeAction.RESUME_POLLING):
                job.handle.activity.from_journal(record, replayed=action is ResumeAction.REPLAY)
            if action is ResumeAction.REPLAY:
                self._emit(job, await self._completion.replay(job.key, job.request, record))
                return None
            if action is ResumeAction.RESUME_POLLING:
                assert record.task_id is not None
                return record.task_id
            if action in (ResumeAction.REPORT_UNCERTAIN, ResumeAction.RESEND_UNCERTAIN):
                uncertain = await self._submitter.left_uncertain(journal, job.request, record)
                if action is ResumeAction.REPORT_UNCERTAIN:
                    raise uncertain
            retry = action is ResumeAction.RETRY_FAILED
        else:
            retry = False
        self._stop.check()
        if isinstance(job.request, HeadSwap):
            analysis = await self._analyses.get(job.request.video_url, known_analysis)
            if journal is not None and analysis.id != known_analysis and not retry:
                # A resumed run reuses it instead of analysing the video again.
                await self._guard.write(
                    journal.set_analysis_id(job.key, analysis.id), key=job.key, step="analysis"
                )
            check_faces(job.request, analysis)
        self._move(job, "submitting")
        return await self._submitter.create(job.key, job.request, retry_failed=retry)

    def _watch(self, job: _Job, task_id: str, deadline: float | None) -> None:
        """Hand the created task to the scheduler; it calls back with the terminal value."""
        if self._scheduler.is_watching(task_id):
            # Akool answered two creates with one task id: this job's task cannot be told
            # apart from the other's. Never resend it; say so instead of hanging forever.
            clash = SubmissionUncertainError(
                f"Akool returned task id {task_id} for this job and for another job of this "
                "batch; this job's own task (if any) cannot be identified and was not resent",
                request=job.request,
                task_id=task_id,
            )
            self._emit(job, Outcome(key=job.key, job=job.request, error=clash, task_id=task_id))
            return
        self._move(job, "running")
        self._running[job.key] = task_id
        is_head = isinstance(job.request, HeadSwap)
        resource: Any = self._client.head_swap if is_head else self._client.character_swap

        def on_done(value: Any) -> None:
            self._done(job, task_id, value)

        self._scheduler.watch(
            task_id,
            kind="head_swap" if is_head else "character_swap",
            bucket=size_bucket(job.request) if self._policy.adaptive else None,
            poll=job.handle.activity.bind(resource.get),
            on_done=on_done,
            deadline=deadline,
            webhook=self._webhooks is not None
            or (self._fleet is not None and self._webhook_url is not None),
        )
        if self._fleet is not None and self._webhook_url is not None:
            self._fleet.watching(task_id)
        if self._webhooks is not None:
            # The webhook may have beaten the create's answer: look at what already arrived.
            early = self._webhooks.recent(task_id)
            if early is not None and early.is_terminal:
                self._scheduler.poll_now(task_id)

    def _done(self, job: _Job, task_id: str, value: Any) -> None:
        """The scheduler's callback: a terminal result, or an error such as a deadline."""
        outcome = outcome_for(job.key, job.request, task_id, value)
        if not self._completion.needs_io(outcome):
            self._emit(job, outcome)
            return
        assert self._tg is not None
        self._tg.start_soon(self._finish, job, outcome, value)

    async def _finish(self, job: _Job, outcome: Outcome, value: Any) -> None:
        self._emit(job, await self._completion.finish(outcome, value))

    async def _wait_terminal(
        self, task_id: str, kind: str, poll: Callable[[str], Awaitable[Any]]
    ) -> Any:
        """Wait (through the scheduler) for a terminal value of ``task_id``."""
        if self._scheduler.is_watching(task_id):
            raise ResponseError(
                f"Akool returned {kind} id {task_id} that this batch already waits for",
                task_id=task_id,
            )
        done = anyio.Event()
        box: list[Any] = []

        def on_done(value: Any) -> None:
            box.append(value)
            done.set()

        self._scheduler.watch(task_id, kind=kind, poll=poll, on_done=on_done)
        await done.wait()
        if isinstance(box[0], AkoolError):
            raise box[0]
        return box[0]

    def _on_webhook(self, event: WebhookEvent) -> None:
        # The event says "done"; one poll fetches the whole result (credits, reasons ...).
        if event.is_terminal:
            self._scheduler.poll_now(event.id)

    # -- outcomes -------------------------------------------------------------------------

    async def _settled_elsewhere(self, job: _Job, record: JobRecord) -> None:
        """Another member of the fleet gave ``job`` its outcome (``record``): a submitted
        job's handle gets it from the store (replayed); any other job leaves this batch."""
        if job.submitted:
            job.handle.activity.from_journal(record, replayed=True)
            if record.state in (JobState.COMPLETED, JobState.FAILED):
                outcome = await self._completion.replay(job.key, job.request, record)
            else:
                error = record.error or JournalError(f"job {job.key!r} ended {record.state}")
                outcome = Outcome(key=job.key, job=job.request, error=error, task_id=record.task_id)
            self._emit(job, outcome)
            return
        self._outstanding -= 1
        if job.state is not None:
            self._counts[job.state] -= 1
        self._intake.release_slot()
        self._maybe_finish()

    def _emit(self, job: _Job, outcome: Outcome) -> None:
        """Deliver the job's one outcome."""
        self._outstanding -= 1
        self._running.pop(job.key, None)
        self._replayed += job.handle.activity.replayed
        if outcome.error is None:
            credits = getattr(outcome.result, "credits", None)
            if isinstance(credits, (int, float)) and not job.handle.activity.replayed:
                self._credits += credits
            self._move(job, "completed")
        elif isinstance(outcome.error, SubmissionUncertainError):
            self._move(job, "uncertain")
        else:
            self._move(job, "failed")
        self._stream.deliver(job.handle, outcome)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self._intake_open and self._outstanding == 0:
            self._stream.close()

    def __aiter__(self) -> AsyncIterator[Outcome]:
        return self

    async def __anext__(self) -> Outcome:
        if self._state != "open":
            raise ClientStateError("iterate a batch inside its `async with` block")
        try:
            return await self._stream.next()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    # -- progress -------------------------------------------------------------------------

    def _move(self, job: _Job | None, target: str) -> None:
        """One job changes state: both counts move together, then progress hears of it."""
        if job is not None:
            if job.state is not None:
                self._counts[job.state] -= 1
            job.state = target
        self._counts[target] += 1
        if self._progress is not None:
            self._progress(self.stats)

    @property
    def stats(self) -> BatchStats:
        """Counts per state, credits charged in this run, replayed outcomes, webhooks."""
        hooks = None if self._webhooks is None else self._webhooks.stats
        return BatchStats(
            **{s: self._counts[s] for s in _STATES},
            credits=self._credits,
            replayed=self._replayed,
            webhooks_accepted=0 if hooks is None else hooks.accepted,
            webhooks_rejected=0 if hooks is None else hooks.rejected,
        )
