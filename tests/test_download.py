"""Downloads over real loopback HTTP: the simulator's file server and small scripted servers."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import ManualClock
from hypothesis import given
from hypothesis import strategies as st

from akool_async._client import AkoolClient
from akool_async._config import RetryPolicy
from akool_async._download import (
    MAX_FILENAME_LENGTH,
    Downloaded,
    Downloader,
    DownloadError,
    download_file,
    download_many,
    safe_filename,
)
from akool_async._errors import ClientStateError, ConnectionLostError, ServerError
from akool_async._models import CharacterSwap, CharacterSwapResult, TaskStatus
from akool_async.testing import AkoolSimulator

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(attempts=4, timeout=1e6, initial=0.01, max_delay=0.05)
IMG = "https://img.example/face.png"
API_KEY = "sk-download-test-key-0123456789"


@asynccontextmanager
async def sim_and_client(**sim_kw: Any) -> AsyncIterator[tuple[AkoolSimulator, AkoolClient]]:
    """A manual-clock simulator and an open client with fast retries for it."""
    async with AkoolSimulator(manual_clock=True, **sim_kw) as sim:
        client = AkoolClient(
            sim.api_key, base_url=sim.base_url, clock=ManualClock(sim), retry=FAST_RETRY
        )
        async with client:
            yield sim, client


@asynccontextmanager
async def local_client(retry: RetryPolicy = FAST_RETRY) -> AsyncIterator[AkoolClient]:
    """An open client whose API base URL is never contacted (downloads go elsewhere)."""
    client = AkoolClient(API_KEY, base_url="http://127.0.0.1:9", clock=ManualClock(), retry=retry)
    async with client:
        yield client


async def download(client: AkoolClient, item: Any, path: Path, **options: Any) -> Path:
    """The engine of ``client.download`` with test-only options (``retry``), via its Api."""
    downloaded = await download_file(client._api, item, path, **options)
    assert downloaded.path == path
    return downloaded.path


async def completed(client: AkoolClient, name: str = "v") -> CharacterSwapResult:
    """A completed character swap result whose output the simulator serves."""
    result = await client.character_swap.run(CharacterSwap(IMG, f"https://vid.example/{name}.mp4"))
    assert result.status is TaskStatus.COMPLETED
    assert result.output_url
    return result


async def plain_get(url: str) -> bytes:
    """The bytes a plain aiohttp GET receives (the reference for checksums)."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.read()


