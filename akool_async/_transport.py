"""The narrow seam over ONE long-lived ``aiohttp.ClientSession``.

:class:`Transport` sends one request and returns its status, headers and body bytes; it
knows nothing about envelopes, auth or retries. aiohttp exceptions are mapped precisely,
because the mapping decides whether a create may be resent:

- the request never left (DNS, refused, TLS, connect/pool timeout) -> :class:`ConnectError`;
- a timeout once the request may have been sent -> :class:`RequestTimeoutError`
  (also a builtin ``TimeoutError``);
- the connection dropped or the body broke after sending -> :class:`ConnectionLostError`;
- an unparseable HTTP answer or a body over ``Limits.max_response_bytes`` ->
  :class:`ResponseError`.

aiohttp itself resends only idempotent methods on a dead keep-alive connection, never a
POST. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

import aiohttp
import anyio
from yarl import URL

from ._config import Limits, Timeouts
from ._errors import (
    ClientStateError,
    ConnectError,
    ConnectionLostError,
    RequestTimeoutError,
    ResponseError,
)
from ._json import compact_encoder

__all__ = ["RawResponse", "Transport"]

_logger = logging.getLogger("akool_async")

_JSON_HEADERS = {"Content-Type": "application/json"}
_dumps = compact_encoder(ensure_ascii=False)


class RawResponse(NamedTuple):
    """One HTTP answer: status code, headers (case-insensitive mapping), body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport:
    """Sends requests to ``base_url`` over one pooled session (open it before use).

    ``timeouts``: ``connect`` bounds the wait for a pool slot, then TCP/TLS setup; a call
    must then end within ``connect + read`` seconds (at most ``total``). ``limits`` sets
    the pool size and the largest body accepted. ``headers`` are sent with every request
    (never logged).
    """

    __slots__ = (
        "_base",
        "_deadlines",
        "_gate",
        "_headers",
        "_limits",
        "_max_bytes",
        "_session",
        "_timeouts",
        "_urls",
    )

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts,
        limits: Limits,
        user_agent: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeouts = timeouts
        self._limits = limits
        self._max_bytes = limits.max_response_bytes
        # Headers sent with every request (User-Agent, and a static auth header if any):
        # session-level headers cost nothing per request, per-request ones are merged.
        self._headers = {"User-Agent": user_agent, **(headers or {})}
        self._session: aiohttp.ClientSession | None = None
        # Parsed URLs per path: yarl parsing is the largest per-request cost we can avoid.
        self._urls: dict[str, URL] = {}
        # Requests wait for a pooled connection HERE, before aiohttp builds anything: in
        # aiohttp's connector each waiter has already built its request and timers, and a
        # batch (64 creates + 64 polls on 64 connections) spent a large share of its CPU
        # there. Waiting here is one future, and lets polls go before creates (_Gate).
        # The wait counts against the connect timeout, as it did in aiohttp.
        self._gate = _Gate(
            min(limits.max_connections, limits.max_connections_per_host),
            min(timeouts.connect, timeouts.total),
        )
        # API answers are small and arrive together: a call has one deadline, connect +
        # read from its start (within total). Every call has the same budget, so ONE timer
        # serves them all (_Deadlines) instead of aiohttp's timer per request.
        self._deadlines = _Deadlines(min(timeouts.total, timeouts.connect + timeouts.read))

    @property
    def base_url(self) -> str:
        """The base URL requests are sent to (no trailing slash)."""
        return self._base

    def spare_connections(self) -> int:
        """Pooled connections a request would get right now, without waiting."""
        return self._gate.spare()

    async def open(self) -> None:
        """Create the session and its connection pool (must run inside the event loop)."""
        if self._session is not None:
            raise ClientStateError("the transport is already open")
        # No session-wide timer: API calls run under _Deadlines, and aiohttp's own timers
        # (one TimerHandle per request for ``total``, re-armed per chunk for ``sock_read``)
        # were ~10 % of a request's CPU in benchmark B1. ``connect`` still bounds opening
        # a new connection. Downloads set their own per-chunk timeout (see _download).
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections,
            limit_per_host=self._limits.max_connections_per_host,
            keepalive_timeout=self._limits.keepalive_expiry,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=self._timeouts.connect),
            headers=self._headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close the session and every pooled connection (idempotent, shielded)."""
        session, self._session = self._session, None
        self._gate.close()
        self._deadlines.close()
        if session is not None:
            with anyio.CancelScope(shield=True):
                await session.close()

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self._base + path)
        return url

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> RawResponse:
        """Send one request; return the answer whatever its status, or raise a TransportError.

        ``path`` starts with ``/``; ``json`` (if not None) is sent as the JSON body.
        """
        session = self._session
        if session is None:
            raise ClientStateError("the transport is not open")
        data: bytes | None = None
        if json is not None:
            data = _dumps(json).encode()
            headers = {**headers, **_JSON_HEADERS} if headers else _JSON_HEADERS
        gate = self._gate
        # No event-loop turn when a connection is free; else reads (polls) before writes
        # (creates): see _Gate.
        if not gate.try_acquire():
            acquired = await gate.acquire(first=method == "GET")
            if self._session is not session:
                if acquired:
                    gate.release()
                raise ClientStateError(
                    "the client was closed while this request waited for a connection; "
                    "the request was not sent"
                )
            if not acquired:
                raise ConnectError(
                    f"timed out after {gate.timeout:g} s waiting for a free connection "
                    f"(Limits.max_connections); the request was not sent",
                    method=method,
                    path=path,
                )
        deadlines = self._deadlines
        call = deadlines.start()
        try:
            async with session.request(
                method,
                self._url(path),
                params=params,
                data=data,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                length = resp.content_length
                if length is not None and length <= self._max_bytes:
                    body = await resp.read()
                else:
                    body = await self._read_capped(resp, method, path)
                status = resp.status
                result = RawResponse(status, resp.headers, body)
        except BaseException as exc:
            if deadlines.end(call):
                # Our deadline cancelled the task (whatever aiohttp made of that, it is the
                # timeout); a cancellation from elsewhere as well still propagates.
                if _cancelled_by_others(call[1]) and isinstance(exc, asyncio.CancelledError):
                    raise
                raise RequestTimeoutError(
                    f"no answer within {deadlines.budget:g} s (Timeouts.connect + read, "
                    "within total); the server may have processed the request",
                    method=method,
                    path=path,
                ) from None
            if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError)):
                raise _map_error(exc, method, path) from exc
            raise
        else:
            if deadlines.end(call):
                # The answer beat our cancellation (something swallowed it): withdraw it.
                _cancelled_by_others(call[1])
        finally:
            gate.release()
        if _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("%s %s -> HTTP %d, %d bytes", method, path, status, len(body))
        return result

    async def _read_capped(self, resp: aiohttp.ClientResponse, method: str, path: str) -> bytes:
        limit = self._max_bytes
        length = resp.content_length
        if length is not None and length > limit:
            raise ResponseError(
                f"response body of {length} bytes exceeds the {limit}-byte limit",
                method=method,
                path=path,
                http_status=resp.status,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise ResponseError(
                    f"response body exceeds the {limit}-byte limit",
                    method=method,
                    path=path,
                    http_status=resp.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)


class _Gate:
    """A counting semaphore with a timed wait and two FIFO queues, on bare asyncio futures.

    Requests queue here for a pooled connection. anyio's Semaphore plus a cancel scope per
    timed wait cost several times more than one future, and this wait is on the hot path of
    every batch that has more requests ready than connections. Every wait has the same
    ``timeout``, so each queue's deadlines are in queue order and ONE timer, armed for the
    oldest live waiter, expires them all: a wait costs no timer handle of its own.

    A slot is handed straight to the oldest waiter on release (no barging), ``first``
    waiters before the others: polls go before creates, so a saturated batch finishes the
    jobs it started before it starts more (fewer jobs in flight, results sooner).
    """

    __slots__ = ("_first", "_free", "_timer", "_waiters", "timeout")

    def __init__(self, slots: int, timeout: float) -> None:
        self._free = slots
        self.timeout = timeout
        # (deadline on the loop's clock, waiter), oldest first.
        self._first: collections.deque[tuple[float, asyncio.Future[bool]]] = (
            collections.deque()
        )
        self._waiters: collections.deque[tuple[float, asyncio.Future[bool]]] = (
            collections.deque()
        )
        self._timer: asyncio.TimerHandle | None = None

    def spare(self) -> int:
        """Slots a new request would get at once (0 while anyone is queued)."""
        return 0 if self._waiters or self._first else self._free

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued for it."""
        if self._free > 0 and not self._waiters and not self._first:
            self._free -= 1
            return True
        return False

    async def acquire(self, *, first: bool = False) -> bool:
        """Wait up to ``timeout`` seconds for a slot; False if none came in time."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        entry = (loop.time() + self.timeout, waiter)
        queue = self._first if first else self._waiters
        queue.append(entry)
        if self._timer is None:
            self._timer = loop.call_at(entry[0], self._expire)
        try:
            return await waiter
        except BaseException:
            # Cancelled: hand on a slot that was already given to us, or leave the queue.
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(entry)
            raise

    def release(self) -> None:
        """Return a slot: to the oldest live ``first`` waiter, else the oldest other one,
        else to the pool."""
        for waiters in (self._first, self._waiters):
            while waiters:
                waiter = waiters.popleft()[1]
                if not waiter.done():
                    waiter.set_result(True)
                    return
        self._free += 1

    def _expire(self) -> None:
        """The timer: fail every waiter past its deadline, re-arm for the oldest other."""
        self._timer = None
        loop = asyncio.get_running_loop()
        # The loop runs a timer up to its clock resolution early: never re-arm for "now".
        now = loop.time() + _TIMER_SLACK
        earliest = math.inf
        for waiters in (self._first, self._waiters):
            while waiters:
                deadline, waiter = waiters[0]
                if waiter.done():
                    waiters.popleft()
                elif deadline <= now:
                    waiters.popleft()
                    waiter.set_result(False)
                else:
                    earliest = min(earliest, deadline)
                    break
        if earliest < math.inf:
            self._timer = loop.call_at(earliest, self._expire)

    def close(self) -> None:
        """The transport is closing: drop the timer and turn every waiter away (False) at
        once, rather than when the requests holding the slots fail."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for waiters in (self._first, self._waiters):
            while waiters:
                waiter = waiters.popleft()[1]
                if not waiter.done():
                    waiter.set_result(False)


