"""Argument checks and the wait loop shared by ``wait()``/``run()`` of every resource."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol, TypeVar

from akool_async._api import Api
from akool_async._errors import TaskFailedError, ValidationError, WaitTimeoutError
from akool_async._models import CharacterSwap, HeadSwap, TaskStatus

__all__ = ["PollTiming", "check_deadline", "check_id", "size_bucket", "time_left", "wait_terminal"]


class PollTiming(Protocol):
    """When to poll (the batch's adaptive timing satisfies it); ``bucket`` groups jobs of
    similar duration."""

    def first_delay(self, bucket: Hashable) -> float: ...

    def next_delay(self, bucket: Hashable, age: float, polls: int) -> float: ...

    def observe(self, bucket: Hashable, duration: float) -> None: ...


class _HasStatus(Protocol):
    @property
    def status(self) -> TaskStatus: ...

    @property
    def failure_reason(self) -> str | None: ...


R = TypeVar("R", bound=_HasStatus)


def size_bucket(request: CharacterSwap | HeadSwap) -> tuple[str, int]:
    """Jobs of similar size take similar time: resolution and a log2 class of the duration."""
    duration = getattr(request, "duration", None)
    size = -1 if duration is None else int(math.log2(max(1.0, float(duration))))
    return (request.resolution, size)


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
    timing: PollTiming,
    bucket: Hashable,
    created: float | None = None,
) -> R:
    """Poll ``get(task_id)`` until COMPLETED (returned), FAILED (TaskFailedError) or
    ``deadline`` seconds have passed (WaitTimeoutError); ``timing`` says when to poll.

    ``created``: when the caller created the task (its monotonic time). The first poll then
    waits ``timing.first_delay`` and the job's duration teaches ``timing``; without it the
    first poll goes at once. Errors of ``get`` (after its own retries) propagate.
    """
    clock = api.clock
    start = clock.monotonic()
    end = None if deadline is None else start + deadline
    born = start if created is None else created
    waits = 0  # waits taken so far: the backoff step of the next one
    last_running = born
    if created is not None:
        await clock.sleep(_bounded(timing.first_delay(bucket), end, clock.monotonic()))
        waits = 1
    while True:
        last = await get(task_id)
        now = clock.monotonic()
        status = last.status
        if status is TaskStatus.COMPLETED or status is TaskStatus.FAILED:
            if created is not None:
                # The true end lies between the last poll that saw it running and this one.
                timing.observe(bucket, (last_running + now) / 2 - born)
            if status is TaskStatus.COMPLETED:
                return last
            raise TaskFailedError(
                f"{what} {task_id} failed: {last.failure_reason or 'no reason given'}",
                result=last,
                task_id=task_id,
            )
        if end is not None and now >= end:
            raise WaitTimeoutError(
                f"{what} {task_id} did not finish within {deadline:g} s "
                f"(last status {status.name}); it may still finish remotely",
                deadline=deadline,
                task_id=task_id,
            )
        last_running = now
        await clock.sleep(_bounded(timing.next_delay(bucket, now - born, waits), end, now))
        waits += 1


def _bounded(delay: float, end: float | None, now: float) -> float:
    return delay if end is None else max(0.0, min(delay, end - now))


def time_left(api: Api, seconds: float | None, start: float) -> float | None:
    """What is left of a ``seconds`` deadline begun at ``start`` (never 0: the wait still
    polls once); None without a deadline."""
    if seconds is None:
        return None
    return max(seconds - (api.clock.monotonic() - start), 1e-9)