def sha(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def listing(directory: Path) -> list[str]:
    """Sorted names in ``directory`` (temporary files included: they start with a dot)."""
    return sorted(p.name for p in directory.iterdir())


def file_log(sim: AkoolSimulator) -> list[int]:
    """HTTP statuses of the simulator's file requests, oldest first (0 = dropped)."""
    return [e.status for e in sim.request_log if e.endpoint == "files"]


class FileServer:
    """A scripted file server on 127.0.0.1 that records headers, statuses and bytes sent.

    ``ranges``: honour ``Range`` (206) or ignore it (always 200). ``truncate``: how many of
    the first answers close the connection after half their body. ``wrong_start``: answer
    the first Range request with a Content-Range that starts elsewhere. ``gate``: an
    optional coroutine every request awaits before answering. ``fail``: (status,
    Retry-After) answers given to the first requests. ``content_type``: the type of file
    answers (None: no header). ``changed``: the file's next version (ETag ``"v2"``), served
    from the answer after the first truncated one; ``If-Range`` is always ignored.
    """

    def __init__(
        self,
        body: bytes,
        *,
        ranges: bool = True,
        truncate: int = 0,
        wrong_start: bool = False,
        gate: Callable[[], Any] | None = None,
        fail: tuple[tuple[int, str | None], ...] = (),
        content_type: str | None = "video/mp4",
        changed: bytes | None = None,
    ) -> None:
        self.body = body
        self.content_type = content_type
        self.changed = changed
        self.etag = '"v1"'
        self.fail = list(fail)
        self.ranges = ranges
        self.truncate = truncate
        self.wrong_start = wrong_start
        self.gate = gate
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int] = []
        self.sent: list[int] = []  # body bytes written per file answer
        self.in_flight = 0
        self.max_in_flight = 0
        self.server: TestServer | None = None

    def url(self, path: str = "/file.mp4") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def __aenter__(self) -> FileServer:
        app = web.Application()
        app.router.add_get("/file.mp4", self._file)
        app.router.add_get("/other.mp4", self._file)
        app.router.add_get("/redirect/{n}", self._redirect)
        app.router.add_get("/to", self._redirect_to)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await self.server.close()

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        n = int(request.match_info["n"])
        location = "/file.mp4" if n <= 1 else f"/redirect/{n - 1}"
        raise web.HTTPFound(location)

    async def _redirect_to(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        raise web.HTTPFound(request.query["url"])

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate()
            if self.fail:
                status, retry_after = self.fail.pop(0)
                self.statuses.append(status)
                headers = {"Retry-After": retry_after} if retry_after else {}
                return web.Response(status=status, text="busy", headers=headers)
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body, size = self.body, len(self.body)
        status, headers = 200, {"ETag": self.etag}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        spec = request.headers.get("Range")
        if self.ranges and spec:
            start = int(spec.removeprefix("bytes=").rstrip("-"))
            shown = start
            if self.wrong_start:
                self.wrong_start = False
                start = shown = 0 if start else 1
            status, body = 206, body[start:]
            headers["Content-Range"] = f"bytes {shown}-{size - 1}/{size}"
        self.statuses.append(status)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        if self.truncate:
            self.truncate -= 1
            half = body[: len(body) // 2]
            await response.write(half)
            self.sent.append(len(half))
            assert request.transport is not None
            request.transport.abort()
            if self.changed is not None:
                self.body, self.changed, self.etag = self.changed, None, '"v2"'
            return response
        await response.write(body)
        self.sent.append(len(body))
        await response.write_eof()
        return response


# --------------------------------------------------------------------------- simulator


async def test_byte_identical_after_truncations_and_502s(tmp_path: Path) -> None:
    """Several truncations in a row and 502s end in a byte-identical file, resumed by Range."""
    async with sim_and_client() as (sim, client):
        result = await completed(client)
        assert result.output_url is not None
        expected = await plain_get(result.output_url)
        sim.inject("files", "truncate", "truncate", "truncate", "http_502", "truncate")
        target = tmp_path / "out.mp4"
        path = await download(client, result, target, chunk_size=1024)
        statuses = file_log(sim)
    assert path == target
    assert sha(target.read_bytes()) == sha(expected)
    # the reference GET, four drops and a 502, then one 206 that completes the file
    assert statuses == [200, 0, 0, 0, 502, 0, 206]
    assert listing(tmp_path) == ["out.mp4"]


async def test_many_downloads_byte_identical_under_injected_faults(tmp_path: Path) -> None:
    """Ten outputs fetched through a seeded storm of truncations and 502s are byte-identical."""
    async with sim_and_client() as (sim, client):
        results = {f"job-{i}": await completed(client, f"v{i}") for i in range(10)}
        expected = {k: await plain_get(str(r.output_url)) for k, r in results.items()}
        rng = random.Random(5)
        storm = rng.choices(["truncate", "truncate", "http_502", None], k=60)
        sim.inject("files", *storm)
        policy = RetryPolicy(attempts=8, timeout=1e6, initial=0.01, max_delay=0.05)
        outcomes = await download_many(client._api, results, tmp_path, concurrency=3, retry=policy)
        faults = sim.stats.faults
    assert [o.key for o in outcomes] == list(results)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for outcome in outcomes:
        assert outcome.path == tmp_path / f"{outcome.key}.mp4"
        assert sha(outcome.path.read_bytes()) == sha(expected[outcome.key])
    assert faults["truncate"] > 10
    assert faults["http_502"] > 3
    assert listing(tmp_path) == sorted(f"{k}.mp4" for k in results)


async def test_resume_after_truncation_uses_range(tmp_path: Path) -> None:
    """After a mid-stream drop the next request is a Range request answered 206."""
    async with sim_and_client() as (sim, client):
        result = await completed(client)
        sim.inject("files", "truncate")
        await download(client, result, tmp_path / "a.mp4")
        statuses = file_log(sim)
    assert statuses == [0, 206]


async def test_exhausted_retries_leave_no_file(tmp_path: Path) -> None:
    """A failure that exhausts the retries leaves neither the final file nor a temp file."""
    async with sim_and_client() as (sim, client):
        result = await completed(client)
        sim.inject("files", "truncate", *["http_502"] * 10)
        with pytest.raises(DownloadError) as info:
            await download(client, result, tmp_path / "a.mp4", chunk_size=512)
        requests = sim.stats.requests["files"]
    err = info.value
    assert listing(tmp_path) == []
    # the try that made progress starts a fresh budget of `attempts` tries, itself included
    assert requests == FAST_RETRY.attempts
    assert err.http_status == 502
    assert isinstance(err.__cause__, ServerError)
    assert err.bytes_received > 0
    assert err.file == tmp_path / "a.mp4"
    assert err.url is not None
    assert err.url.endswith(f"/files/{result.id}.mp4")
    assert "tries without progress" in str(err)


async def test_missing_file_fails_at_once(tmp_path: Path) -> None:
    """A 404 (expired output) is not retried and names the 7-day expiry."""
    async with sim_and_client() as (sim, client):
        with pytest.raises(DownloadError) as info:
            await download(client, f"{sim.base_url}/files/nope.mp4", tmp_path / "a.mp4")
        requests = sim.stats.requests["files"]
    assert requests == 1
    assert info.value.http_status == 404
    assert "7 days" in str(info.value)
    assert listing(tmp_path) == []


async def test_overwrite_false_refuses_existing_file(tmp_path: Path) -> None:
    """overwrite=False refuses an existing file without a request; overwrite=True replaces it."""
    target = tmp_path / "a.mp4"
    target.write_bytes(b"mine")
    async with sim_and_client() as (sim, client):
        result = await completed(client)
        with pytest.raises(DownloadError, match="already exists"):
            await download(client, result, target)
        assert sim.stats.requests.get("files", 0) == 0
        assert target.read_bytes() == b"mine"
        await download(client, result, target, overwrite=True)
        expected = await plain_get(str(result.output_url))
    assert target.read_bytes() == expected
    assert listing(tmp_path) == ["a.mp4"]


async def test_missing_directory_is_refused(tmp_path: Path) -> None:
    """A target in a directory that does not exist fails before any request."""
    async with sim_and_client() as (sim, client):
        result = await completed(client)
        with pytest.raises(DownloadError, match="does not exist"):
            await download(client, result, tmp_path / "no" / "a.mp4")
        with pytest.raises(DownloadError, match="is a directory"):
            await download(client, result, tmp_path)
        assert sim.stats.requests.get("files", 0) == 0


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://cdn.example/out.mp4",
        "data:video/mp4;base64,AAAA",
        "javascript:alert(1)",
        "http://cdn.example/out.mp4",
        "https://user:pw@cdn.example/out.mp4",
        "https:///no-host.mp4",
        "cdn.example/out.mp4",
        "",
    ],
)
async def test_bad_urls_refused_before_any_io(tmp_path: Path, url: str) -> None:
    """Non-https URLs (http only to loopback), credentials and missing hosts fail before I/O."""
    client = AkoolClient(API_KEY, base_url="http://127.0.0.1:9")  # never opened: no session
    with pytest.raises(DownloadError) as info:
        await download(client, url, tmp_path / "a.mp4")
    assert listing(tmp_path) == []
    assert "pw" not in str(info.value)


