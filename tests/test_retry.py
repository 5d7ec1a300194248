"""Retry maths and the retry loop: bounds (Hypothesis), Retry-After parsing, predicates."""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Awaitable, Callable

import pytest
from conftest import ManualClock
from hypothesis import given
from hypothesis import strategies as st

from akool_async._config import PollPolicy, RetryPolicy
from akool_async._errors import (
    APIError,
    AuthenticationError,
    ConnectError,
    ConnectionLostError,
    HTTPStatusError,
    InsufficientCreditError,
    InvalidParameterError,
    RateLimitError,
    RequestTimeoutError,
    ResponseError,
    RetryLaterError,
    ServerError,
    SubmissionUncertainError,
    UnknownStatusError,
)
from akool_async._retry import (
    backoff_delay,
    create_may_retry,
    create_outcome_uncertain,
    is_retryable,
    parse_retry_after,
    poll_delay,
    retry_call,
)

seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


# --------------------------------------------------------------------------- backoff


@given(st.integers(min_value=0, max_value=10_000), seconds, seconds, st.integers())
def test_backoff_within_bounds(n: int, initial: float, cap: float, seed: int) -> None:
    """Backoff is never negative, never above the cap, never above initial * 2**n."""
    delay = backoff_delay(n, initial=initial, cap=cap, rng=random.Random(seed))
    assert delay >= 0
    assert delay <= cap
    if n < 1000:
        assert delay <= initial * 2.0**n + 1e-9


@given(st.integers(min_value=-5, max_value=0), st.integers())
def test_backoff_negative_index_is_first_retry(n: int, seed: int) -> None:
    """A negative retry index is treated as the first retry."""
    assert backoff_delay(n, initial=1.0, cap=10.0, rng=random.Random(seed)) <= 1.0


def test_backoff_zero_initial_is_zero() -> None:
    """With initial 0 the delay is 0 even for huge retry indexes."""
    assert backoff_delay(5000, initial=0.0, cap=10.0, rng=random.Random(1)) == 0.0


def test_backoff_full_jitter_spreads() -> None:
    """Full jitter spreads delays over the whole [0, ceiling] range."""
    rng = random.Random(7)
    delays = [backoff_delay(3, initial=1.0, cap=100.0, rng=rng) for _ in range(500)]
    assert min(delays) < 1.0
    assert max(delays) > 7.0


# --------------------------------------------------------------------------- poll delay

poll_policies = st.builds(
    PollPolicy,
    initial=seconds,
    factor=st.floats(min_value=1.0, max_value=10.0),
    max_interval=seconds,
    jitter=st.floats(min_value=0.0, max_value=0.99),
)


@given(st.integers(min_value=0, max_value=100_000), poll_policies, st.integers())
def test_poll_delay_within_bounds(n: int, policy: PollPolicy, seed: int) -> None:
    """Poll delays are non-negative and within the jittered cap."""
    delay = poll_delay(n, policy, random.Random(seed))
    assert delay >= 0
    assert delay <= policy.max_interval * (1 + policy.jitter) + 1e-9
    assert math.isfinite(delay)


@given(st.integers(min_value=0, max_value=50))
def test_poll_delay_without_jitter_is_geometric(n: int) -> None:
    """Without jitter the n-th delay is min(max_interval, initial * factor**n)."""
    policy = PollPolicy(initial=2.0, factor=1.5, max_interval=60.0, jitter=0.0)
    assert poll_delay(n, policy, random.Random(0)) == pytest.approx(min(60.0, 2.0 * 1.5**n))


# --------------------------------------------------------------------------- Retry-After


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_retry_after_delta_seconds(value: float) -> None:
    """Delta-seconds, fractional included, parse to the same number."""
    assert parse_retry_after(repr(value), now_wall=0.0) == pytest.approx(value)


@given(st.integers(min_value=0, max_value=10**6))
def test_retry_after_integer(value: int) -> None:
    """Integer delta-seconds parse exactly."""
    assert parse_retry_after(f" {value} ", now_wall=0.0) == value


@given(st.integers(min_value=0, max_value=10**6))
def test_retry_after_http_date(delta: int) -> None:
    """An HTTP-date in the future gives the seconds until then."""
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + delta, usegmt=True)
    assert parse_retry_after(header, now_wall=now) == pytest.approx(delta)


def test_retry_after_past_date_is_zero() -> None:
    """An HTTP-date in the past means retry now."""
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now - 50, usegmt=True), now_wall=now) == 0.0


@pytest.mark.parametrize(
    "value", [None, "", "  ", "-1", "-0.5", "nan", "inf", "soon", "1,5", "Tue 32 Foo", "1e999"]
)
def test_retry_after_garbage_is_none(value: str | None) -> None:
    """Absent, negative, non-finite or garbage values give None."""
    assert parse_retry_after(value, now_wall=0.0) is None


