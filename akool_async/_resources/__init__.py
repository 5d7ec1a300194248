"""Resource namespaces of :class:`~akool_async.AkoolClient` and their shared pieces.

``client.character_swap`` is a :class:`CharacterSwapResource`, ``client.head_swap`` a
:class:`HeadSwapResource`. The helpers here (argument checks, structuring answers, the wait
loop) are shared by both.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from akool_async._errors import (
    ResponseError,
    SubmissionUncertainError,
    TaskFailedError,
    ValidationError,
    WaitTimeoutError,
)
from akool_async._models import TaskStatus
from akool_async._retry import poll_delay

if TYPE_CHECKING:
    from akool_async._client import AkoolClient

__all__ = [
    "CharacterSwapResource",
    "HeadSwapResource",
    "check_deadline",
    "check_id",
    "structure_created",
    "structure_polled",
    "wait_terminal",
]


class _HasStatus(Protocol):
    @property
    def status(self) -> TaskStatus: ...

    @property
    def failure_reason(self) -> str | None: ...


R = TypeVar("R", bound=_HasStatus)
T = TypeVar("T")


def check_id(name: str, value: object) -> str:
    """``value`` if it is a non-empty id string; else ValidationError (nothing is sent)."""
    if not isinstance(value, str) or not value.strip():
        shown = repr(value) if isinstance(value, str) else type(value).__name__
        raise ValidationError(name, f"must be a non-empty id string (got {shown})")
    return value


def check_deadline(value: object) -> float | None:
    """``value`` as seconds if None or a finite number > 0; else ValidationError."""
    if value is None:
        return None
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError("deadline", f"must be None or seconds > 0 (got {value!r})")
    return float(value)


def structure_polled(
    fn: Callable[[Any], T], data: dict[str, Any], *, method: str, path: str, task_id: str
) -> T:
    """``fn(data)`` with method, path and task id added to a ResponseError."""
    try:
        return fn(data)
    except ResponseError as err:
        err.method = err.method or method
        err.path = err.path or path
        err.task_id = err.task_id or task_id
        raise


def structure_created(
    fn: Callable[[Any], T], data: dict[str, Any], *, request: object, method: str, path: str
) -> T:
    """``fn(data)`` for a create: an unreadable answer means a task may exist.

    Raises SubmissionUncertainError (carrying the request and the id if one was readable)
    from the ResponseError; the request is not resent.
    """
    try:
        return fn(data)
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


def created_id(
    fn: Callable[[Any], Any], data: dict[str, Any], *, request: object, method: str, path: str
) -> str:
    """The new task's id from a create answer, without building the whole task model.

    A batch needs only the id: a glitch in a field it never reads must not turn a job whose
    id is known into an uncertain one. Without a usable ``_id`` the full structuring (``fn``)
    reports the problem as :func:`structure_created` does.
    """
    raw_id = data.get("_id")
    if isinstance(raw_id, str) and raw_id:
        return raw_id
    return str(structure_created(fn, data, request=request, method=method, path=path).id)


async def wait_terminal(
    client: AkoolClient,
    get: Callable[[str], Awaitable[R]],
    task_id: str,
    *,
    deadline: float | None,
    what: str,
    poll_first: bool = True,
) -> R:
    """Poll ``get(task_id)`` with the client's PollPolicy until COMPLETED (returned),
    FAILED (TaskFailedError) or ``deadline`` seconds have passed (WaitTimeoutError).

    ``poll_first=False`` waits one poll interval before the first poll (the caller has just
    created the task). Errors of ``get`` (after its own retries) propagate.
    """
    clock = client.clock
    policy = client.poll_policy
    rng = client._rng
    end = None if deadline is None else clock.monotonic() + deadline
    index = 0
    last: R | None = None
    if not poll_first:
        await clock.sleep(_bounded(poll_delay(index, policy, rng), end, clock.monotonic()))
        index += 1
    while True:
        last = await get(task_id)
        status = last.status
        if status is TaskStatus.COMPLETED:
            return last
        if status is TaskStatus.FAILED:
            raise TaskFailedError(
                f"{what} {task_id} failed: {last.failure_reason or 'no reason given'}",
                result=last,
                task_id=task_id,
            )
        now = clock.monotonic()
        if end is not None and now >= end:
            raise WaitTimeoutError(
                f"{what} {task_id} did not finish within {deadline:g} s "
                f"(last status {status.name}); it may still finish remotely",
                deadline=deadline,
                task_id=task_id,
            )
        await clock.sleep(_bounded(poll_delay(index, policy, rng), end, now))
        index += 1


def _bounded(delay: float, end: float | None, now: float) -> float:
    return delay if end is None else max(0.0, min(delay, end - now))


# The resource modules import the helpers above, so they come last.
from .character_swap import CharacterSwapResource  # noqa: E402
from .head_swap import HeadSwapResource  # noqa: E402
