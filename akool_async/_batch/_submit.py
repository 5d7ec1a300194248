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
import attrs

from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._errors import (
    AkoolError,
    FaceMappingError,
    RateLimitError,
    SubmissionUncertainError,
    TaskFailedError,
)
from akool_async._journal import JobRecord, JobState, Journal
from akool_async._models import HeadSwap, HeadSwapAnalysis, TaskStatus

from ._outcomes import Request
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
    """Sends creates: at most ``concurrency`` creates and analyses at once."""

    def __init__(
        self,
        client: AkoolClient,
        *,
        concurrency: int,
        journal: Journal | None,
        webhook_url: str | None,
        resubmit_uncertain: bool,
    ) -> None:
        self._client = client
        self.limiter = anyio.CapacityLimiter(concurrency)
        self._journal = journal
        self._webhook_url = webhook_url
        self._resubmit_uncertain = resubmit_uncertain

    async def begin(self, journal: Journal, key: str, request: Request) -> JobRecord:
        """The job's stored record (created ``pending`` when new)."""
        return await journal.begin(
            key,
            kind="head_swap" if isinstance(request, HeadSwap) else "character_swap",
            fingerprint=request_fingerprint(request),
            request=request_to_dict(request),
        )

    async def left_uncertain(
        self, journal: Journal, request: Request, record: JobRecord
    ) -> SubmissionUncertainError:
        """The error for a create an earlier run sent unanswered (recorded as uncertain)."""
        err = uncertain_from_earlier_run(request, record.error)
        if record.state is JobState.SENDING:
            await journal.mark_uncertain(record.key, err)
        return err

    async def create(self, key: str, request: Request) -> str:
        """Create the job's task and return its id; re-send a create refused for rate."""
        if self._webhook_url is not None and request.webhook_url is None:
            request = attrs.evolve(request, webhook_url=self._webhook_url)
        last: RateLimitError | None = None
        for _attempt in range(MAX_THROTTLED_CREATES):
            async with self.limiter:
                try:
                    return await self._create_once(key, request)
                except RateLimitError as err:
                    # 429/1005 prove no task was created: safe to send again once the
                    # client's pacer (which has slowed down) gives the next turn.
                    last = err
        assert last is not None
        raise last

    async def _create_once(self, key: str, request: Request) -> str:
        journal = self._journal
        if journal is not None:
            await journal.mark_sending(key, resubmit_uncertain=self._resubmit_uncertain)
        resource: Any = (
            self._client.head_swap if isinstance(request, HeadSwap) else self._client.character_swap
        )
        try:
            task = await resource.create(request)
        except RateLimitError as err:
            if journal is not None:
                await journal.mark_rejected(key, err)
            raise
        task_id: str = task.id
        if journal is not None:
            # The id is paid for: record it even if we are being cancelled.
            with anyio.CancelScope(shield=True):
                await journal.mark_created(key, task_id)
        return task_id

    async def record_failure(self, key: str, err: AkoolError) -> None:
        """A job ended before it had a task id: record why (uncertain, or rejected)."""
        journal = self._journal
        if journal is None:
            return
        record = await journal.get(key)
        if record is None or record.state in (JobState.UNCERTAIN, JobState.REJECTED):
            return
        if isinstance(err, SubmissionUncertainError):
            if record.state is JobState.SENDING:
                await journal.mark_uncertain(key, err)
        elif record.state in (JobState.PENDING, JobState.SENDING):
            await journal.mark_rejected(key, err)


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
