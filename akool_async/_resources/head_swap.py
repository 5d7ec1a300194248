"""``client.head_swap``: analyze, get_analysis, wait_analysis, create, get, wait, run (v4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from akool_async._converters import analyze_to_wire, head_swap_to_wire, structure
from akool_async._errors import FaceMappingError, ValidationError
from akool_async._models import (
    HeadSwap,
    HeadSwapAnalysis,
    HeadSwapResult,
    HeadSwapTask,
    url_problem,
)

from ._base import APIResource, structure_created, structure_polled
from ._polling import check_deadline, check_id, size_bucket, time_left

__all__ = [
    "ANALYSIS_PATH",
    "ANALYZE_PATH",
    "CREATE_PATH",
    "DETAIL_PATH",
    "HeadSwapResource",
]

ANALYZE_PATH = "/api/open/v4/headswap/analyze"
#: The kind the batch's poll scheduler files these jobs under (shared duration estimate).
KIND = "head_swap"
ANALYSIS_PATH = "/api/open/v4/headswap/analyze/detail"
CREATE_PATH = "/api/open/v4/headswap/task/create"
DETAIL_PATH = "/api/open/v4/headswap/task/detail"


def _check_request(req: object) -> HeadSwap:
    if not isinstance(req, HeadSwap):
        raise ValidationError(
            "request", f"must be an akool_async.HeadSwap (got {type(req).__name__})"
        )
    return req


class HeadSwapResource(APIResource):
    """Head Swap calls of one client (``client.head_swap``)."""

    __slots__ = ()

    # -- analysis -------------------------------------------------------------------------

    async def analyze(self, video_url: str) -> HeadSwapAnalysis:
        """Submit a person analysis of ``video_url`` (sent byte-identical).

        Analyses are free: a lost answer is retried like a GET (at worst the server keeps
        a second, unused analysis), so an unlucky network never turns every job sharing
        the video into an uncertain outcome. Only swap creates are never resent.
        """
        problem = url_problem(video_url)
        if problem is not None:
            raise ValidationError("video_url", problem)
        data = await self._post(ANALYZE_PATH, json=analyze_to_wire(video_url))
        return structure(data, HeadSwapAnalysis)

    async def get_analysis(self, analysis_id: str) -> HeadSwapAnalysis:
        """The current state of analysis ``analysis_id``."""
        analysis_id = check_id("analysis_id", analysis_id)
        data = await self._get(ANALYSIS_PATH, params={"_id": analysis_id}, task_id=analysis_id)
        return structure_polled(
            HeadSwapAnalysis, data, method="GET", path=ANALYSIS_PATH, task_id=analysis_id
        )

    async def wait_analysis(
        self, analysis_id: str, *, deadline: float | None = None
    ) -> HeadSwapAnalysis:
        """Poll until the analysis completes (returned) or fails (``TaskFailedError``).

        ``deadline``: seconds from now (None: no limit); past it ``WaitTimeoutError``.
        """
        return await self._wait(
            self.get_analysis,
            check_id("analysis_id", analysis_id),
            deadline=check_deadline(deadline),
            what="head-swap analysis",
            bucket=("analysis", None),
        )

    # -- tasks ----------------------------------------------------------------------------

    async def create(
        self, req: HeadSwap, *, before_send: Callable[[], Awaitable[None]] | None = None
    ) -> HeadSwapTask:
        """Submit ``req`` (its video must have a completed analysis); return the task.

        Resent only when the error proves no task was created; an ambiguous failure raises
        ``SubmissionUncertainError`` carrying ``req``. ``before_send`` (for journals) is
        awaited right before each attempt goes out; if it raises, nothing is sent.
        """
        req = _check_request(req)
        data = await self._post(
            CREATE_PATH, json=head_swap_to_wire(req), create_request=req, before_send=before_send
        )
        return structure_created(
            HeadSwapTask, data, request=req, method="POST", path=CREATE_PATH
        )

    async def get(self, task_id: str) -> HeadSwapResult:
        """The current state of head-swap task ``task_id``."""
        task_id = check_id("task_id", task_id)
        data = await self._get(DETAIL_PATH, params={"_id": task_id}, task_id=task_id)
        return structure_polled(
            HeadSwapResult, data, method="GET", path=DETAIL_PATH, task_id=task_id
        )

    async def wait(self, task_id: str, *, deadline: float | None = None) -> HeadSwapResult:
        """Poll until the task completes (returned) or fails (``TaskFailedError``).

        ``deadline``: seconds from now (None: no limit); past it ``WaitTimeoutError``.
        """
        return await self._wait(
            self.get,
            check_id("task_id", task_id),
            deadline=check_deadline(deadline),
            what="head swap",
            bucket=(KIND, None),
        )

    async def run(self, req: HeadSwap, *, deadline: float | None = None) -> HeadSwapResult:
        """analyze -> wait_analysis -> check the mappings -> create -> wait.

        Every mapped ``obj_id`` must be among the detected people, else
        ``FaceMappingError`` (listing the detected obj_ids) is raised before any create.
        ``deadline`` (seconds from now) covers the whole sequence.
        """
        req = _check_request(req)
        seconds = check_deadline(deadline)
        start = self._api.clock.monotonic()
        analysis = await self.analyze(req.video_url)
        analysis = await self._wait(
            self.get_analysis,
            analysis.id,
            deadline=time_left(self._api, seconds, start),
            what="head-swap analysis",
            bucket=("analysis", None),
            created=self._api.clock.monotonic(),
        )
        detected = analysis.obj_ids
        missing = [face.obj_id for face in req.faces if face.obj_id not in detected]
        if missing:
            raise FaceMappingError(missing, detected, req.video_url)
        created = self._api.clock.monotonic()
        task = await self.create(req)
        return await self._wait(
            self.get,
            task.id,
            deadline=time_left(self._api, seconds, start),
            what="head swap",
            bucket=(KIND, size_bucket(req)),
            created=created,
        )
