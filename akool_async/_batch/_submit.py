"""Submission: creates under the concurrency cap, with the journal writes around them.

With a journal a job is marked ``sending`` (committed) just before its create leaves and
``created`` with its id right after the answer: a kill in between leaves ``sending``, which
a rerun reports as uncertain instead of paying twice. Head swaps first wait for their
video's analysis, shared by every job of the batch with the same ``video_url``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs

from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._errors import (
    AkoolError,
    BatchAbortedError,
    FaceMappingError,
    JournalError,
    RateLimitError,
    SubmissionUncertainError,
    TaskFailedError,
)
from akool_async._journal import JobRecord, JobState, Journal
from akool_async._models import HeadSwap, HeadSwapAnalysis, TaskStatus

from ._outcomes import Request
from ._recovery import BatchStop, StoreGuard
from ._resume import uncertain_from_earlier_run

if TYPE_CHECKING:
    from akool_async._client import AkoolClient

__all__ = ["SharedAnalyses", "Submitter", "check_faces"]

#: A create refused for rate (proving no task) is re-queued at most this many times.
MAX_THROTTLED_CREATES = 50
#: Completed head-swap analyses kept for reuse by later jobs with the same video_url.
ANALYSIS_CACHE_SIZE = 1024

_logger = logging.getLogger("akool_async")

#: Waits (through the batch's scheduler) for a terminal value of an id of a kind.
WaitTerminal = Callable[[str, str, Callable[[str], Awaitable[Any]]], Awaitable[Any]]


class Submitter:
    """Sends creates: at most ``concurrency`` creates and analyses at once.

    With a journal, ``sending`` is written inside the create's ``before_send`` hook (pacing
    slot taken, body encoded, a connection held, bytes about to go), so a job stopped while
    it waited for its turn or for a connection was not sent and stays ``pending``.
    Store writes go through ``guard``: a failure after a create keeps the paid id
    (recovery file) and stops intake.
    """

    def __init__(
        self,
        client: AkoolClient,
        *,
        concurrency: int,
        journal: Journal | None,
        webhook_url: str | None,
        resubmit_uncertain: bool,
        guard: StoreGuard,
        stop: BatchStop,
    ) -> None:
        self._client = client
        self.limiter = anyio.CapacityLimiter(concurrency)
        self._journal = journal
        self._webhook_url = webhook_url
        self._resubmit_uncertain = resubmit_uncertain
        self._guard = guard
        self._stop = stop

    async def begin(self, journal: Journal, key: str, request: Request) -> JobRecord:
        """The job's stored record (created ``pending`` when new)."""
        call = journal.begin(
            key,
            kind="head_swap" if isinstance(request, HeadSwap) else "character_swap",
            fingerprint=request_fingerprint(request),
            request=request_to_dict(request),
        )
        return await self._guard.write(call, key=key, step="the new job")

    async def left_uncertain(
        self, journal: Journal, request: Request, record: JobRecord
    ) -> SubmissionUncertainError:
        """The error for a create an earlier run sent unanswered (recorded as uncertain)."""
        err = uncertain_from_earlier_run(request, record.error)
        if record.state is JobState.SENDING:
            await self._guard.write(
                journal.mark_uncertain(record.key, err), key=record.key, step="uncertain"
            )
        return err

    async def create(self, key: str, request: Request, *, retry_failed: bool = False) -> str:
        """Create the job's task and return its id; re-send a create refused for rate.

        ``retry_failed``: the stored job is ``failed`` (its task failed) and is sent again.
        """
        if self._webhook_url is not None and request.webhook_url is None:
            request = attrs.evolve(request, webhook_url=self._webhook_url)
        last: RateLimitError | None = None
        for _attempt in range(MAX_THROTTLED_CREATES):
            self._stop.check()
            async with self.limiter:
                try:
                    return await self._create_once(key, request, retry_failed)
                except RateLimitError as err:
                    # 429/1005 prove no task was created: safe to send again once the
                    # client's pacer (which has slowed down) gives the next turn.
                    last = err
                    retry_failed = False  # the record is `rejected` now
        assert last is not None
        raise last

    async def _create_once(self, key: str, request: Request, retry_failed: bool) -> str:
        journal = self._journal
        marked = False

        async def before_send() -> None:
            # Runs once a connection is held, right before the bytes go; raising sends nothing.
            nonlocal marked
            self._stop.check()  # the batch stopped while this job waited for its turn
            if journal is None or marked:
                return  # a resend of a create proven not to have created anything
            await self._mark_sending(journal, key, retry_failed)
            marked = True
            try:
                await anyio.lowlevel.checkpoint_if_cancelled()
            except anyio.get_cancelled_exc_class():
                # Cancelled between the write and the send: nothing left, say so.
                with anyio.CancelScope(shield=True):
                    await self._guard.write(
                        journal.mark_rejected(key, _cancelled_before_send()),
                        key=key,
                        step="a create cancelled before sending",
                    )
                raise

        resource: Any = (
            self._client.head_swap if isinstance(request, HeadSwap) else self._client.character_swap
        )
        try:
            task = await resource.create(request, before_send=before_send)
        except RateLimitError as err:
            if journal is not None and marked:
                await self._guard.write(
                    journal.mark_rejected(key, err), key=key, step="a create refused for rate"
                )
            raise
        task_id: str = task.id
        if journal is not None:
            # The id is paid for: record it even if we are being cancelled.
            with anyio.CancelScope(shield=True):
                await self._guard.write(
                    journal.mark_created(key, task_id),
                    key=key,
                    step="created",
                    task_id=task_id,
                    request=request_to_dict(request),
                )
        return task_id

    async def _mark_sending(self, journal: Journal, key: str, retry_failed: bool) -> None:
        if retry_failed:
            call = journal.mark_sending(key, retry_failed=True)
        else:
            call = journal.mark_sending(key, resubmit_uncertain=self._resubmit_uncertain)
        await self._guard.write(call, key=key, step="the intent to send")

    async def record_failure(self, key: str, err: AkoolError) -> None:
        """A job ended before it had a task id: record why (uncertain, or rejected).

        Nothing is written for a job the batch did not send (it stays ``pending``) nor
        when the store itself failed.
        """
        journal = self._journal
        if journal is None or isinstance(err, (BatchAbortedError, JournalError)):
            return
        guard = self._guard
        record = await guard.write(journal.get(key), key=key, step="a lookup")
        if record is None or record.state in (JobState.UNCERTAIN, JobState.REJECTED):
            return
        if isinstance(err, SubmissionUncertainError):
            if record.state is JobState.SENDING:
                await guard.write(journal.mark_uncertain(key, err), key=key, step="uncertain")
        elif record.state in (JobState.PENDING, JobState.SENDING):
            await guard.write(journal.mark_rejected(key, err), key=key, step="a rejection")


