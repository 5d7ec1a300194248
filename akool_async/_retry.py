"""Retry maths (pure functions) and the one retry loop every API call goes through.

Two predicates decide whether a failed request may be sent again:

- :func:`is_retryable` for idempotent requests (GETs, getToken): transport errors, 5xx,
  429/1005, 1015, 2001 and malformed bodies -- exactly ``err.retryable``.
- :func:`create_may_retry` for creates, where a resend may charge twice: only errors that
  *prove* no task was created (connection never made; 429/1005; 1015; a 5xx or 2001 that
  carries an Akool business code). Everything else that leaves the outcome unknown
  (:func:`create_outcome_uncertain`) becomes :class:`SubmissionUncertainError` and is never
  resent.

Delays: full-jitter exponential backoff for retries (:func:`backoff_delay`), jittered
geometric growth for polling (:func:`poll_delay`); Retry-After is parsed by
:func:`parse_retry_after` and honoured up to ``RetryPolicy.max_retry_after``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from ._clock import Clock
from ._config import PollPolicy, RetryPolicy
from ._errors import (
    AkoolError,
    ConnectError,
    RateLimitError,
    ResponseError,
    RetryLaterError,
    ServerError,
    SubmissionUncertainError,
    TransportError,
)

__all__ = [
    "backoff_delay",
    "create_may_retry",
    "create_outcome_uncertain",
    "is_retryable",
    "parse_retry_after",
    "poll_delay",
    "retry_call",
]

T = TypeVar("T")

_logger = logging.getLogger("akool_async")

# 2.0 ** 1023 is the largest finite power of two; beyond it every cap has long been reached.
_MAX_EXPONENT = 1023


def backoff_delay(retry_index: int, *, initial: float, cap: float, rng: random.Random) -> float:
    """Full-jitter backoff: ``uniform(0, min(cap, initial * 2**retry_index))`` seconds.

    ``retry_index`` is 0 for the first retry. Never negative, never above ``cap``.
    """
    n = min(max(retry_index, 0), _MAX_EXPONENT)
    ceiling = min(cap, initial * 2.0**n)
    if not ceiling > 0:  # also catches NaN from 0 * inf
        return 0.0
    return rng.uniform(0.0, ceiling)


def poll_delay(poll_index: int, policy: PollPolicy, rng: random.Random) -> float:
    """Seconds before poll ``poll_index + 1`` of one task.

    ``min(max_interval, initial * factor**poll_index)`` times ``uniform(1 - jitter,
    1 + jitter)``; ``poll_index`` is 0 for the wait before the first poll.
    """
    n = max(poll_index, 0)
    try:
        base = policy.initial * policy.factor**n
    except OverflowError:
        base = math.inf
    base = min(policy.max_interval, base)
    if not base > 0:
        return 0.0
    if policy.jitter:
        return base * rng.uniform(1.0 - policy.jitter, 1.0 + policy.jitter)
    return base


def parse_retry_after(value: str | None, *, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None if absent or unusable.

    Accepts delta-seconds (fractional allowed, e.g. ``"1.5"``) and HTTP-dates (a date in
    the past gives ``0.0``). Negative, non-finite or unparseable values give None.
    ``now_wall`` is the current Unix time (from the client's clock).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text[0].isdigit() or text[0] in "+-.":
        try:
            seconds = float(text)
        except ValueError:
            return None
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return seconds
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    try:
        delta = when.timestamp() - now_wall
    except (OverflowError, OSError, ValueError):
        return None
    return max(0.0, delta) if math.isfinite(delta) else None


def is_retryable(err: BaseException) -> bool:
    """May an *idempotent* request that failed with ``err`` be sent again?"""
    return isinstance(err, AkoolError) and err.retryable


def create_may_retry(err: BaseException) -> bool:
    """May a *create* that failed with ``err`` be sent again? Only if no task can exist.

    True for: :class:`ConnectError` (the request never left); :class:`RateLimitError`
    (HTTP 429 or code 1005); :class:`RetryLaterError` (1015); :class:`ServerError` carrying
    an Akool business code (a 5xx with an envelope, or code 2001).
    """
    if isinstance(err, (ConnectError, RateLimitError, RetryLaterError)):
        return True
    return isinstance(err, ServerError) and err.code is not None


def create_outcome_uncertain(err: BaseException) -> bool:
    """Did a create fail in a way that leaves unknown whether a task was created?

    True for timeouts and connections lost after sending, for unreadable or malformed
    answers, and for 5xx answers without an Akool envelope (a gateway spoke, the backend may
    have processed the request). Definite rejections (business codes, 4xx) are False.
    """
    if isinstance(err, TransportError):
        return not isinstance(err, ConnectError)
    if isinstance(err, ResponseError):
        return True
    return isinstance(err, ServerError) and err.code is None


def _uncertain(err: AkoolError, create_request: object) -> SubmissionUncertainError:
    return SubmissionUncertainError(
        f"the create request was sent but its outcome is unknown ({type(err).__name__}: "
        f"{err.message}); a task may have been created and charged, so it was not resent. "
        "Check the Akool dashboard or your journal before submitting it again",
        request=create_request,
        method=err.method,
        path=err.path,
        http_status=err.http_status,
        code=err.code,
        msg=err.msg,
        task_id=err.task_id,
    )


def _check_retryable(err: AkoolError, *, is_create: bool, create_request: object) -> None:
    """Raise what the caller must see if ``err`` may not be retried; return otherwise."""
    if not is_create:
        if not err.retryable:
            raise err
        return
    if not create_may_retry(err):
        if create_outcome_uncertain(err):
            raise _uncertain(err, create_request) from err
        raise err


def _retry_delay(
    err: AkoolError, retry_index: int, policy: RetryPolicy, rng: random.Random
) -> float:
    """Backoff for this retry, at least the server's Retry-After; raise ``err`` when the
    server asks for longer than ``policy.max_retry_after``."""
    delay = backoff_delay(retry_index, initial=policy.initial, cap=policy.max_delay, rng=rng)
    retry_after = getattr(err, "retry_after", None)
    if isinstance(retry_after, (int, float)):
        if retry_after > policy.max_retry_after:
            raise err
        delay = max(delay, retry_after)
    return delay


def _log_retry(attempt: int, err: AkoolError, delay: float, policy: RetryPolicy) -> None:
    _logger.debug(
        "retrying %s %s after %s (try %d of %d) in %.3f s",
        err.method,
        err.path,
        type(err).__name__,
        attempt,
        policy.attempts,
        delay,
    )


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    create_request: object = None,
    idempotent: bool | None = None,
    on_retry: Callable[[int, AkoolError, float], None] | None = None,
    progressed: Callable[[], bool] | None = None,
) -> T:
    """Await ``fn()`` until it succeeds or the policy says stop.

    Without ``create_request`` the call is idempotent and retried while
    :func:`is_retryable`. With ``create_request`` (the request object of a create), or with
    ``idempotent=False``, it is retried only while :func:`create_may_retry`; an ambiguous
    failure raises :class:`SubmissionUncertainError` (carrying ``create_request``) from the
    cause.

    Stops after ``policy.attempts`` tries or when the next sleep would pass
    ``policy.timeout`` seconds since the first try, re-raising the last error. An error's
    ``retry_after`` longer than ``policy.max_retry_after`` fails at once; a shorter one is
    honoured as the minimum sleep. ``on_retry(attempt, err, delay)`` is called before each
    sleep (``attempt`` counts tries made so far). ``progressed()``, asked after each failure,
    restarts both budgets when it returns True (a download that got further than ever).
    """
    is_create = create_request is not None if idempotent is None else not idempotent
    start = clock.monotonic()
    attempt = 0
    while True:
        try:
            return await fn()
        except AkoolError as err:
            if progressed is not None and progressed():
                attempt, start = 0, clock.monotonic()
            attempt += 1
            _check_retryable(err, is_create=is_create, create_request=create_request)
            if attempt >= policy.attempts:
                raise
            delay = _retry_delay(err, attempt - 1, policy, rng)
            if clock.monotonic() - start + delay > policy.timeout:
                raise
            if on_retry is not None:
                on_retry(attempt, err, delay)
            else:
                _log_retry(attempt, err, delay, policy)
        await clock.sleep(delay)
