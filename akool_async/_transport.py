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
import json as _json
import logging
import math
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

__all__ = ["RawResponse", "Transport"]

_logger = logging.getLogger("akool_async")

_JSON_HEADERS = {"Content-Type": "application/json"}
_dumps = _json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class RawResponse(NamedTuple):
    """One HTTP answer: status code, headers (case-insensitive mapping), body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport:
    """Sends requests to ``base_url`` over one pooled session (open it before use).

    ``timeouts``: ``connect`` bounds the wait for a pool slot, then TCP/TLS setup; ``read`` is
    the longest silence while reading; ``total`` bounds the whole request. ``limits`` sets
    the pool size and the largest body accepted. ``headers`` are sent with every request
    (never logged).
    """

    __slots__ = (
        "_base",
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
        t = self._timeouts
        # API answers are small and arrive together: one deadline per call (connect + read,
        # within total) instead of aiohttp's per-chunk read timer, which re-arms a timer
        # handle on every read and cost ~8 % of a request's CPU in benchmark B1. Downloads
        # set their own per-chunk timeout (see _download).
        budget = min(t.total, t.connect + t.read)
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections,
            limit_per_host=self._limits.max_connections_per_host,
            keepalive_timeout=self._limits.keepalive_expiry,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=budget, connect=t.connect),
            headers=self._headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close the session and every pooled connection (idempotent, shielded)."""
        session, self._session = self._session, None
        self._gate.close()
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
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _map_error(exc, method, path) from exc
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