async def test_result_without_output_url_is_refused(tmp_path: Path) -> None:
    """A result that has no output URL yet fails with its id before any I/O."""
    client = AkoolClient(API_KEY, base_url="http://127.0.0.1:9")
    pending = CharacterSwapResult(id="t1", status=TaskStatus.PROCESSING)
    with pytest.raises(DownloadError, match="no output_url") as info:
        await download(client, pending, tmp_path / "a.mp4")
    assert info.value.task_id == "t1"
    with pytest.raises(DownloadError, match="output_url or a URL"):
        await download(client, 42, tmp_path / "a.mp4")
    assert listing(tmp_path) == []


async def test_download_outside_client_block_is_a_state_error(tmp_path: Path) -> None:
    """A valid URL with a client that is not open raises ClientStateError, writes nothing."""
    client = AkoolClient(API_KEY, base_url="http://127.0.0.1:9")
    with pytest.raises(ClientStateError):
        await download(client, "https://cdn.example/out.mp4", tmp_path / "a.mp4")
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- scripted servers


async def test_no_secrets_sent_and_session_reused(tmp_path: Path) -> None:
    """Download requests carry no API key, no Authorization and no cookie, on the one session."""
    body = os.urandom(10_000)
    async with FileServer(body, truncate=1) as server, local_client() as client:
        session = client._api.http_session()
        await download(client, server.url(), tmp_path / "a.mp4")
        assert client._api.http_session() is session
    assert len(server.headers) == 2
    for headers in server.headers:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert "x-api-key" not in lowered
        assert "authorization" not in lowered
        assert "cookie" not in lowered
        assert all(API_KEY not in v for v in headers.values())
        assert lowered["accept-encoding"] == "identity"


