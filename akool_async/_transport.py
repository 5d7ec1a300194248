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

Connection limits and timeouts are aiohttp's own (``TCPConnector(limit=...)``,
``ClientTimeout``). aiohttp itself resends only idempotent methods on a dead keep-alive
connection, never a POST. Redirects are never followed.

``request(..., on_ready=)`` awaits a hook at the last moment before the bytes go: once
aiohttp holds a connection (new or reused), so a caller cancelled while it waited for the
pool or for TCP/TLS never ran it. Such requests (creates) go through a second session over
the same connection pool that carries the trace callbacks; the others skip aiohttp's
tracing, which costs about a tenth of a request's client CPU. On a session the caller owns
(no trace of ours) the hook runs just before the request instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from types import SimpleNamespace
from typing import Any, NamedTuple

import aiohttp
import anyio

from ._config import Limits, Timeouts
from ._errors import (
    ClientStateError,
    ConnectError,
    ConnectionLostError,
    RequestTimeoutError,
    ResponseError,
)

__all__ = ["RawResponse", "Transport", "encode_json", "map_aiohttp_error"]

_logger = logging.getLogger("akool_async")

_JSON_HEADERS = {"Content-Type": "application/json"}

#: Awaited once a connection is held, right before the request's bytes are written.
ReadyHook = Callable[[], Awaitable[None]]


async def _connection_held(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object
) -> None:
    hook = ctx.trace_request_ctx
    if isinstance(hook, _Ready):
        await hook()


def _ready_trace() -> aiohttp.TraceConfig:
    """Runs a request's :class:`_Ready` hook when its connection is created or reused."""
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_connection_held)
    trace.on_connection_reuseconn.append(_connection_held)
    return trace


class _Ready:
    """A request's ``on_ready`` hook, awaited at most once."""

    def __init__(self, hook: ReadyHook) -> None:
        self._hook: ReadyHook | None = hook

    async def __call__(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            await hook()


def encode_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (non-ASCII kept as is): the body of an API call."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class RawResponse(NamedTuple):
    """One HTTP answer: status code, headers (case-insensitive mapping), body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport:
    """Sends requests to ``base_url`` over one pooled session (open it before use).

    ``timeouts``: ``connect`` bounds the wait for a pooled connection plus TCP/TLS setup
    (nothing was sent: :class:`ConnectError`); the whole call must end within
    ``connect + read`` seconds (at most ``total``). ``limits`` sets the pool size and the
    largest body accepted. ``session``: an ``aiohttp.ClientSession`` owned by the caller, used
    as is and never closed here (its own connector limits then apply).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts,
        limits: Limits,
        user_agent: str,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._limits = limits
        self._headers = {"User-Agent": user_agent}
        self._timeout = aiohttp.ClientTimeout(
            total=min(timeouts.total, timeouts.connect + timeouts.read),
            connect=min(timeouts.connect, timeouts.total),
        )
        self._external = session
        self._session: aiohttp.ClientSession | None = None
        #: Shares ``_session``'s connector; runs ``on_ready`` hooks (None on a caller's session).
        self._traced: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        """The base URL requests are sent to (no trailing slash)."""
        return self._base

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (ClientStateError when the transport is not open)."""
        session = self._session
        if session is None:
            raise ClientStateError("the transport is not open")
        return session

    async def open(self) -> None:
        """Create the session and its connection pool (must run inside the event loop)."""
        if self._session is not None:
            raise ClientStateError("the transport is already open")
        if self._external is not None:
            self._session = self._external
            return
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections,
            limit_per_host=self._limits.max_connections_per_host,
            keepalive_timeout=self._limits.keepalive_expiry,
        )
        self._session = self._new_session(connector, traced=False)
        self._traced = self._new_session(connector, traced=True)

    def _new_session(
        self, connector: aiohttp.BaseConnector, *, traced: bool
    ) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            connector_owner=not traced,  # the untraced session closes the pool
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            trust_env=False,
            trace_configs=[_ready_trace()] if traced else None,
        )

    async def aclose(self) -> None:
        """Close the sessions we created (idempotent, shielded); a caller's session stays open."""
        session, self._session = self._session, None
        traced, self._traced = self._traced, None
        if session is not None and session is not self._external:
            with anyio.CancelScope(shield=True):
                if traced is not None:
                    await traced.close()
                await session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        on_ready: ReadyHook | None = None,
    ) -> RawResponse:
        """Send one request; return the answer whatever its status, or raise a TransportError.

        ``path`` starts with ``/``; ``body`` (already encoded JSON) or ``json`` (encoded
        here) is sent as the JSON body. ``on_ready`` is awaited once a connection is held,
        right before the bytes go; if it raises, nothing is sent and its error propagates.
        """
        opened = session = self.session
        ready = None if on_ready is None else _Ready(on_ready)
        if ready is not None:
            if self._traced is None:
                await ready()  # a caller's session carries no trace of ours
            else:
                session = self._traced
        if json is not None:
            body = encode_json(json)
        merged = {**self._headers, **(headers or {})}
        if body is not None:
            merged.update(_JSON_HEADERS)
        try:
            async with session.request(
                method,
                self._base + path,
                params=params,
                data=body,
                headers=merged,
                allow_redirects=False,
                timeout=self._timeout,
                raise_for_status=False,
                trace_request_ctx=ready,
            ) as resp:
                payload = await self._read_capped(resp, method, path)
                result = RawResponse(resp.status, resp.headers, payload)
        except asyncio.CancelledError:
            # Closing the session cancels the requests waiting for a pooled connection
            # (their waiter, not their task): that is not a cancellation of the caller.
            if self._session is opened or _cancel_requested():
                raise
            raise ClientStateError(
                "the client was closed while this request waited for a connection; "
                "the request was not sent",
                method=method,
                path=path,
            ) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise map_aiohttp_error(exc, method, path) from exc
        _logger.debug("%s %s -> HTTP %d, %d bytes", method, path, result.status, len(payload))
        return result

    async def _read_capped(self, resp: aiohttp.ClientResponse, method: str, path: str) -> bytes:
        limit = self._limits.max_response_bytes
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


if sys.version_info >= (3, 11):

    def _cancel_requested() -> bool:
        """Was the current task itself asked to cancel (not just a future it awaited)?"""
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

else:

    def _cancel_requested() -> bool:
        # 3.10 counts no cancel requests. Under anyio a cancelled scope re-delivers its
        # cancellation at the next await, so treating this one as the close loses nothing.
        return False


def map_aiohttp_error(exc: BaseException, method: str, path: str) -> Exception:
    """The SDK error for an aiohttp/timeout exception (order matters: subclasses first)."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # Raised only while waiting for a pool slot or connecting: nothing was sent.
        return ConnectError(
            f"timed out waiting for a connection ({name}; Timeouts.connect, "
            "Limits.max_connections); the request was not sent",
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
            f"no answer in time ({name}; Timeouts.connect + read, within total); "
            "the server may have processed the request",
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
