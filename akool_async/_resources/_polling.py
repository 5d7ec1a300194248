"""Argument checks and the wait loop shared by ``wait()``/``run()`` of every resource."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from akool_async._api import Api
from akool_async._errors import TaskFailedError, ValidationError, WaitTimeoutError
from akool_async._models import TaskStatus
from akool_async._retry import poll_delay

__all__ = ["check_deadline", "check_id", "time_left", "wait_terminal"]


class _HasStatus(Protocol):
    @property
    def status(self) -> TaskStatus: ...

    @property
    def failure_reason(self) -> str | None: ...


R = TypeVar("R", bound=_HasStatus)


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


async def wait_terminal(
    api: Api,
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
    clock = api.clock
    policy = api.poll_policy
    end = None if deadline is None else clock.monotonic() + deadline
    index = 0
    if not poll_first:
        await clock.sleep(_bounded(poll_delay(index, policy, api.rng), end, clock.monotonic()))
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
        await clock.sleep(_bounded(poll_delay(index, policy, api.rng), end, now))
        index += 1


def _bounded(delay: float, end: float | None, now: float) -> float:
    return delay if end is None else max(0.0, min(delay, end - now))


def time_left(api: Api, seconds: float | None, start: float) -> float | None:
    """What is left of a ``seconds`` deadline begun at ``start`` (never 0: the wait still
    polls once); None without a deadline."""
    if seconds is None:
        return None
    return max(seconds - (api.clock.monotonic() - start), 1e-9)
