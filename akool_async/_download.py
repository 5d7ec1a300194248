"""Result downloads: stream an output video to disk, resumably, atomically, without secrets.

Akool deletes outputs after 7 days, so results should be on disk before then. A download:

1. refuses, before any I/O, a URL that is not ``https`` (plain ``http`` only to a loopback
   host such as the simulator; ``file:``, ``ftp:``, ``data:`` and the rest never), a URL with
   credentials in it, and a result without ``output_url``;
2. streams into a temporary file in the *target* directory (same filesystem), named
   ``.<final name>.<random>.part`` and created with ``O_EXCL``;
3. after a mid-stream disconnect, a timeout, a 5xx, 408 or 429 it resumes with
   ``Range: bytes=N-`` (plus ``If-Range`` when the server gave a strong ETag or a
   Last-Modified date), accepting only a 206 whose ``Content-Range`` starts at ``N``; a
   200 answer to a Range request (server ignores ranges, or the file changed) restarts
   from byte zero;
4. verifies the length against ``Content-Length`` / the ``Content-Range`` total when the
   server announced one;
5. ``fsync``\\ s the file, publishes it atomically (``os.replace``; with
   ``overwrite=False`` a no-clobber ``os.link`` where the filesystem supports it) and
   ``fsync``\\ s the directory (POSIX). The final path never holds a partial file; the
   temporary file is removed on failure and on cancellation (shielded cleanup).

Retries follow the client's :class:`~akool_async.RetryPolicy` with one twist for long
transfers: ``attempts`` and ``timeout`` bound the tries *since the last progress*. A try that
extends the file beyond anything received before starts a fresh budget (``attempts`` tries,
itself included, within ``timeout`` seconds), so a large file over a flaky link is not failed
for taking longer than ``timeout`` overall, while a server that restarts from zero and drops
each time (no new bytes) still fails after ``attempts`` tries. Backoff is
:func:`~akool_async._retry.backoff_delay` slept through the client's clock; a Retry-After
longer than ``max_retry_after`` fails at once.

Requests go through the client's one aiohttp session but carry no credentials: output URLs
are public CDN URLs, so a per-request middleware removes the API key, ``Authorization`` and
any other non-trivial session default header before sending (the session keeps no cookies),
``Accept-Encoding: identity`` (byte offsets must mean file offsets), no overall time limit
(``Timeouts.connect`` and ``Timeouts.read`` still apply) and at most ``max_redirects`` (3)
redirects, each re-checked against the same scheme rule.

Every failure is a :class:`DownloadError` (its ``__cause__`` is the last underlying error);
cancellation propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import aiohttp
import anyio
import anyio.to_thread
import attrs
from yarl import URL

from ._config import RetryPolicy
from ._errors import (
    AkoolError,
    APIError,
    ConnectionLostError,
    DownloadError,
    HTTPStatusError,
    RateLimitError,
    ServerError,
    TransportError,
)
from ._net import is_loopback_host
from ._retry import backoff_delay, parse_retry_after
from ._transport import _map_error

if TYPE_CHECKING:
    # Only for annotations: _client.py imports this module for AkoolClient.download().
    from ._client import AkoolClient

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_DOWNLOAD_CONCURRENCY",
    "MAX_FILENAME_LENGTH",
    "MAX_REDIRECTS",
    "DownloadError",
    "DownloadOutcome",
    "Downloader",
    "ResultOrUrl",
    "check_download_url",
    "download",
    "download_many",
    "safe_filename",
]

_logger = logging.getLogger("akool_async")

#: Bytes buffered in memory before a write to disk (1 MiB): few thread hops per file.
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Redirects followed per request (CDNs redirect once or twice; more is a loop or abuse).
MAX_REDIRECTS = 3
#: Downloads in flight at once for :class:`Downloader` and :func:`download_many`.
DEFAULT_DOWNLOAD_CONCURRENCY = 4
#: Longest name :func:`safe_filename` returns, suffix included (ASCII, so also bytes). Leaves
#: room for the ``.<name>.<16 hex>.part`` temporary file within the usual 255-byte limit.
MAX_FILENAME_LENGTH = 120

#: Anything with an ``output_url`` attribute (every result model), or the URL itself.
ResultOrUrl: TypeAlias = Any

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Session default headers that may ride along to a CDN; any other default header (the API
# key, a bearer token, whatever the transport adds later) is removed from download requests.
_HARMLESS_HEADERS = frozenset({"user-agent", "accept", "accept-encoding", "accept-language"})
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "x-api-key")
# Per-request client middlewares exist from aiohttp 3.12 on.
_HAS_MIDDLEWARES = tuple(int(p) for p in aiohttp.__version__.split(".")[:2]) >= (3, 12)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_DOTS = re.compile(r"\.{2,}")
_SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,16})?")
# Windows device names, reserved with any extension ("con.mp4" included).
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
)
_HASH_LENGTH = 8


# --------------------------------------------------------------------------- pure checks


def _redact_url(url: str) -> str:
    """``url`` without userinfo, query and fragment, for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def check_download_url(url: object) -> URL:
    """The parsed URL if it may be downloaded; :class:`DownloadError` otherwise (no I/O).

    Allowed: ``https`` to any host, ``http`` only to a loopback host (127.0.0.0/8, ::1,
    localhost: test servers and the simulator). Refused: every other scheme (``file:``,
    ``ftp:``, ``data:``, ...), a missing host, and credentials in the URL (they would be sent
    as Basic auth to a CDN).
    """
    if not isinstance(url, str) or not url.strip():
        raise DownloadError(f"a download URL must be a non-empty string, got {url!r:.80}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise DownloadError(
            f"download URL {_redact_url(url)!r} is not a valid URL: {exc}"
        ) from None
    scheme = parts.scheme.lower()
    shown = _redact_url(url)
    if scheme not in ("http", "https"):
        what = f"a {scheme}: URL" if scheme else "a URL without a scheme"
        raise DownloadError(
            f"refusing to download {what}: only https (and http to loopback hosts) is allowed",
            url=shown,
        )
    if not host:
        raise DownloadError(f"download URL {shown!r} has no host", url=shown)
    if parts.username is not None or parts.password is not None:
        raise DownloadError(
            f"refusing a download URL with credentials in it ({shown!r})", url=shown
        )
    if scheme == "http" and not is_loopback_host(host):
        raise DownloadError(
            f"refusing plain http download from {shown!r}: use https (plain http is allowed "
            "only for loopback hosts such as the simulator)",
            url=shown,
        )
    # Signed CDN URLs must reach the server byte for byte: keep an already-encoded URL as is.
    if url.isascii() and not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return URL(url, encoded=True)
    return URL(url)