class _Deadlines:
    """The deadlines of every API call in flight, on ONE timer.

    Each call must end within ``budget`` seconds of its start; all calls share the budget,
    so their deadlines come in start order and a deque holds them. The timer is armed for
    the oldest call still running; when it fires it cancels the task of each call past its
    deadline, marks the call expired, and re-arms for the oldest call left. A call costs a
    deque append and a flag, where aiohttp's ``total`` timeout costs a timer handle, its
    cancellation and a context object per request.

    A call is ``[deadline, task, state]``: state is ``_RUNNING``, then ``_ENDED`` or
    ``_EXPIRED``. Only a running call's task is ever cancelled, and a call ends in the same
    step its awaited I/O returns, so the cancellation always lands inside the call.
    """

    __slots__ = ("_calls", "_timer", "budget")

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._calls: collections.deque[list[Any]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> list[Any]:
        """Register the current task's call; return its handle for :meth:`end`."""
        loop = asyncio.get_running_loop()
        call: list[Any] = [loop.time() + self.budget, asyncio.current_task(), _RUNNING]
        calls = self._calls
        # Calls end roughly in start order: drop the ended ones at the front as we go, so
        # the deque holds about the calls in flight rather than a budget's worth of calls.
        while calls and calls[0][2] is not _RUNNING:
            calls.popleft()
        calls.append(call)
        if self._timer is None:
            self._timer = loop.call_at(call[0], self._expire)
        return call

    @staticmethod
    def end(call: list[Any]) -> bool:
        """Mark ``call`` ended; True if its deadline had passed (its task was cancelled)."""
        expired = call[2] is _EXPIRED
        call[2] = _ENDED
        return expired

    def _expire(self) -> None:
        self._timer = None
        calls = self._calls
        loop = asyncio.get_running_loop()
        # The loop runs a timer up to its clock resolution early: never re-arm for "now".
        now = loop.time() + _TIMER_SLACK
        while calls:
            call = calls[0]
            if call[2] is not _RUNNING:
                calls.popleft()
            elif call[0] <= now:
                calls.popleft()
                call[2] = _EXPIRED
                call[1].cancel()
            else:
                self._timer = loop.call_at(call[0], self._expire)
                break

    def close(self) -> None:
        """Drop the timer (the session is closing and ends every call itself)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._calls.clear()


_RUNNING, _ENDED, _EXPIRED = "running", "ended", "expired"


if sys.version_info >= (3, 11):

    def _cancelled_by_others(task: asyncio.Task[Any]) -> bool:
        """Withdraw our own cancel request; True if another one is still pending."""
        return task.uncancel() > 0

else:

    def _cancelled_by_others(task: asyncio.Task[Any]) -> bool:
        # 3.10 counts no cancel requests. Under anyio a cancelled scope re-delivers its
        # cancellation at the next await, so treating this one as our timeout loses nothing.
        return False


#: A pool wait may end this much before its deadline (the event loop fires timers up to its
#: clock resolution early); far below any sensible ``Timeouts.connect``.
_TIMER_SLACK = 1e-3


def _map_error(exc: BaseException, method: str, path: str) -> Exception:
    """The SDK error for an aiohttp/timeout exception (order matters: subclasses first)."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # Raised only while waiting for a pool slot or connecting: nothing was sent.
        return ConnectError(
            f"timed out connecting to the server ({name}); the request was not sent",
            method=method,
            path=path,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        # DNS, refused, TLS and proxy failures: the connection was never made.
        return ConnectError(
            f"could not connect ({name}: {exc}); the request was not sent",
            method=method,
            path=path,
        )
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return RequestTimeoutError(
            f"the request timed out ({name}); the server may have processed it",
            method=method,
            path=path,
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        # Unparseable status line or headers, or a bad content encoding.
        return ResponseError(
            f"malformed HTTP answer ({name}: {exc.message})",
            method=method,
            path=path,
            http_status=exc.status or None,
        )
    return ConnectionLostError(
        f"the connection was lost ({name}: {exc}); the server may have processed the request",
        method=method,
        path=path,
    )