def _cancelled_before_send() -> BatchAbortedError:
    return BatchAbortedError("not sent: the batch was cancelled before this create left")


class _Share:
    """One analysis shared by the jobs with the byte-identical video_url."""

    def __init__(self) -> None:
        self.ready = anyio.Event()
        self.outcome: HeadSwapAnalysis | AkoolError | None = None


class SharedAnalyses:
    """One analyze call per distinct video_url; every job with that URL waits for it."""

    def __init__(
        self, client: AkoolClient, limiter: anyio.CapacityLimiter, wait_terminal: WaitTerminal
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._wait_terminal = wait_terminal
        self._shares: OrderedDict[str, _Share] = OrderedDict()

    async def get(self, video_url: str, known_id: str | None = None) -> HeadSwapAnalysis:
        """The finished analysis of ``video_url``; ``known_id`` is one an earlier run made
        (reused if it still exists and succeeded). Raises if the analysis failed."""
        share = self._shares.get(video_url)
        if share is None:
            share = self._shares[video_url] = _Share()
            while len(self._shares) > ANALYSIS_CACHE_SIZE:
                self._shares.popitem(last=False)
            try:
                share.outcome = await self._analyse(video_url, known_id)
            except AkoolError as err:
                share.outcome = err
            finally:
                share.ready.set()
        else:
            self._shares.move_to_end(video_url)
            await share.ready.wait()
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

    async def _analyse(self, video_url: str, known_id: str | None) -> HeadSwapAnalysis:
        head_swap = self._client.head_swap
        if known_id is not None:
            reused = await self._reusable(known_id, video_url)
            if reused is not None:
                return reused
        async with self._limiter:
            analysis = await head_swap.analyze(video_url)
        finished: HeadSwapAnalysis = await self._wait_terminal(
            analysis.id, "analysis", head_swap.get_analysis
        )
        return finished

    async def _reusable(self, analysis_id: str, video_url: str) -> HeadSwapAnalysis | None:
        """The earlier run's analysis if it finished well for this very URL, else None."""
        try:
            analysis: HeadSwapAnalysis = await self._wait_terminal(
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


def check_faces(request: HeadSwap, analysis: HeadSwapAnalysis) -> None:
    """Raise FaceMappingError when the request maps a face the analysis did not detect."""
    detected = analysis.obj_ids
    missing = [f.obj_id for f in request.faces if f.obj_id not in detected]
    if missing:
        raise FaceMappingError(missing, detected, request.video_url)