async def test_range_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    """Dropped transfers resume with growing Range offsets, and the last 206 sends only the rest."""
    body = os.urandom(50_001)
    async with FileServer(body, truncate=3) as server, local_client() as client:
        await download(client, server.url(), tmp_path / "a.mp4", chunk_size=1000)
    assert (tmp_path / "a.mp4").read_bytes() == body
    ranges = [h.get("Range") for h in server.headers]
    assert ranges[0] is None
    offsets = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:] if r]
    assert len(offsets) == 3
    assert 0 < offsets[0] < offsets[1] < offsets[2] < len(body)
    assert server.statuses == [200, 206, 206, 206]
    assert server.sent[-1] == len(body) - offsets[-1]
    assert all(h.get("If-Range") == '"v1"' for h in server.headers[1:])


async def test_200_to_range_request_restarts_from_zero(tmp_path: Path) -> None:
    """A server that ignores Range answers 200; the download restarts and is byte-identical."""
    body = os.urandom(40_000)
    async with FileServer(body, ranges=False, truncate=1) as server, local_client() as client:
        await download(client, server.url(), tmp_path / "a.mp4", chunk_size=1000)
    assert (tmp_path / "a.mp4").read_bytes() == body
    resumed = server.headers[1].get("Range")
    assert resumed is not None
    assert int(resumed.removeprefix("bytes=").rstrip("-")) > 0
    assert server.statuses == [200, 200]
    assert server.sent[-1] == len(body)


async def test_content_range_mismatch_restarts(tmp_path: Path) -> None:
    """A 206 whose Content-Range does not start at our offset is discarded, then redone."""
    body = os.urandom(30_000)
    async with (
        FileServer(body, truncate=1, wrong_start=True) as server,
        local_client() as client,
    ):
        await download(client, server.url(), tmp_path / "a.mp4")
    assert (tmp_path / "a.mp4").read_bytes() == body
    ranges = [h.get("Range") for h in server.headers]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[2] is None  # the bad 206 was discarded: start again without Range
    assert server.statuses == [200, 206, 200]