@given(st.text(max_size=40))
def test_retry_after_never_raises(value: str) -> None:
    """Any text parses to None or a finite non-negative number."""
    result = parse_retry_after(value, now_wall=1_700_000_000.0)
    assert result is None or (math.isfinite(result) and result >= 0)


# --------------------------------------------------------------------------- predicates

IDEMPOTENT_TABLE: list[tuple[APIError | Exception, bool]] = [
    (ConnectError("x"), True),
    (RequestTimeoutError("x"), True),
    (ConnectionLostError("x"), True),
    (ServerError("x"), True),
    (ServerError("x", code=2001), True),
    (RateLimitError("x"), True),
    (RetryLaterError("x", code=1015), True),
    (ResponseError("x"), True),
    (UnknownStatusError("x"), False),
    (HTTPStatusError("x", http_status=404), False),
    (InvalidParameterError("x", code=1003), False),
    (AuthenticationError("x", code=1101), False),
    (InsufficientCreditError("x", code=1104), False),
    (APIError("x", code=9999), False),
    (ValueError("x"), False),
]


@pytest.mark.parametrize(("err", "expected"), IDEMPOTENT_TABLE)
def test_is_retryable_table(err: Exception, expected: bool) -> None:
    """Idempotent requests retry exactly the transient errors."""
    assert is_retryable(err) is expected


CREATE_TABLE: list[tuple[Exception, bool, bool]] = [
    # (error, may retry, outcome uncertain)
    (ConnectError("x"), True, False),
    (RateLimitError("x", http_status=429), True, False),
    (RateLimitError("x", code=1005), True, False),
    (RetryLaterError("x", code=1015), True, False),
    (ServerError("x", http_status=503, code=2001), True, False),
    (ServerError("x", http_status=200, code=2001), True, False),
    (ServerError("x", http_status=502), False, True),
    (RequestTimeoutError("x"), False, True),
    (ConnectionLostError("x"), False, True),
    (ResponseError("x"), False, True),
    (UnknownStatusError("x"), False, True),
    (HTTPStatusError("x", http_status=400), False, False),
    (InvalidParameterError("x", code=1003), False, False),
    (AuthenticationError("x", code=1101), False, False),
    (InsufficientCreditError("x", code=1104), False, False),
    (APIError("x", code=4242), False, False),
]


@pytest.mark.parametrize(("err", "may_retry", "uncertain"), CREATE_TABLE)
def test_create_predicates_table(err: Exception, may_retry: bool, uncertain: bool) -> None:
    """A create is resent only on proof of no task; the ambiguous ones are flagged."""
    assert create_may_retry(err) is may_retry
    assert create_outcome_uncertain(err) is uncertain
    assert not (may_retry and uncertain)


# --------------------------------------------------------------------------- retry loop

POLICY = RetryPolicy(attempts=4, timeout=100.0, initial=0.1, max_delay=1.0, max_retry_after=5.0)


