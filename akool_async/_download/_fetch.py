"""The HTTP side of a download: attempts, Range resumption, validators, one retry loop.

Each attempt follows redirects (re-checked), then streams from the bytes already held
with ``Range: bytes=N-`` and ``If-Range``. A 206 must continue our file (same start, same
total, same validator); a 200 restarts from byte 0. Anything else that does not continue
the file restarts it too, so a file is never spliced from two versions.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from akool_async._api import Api
from akool_async._config import RetryPolicy
from akool_async._errors import (
    AkoolError,
    APIError,
    ConnectionLostError,
    HTTPStatusError,
    RateLimitError,
    ServerError,
)
from akool_async._retry import parse_retry_after, retry_call
from akool_async._transport import map_aiohttp_error

from ._files import Sink
from ._urls import DownloadError, check_download_url, redact_url

__all__ = ["FetchState", "failed_download", "fetch"]

_logger = logging.getLogger("akool_async")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Session default headers that may ride along to a CDN; any other default header (a
# caller's own session may carry some) is removed from download requests.
_HARMLESS_HEADERS = frozenset({"user-agent", "accept", "accept-encoding", "accept-language"})
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "x-api-key")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
#: Content types a video download may have (a missing one is accepted too).
_BINARY_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})


class FetchState:
    """What survives between attempts of one download."""

    __slots__ = ("etag", "failures", "high_water", "last_modified", "resumable", "total")

    def __init__(self) -> None:
        self.total: int | None = None  # the full file size, once a server announced it
        self.etag: str | None = None  # the strong ETag of the version we hold
        self.last_modified: str | None = None  # its Last-Modified date
        self.high_water = 0  # the most bytes ever held: progress means exceeding it
        self.failures = 0  # failed tries since the last progress
        self.resumable = True  # False after a body aiohttp had to decode

    @property
    def validator(self) -> str | None:
        """The If-Range value: the strong ETag, else Last-Modified."""
        return self.etag or self.last_modified

    def remember_version(self, headers: Mapping[str, str]) -> None:
        """Record the validators of a full (200) answer."""
        etag = headers.get("ETag")
        self.etag = etag if etag and not etag.startswith("W/") else None
        self.last_modified = headers.get("Last-Modified") or None

    def same_version(self, headers: Mapping[str, str]) -> bool:
        """False when a part's validator shows another version of the file than ours."""
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        if self.etag is not None and etag is not None:
            return etag == self.etag
        if self.last_modified is not None and modified is not None:
            return modified == self.last_modified
        return True


class RestartError(AkoolError):
    """The server's answer does not continue our partial file: start again from byte 0."""

    retryable = True


class _ServerBusyError(ServerError):
    """HTTP 503 with an optional Retry-After hint (seconds)."""

    def __init__(self, message: str, *, retry_after: float | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    if value is None:
        return None
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        return None
    start, end, total = match.groups()
    first, last = int(start), int(end)
    size = None if total == "*" else int(total)
    if last < first or (size is not None and last >= size):
        return None
    return first, last, size


def _status_error(resp: aiohttp.ClientResponse, path: str, now_wall: float) -> APIError:
    status = resp.status
    message = f"the file server answered HTTP {status}"
    if status in (429, 503):
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), now_wall=now_wall)
        cls = RateLimitError if status == 429 else _ServerBusyError
        return cls(message, retry_after=retry_after, method="GET", path=path, http_status=status)
    if status >= 500 or status == 408:
        return ServerError(message, method="GET", path=path, http_status=status)
    if status in (403, 404, 410):
        message += " (Akool deletes outputs 7 days after completion; the URL may have expired)"
    return HTTPStatusError(message, method="GET", path=path, http_status=status)


def _check_content_type(resp: aiohttp.ClientResponse, path: str) -> None:
    """A video answer is ``video/*``, an octet stream, or untyped; anything else (an HTML
    error page with status 200, JSON) is a DownloadError naming the type."""
    raw = resp.headers.get("Content-Type", "")
    mime = raw.split(";", 1)[0].strip().lower()
    if not mime or mime.startswith("video/") or mime in _BINARY_TYPES:
        return
    raise DownloadError(
        f"the file server answered HTTP {resp.status} with content type {mime!r}, not a video",
        method="GET",
        path=path,
        http_status=resp.status,
    )


