"""``client.character_swap``: create (v4), get (v3 ``infobymodelid``), wait, run."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from akool_async._converters import (
    character_swap_to_wire,
    structure_character_swap_result,
    structure_character_swap_task,
)
from akool_async._errors import ValidationError
from akool_async._models import CharacterSwap, CharacterSwapResult, CharacterSwapTask

from . import (
    check_deadline,
    check_id,
    created_id,
    structure_created,
    structure_polled,
    wait_terminal,
)

if TYPE_CHECKING:
    from akool_async._client import AkoolClient

__all__ = ["CREATE_PATH", "RESULT_PATH", "CharacterSwapResource"]

CREATE_PATH = "/api/open/v4/characterSwap/create"
RESULT_PATH = "/api/open/v3/content/video/infobymodelid"


class CharacterSwapResource:
    """Character Swap calls of one client (``client.character_swap``)."""

    __slots__ = ("_client",)

    def __init__(self, client: AkoolClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<CharacterSwapResource of {self._client!r}>"

    async def create(self, req: CharacterSwap) -> CharacterSwapTask:
        """Submit ``req``; return the created task (status QUEUEING, credits charged).

        Resent only when the error proves no task was created; an ambiguous failure raises
        ``SubmissionUncertainError`` carrying ``req``.
        """
        if not isinstance(req, CharacterSwap):
            raise ValidationError(
                "request", f"must be an akool_async.CharacterSwap (got {type(req).__name__})"
            )
        data = await self._send_create(req)
        return structure_created(
            structure_character_swap_task, data, request=req, method="POST", path=CREATE_PATH
        )

    def _send_create(self, req: CharacterSwap) -> Awaitable[dict[str, Any]]:
        """POST the create: retried only on proof that no task exists (see _request).

        A plain function returning the call's awaitable: one coroutine frame fewer on
        every create's await chain."""
        return self._client._request(
            "POST",
            CREATE_PATH,
            json=character_swap_to_wire(req),
            idempotent=False,
            create_request=req,
        )

    async def _create_id(self, req: CharacterSwap) -> str:
        """Like :meth:`create` (same request, retries and create safety), returning only the
        new task's id: what a batch needs (see ``created_id``)."""
        data = await self._send_create(req)
        return created_id(
            structure_character_swap_task, data, request=req, method="POST", path=CREATE_PATH
        )

    async def get(self, task_id: str) -> CharacterSwapResult:
        """The current state of task ``task_id`` (one poll, retried on transient errors)."""
        if type(task_id) is not str or not task_id.strip():
            task_id = check_id("task_id", task_id)  # raises ValidationError
        data = await self._client._request(
            "GET",
            RESULT_PATH,
            params={"video_model_id": task_id},
            idempotent=True,
            task_id=task_id,
        )
        return structure_polled(
            structure_character_swap_result, data, method="GET", path=RESULT_PATH, task_id=task_id
        )

    async def wait(self, task_id: str, *, deadline: float | None = None) -> CharacterSwapResult:
        """Poll until the task completes (returned) or fails (``TaskFailedError``).

        ``deadline``: seconds from now (None: no limit); past it ``WaitTimeoutError``.
        Polls follow the client's PollPolicy (exponential backoff with jitter).
        """
        task_id = check_id("task_id", task_id)
        seconds = check_deadline(deadline)
        return await wait_terminal(
            self._client, self.get, task_id, deadline=seconds, what="character swap"
        )

    async def run(
        self, req: CharacterSwap, *, deadline: float | None = None
    ) -> CharacterSwapResult:
        """``create(req)`` then ``wait`` for it; ``deadline`` counts from now."""
        seconds = check_deadline(deadline)
        client = self._client
        start = client.clock.monotonic()
        task = await self.create(req)
        left = None if seconds is None else max(seconds - (client.clock.monotonic() - start), 1e-9)
        return await wait_terminal(
            client, self.get, task.id, deadline=left, what="character swap", poll_first=False
        )