def _url_of(result_or_url: ResultOrUrl) -> str:
    if isinstance(result_or_url, str):
        return result_or_url
    if isinstance(result_or_url, URL):
        return str(result_or_url)
    try:
        url = result_or_url.output_url
    except AttributeError:
        raise DownloadError(
            "download() takes a result with an output_url or a URL string, got "
            f"{type(result_or_url).__name__}"
        ) from None
    if url is None or url == "":
        task_id = getattr(result_or_url, "id", None)
        status = getattr(result_or_url, "status", None)
        raise DownloadError(
            f"{type(result_or_url).__name__} has no output_url to download (status "
            f"{status!s}); wait until the task has COMPLETED",
            task_id=task_id if isinstance(task_id, str) else None,
        )
    return str(url)


def safe_filename(key: str, suffix: str = ".mp4", *, max_length: int = MAX_FILENAME_LENGTH) -> str:
    """A file name for a job ``key``: deterministic, and safe to join to any directory.

    Keeps ``[A-Za-z0-9._-]`` and replaces every other character (separators, NUL, spaces,
    non-ASCII) with ``_``; collapses runs of dots; strips leading dots and dashes (no hidden
    files, no ``.``/``..``, nothing that looks like an option) and trailing dots; prefixes
    Windows device names (``CON``, ``nul.txt``, ``COM1`` ...) with ``_``; truncates to
    ``max_length`` (120) characters including ``suffix``. Whenever the key had
    to be changed, ``-`` plus 8 hex digits of the key's SHA-256 are appended, so keys that
    differ only in replaced characters (``"a/b"``, ``"a b"``) still get different names; a
    key that is already safe maps to itself plus ``suffix``. The result is never empty and
    never contains a separator or ``..``.

    Collisions remain possible (two keys that are each other's sanitised form, a hash clash,
    or keys differing only in case on a case-insensitive filesystem): they are the caller's
    responsibility. :func:`download_many` reports a second key mapping to a name already
    used as a failed outcome, and ``overwrite=False`` never clobbers an existing file.
    ``suffix`` must be empty or a dot and 1-16 ASCII letters or digits.
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    if not isinstance(suffix, str) or _SUFFIX.fullmatch(suffix) is None:
        raise ValueError(f"suffix must be '' or like '.mp4' (ASCII letters/digits), got {suffix!r}")
    room = max_length - len(suffix) - 1 - _HASH_LENGTH
    if room < 1:
        raise ValueError(f"max_length={max_length} leaves no room for a name with {suffix!r}")
    stem = _SAFE_CHARS.sub("_", key)
    stem = _DOTS.sub(".", stem).lstrip(".-").rstrip(".")
    if stem.split(".", 1)[0].upper() in _RESERVED:
        stem = "_" + stem
    changed = stem != key
    if stem and not changed and len(stem) + len(suffix) <= max_length:
        return stem + suffix
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LENGTH]
    stem = stem[:room].rstrip(".") or "download"
    return f"{stem}-{digest}{suffix}"


# --------------------------------------------------------------------------- file handling


class _Sink:
    """An ``O_EXCL`` temporary file in the target directory, written off the event loop."""

    def __init__(self, fd: int, tmp: Path, flush_size: int) -> None:
        self.fd: int | None = fd
        self.tmp = tmp
        self._flush_size = flush_size
        self._pending = bytearray()
        self._written = 0

    @property
    def size(self) -> int:
        """Bytes received into this file so far (written or buffered)."""
        return self._written + len(self._pending)

    async def add(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= self._flush_size:
            await self.flush()

    async def flush(self) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            fd = self.fd
            assert fd is not None
            await anyio.to_thread.run_sync(_write_all, fd, data)
            self._written += len(data)

    async def restart(self) -> None:
        """Discard everything: the next byte written is byte 0 of the file."""
        self._pending.clear()
        fd = self.fd
        assert fd is not None
        await anyio.to_thread.run_sync(_truncate, fd)
        self._written = 0

    async def publish(self, target: Path, *, overwrite: bool) -> None:
        await self.flush()
        fd, self.fd = self.fd, None
        assert fd is not None
        await anyio.to_thread.run_sync(_publish, fd, self.tmp, target, overwrite)

    async def discard(self) -> None:
        """Close and delete the temporary file; shielded so cancellation cannot skip it."""
        fd, self.fd = self.fd, None
        self._pending.clear()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_discard, fd, self.tmp)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _truncate(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)


def _discard(fd: int | None, tmp: Path) -> None:
    if fd is not None:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def _open_temp(directory: Path, name: str) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        # Bounded, so a long final name cannot make the temporary name too long.
        tmp = directory / f".{name[:100]}.{secrets.token_hex(8)}.part"
        try:
            # 0o666 & ~umask, like any file the user creates (mkstemp would force 0o600).
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 64 random bits: practically never
            continue


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a directory; NTFS journals the rename itself
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(fd: int, tmp: Path, target: Path, overwrite: bool) -> None:
    """fsync ``tmp``, move it to ``target`` atomically, fsync the directory."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if overwrite:
        os.replace(tmp, target)
    else:
        try:
            # link() fails if target exists: an atomic no-clobber publish.
            os.link(tmp, target)
        except FileExistsError:
            raise
        except OSError:
            # Filesystems without hard links (FAT, some network mounts): check, then
            # replace; a file created between the two would be replaced.
            if target.exists():
                raise FileExistsError(target) from None
            os.replace(tmp, target)
        else:
            tmp.unlink()
    _fsync_directory(target.parent)