def _request_options(session: aiohttp.ClientSession) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and ``session.get`` options that keep every credential off download requests.

    aiohttp merges a session's default headers into every request and offers no
    per-request opt-out, so a per-request middleware deletes every non-trivial one (and any
    credential header) before the request is sent.
    """
    in_session = {name for name in session.headers if name.lower() not in _HARMLESS_HEADERS}
    names = (*in_session, *_CREDENTIAL_HEADERS)

    async def strip_credentials(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        for name in names:
            request.headers.popall(name, None)
        return await handler(request)

    headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
    return headers, {"middlewares": (strip_credentials,)}


async def _attempt(
    session: aiohttp.ClientSession,
    url: URL,
    sink: Sink,
    state: FetchState,
    *,
    chunk_size: int,
    max_redirects: int,
    base_headers: Mapping[str, str],
    options: Mapping[str, Any],
    now_wall: float,
) -> None:
    """One try: follow redirects, then stream from ``sink.size`` on. Returns when complete."""
    if not state.resumable and sink.size:
        await sink.restart()
    offset = sink.size
    headers = dict(base_headers)
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state.validator is not None:
            headers["If-Range"] = state.validator
    current = url
    for _hop in range(max_redirects + 1):
        path = current.path
        try:
            async with session.get(
                current, headers=headers, allow_redirects=False, **options
            ) as resp:
                if resp.status in _REDIRECTS:
                    current = _redirect_target(resp, current, path)
                    continue
                await _receive(
                    resp,
                    sink,
                    state=state,
                    offset=offset,
                    chunk_size=chunk_size,
                    path=path,
                    now_wall=now_wall,
                )
                return
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise map_aiohttp_error(exc, "GET", path) from exc
    raise HTTPStatusError(
        f"more than {max_redirects} redirects", method="GET", path=url.path, http_status=None
    )


def _redirect_target(resp: aiohttp.ClientResponse, current: URL, path: str) -> URL:
    location = resp.headers.get("Location")
    if not location:
        raise HTTPStatusError(
            f"HTTP {resp.status} redirect without a Location header",
            method="GET",
            path=path,
            http_status=resp.status,
        )
    return check_download_url(str(current.join(URL(location))))


async def _receive(
    resp: aiohttp.ClientResponse,
    sink: Sink,
    *,
    state: FetchState,
    offset: int,
    chunk_size: int,
    path: str,
    now_wall: float,
) -> None:
    """Check one answer and stream its body into ``sink``."""
    status = resp.status
    if status == 416 and offset:
        await _range_not_satisfiable(resp, sink, state, offset, path)
        return
    if status not in (200, 206):
        raise _status_error(resp, path, now_wall)
    _check_content_type(resp, path)
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    decoded = encoding not in ("", "identity")
    if status == 206:
        expected: int | None = await _continue_part(
            resp, sink, state=state, offset=offset, decoded=decoded, path=path
        )
    else:
        expected = await _start_over(
            resp, sink, state=state, offset=offset, decoded=decoded, path=path
        )
    await _stream(resp, sink, expected, chunk_size, path)
    if decoded and sink.size:
        # Nothing to verify against, and a retry could not resume this body anyway.
        state.total = sink.size


async def _range_not_satisfiable(
    resp: aiohttp.ClientResponse, sink: Sink, state: FetchState, offset: int, path: str
) -> None:
    unsatisfied = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    if unsatisfied is not None and int(unsatisfied.group(1)) == offset:
        state.total = offset  # we already hold every byte; the last answer was lost
        return
    await sink.restart()
    raise RestartError("HTTP 416 to our Range: the file changed", method="GET", path=path)


async def _continue_part(
    resp: aiohttp.ClientResponse,
    sink: Sink,
    *,
    state: FetchState,
    offset: int,
    decoded: bool,
    path: str,
) -> int:
    """The byte count a 206 must deliver, if it continues our file; else restart it."""
    span = _parse_content_range(resp.headers.get("Content-Range"))
    problem = None
    if span is None or span[0] != offset or decoded:
        problem = "HTTP 206 whose Content-Range does not continue our file"
    elif span[2] is not None and state.total is not None and span[2] != state.total:
        problem = "the file's size changed between requests"
    elif not state.same_version(resp.headers):
        # A server that ignored If-Range and sent part of a changed file.
        problem = "the file changed between requests (its ETag or Last-Modified differs)"
    if problem is not None or span is None:
        await sink.restart()
        raise RestartError(str(problem), method="GET", path=path)
    _start, end, total = span
    if total is not None:
        state.total = total
    return end + 1 - offset


async def _start_over(
    resp: aiohttp.ClientResponse,
    sink: Sink,
    *,
    state: FetchState,
    offset: int,
    decoded: bool,
    path: str,
) -> int | None:
    """A 200: the whole file from byte 0; return its announced length (None if unknown)."""
    if offset:
        # The server ignored our Range (or If-Range saw a changed file): full body.
        _logger.debug("GET %s: HTTP 200 to a Range request, restarting from byte 0", path)
        await sink.restart()
    # aiohttp decompresses a Content-Encoding despite our identity request: the length on
    # the wire then says nothing about the file, and offsets cannot be resumed.
    state.resumable = not decoded
    expected = None if decoded else resp.content_length
    state.total = expected
    state.remember_version(resp.headers)
    return expected


async def _stream(
    resp: aiohttp.ClientResponse, sink: Sink, expected: int | None, chunk_size: int, path: str
) -> None:
    """Append the body to ``sink``; ``expected`` is how many bytes this answer owes."""
    start = sink.size
    async for chunk in resp.content.iter_chunked(chunk_size):
        await sink.add(chunk)
        if expected is not None and sink.size - start > expected:
            await sink.restart()
            raise RestartError("the server sent more bytes than announced", method="GET", path=path)
    await sink.flush()
    if expected is not None and sink.size - start != expected:
        raise ConnectionLostError(
            f"the body ended after {sink.size} of {start + expected} bytes",
            method="GET",
            path=path,
        )


async def fetch(
    api: Api,
    url: URL,
    sink: Sink,
    *,
    policy: RetryPolicy,
    chunk_size: int,
    max_redirects: int,
) -> FetchState:
    """Attempts under ``policy`` until ``sink`` holds the whole file; return what the server
    said about it. Tries that extend the file restart the retry budget."""
    session = api.http_session()  # the client's one session, never a new one
    headers, options = _request_options(session)
    # No total limit: a video may take longer than any API call; silence is still bounded.
    options["timeout"] = aiohttp.ClientTimeout(
        total=None, connect=api.timeouts.connect, sock_read=api.timeouts.read
    )
    state = FetchState()
    shown = redact_url(str(url))

    async def attempt() -> None:
        try:
            await _attempt(
                session,
                url,
                sink,
                state,
                chunk_size=chunk_size,
                max_redirects=max_redirects,
                base_headers=headers,
                options=options,
                now_wall=api.clock.wall(),
            )
        except AkoolError:
            await sink.flush()
            raise

    def progressed() -> bool:
        state.failures += 1
        if sink.size > state.high_water:
            state.high_water = sink.size
            state.failures = 1
            return True
        return False

    def on_retry(tries: int, err: AkoolError, delay: float) -> None:
        _logger.debug(
            "download %s: %s at byte %d, retrying in %.3f s (%d of %d)",
            shown,
            type(err).__name__,
            sink.size,
            delay,
            tries,
            policy.attempts,
        )

    try:
        await retry_call(
            attempt,
            policy=policy,
            clock=api.clock,
            rng=api.rng,
            on_retry=on_retry,
            progressed=progressed,
        )
    except DownloadError:
        raise
    except AkoolError as err:
        tries = state.failures if err.retryable else None
        raise failed_download(err, shown, sink.size, tries) from err
    return state


def failed_download(
    err: AkoolError, url: str, received: int, tries: int | None = None
) -> DownloadError:
    """The DownloadError that reports ``err`` (the last underlying error)."""
    after = f" after {tries} tries without progress" if tries else ""
    return DownloadError(
        f"download of {url} failed{after}: {type(err).__name__}: {err.message}",
        url=url,
        bytes_received=received,
        method=err.method,
        path=err.path,
        http_status=err.http_status,
    )