async def test_a_part_of_a_changed_file_restarts_from_byte_zero(tmp_path: Path) -> None:
    """A 206 whose ETag differs from the first part's (If-Range ignored) is never spliced."""
    first, second = os.urandom(30_000), os.urandom(30_000)
    async with (
        FileServer(first, truncate=1, changed=second) as server,
        local_client() as client,
    ):
        downloaded = await download_file(client._api, server.url(), tmp_path / "a.mp4")
    assert (tmp_path / "a.mp4").read_bytes() == second
    sha = hashlib.sha256(second).hexdigest()  # of the whole new file: the digest restarted too
    assert downloaded == Downloaded(tmp_path / "a.mp4", len(second), '"v2"', sha)
    assert server.headers[1].get("If-Range") == '"v1"'
    assert server.statuses == [200, 206, 200]
    assert server.headers[2].get("Range") is None


@pytest.mark.parametrize(
    "content_type", ["text/html; charset=utf-8", "application/json", "text/plain"]
)
async def test_a_non_video_answer_is_a_download_error(tmp_path: Path, content_type: str) -> None:
    """A 200 that is not a video (an HTML error page) fails, naming its type; no file stays."""
    mime = content_type.partition(";")[0]
    async with (
        FileServer(b"<html>oops</html>", content_type=content_type) as server,
        local_client() as client,
    ):
        with pytest.raises(DownloadError, match=mime) as info:
            await download(client, server.url(), tmp_path / "a.mp4")
    assert info.value.file == tmp_path / "a.mp4"
    assert listing(tmp_path) == []
    assert server.statuses == [200]  # not retried


@pytest.mark.parametrize(
    "content_type", [None, "video/mp4", "application/octet-stream", "binary/octet-stream"]
)
async def test_video_and_octet_stream_answers_are_accepted(
    tmp_path: Path, content_type: str | None
) -> None:
    """Video types, octet streams and a missing content type are saved, with size and ETag."""
    body = os.urandom(5_000)
    async with FileServer(body, content_type=content_type) as server, local_client() as client:
        downloaded = await download_file(client._api, server.url(), tmp_path / "a.mp4")
    sha = hashlib.sha256(body).hexdigest()
    assert downloaded == Downloaded(tmp_path / "a.mp4", 5_000, '"v1"', sha)
    assert (tmp_path / "a.mp4").read_bytes() == body


async def test_downloader_fetch_reports_size_and_etag(tmp_path: Path) -> None:
    """Downloader.fetch returns the saved file's path, size, strong ETag and sha256."""
    body = os.urandom(7_000)
    async with FileServer(body) as server, local_client() as client:
        downloader = Downloader(client._api, tmp_path, concurrency=1)
        downloaded = await downloader.fetch("job-1", server.url())
    sha = hashlib.sha256(body).hexdigest()
    assert downloaded == Downloaded(tmp_path / "job-1.mp4", 7_000, '"v1"', sha)


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    """A 503 or 429 with Retry-After waits at least that long (on the client's clock)."""
    body = os.urandom(500)
    fail = ((503, "7"), (429, "5"))
    async with FileServer(body, fail=fail) as server, local_client() as client:
        await download(client, server.url(), tmp_path / "a.mp4")
        clock = client.clock
    assert isinstance(clock, ManualClock)
    assert clock.sleeps[0] >= 7
    assert clock.sleeps[1] >= 5
    assert server.statuses == [503, 429, 200]
    assert (tmp_path / "a.mp4").read_bytes() == body


async def test_retry_after_beyond_cap_fails_at_once(tmp_path: Path) -> None:
    """A Retry-After longer than max_retry_after fails without sleeping or retrying."""
    async with FileServer(b"x", fail=((429, "3600"),)) as server, local_client() as client:
        with pytest.raises(DownloadError) as info:
            await download(client, server.url(), tmp_path / "a.mp4")
        clock = client.clock
    assert isinstance(clock, ManualClock)
    assert clock.sleeps == []
    assert info.value.http_status == 429
    assert len(server.statuses) == 1
    assert listing(tmp_path) == []


