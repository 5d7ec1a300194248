"""Transport seam: one session, exact aiohttp error mapping, body cap, no redirects.

These unit tests use tiny local servers on 127.0.0.1 (aiohttp.web apps and raw asyncio
sockets) to produce each network condition; behaviour tests use the Akool simulator.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiohttp import web

from akool_async._config import Limits, Timeouts
from akool_async._errors import (
    ClientStateError,
    ConnectError,
    ConnectionLostError,
    RequestTimeoutError,
    ResponseError,
    TransportError,
)
from akool_async._transport import Transport

pytestmark = pytest.mark.anyio

FAST = Timeouts(connect=5.0, read=5.0, total=10.0)


@asynccontextmanager
async def web_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handler`` for every path on 127.0.0.1; yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(reply: bytes | None) -> AsyncIterator[str]:
    """A socket server that reads one request head, writes ``reply`` (if any) and closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if reply is not None:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def transport(
    base_url: str, *, timeouts: Timeouts = FAST, limits: Limits | None = None
) -> AsyncIterator[Transport]:
    """An open Transport to ``base_url``, closed afterwards."""
    t = Transport(base_url, timeouts=timeouts, limits=limits or Limits(), user_agent="test/1")
    await t.open()
    try:
        yield t
    finally:
        await t.aclose()


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_round_trip_sends_json_params_and_headers() -> None:
    """A request carries method, path, params, JSON body and headers; the answer comes back."""
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            body=await request.json(),
            ctype=request.headers.get("Content-Type"),
            ua=request.headers.get("User-Agent"),
            key=request.headers.get("x-api-key"),
        )
        return web.json_response({"code": 1000}, headers={"X-Extra": "1"})

    async with web_server(handler) as url, transport(url + "/") as t:
        raw = await t.request(
            "POST", "/a/b", params={"_id": "x y"}, json={"k": "v"}, headers={"x-api-key": "K"}
        )
    assert raw.status == 200
    assert json.loads(raw.body) == {"code": 1000}
    assert raw.headers["x-extra"] == "1"
    assert seen == {
        "method": "POST",
        "path": "/a/b",
        "query": {"_id": "x y"},
        "body": {"k": "v"},
        "ctype": "application/json",
        "ua": "test/1",
        "key": "K",
    }