def _check_target(target: Path, overwrite: bool) -> None:
    parent = target.parent
    if not parent.is_dir():
        raise DownloadError(
            f"the directory of {str(target)!r} does not exist (create it first)", file=target
        )
    if target.is_dir():
        raise DownloadError(f"{str(target)!r} is a directory; pass a file path", file=target)
    if not overwrite and (target.exists() or target.is_symlink()):
        raise DownloadError(
            f"{str(target)!r} already exists; pass overwrite=True to replace it", file=target
        )


# --------------------------------------------------------------------------- HTTP


class _State:
    """What survives between attempts of one download."""

    __slots__ = ("high_water", "resumable", "total", "validator")

    def __init__(self) -> None:
        self.total: int | None = None  # the full file size, once a server announced it
        self.validator: str | None = None  # strong ETag or Last-Modified, for If-Range
        self.high_water = 0  # the most bytes ever held: progress means exceeding it
        self.resumable = True  # False after a body aiohttp had to decode


class _RestartError(AkoolError):
    """The server's answer does not continue our partial file: start again from byte 0."""

    retryable = True


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


class _ServerBusyError(ServerError):
    """HTTP 503 with an optional Retry-After hint (seconds)."""

    def __init__(self, message: str, *, retry_after: float | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


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


def _request_options(session: aiohttp.ClientSession) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and ``session.get`` options that keep every credential off download requests.

    The session may carry the API key as a default header (cheaper for API calls); aiohttp
    merges default headers into every request and offers no per-request opt-out, so a
    per-request middleware deletes them before the request is sent (aiohttp >= 3.12). On
    older aiohttp their values are blanked instead (sent empty, never the secret).
    """
    in_session = {name for name in session.headers if name.lower() not in _HARMLESS_HEADERS}
    headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
    if not _HAS_MIDDLEWARES:  # pragma: no cover - exercised only with aiohttp < 3.12
        headers.update(dict.fromkeys(in_session, ""))
        return headers, {}
    names = (*in_session, *_CREDENTIAL_HEADERS)

    async def strip_credentials(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        for name in names:
            request.headers.popall(name, None)
        return await handler(request)

    return headers, {"middlewares": (strip_credentials,)}


async def _attempt(
    session: aiohttp.ClientSession,
    url: URL,
    sink: _Sink,
    state: _State,
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
                    location = resp.headers.get("Location")
                    if not location:
                        raise HTTPStatusError(
                            f"HTTP {resp.status} redirect without a Location header",
                            method="GET",
                            path=path,
                            http_status=resp.status,
                        )
                    current = check_download_url(str(current.join(URL(location))))
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
            raise _map_error(exc, "GET", path) from exc
    raise HTTPStatusError(
        f"more than {max_redirects} redirects", method="GET", path=url.path, http_status=None
    )


async def _receive(
    resp: aiohttp.ClientResponse,
    sink: _Sink,
    *,
    state: _State,
    offset: int,
    chunk_size: int,
    path: str,
    now_wall: float,
) -> None:
    status = resp.status
    if status == 416 and offset:
        unsatisfied = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if unsatisfied is not None and int(unsatisfied.group(1)) == offset:
            state.total = offset  # we already hold every byte; the last answer was lost
            return
        await sink.restart()
        raise _RestartError("HTTP 416 to our Range: the file changed", method="GET", path=path)
    if status not in (200, 206):
        raise _status_error(resp, path, now_wall)
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    decoded = encoding not in ("", "identity")
    if status == 206:
        span = _parse_content_range(resp.headers.get("Content-Range"))
        if span is None or span[0] != offset or decoded:
            await sink.restart()
            raise _RestartError(
                "HTTP 206 whose Content-Range does not continue our file", method="GET", path=path
            )
        _start, end, total = span
        if total is not None and state.total is not None and total != state.total:
            await sink.restart()
            raise _RestartError("the file's size changed between requests", method="GET", path=path)
        if total is not None:
            state.total = total
        expected: int | None = end + 1
    else:
        if offset:
            # The server ignored our Range (or If-Range saw a changed file): full body.
            _logger.debug("GET %s: HTTP 200 to a Range request, restarting from byte 0", path)
            await sink.restart()
        # aiohttp decompresses a Content-Encoding despite our identity request: the length
        # on the wire then says nothing about the file, and offsets cannot be resumed.
        state.resumable = not decoded
        expected = None if decoded else resp.content_length
        state.total = expected
        etag = resp.headers.get("ETag")
        if etag and not etag.startswith("W/"):
            state.validator = etag
        else:
            state.validator = resp.headers.get("Last-Modified") or None
    async for chunk in resp.content.iter_chunked(chunk_size):
        await sink.add(chunk)
        if expected is not None and sink.size > expected:
            await sink.restart()
            raise _RestartError(
                "the server sent more bytes than announced", method="GET", path=path
            )
    await sink.flush()
    if expected is not None and sink.size != expected:
        raise ConnectionLostError(
            f"the body ended after {sink.size} of {expected} bytes",
            method="GET",
            path=path,
        )
    if decoded and sink.size:
        # Nothing to verify against, and a retry could not resume this body anyway.
        state.total = sink.size


def _retry_after(err: AkoolError) -> float | None:
    value = getattr(err, "retry_after", None)
    return value if isinstance(value, (int, float)) else None


async def download(
    client: AkoolClient,
    result_or_url: ResultOrUrl,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    retry: RetryPolicy | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> Path:
    """Download a result's ``output_url`` (or a URL) to ``path``; return ``path`` as a Path.

    - ``overwrite`` (False): an existing file at ``path`` is a :class:`DownloadError`
      before any request, and a file appearing there meanwhile is never replaced; True
      replaces it atomically.
    - ``chunk_size`` (1 MiB): bytes buffered in memory between writes to disk.
    - ``retry`` (the client's policy): ``attempts`` and ``timeout`` (seconds) bound
      consecutive failures without progress; see the module docstring.
    - ``max_redirects`` (3): redirects followed per request.

    The directory of ``path`` must exist. Raises :class:`DownloadError` (nothing left at
    ``path``, no temporary file left), ``ClientStateError`` outside the client's block,
    ``ValueError`` for a bad ``chunk_size``/``max_redirects``.
    """
    url = check_download_url(_url_of(result_or_url))
    shown = _redact_url(str(url))
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if not isinstance(max_redirects, int) or isinstance(max_redirects, bool) or max_redirects < 0:
        raise ValueError(f"max_redirects must be an integer >= 0, got {max_redirects!r}")
    policy = retry if retry is not None else client.retry_policy
    target = Path(path)
    session = client._open_transport()._session  # the client's one session, never a new one
    assert session is not None
    sink: _Sink | None = None
    try:
        await anyio.to_thread.run_sync(_check_target, target, overwrite)
        fd, tmp = await anyio.to_thread.run_sync(_open_temp, target.parent, target.name)
        sink = _Sink(fd, tmp, chunk_size)
        await _fetch(
            client,
            session,
            url,
            sink,
            policy=policy,
            chunk_size=chunk_size,
            max_redirects=max_redirects,
        )
        await sink.publish(target, overwrite=overwrite)
    except BaseException as exc:
        if sink is not None:
            await sink.discard()
        received = sink.size if sink is not None else 0
        if isinstance(exc, DownloadError):
            exc.url, exc.file, exc.bytes_received = shown, target, received
            raise
        if isinstance(exc, AkoolError):
            raise _failed(exc, shown, target, received) from exc
        if isinstance(exc, FileExistsError):
            raise DownloadError(
                f"{str(target)!r} appeared while downloading; pass overwrite=True to replace it",
                url=shown,
                file=target,
                bytes_received=received,
            ) from None
        if isinstance(exc, OSError):  # the local side: permissions, disk full, ...
            raise DownloadError(
                f"could not write {str(target)!r}: {exc}",
                url=shown,
                file=target,
                bytes_received=received,
            ) from exc
        raise
    return target


async def _fetch(
    client: AkoolClient,
    session: aiohttp.ClientSession,
    url: URL,
    sink: _Sink,
    *,
    policy: RetryPolicy,
    chunk_size: int,
    max_redirects: int,
) -> None:
    """Attempts with backoff until ``sink`` holds the whole file, or raise the last error."""
    clock = client.clock
    timeouts = client.timeouts
    headers, options = _request_options(session)
    # No total limit: a video may take longer than any API call; silence is still bounded.
    options["timeout"] = aiohttp.ClientTimeout(
        total=None, connect=timeouts.connect, sock_read=timeouts.read
    )
    state = _State()
    failures = 0
    since = clock.monotonic()
    while True:
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
                now_wall=clock.wall(),
            )
        except AkoolError as err:  # noqa: PERF203 - the retry loop is the point
            await sink.flush()
            if sink.size > state.high_water:
                state.high_water = sink.size
                failures = 0
                since = clock.monotonic()
            failures += 1
            if not isinstance(err, (TransportError, ServerError, RateLimitError, _RestartError)):
                raise
            if failures >= policy.attempts:
                raise _failed(err, _redact_url(str(url)), None, sink.size, failures) from err
            delay = backoff_delay(
                failures - 1, initial=policy.initial, cap=policy.max_delay, rng=_rng
            )
            hint = _retry_after(err)
            if hint is not None:
                if hint > policy.max_retry_after:
                    raise
                delay = max(delay, hint)
            if clock.monotonic() - since + delay > policy.timeout:
                raise _failed(err, _redact_url(str(url)), None, sink.size, failures) from err
            _logger.debug(
                "download %s: %s at byte %d, retrying in %.3f s (%d of %d)",
                _redact_url(str(url)),
                type(err).__name__,
                sink.size,
                delay,
                failures,
                policy.attempts,
            )
            await clock.sleep(delay)
        else:
            return


_rng = random.Random()  # jitter only, never security


def _failed(
    err: AkoolError, url: str, target: Path | None, received: int, tries: int | None = None
) -> DownloadError:
    after = f" after {tries} tries without progress" if tries else ""
    return DownloadError(
        f"download of {url} failed{after}: {type(err).__name__}: {err.message}",
        url=url,
        file=target,
        bytes_received=received,
        method=err.method,
        path=err.path,
        http_status=err.http_status,
    )


# --------------------------------------------------------------------------- many


@attrs.frozen
class DownloadOutcome:
    """One item of :func:`download_many`: exactly one of ``path``/``error`` is set."""

    key: str
    path: Path | None
    error: DownloadError | None = attrs.field(eq=False)

    @property
    def ok(self) -> bool:
        """True when the file is on disk at ``path``."""
        return self.error is None


class Downloader:
    """Downloads results into one directory, at most ``concurrency`` (4) at a time.

    For batches (``download_dir=``): ``await downloader.download(key, result)`` saves to
    ``directory / safe_filename(key, suffix)`` and returns that path. The directory is
    created on first use. ``overwrite``, ``chunk_size``, ``retry`` and ``max_redirects`` are
    passed to :func:`download`.
    """

    def __init__(
        self,
        client: AkoolClient,
        directory: str | os.PathLike[str],
        *,
        concurrency: int = DEFAULT_DOWNLOAD_CONCURRENCY,
        overwrite: bool = False,
        suffix: str = ".mp4",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        retry: RetryPolicy | None = None,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        safe_filename("x", suffix)  # validates suffix now rather than per download
        self._client = client
        self._directory = Path(directory)
        self._concurrency = concurrency
        self._overwrite = overwrite
        self._suffix = suffix
        self._chunk_size = chunk_size
        self._retry = retry
        self._max_redirects = max_redirects
        self._limiter: anyio.CapacityLimiter | None = None
        self._created = False

    @property
    def directory(self) -> Path:
        """Where files go."""
        return self._directory

    @property
    def concurrency(self) -> int:
        """Downloads in flight at once."""
        return self._concurrency

    def path_for(self, key: str) -> Path:
        """The file a job ``key`` is saved to: ``directory / safe_filename(key, suffix)``."""
        return self._directory / safe_filename(key, self._suffix)

    async def download(self, key: str, result_or_url: ResultOrUrl) -> Path:
        """Download to :meth:`path_for` ``(key)`` within the concurrency bound; return it."""
        target = self.path_for(key)
        try:
            url = _url_of(result_or_url)
            check_download_url(url)  # refuse before waiting for a slot
        except DownloadError as err:
            err.file = target
            raise
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrency)
        async with self._limiter:
            if not self._created:
                await anyio.to_thread.run_sync(_mkdir, self._directory)
                self._created = True
            return await download(
                self._client,
                url,
                target,
                overwrite=self._overwrite,
                chunk_size=self._chunk_size,
                retry=self._retry,
                max_redirects=self._max_redirects,
            )


def _mkdir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)


async def download_many(
    client: AkoolClient,
    items: Mapping[str, ResultOrUrl] | Iterable[tuple[str, ResultOrUrl]],
    directory: str | os.PathLike[str],
    *,
    concurrency: int = DEFAULT_DOWNLOAD_CONCURRENCY,
    overwrite: bool = False,
    suffix: str = ".mp4",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    retry: RetryPolicy | None = None,
) -> list[DownloadOutcome]:
    """Download ``{key: result or URL}`` (or ``(key, item)`` pairs) into ``directory``.

    At most ``concurrency`` (4) downloads run at once, pulled from ``items`` lazily. Each
    file is ``directory / safe_filename(key, suffix)``. Returns one :class:`DownloadOutcome`
    per item, in input order; a failed download is an outcome with ``error`` set, never an
    exception (cancellation and bugs still propagate). A key whose file name was already
    used by an earlier key (or a repeated key) fails without a request.
    """
    downloader = Downloader(
        client,
        directory,
        concurrency=concurrency,
        overwrite=overwrite,
        suffix=suffix,
        chunk_size=chunk_size,
        retry=retry,
    )
    numbered = enumerate(items.items() if isinstance(items, Mapping) else items)
    outcomes: dict[int, DownloadOutcome] = {}
    claimed: dict[str, str] = {}  # file name -> the key that took it

    async def worker() -> None:
        for index, (key, item) in numbered:
            target = downloader.path_for(key)
            earlier = claimed.get(target.name)
            if earlier is not None:
                what = "is repeated" if earlier == key else f"maps to the same file as {earlier!r}"
                error = DownloadError(
                    f"key {key!r} {what} ({target.name!r}); use distinct keys", file=target
                )
                outcomes[index] = DownloadOutcome(key, None, error)
                continue
            claimed[target.name] = key
            try:
                path = await downloader.download(key, item)
            except DownloadError as err:
                outcomes[index] = DownloadOutcome(key, None, err)
            else:
                outcomes[index] = DownloadOutcome(key, path, None)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return [outcomes[i] for i in sorted(outcomes)]
