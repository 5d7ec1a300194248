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
        self._gate = _Gate(min(limits.max_connections, limits.max_connections_per_host))

    @property
    def base_url(self) -> str:
        """The base URL requests are sent to (no trailing slash)."""
        return self._base

    async def open(self) -> None:
        """Create the session and its connection pool (must run inside the event loop)."""
        if self._session is not None:
            raise ClientStateError("the transport is already open")
        t = self._timeouts
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections,
            limit_per_host=self._limits.max_connections_per_host,
            keepalive_timeout=self._limits.keepalive_expiry,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.read),
            headers=self._headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close the session and every pooled connection (idempotent, shielded)."""
        session, self._session = self._session, None
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
        if not gate.try_acquire():  # no event-loop turn when a connection is free
            wait = min(self._timeouts.connect, self._timeouts.total)
            # Reads (polls) before writes (creates): see _Gate.
            if not await gate.acquire(wait, first=method == "GET"):
                # The pool wait counts against the connect timeout, as it did in aiohttp.
                raise ConnectError(
                    f"timed out after {wait:g} s waiting for a free connection "
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
    timed wait cost several times more than one future and one timer handle, and this wait
    is on the hot path of every batch that has more requests ready than connections.
    A slot is handed straight to the oldest waiter on release (no barging), ``first``
    waiters before the others: polls go before creates, so a saturated batch finishes the
    jobs it started before it starts more (fewer jobs in flight, results sooner).
    """

    __slots__ = ("_first", "_free", "_waiters")

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._first: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued for it."""
        if self._free > 0 and not self._waiters and not self._first:
            self._free -= 1
            return True
        return False

    # A timer handle, not anyio.fail_after: the cancel scope is the cost this class avoids.
    async def acquire(self, timeout: float, *, first: bool = False) -> bool:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for a slot; False if none came in time."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        queue = self._first if first else self._waiters
        queue.append(waiter)
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        except BaseException:
            # Cancelled: hand on a slot that was already given to us, or leave the queue.
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Return a slot: to the oldest live ``first`` waiter, else the oldest other one,
        else to the pool."""
        for waiters in (self._first, self._waiters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(True)
                    return
        self._free += 1


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


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