async def test_redirects_followed_up_to_three(tmp_path: Path) -> None:
    """Three redirects are followed; a fourth fails with nothing written."""
    body = os.urandom(1000)
    async with FileServer(body) as server, local_client() as client:
        await download(client, server.url("/redirect/3"), tmp_path / "a.mp4")
        assert (tmp_path / "a.mp4").read_bytes() == body
        with pytest.raises(DownloadError, match="more than 3 redirects"):
            await download(client, server.url("/redirect/4"), tmp_path / "b.mp4")
    assert listing(tmp_path) == ["a.mp4"]


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "http://cdn.example/x.mp4", "ftp://cdn.example/x"]
)
async def test_redirect_to_forbidden_scheme_refused(tmp_path: Path, location: str) -> None:
    """A redirect is checked like the original URL: no file:, ftp: or non-loopback http."""
    async with FileServer(b"x") as server, local_client() as client:
        url = str(server.server.make_url("/to").with_query(url=location))  # type: ignore[union-attr]
        with pytest.raises(DownloadError, match="refus"):
            await download(client, url, tmp_path / "a.mp4")
    assert listing(tmp_path) == []


async def test_cancellation_removes_temp_file(tmp_path: Path) -> None:
    """Cancelling a download mid-stream leaves neither a temp file nor the final file."""
    started = anyio.Event()
    release = anyio.Event()

    async def gate() -> None:
        started.set()
        await release.wait()

    async with FileServer(b"y" * 1000, gate=gate) as server, local_client() as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(download, client, server.url(), tmp_path / "a.mp4")
            await started.wait()
            assert len(listing(tmp_path)) == 1  # the temp file, in the target directory
            tg.cancel_scope.cancel()
        release.set()
    assert listing(tmp_path) == []


async def test_bounded_concurrency(tmp_path: Path) -> None:
    """download_many keeps at most `concurrency` requests in flight and uses all of them."""
    full = anyio.Event()
    server: FileServer

    async def gate() -> None:
        if server.in_flight >= 3:
            full.set()
        await full.wait()

    async with FileServer(b"z" * 2000, gate=gate) as server, local_client() as client:
        items = [(f"k{i}", server.url()) for i in range(9)]
        outcomes = await download_many(client._api, items, tmp_path / "out", concurrency=3)
    assert all(o.ok for o in outcomes)
    assert server.max_in_flight == 3
    assert len(listing(tmp_path / "out")) == 9


async def test_download_many_reports_name_collisions(tmp_path: Path) -> None:
    """A repeated key, or one whose file name another key took, fails without a request."""
    async with FileServer(b"q" * 100) as server, local_client() as client:
        url = server.url()
        items = [("a/b", url), ("ok", url), ("a/b", url), ("a_b-c14cddc0", url)]
        outcomes = await download_many(client._api, items, tmp_path, concurrency=1)
    assert [o.ok for o in outcomes] == [True, True, False, False]
    assert "is repeated" in str(outcomes[2].error)
    assert "maps to the same file as 'a/b'" in str(outcomes[3].error)
    assert len(server.headers) == 2


async def test_downloader_paths_and_overwrite(tmp_path: Path) -> None:
    """Downloader saves to directory/safe_filename(key) and respects overwrite=False."""
    async with FileServer(b"w" * 100) as server, local_client() as client:
        downloader = Downloader(client._api, tmp_path / "d", concurrency=2)
        path = await downloader.download("../../etc/passwd", server.url())
        assert path.parent == tmp_path / "d"
        assert path == downloader.path_for("../../etc/passwd")
        assert path.read_bytes() == b"w" * 100
        with pytest.raises(DownloadError, match="already exists"):
            await downloader.download("../../etc/passwd", server.url())
    assert len(server.headers) == 1


