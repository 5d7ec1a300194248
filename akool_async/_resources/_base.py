"""``APIResource``: the base of every resource namespace, and how answers become models.

Like openai-python's ``AsyncAPIResource``, a resource holds the client's request interface
(:class:`~akool_async._api.Api`) and binds ``_get``/``_post`` once, so each resource method
is one line of request and one line of structuring.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

from akool_async._api import Api
from akool_async._converters import R as Model
from akool_async._converters import structure
from akool_async._errors import ResponseError, SubmissionUncertainError

from ._polling import PollTiming, R, wait_terminal

__all__ = ["APIResource", "structure_created", "structure_polled"]


class APIResource:
    """A namespace of API calls over one client's :class:`Api`."""

    __slots__ = ("_api", "_timing")

    def __init__(self, api: Api, timing: PollTiming) -> None:
        self._api = api
        self._timing = timing

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._api.base_url!r}>"

    async def _get(self, path: str, *, params: Mapping[str, str], task_id: str) -> dict[str, Any]:
        """A GET of one task's state: idempotent, retried on transient errors."""
        return await self._api.call("GET", path, params=params, idempotent=True, task_id=task_id)

    async def _post(
        self,
        path: str,
        *,
        json: Any,
        create_request: object = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """A POST. With ``create_request`` it is a paid create, resent only on proof that no
        task exists; without, it creates nothing paid and is retried like a GET.
        ``before_send`` is awaited right before each attempt goes out (see ``Api.call``)."""
        return await self._api.call(
            "POST",
            path,
            json=json,
            idempotent=create_request is None,
            create_request=create_request,
            before_send=before_send,
        )

    async def _wait(
        self,
        get: Callable[[str], Awaitable[R]],
        task_id: str,
        *,
        deadline: float | None,
        what: str,
        bucket: Hashable,
        created: float | None = None,
    ) -> R:
        """``wait_terminal`` of ``get(task_id)`` with this client's clock and poll timing."""
        return await wait_terminal(
            self._api,
            get,
            task_id,
            deadline=deadline,
            what=what,
            timing=self._timing,
            bucket=bucket,
            created=created,
        )


def structure_polled(
    cls: type[Model], data: dict[str, Any], *, method: str, path: str, task_id: str
) -> Model:
    """``data`` as a ``cls``, with method, path and task id added to a ResponseError."""
    try:
        return structure(data, cls)
    except ResponseError as err:
        err.method = err.method or method
        err.path = err.path or path
        err.task_id = err.task_id or task_id
        raise


def structure_created(
    cls: type[Model], data: dict[str, Any], *, request: object, method: str, path: str
) -> Model:
    """``data`` as a ``cls`` for a create: an unreadable answer means a task may exist.

    Raises SubmissionUncertainError (carrying the request and the id if one was readable)
    from the ResponseError; the request is not resent.
    """
    try:
        return structure(data, cls)
    except ResponseError as err:
        raw_id = data.get("_id")
        task_id = raw_id if isinstance(raw_id, str) and raw_id else None
        where = f" (id {task_id!r})" if task_id else ""
        raise SubmissionUncertainError(
            f"the create was accepted (code 1000) but its answer could not be read: "
            f"{err.message}; a task was probably created{where} and may be charged, so the "
            "request was not resent",
            request=request,
            method=method,
            path=path,
            http_status=200,
            code=1000,
            task_id=task_id,
        ) from err
