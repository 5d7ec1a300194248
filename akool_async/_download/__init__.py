"""Result downloads: stream an output video to disk, resumably, atomically, without secrets.

Akool deletes outputs after 7 days, so results should be on disk before then. A download:

1. refuses, before any I/O, a URL that is not ``https`` (plain ``http`` only to a loopback
   host such as the simulator; ``file:``, ``ftp:``, ``data:`` and the rest never), a URL with
   credentials in it, and a result without ``output_url``;
2. streams into a temporary file in the *target* directory (same filesystem), named
   ``.<final name>.<random>.part`` and created with ``O_EXCL``;
3. after a mid-stream disconnect, a timeout, a 5xx, 408 or 429 it resumes with
   ``Range: bytes=N-`` (plus ``If-Range`` when the server gave a strong ETag or a
   Last-Modified date), accepting only a 206 whose ``Content-Range`` starts at ``N`` and
   whose validator (ETag / Last-Modified) matches the first part's; a 200 answer to a
   Range request (server ignores ranges, or the file changed) restarts from byte zero, and
   so does a 206 of another version (a server that ignores ``If-Range``);
4. refuses an answer whose content type is not a video (``text/html``, JSON ...):
   ``video/*``, ``application/octet-stream``, ``binary/octet-stream`` or none are accepted;
5. verifies the length against ``Content-Length`` / the ``Content-Range`` total when the
   server announced one;
6. ``fsync``\\ s the file, publishes it atomically (``os.replace``; with
   ``overwrite=False`` a no-clobber ``os.link`` where the filesystem supports it) and
   ``fsync``\\ s the directory (POSIX). The final path never holds a partial file; the
   temporary file is removed on failure and on cancellation (shielded cleanup).

Retries follow the client's :class:`~akool_async.RetryPolicy` with one twist for long
transfers: ``attempts`` and ``timeout`` bound the tries *since the last progress*. A try that
extends the file beyond anything received before starts a fresh budget (``attempts`` tries,
itself included, within ``timeout`` seconds), so a large file over a flaky link is not failed
for taking longer than ``timeout`` overall, while a server that restarts from zero and drops
each time (no new bytes) still fails after ``attempts`` tries. It is the SDK's one retry
loop (:func:`~akool_async._retry.retry_call`, whose ``progressed`` hook restarts the
budget); a Retry-After longer than ``max_retry_after`` fails at once.

Requests go through the client's one aiohttp session but carry no credentials: output URLs
are public CDN URLs, so a per-request middleware removes ``Authorization``, ``x-api-key``,
cookies and any other non-trivial session default header before sending (a caller's
session may carry some),
``Accept-Encoding: identity`` (byte offsets must mean file offsets), no overall time limit
(``Timeouts.connect`` and ``Timeouts.read`` still apply) and at most ``max_redirects`` (3)
redirects, each re-checked against the same scheme rule.

Every failure is a :class:`DownloadError` (its ``__cause__`` is the last underlying error);
cancellation propagates.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs
from yarl import URL

from akool_async._api import Api
from akool_async._config import RetryPolicy
from akool_async._errors import AkoolError

from ._fetch import failed_download, fetch
from ._files import Sink, file_sha256, make_directory, open_sink
from ._urls import (
    MAX_FILENAME_LENGTH,
    DownloadError,
    ResultOrUrl,
    check_download_url,
    redact_url,
    safe_filename,
    url_of,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_DOWNLOAD_CONCURRENCY",
    "MAX_FILENAME_LENGTH",
    "MAX_REDIRECTS",
    "DownloadError",
    "DownloadOutcome",
    "Downloaded",
    "Downloader",
    "ResultOrUrl",
    "check_download_url",
    "download_file",
    "download_many",
    "safe_filename",
]

#: Bytes buffered in memory before a write to disk (1 MiB): few thread hops per file.
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Redirects followed per request (CDNs redirect once or twice; more is a loop or abuse).
MAX_REDIRECTS = 3
#: Downloads in flight at once for :class:`Downloader` and :func:`download_many`.
DEFAULT_DOWNLOAD_CONCURRENCY = 4


@attrs.frozen
class Downloaded:
    """A completed download: the file, its size in bytes, the server's strong ETag (None
    when it gave none) and the sha256 of its bytes. Enough to recognise the file later
    without downloading it again (:meth:`facts`, :meth:`matches`)."""

    path: Path
    size: int
    etag: str | None
    sha256: str | None = None

    def facts(self) -> dict[str, Any]:
        """The JSON a job store keeps for this download."""
        return {"path": str(self.path), "size": self.size, "etag": self.etag, "sha256": self.sha256}

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> Downloaded:
        """The inverse of :meth:`facts`."""
        return cls(Path(facts["path"]), facts["size"], facts.get("etag"), facts.get("sha256"))

    async def matches(self) -> str | None:
        """None when the file at :attr:`path` is this download, else what differs."""
        try:
            size = (await anyio.Path(self.path).stat()).st_size
        except OSError as exc:
            return f"it cannot be read ({exc.strerror or exc})"
        if size != self.size:
            return f"it has {size} bytes, the download had {self.size}"
        if self.sha256 is not None:
            digest = await anyio.to_thread.run_sync(file_sha256, self.path)
            if digest != self.sha256:
                return "its sha256 differs from the download's"
        return None


def _check_options(chunk_size: object, max_redirects: object) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if not isinstance(max_redirects, int) or isinstance(max_redirects, bool) or max_redirects < 0:
        raise ValueError(f"max_redirects must be an integer >= 0, got {max_redirects!r}")


async def download_file(
    api: Api,
    result_or_url: ResultOrUrl,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    retry: RetryPolicy | None = None,
    max_redirects: int = MAX_REDIRECTS,
    before_publish: Callable[[Downloaded], Awaitable[None]] | None = None,
) -> Downloaded:
    """Download a result's ``output_url`` (or a URL) to ``path``.

    - ``overwrite`` (False): an existing file at ``path`` is a :class:`DownloadError`
      before any request, and a file appearing there meanwhile is never replaced; True
      replaces it atomically.
    - ``chunk_size`` (1 MiB): bytes buffered in memory between writes to disk.
    - ``retry`` (the client's policy): ``attempts`` and ``timeout`` (seconds) bound
      consecutive failures without progress; see the module docstring.
    - ``max_redirects`` (3): redirects followed per request.
    - ``before_publish``: awaited with the complete download's facts before the file
      appears at ``path`` (a job store records them there); if it raises, nothing is saved.

    The directory of ``path`` must exist. Raises :class:`DownloadError` (nothing left at
    ``path``, no temporary file left), ``ClientStateError`` outside the client's block,
    ``ValueError`` for a bad ``chunk_size``/``max_redirects``.
    """
    url = check_download_url(url_of(result_or_url))
    _check_options(chunk_size, max_redirects)
    policy = retry if retry is not None else api.retry_policy
    target = Path(path)
    api.http_session()  # ClientStateError outside the client's block, before any file I/O
    sink: Sink | None = None
    try:
        sink = await open_sink(target, overwrite=overwrite, flush_size=chunk_size)
        state = await fetch(
            api, url, sink, policy=policy, chunk_size=chunk_size, max_redirects=max_redirects
        )
        done = Downloaded(target, sink.size, state.etag, sink.sha256)
        if before_publish is not None:
            await before_publish(done)
        await sink.publish(target, overwrite=overwrite)
    except BaseException as exc:
        received = 0
        if sink is not None:
            received = sink.size
            await sink.discard()
        error = _as_download_error(exc, url, target, received)
        if error is None or error is exc:
            raise
        raise error from (None if isinstance(exc, FileExistsError) else exc)
    return done


def _as_download_error(
    exc: BaseException, url: URL, target: Path, received: int
) -> DownloadError | None:
    """The DownloadError a failed download raises, naming the URL and file; None when
    ``exc`` itself must propagate (cancellation, bugs)."""
    shown = redact_url(str(url))
    error: DownloadError
    if isinstance(exc, DownloadError):
        error = exc
    elif isinstance(exc, AkoolError):
        error = failed_download(exc, shown, received)
    elif isinstance(exc, FileExistsError):
        error = DownloadError(
            f"{str(target)!r} appeared while downloading; pass overwrite=True to replace it"
        )
    elif isinstance(exc, OSError):  # the local side: permissions, disk full, ...
        error = DownloadError(f"could not write {str(target)!r}: {exc}")
    else:
        return None
    error.url, error.file, error.bytes_received = shown, target, received
    return error


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

    For batches: ``await downloader.fetch(key, result)`` saves to
    ``directory / safe_filename(key, suffix)`` and returns a :class:`Downloaded`
    (:meth:`download` returns only the path). The directory is created on first use.
    ``overwrite``, ``chunk_size``, ``retry`` and ``max_redirects`` are passed to
    :func:`download_file`.
    """

    def __init__(
        self,
        api: Api,
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
        self._api = api
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
        return (await self.fetch(key, result_or_url)).path

    async def fetch(
        self,
        key: str,
        result_or_url: ResultOrUrl,
        *,
        before_publish: Callable[[Downloaded], Awaitable[None]] | None = None,
    ) -> Downloaded:
        """Like :meth:`download`, returning the file's size, ETag and sha256 too;
        ``before_publish`` as for :func:`download_file`."""
        target = self.path_for(key)
        try:
            url = url_of(result_or_url)
            check_download_url(url)  # refuse before waiting for a slot
        except DownloadError as err:
            err.file = target
            raise
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrency)
        async with self._limiter:
            if not self._created:
                await anyio.to_thread.run_sync(make_directory, self._directory)
                self._created = True
            return await download_file(
                self._api,
                url,
                target,
                overwrite=self._overwrite,
                chunk_size=self._chunk_size,
                retry=self._retry,
                max_redirects=self._max_redirects,
                before_publish=before_publish,
            )


async def download_many(
    api: Api,
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
        api,
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