async def test_server_shorter_than_announced_is_retried(tmp_path: Path) -> None:
    """A body cut short (connection lost) counts as transient and is resumed, not saved."""
    body = os.urandom(8000)
    async with FileServer(body, truncate=10) as server, local_client() as client:
        policy = RetryPolicy(attempts=2, timeout=1e6, initial=0.0, max_delay=0.0)
        await download(client, server.url(), tmp_path / "a.mp4", retry=policy, chunk_size=64)
    assert (tmp_path / "a.mp4").read_bytes() == body  # ten halvings, each progress


async def test_progress_free_failures_exhaust_with_connection_lost(tmp_path: Path) -> None:
    """A server that restarts at zero and drops every time fails after `attempts` tries."""
    body = os.urandom(4000)
    async with (
        FileServer(body, ranges=False, truncate=100) as server,
        local_client() as client,
    ):
        with pytest.raises(DownloadError) as info:
            await download(client, server.url(), tmp_path / "a.mp4")
    assert isinstance(info.value.__cause__, ConnectionLostError)
    assert len(server.headers) == FAST_RETRY.attempts  # restarts never pass the first try
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- safe names


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("order-17", "order-17.mp4"),
        ("a.b_c", "a.b_c.mp4"),
        ("", "download-e3b0c442.mp4"),
    ],
)
def test_safe_filename_examples(key: str, name: str) -> None:
    """Safe keys map to themselves plus the suffix; an empty key gets a placeholder stem."""
    assert safe_filename(key) == name


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "C:\\Windows\\x",
        "a\x00b",
        "..",
        ".",
        "CON",
        "nul.txt",
        "com1",
        " ",
        "-rf",
        "a" * 500,
        "ö/ü",
        "a..b",
        "x\n",
    ],
)
def test_safe_filename_hostile_keys(key: str) -> None:
    """Hostile keys become a plain name in the directory, tagged with the key's hash."""
    name = safe_filename(key)
    assert "/" not in name
    assert "\\" not in name
    assert ".." not in name
    assert name.endswith(".mp4")
    assert len(name) <= MAX_FILENAME_LENGTH
    assert not name.startswith((".", "-"))
    assert name.split(".")[0].upper() not in {"CON", "NUL", "COM1"}
    assert hashlib.sha256(key.encode()).hexdigest()[:8] in name


def test_safe_filename_rejects_bad_suffix() -> None:
    """A suffix with separators or traversal is refused."""
    for suffix in ("/x", "../mp4", ".mp4/", "mp4", ".a.b"):
        with pytest.raises(ValueError, match="suffix"):
            safe_filename("k", suffix)


@given(st.text(), st.sampled_from(["", ".mp4", ".png", ".M4V"]))
def test_safe_filename_properties(key: str, suffix: str) -> None:
    """Any key gives a deterministic, non-empty, bounded name that stays in its directory."""
    name = safe_filename(key, suffix)
    assert name == safe_filename(key, suffix)
    assert name
    assert name not in (".", "..")
    assert ".." not in name
    assert "/" not in name
    assert "\\" not in name
    assert "\x00" not in name
    assert os.sep not in name
    assert name.isascii()
    assert len(name) <= MAX_FILENAME_LENGTH
    assert name.endswith(suffix)
    assert PurePosixPath(name).name == name
    assert PureWindowsPath(name).name == name
    base = "/srv/downloads"
    assert os.path.dirname(os.path.normpath(os.path.join(base, name))) == base


@given(st.text(alphabet="abcXYZ019_-.", min_size=1, max_size=50))
def test_safe_filename_distinct_for_distinct_changed_keys(key: str) -> None:
    """Keys differing only in a replaced character still get different names."""
    assert safe_filename(key + "/") != safe_filename(key + " ")
