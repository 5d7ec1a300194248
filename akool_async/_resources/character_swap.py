"""``client.character_swap``: create (v4), get (v3 ``infobymodelid``), wait, run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from akool_async._converters import character_swap_to_wire
from akool_async._errors import ValidationError
from akool_async._models import CharacterSwap, CharacterSwapResult, CharacterSwapTask

from ._base import APIResource, structure_created, structure_polled
from ._polling import check_deadline, check_id, size_bucket, time_left

__all__ = ["CREATE_PATH", "RESULT_PATH", "CharacterSwapResource"]

CREATE_PATH = "/api/open/v4/characterSwap/create"
RESULT_PATH = "/api/open/v3/content/video/infobymodelid"
#: The kind the batch's poll scheduler files these jobs under (shared duration estimate).
KIND = "character_swap"


class CharacterSwapResource(APIResource):
    """Character Swap calls of one client (``client.character_swap``)."""

    __slots__ = ()

    async def create(
        self, req: CharacterSwap, *, before_send: Callable[[], Awaitable[None]] | None = None
    ) -> CharacterSwapTask:
        """Submit ``req``; return the created task (status QUEUEING, credits charged).

        Resent only when the error proves no task was created; an ambiguous failure raises
        ``SubmissionUncertainError`` carrying ``req``. ``before_send`` (for journals) is
        awaited right before each attempt goes out; if it raises, nothing is sent.
        """
        if not isinstance(req, CharacterSwap):
            raise ValidationError(
                "request", f"must be an akool_async.CharacterSwap (got {type(req).__name__})"
            )
        data = await self._post(
            CREATE_PATH,
            json=character_swap_to_wire(req),
            create_request=req,
            before_send=before_send,
        )
        return structure_created(
            CharacterSwapTask, data, request=req, method="POST", path=CREATE_PATH
        )

    async def get(self, task_id: str) -> CharacterSwapResult:
        """The current state of task ``task_id`` (one poll, retried on transient errors)."""
        task_id = check_id("task_id", task_id)
        data = await self._get(RESULT_PATH, params={"video_model_id": task_id}, task_id=task_id)
        return structure_polled(
            CharacterSwapResult, data, method="GET", path=RESULT_PATH, task_id=task_id
        )

    async def wait(self, task_id: str, *, deadline: float | None = None) -> CharacterSwapResult:
        """Poll until the task completes (returned) or fails (``TaskFailedError``).

        ``deadline``: seconds from now (None: no limit); past it ``WaitTimeoutError``.
        Polls follow the client's PollPolicy (exponential backoff with jitter).
        """
        return await self._wait(
            self.get,
            check_id("task_id", task_id),
            deadline=check_deadline(deadline),
            what="character swap",
            bucket=(KIND, None),
        )

    async def run(
        self, req: CharacterSwap, *, deadline: float | None = None
    ) -> CharacterSwapResult:
        """``create(req)`` then ``wait`` for it; ``deadline`` counts from now."""
        seconds = check_deadline(deadline)
        start = self._api.clock.monotonic()
        task = await self.create(req)
        return await self._wait(
            self.get,
            task.id,
            deadline=time_left(self._api, seconds, start),
            what="character swap",
            bucket=(KIND, size_bucket(req)),
            created=start,
        )