def failing(
    errors: list[Exception], result: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An async callable raising ``errors`` in turn, then returning ``result``."""
    calls = [0]

    async def fn() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


pytestmark = pytest.mark.anyio


async def test_retry_succeeds_after_transient_errors() -> None:
    """Transient errors are retried and the eventual result returned."""
    clock = ManualClock()
    fn, calls = failing([ServerError("a"), ConnectionLostError("b")])
    got = await retry_call(fn, policy=POLICY, clock=clock, rng=random.Random(1))
    assert got == "ok"
    assert calls[0] == 3
    assert len(clock.sleeps) == 2


async def test_retry_stops_after_attempts() -> None:
    """After `attempts` tries the last error is raised."""
    clock = ManualClock()
    fn, calls = failing([ServerError(str(i)) for i in range(10)])
    with pytest.raises(ServerError, match="3"):
        await retry_call(fn, policy=POLICY, clock=clock, rng=random.Random(1))
    assert calls[0] == POLICY.attempts


async def test_retry_stops_at_total_timeout() -> None:
    """A sleep that would pass the total-time budget is not taken."""
    clock = ManualClock()
    policy = RetryPolicy(attempts=100, timeout=3.0, initial=1.0, max_delay=1.0)
    fn, calls = failing([RateLimitError("x", retry_after=1.0) for _ in range(100)])
    with pytest.raises(RateLimitError):
        await retry_call(fn, policy=policy, clock=clock, rng=random.Random(1))
    assert clock.now <= 3.0
    assert calls[0] == 4


async def test_retry_honours_retry_after() -> None:
    """Retry-After is used as the minimum sleep."""
    clock = ManualClock()
    fn, _ = failing([RateLimitError("x", retry_after=4.5)])
    await retry_call(fn, policy=POLICY, clock=clock, rng=random.Random(1))
    assert clock.sleeps == [4.5]


async def test_retry_after_above_cap_gives_up() -> None:
    """A Retry-After longer than max_retry_after fails at once with the rate-limit error."""
    clock = ManualClock()
    fn, calls = failing([RateLimitError("x", retry_after=5.5)])
    with pytest.raises(RateLimitError):
        await retry_call(fn, policy=POLICY, clock=clock, rng=random.Random(1))
    assert calls[0] == 1
    assert clock.sleeps == []


async def test_retry_non_retryable_raises_at_once() -> None:
    """Definite errors are raised without a retry."""
    fn, calls = failing([InvalidParameterError("x", code=1003)])
    with pytest.raises(InvalidParameterError):
        await retry_call(fn, policy=POLICY, clock=ManualClock(), rng=random.Random(1))
    assert calls[0] == 1


@pytest.mark.parametrize(
    "err",
    [
        ConnectError("x"),
        RateLimitError("x", code=1005),
        RetryLaterError("x", code=1015),
        ServerError("x", code=2001),
    ],
)
async def test_create_retries_on_proof_of_no_task(err: Exception) -> None:
    """A create is resent after errors that prove no task was created."""
    fn, calls = failing([err])
    got = await retry_call(
        fn,
        policy=POLICY,
        clock=ManualClock(),
        rng=random.Random(1),
        create_request="req",
    )
    assert got == "ok"
    assert calls[0] == 2


@pytest.mark.parametrize(
    "err",
    [
        RequestTimeoutError("x", method="POST", path="/p"),
        ConnectionLostError("x", method="POST", path="/p"),
        ResponseError("x", method="POST", path="/p"),
        ServerError("x", method="POST", path="/p", http_status=502),
    ],
)
async def test_create_ambiguous_becomes_submission_uncertain(err: Exception) -> None:
    """An ambiguous create failure raises SubmissionUncertainError from the cause, unsent."""
    fn, calls = failing([err])
    with pytest.raises(SubmissionUncertainError) as info:
        await retry_call(
            fn,
            policy=POLICY,
            clock=ManualClock(),
            rng=random.Random(1),
            create_request="req",
        )
    assert calls[0] == 1
    assert info.value.request == "req"
    assert info.value.__cause__ is err
    assert info.value.path == "/p"


async def test_create_definite_rejection_raised_as_is() -> None:
    """A create rejected with a business code is raised unchanged and not resent."""
    fn, calls = failing([InsufficientCreditError("x", code=1104)])
    with pytest.raises(InsufficientCreditError):
        await retry_call(
            fn,
            policy=POLICY,
            clock=ManualClock(),
            rng=random.Random(1),
            create_request="req",
        )
    assert calls[0] == 1


async def test_on_retry_called_before_each_sleep() -> None:
    """on_retry sees the try count, the error and the delay of each retry."""
    seen: list[tuple[int, str, float]] = []
    fn, _ = failing([ServerError("a"), ServerError("b")])
    await retry_call(
        fn,
        policy=POLICY,
        clock=ManualClock(),
        rng=random.Random(1),
        on_retry=lambda n, e, d: seen.append((n, e.message, d)),
    )
    assert [(n, m) for n, m, _ in seen] == [(1, "a"), (2, "b")]
    assert all(0 <= d <= POLICY.max_delay for _, _, d in seen)


@given(st.integers(min_value=1, max_value=8), st.integers())
async def test_retry_sleeps_respect_policy(attempts: int, seed: int) -> None:
    """Total sleep never exceeds the policy timeout and each sleep the max delay."""
    clock = ManualClock()
    policy = RetryPolicy(attempts=attempts, timeout=2.0, initial=0.5, max_delay=1.0)
    fn, calls = failing([ServerError("x") for _ in range(attempts)])
    with pytest.raises(ServerError):
        await retry_call(fn, policy=policy, clock=clock, rng=random.Random(seed))
    assert calls[0] <= attempts
    assert sum(clock.sleeps) <= 2.0
    assert all(0 <= s <= 1.0 for s in clock.sleeps)


async def test_progress_restarts_the_attempt_budget() -> None:
    """A failure after progress starts a fresh budget of attempts, itself included."""
    clock = ManualClock()
    errors = [ServerError("a"), ServerError("b"), ServerError("c"), ServerError("d")]
    fn, calls = failing(errors)
    progress = iter([False, True, False, False])
    policy = RetryPolicy(attempts=3, timeout=1e6, initial=0.01, max_delay=0.01)
    with pytest.raises(ServerError) as info:
        await retry_call(
            fn, policy=policy, clock=clock, rng=random.Random(1), progressed=lambda: next(progress)
        )
    # Tries 1-2 fail; try 2 made progress (budget restarts at 1); tries 3-4 use it up.
    assert calls == [4]
    assert str(info.value) == "d"


async def test_any_error_retry_after_above_the_cap_fails_at_once() -> None:
    """A retry_after hint on any retryable error (a busy file server) is capped too."""

    class BusyError(ServerError):
        retry_after = 120.0

    fn, calls = failing([BusyError("busy")])
    with pytest.raises(BusyError):
        await retry_call(fn, policy=POLICY, clock=ManualClock(), rng=random.Random(1))
    assert calls == [1]