async def test_many_requests_reuse_one_connection() -> None:
    """Sequential requests reuse a pooled keep-alive connection."""
    peers: set[object] = set()

    async def handler(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(body=b"{}")

    async with web_server(handler) as url, transport(url) as t:
        for _ in range(5):
            await t.request("GET", "/x")
    assert len(peers) == 1


async def test_refused_port_is_connect_error() -> None:
    """A refused connection is a ConnectError: the request never left."""
    async with transport(f"http://127.0.0.1:{free_port()}") as t:
        with pytest.raises(ConnectError) as info:
            await t.request("POST", "/create", json={})
    assert info.value.method == "POST"
    assert info.value.path == "/create"
    assert isinstance(info.value.__cause__, Exception)


async def test_close_after_request_is_connection_lost() -> None:
    """A connection closed after the request was read is a ConnectionLostError."""
    async with raw_server(None) as url, transport(url) as t:
        with pytest.raises(ConnectionLostError):
            await t.request("POST", "/create", json={"a": 1})


async def test_truncated_body_is_connection_lost() -> None:
    """A body shorter than its Content-Length is a ConnectionLostError."""
    reply = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"code":'
    async with raw_server(reply) as url, transport(url) as t:
        with pytest.raises(ConnectionLostError):
            await t.request("GET", "/x")


async def test_garbage_status_line_is_response_error() -> None:
    """An answer that is not HTTP is a ResponseError."""
    async with raw_server(b"SMTP ready, not HTTP\r\n\r\n") as url, transport(url) as t:
        with pytest.raises(ResponseError):
            await t.request("GET", "/x")


async def test_slow_answer_is_request_timeout() -> None:
    """An answer slower than connect + read is a RequestTimeoutError and a TimeoutError."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=b"{}")

    async with web_server(handler) as url:
        async with transport(url, timeouts=Timeouts(connect=0.5, read=0.05, total=10)) as t:
            with pytest.raises(RequestTimeoutError) as info:
                await t.request("GET", "/x")
        release.set()
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, TransportError)


async def test_total_timeout_is_request_timeout() -> None:
    """Passing the total timeout is a RequestTimeoutError."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=b"{}")

    async with web_server(handler) as url:
        async with transport(url, timeouts=Timeouts(connect=5, read=5, total=0.05)) as t:
            with pytest.raises(RequestTimeoutError):
                await t.request("POST", "/x", json={})
        release.set()


async def test_a_timed_out_call_leaves_the_task_usable() -> None:
    """After a call times out, the same task goes on awaiting and sending normally."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/slow":
            await release.wait()
        return web.Response(body=b"{}")

    # A call may take connect + read = 1 s: a quick answer fits even on a loaded machine,
    # the slow call times out.
    timeouts = Timeouts(connect=0.5, read=0.5, total=10)
    async with web_server(handler) as url:
        async with transport(url, timeouts=timeouts) as t:
            fast = await t.request("GET", "/fast")
            with pytest.raises(RequestTimeoutError):
                await t.request("GET", "/slow")
            await anyio.lowlevel.checkpoint()
            again = await t.request("GET", "/fast")
        release.set()
    assert (fast.status, again.status) == (200, 200)
    if sys.version_info >= (3, 11):
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0


async def test_cancellation_during_a_call_propagates() -> None:
    """A call cancelled from outside ends cancelled, not as a transport error."""
    entered = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        entered.set()
        await asyncio.Event().wait()
        return web.Response(body=b"{}")

    outcome: list[str] = []

    async def call(t: Transport) -> None:
        try:
            await t.request("GET", "/x")
        except TransportError:
            outcome.append("error")
        else:
            outcome.append("answer")

    async with web_server(handler) as url, transport(url) as t, anyio.create_task_group() as tg:
        tg.start_soon(call, t)
        await entered.wait()
        tg.cancel_scope.cancel()
    assert outcome == []


async def test_pool_wait_timeout_is_connect_error() -> None:
    """Timing out while waiting for a pool slot is a ConnectError: nothing was sent."""
    release = asyncio.Event()
    entered = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(body=b"{}")

    timeouts = Timeouts(connect=0.05, read=30, total=30)
    statuses: list[int] = []

    async def hold(t: Transport) -> None:
        statuses.append((await t.request("GET", "/hold")).status)

    async with (
        web_server(handler) as url,
        transport(url, timeouts=timeouts, limits=Limits(max_connections=1)) as t,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(hold, t)
        await entered.wait()
        with pytest.raises(ConnectError):
            await t.request("POST", "/create", json={})
        release.set()
    assert statuses == [200]


async def test_closing_turns_away_requests_waiting_for_a_connection() -> None:
    """A request queued for a connection when the transport closes fails at once, unsent."""
    release = asyncio.Event()
    entered = asyncio.Event()
    creates = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal creates
        if request.path == "/create":
            creates += 1
        entered.set()
        await release.wait()
        return web.Response(body=b"{}")

    errors: list[BaseException] = []

    async def call(t: Transport, method: str, path: str) -> None:
        try:
            await t.request(method, path, json={} if method == "POST" else None)
        except (ClientStateError, TransportError) as err:
            errors.append(err)

    timeouts = Timeouts(connect=3600, read=3600, total=3600)  # only closing can end the wait
    async with web_server(handler) as url:
        t = Transport(url, timeouts=timeouts, limits=Limits(max_connections=1), user_agent="t")
        await t.open()
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, t, "GET", "/hold")  # holds the only connection
            await entered.wait()
            tg.start_soon(call, t, "POST", "/create")  # queues for it
            await anyio.wait_all_tasks_blocked()
            await t.aclose()
        release.set()
    queued = [e for e in errors if isinstance(e, ClientStateError)]
    assert len(queued) == 1
    assert "was not sent" in str(queued[0])
    assert creates == 0


async def test_oversized_body_is_response_error() -> None:
    """A body over max_response_bytes is refused with ResponseError."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 2000)

    async with (
        web_server(handler) as url,
        transport(url, limits=Limits(max_response_bytes=1000)) as t,
    ):
        with pytest.raises(ResponseError, match="limit"):
            await t.request("GET", "/x")


async def test_oversized_chunked_body_is_response_error() -> None:
    """A chunked body (no Content-Length) is capped while streaming."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"y" * 500)
        await resp.write_eof()
        return resp

    async with web_server(handler) as url:
        async with transport(url, limits=Limits(max_response_bytes=1000)) as t:
            with pytest.raises(ResponseError):
                await t.request("GET", "/x")
        async with transport(url, limits=Limits(max_response_bytes=5000)) as t:
            assert len((await t.request("GET", "/x")).body) == 5000


async def test_redirect_not_followed() -> None:
    """A redirect is returned as is, never followed."""
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/from":
            raise web.HTTPFound("/to")
        return web.Response(body=b"{}")

    async with web_server(handler) as url, transport(url) as t:
        raw = await t.request("POST", "/from", json={})
    assert raw.status == 302
    assert hits == ["/from"]


async def test_request_before_open_and_after_close() -> None:
    """Using a transport that is not open raises ClientStateError; aclose is idempotent."""
    t = Transport("http://127.0.0.1:1", timeouts=FAST, limits=Limits(), user_agent="u")
    with pytest.raises(ClientStateError):
        await t.request("GET", "/x")
    await t.open()
    with pytest.raises(ClientStateError):
        await t.open()
    await t.aclose()
    await t.aclose()
    with pytest.raises(ClientStateError):
        await t.request("GET", "/x")


async def test_requests_beyond_the_pool_wait_their_turn_and_all_complete() -> None:
    """Eight concurrent requests over a two-connection pool: two at a time, all answered."""
    in_flight = peak = 0
    two_in = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 2:
            two_in.set()
        await release.wait()
        in_flight -= 1
        return web.Response(body=b"{}")

    statuses: list[int] = []

    async def one(t: Transport) -> None:
        statuses.append((await t.request("GET", "/x")).status)

    async with (
        web_server(handler) as url,
        transport(url, limits=Limits(max_connections=2)) as t,
        anyio.create_task_group() as tg,
    ):
        for _ in range(8):
            tg.start_soon(one, t)
        await two_in.wait()
        await anyio.wait_all_tasks_blocked()
        assert in_flight == 2
        release.set()
    assert statuses == [200] * 8
    assert peak == 2


# -- the ready hook: the last moment before the bytes go --------------------------------


async def test_on_ready_runs_only_once_a_connection_is_held() -> None:
    """A request cancelled while it queued for the pool never ran its hook; a sent one did,
    once, before the server saw it."""
    entered, release = anyio.Event(), anyio.Event()
    arrivals: list[tuple[str, list[str]]] = []
    readied: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        arrivals.append((request.path, list(readied)))
        if request.path == "/hold":
            entered.set()
            await release.wait()
        return web.Response(body=b"{}")

    def hook(name: str) -> Callable[[], Awaitable[None]]:
        async def ready() -> None:
            readied.append(name)

        return ready

    async with web_server(handler) as url, transport(url, limits=Limits(max_connections=1)) as t:
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.request, "GET", "/hold")  # holds the only connection
            await entered.wait()
            queued = anyio.CancelScope()
            tg.start_soon(_request_in, queued, t, "/queued", hook("queued"))
            await anyio.wait_all_tasks_blocked()  # it waits for the pool
            queued.cancel()
            release.set()
        await t.request("POST", "/create", json={}, on_ready=hook("create"))
        await t.request("POST", "/again", json={}, on_ready=hook("again"))  # a reused one
    assert readied == ["create", "again"]
    assert arrivals == [("/hold", []), ("/create", ["create"]), ("/again", ["create", "again"])]


async def _request_in(
    scope: anyio.CancelScope, t: Transport, path: str, hook: Callable[[], Awaitable[None]]
) -> None:
    with scope:
        await t.request("POST", path, json={}, on_ready=hook)


async def test_on_ready_that_raises_sends_nothing() -> None:
    """The hook's error propagates as is and the server sees no request."""
    arrivals: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        arrivals.append(request.path)
        return web.Response(body=b"{}")

    async def refuse() -> None:
        raise LookupError("stop")

    async with web_server(handler) as url, transport(url) as t:
        with pytest.raises(LookupError, match="stop"):
            await t.request("POST", "/create", json={}, on_ready=refuse)
        await t.request("GET", "/after")  # the transport still works
    assert arrivals == ["/after"]


async def test_on_ready_runs_on_a_callers_session_too() -> None:
    """With a session the caller owns (no trace of ours) the hook runs before the request."""
    arrivals: list[tuple[str, int]] = []
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        arrivals.append((request.path, calls))
        return web.Response(body=b"{}")

    async def ready() -> None:
        nonlocal calls
        calls += 1

    async with web_server(handler) as url, aiohttp.ClientSession() as session:
        t = Transport(url, timeouts=FAST, limits=Limits(), user_agent="u", session=session)
        await t.open()
        await t.request("POST", "/create", json={}, on_ready=ready)
        await t.aclose()
        assert not session.closed
    assert arrivals == [("/create", 1)]
