"""Input checks without I/O: config validators, download URLs, file names, download options."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anyio
import pytest
from yarl import URL

from akool_async._client import AkoolClient
from akool_async._config import PollPolicy, RetryPolicy, Timeouts
from akool_async._download import DownloadError, check_download_url, safe_filename
from akool_async._download._urls import redact_url, url_of
from akool_async._errors import ResponseError
from akool_async._models import CharacterSwapResult, TaskStatus
from akool_async._resources._base import structure_polled

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("value", ["10", None, True])
def test_timeouts_refuse_a_non_number(value: object) -> None:
    """A timeout that is not a number of seconds is a TypeError naming the field."""
    with pytest.raises(TypeError, match="connect must be a number of seconds"):
        Timeouts(connect=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0])
def test_timeouts_refuse_infinite_or_negative(value: float) -> None:
    """A timeout must be finite and not negative."""
    with pytest.raises(ValueError, match="read must be a finite number >= 0"):
        Timeouts(read=value)


def test_timeouts_refuse_zero() -> None:
    """A zero total timeout is refused: it could never be met."""
    with pytest.raises(ValueError, match="total must be > 0"):
        Timeouts(total=0)


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_retry_attempts_must_be_a_positive_integer(value: Any) -> None:
    """RetryPolicy.attempts is a whole number of tries, at least one."""
    with pytest.raises(ValueError, match="attempts must be an integer >= 1"):
        RetryPolicy(attempts=value)


def test_poll_factor_below_one_is_refused() -> None:
    """A poll backoff factor below 1 would shrink the interval: refused."""
    with pytest.raises(ValueError, match=r"factor must be >= 1\.0"):
        PollPolicy(factor=0.5)


@pytest.mark.parametrize("value", [1.0, 2.0])
def test_poll_jitter_of_one_or_more_is_refused(value: float) -> None:
    """Jitter is a fraction in [0, 1)."""
    with pytest.raises(ValueError, match="jitter must be in"):
        PollPolicy(jitter=value)


def test_valid_policies_keep_their_values() -> None:
    """Values inside the bounds are kept as given."""
    poll = PollPolicy(initial=0, factor=1.0, jitter=0.0)
    assert (poll.initial, poll.factor, poll.jitter) == (0, 1.0, 0.0)
    assert RetryPolicy(attempts=1).attempts == 1


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "non-empty string"),
        ("   ", "non-empty string"),
        ("file:///etc/passwd", "refusing to download a file: URL"),
        ("//cdn.example/a.mp4", "a URL without a scheme"),
        ("https://", "has no host"),
        ("https://user:pw@cdn.example/a.mp4", "credentials"),
        ("http://cdn.example/a.mp4", "refusing plain http"),
        ("https://cdn.example:99999/a.mp4", "is not a valid URL"),
    ],
)
def test_download_urls_that_are_refused(url: str, message: str) -> None:
    """Other schemes, no host, credentials, plain http off loopback and bad ports are refused."""
    with pytest.raises(DownloadError, match=message) as info:
        check_download_url(url)
    assert "pw" not in str(info.value)


def test_download_url_that_is_not_a_string_is_refused() -> None:
    """Only a string is a URL to check."""
    with pytest.raises(DownloadError, match="non-empty string"):
        check_download_url(b"https://cdn.example/a.mp4")


def test_encoded_download_url_reaches_the_server_unchanged() -> None:
    """A signed, already-encoded URL keeps its bytes; a URL with spaces is encoded."""
    signed = "https://cdn.example/a%2Fb.mp4?sig=a%2Bb%3D&exp=1"
    assert str(check_download_url(signed)) == signed
    assert check_download_url("https://cdn.example/my clip.mp4").raw_path == "/my%20clip.mp4"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/a", "http://localhost/a", "http://[::1]/a"])
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    """The simulator and local test servers are reachable over plain http."""
    assert check_download_url(url).scheme == "http"


def test_redacted_url_drops_userinfo_query_and_fragment() -> None:
    """Messages show scheme, host, port and path only; an IPv6 host keeps its brackets."""
    assert redact_url("https://u:p@cdn.example:8443/a.mp4?sig=x#f") == (
        "https://cdn.example:8443/a.mp4"
    )
    assert redact_url("http://[::1]:81/a?token=t") == "http://[::1]:81/a"
    assert redact_url("https://cdn.example:bad/a") == "<unparseable URL>"


def test_url_of_takes_strings_urls_and_results() -> None:
    """url_of accepts a string, a yarl URL or a result with an output_url."""
    result = CharacterSwapResult(
        id="t1", status=TaskStatus.COMPLETED, output_url="https://cdn.example/r.mp4"
    )
    assert url_of("https://cdn.example/a") == "https://cdn.example/a"
    assert url_of(URL("https://cdn.example/b")) == "https://cdn.example/b"
    assert url_of(result) == "https://cdn.example/r.mp4"


def test_url_of_a_result_without_output_names_the_task() -> None:
    """A result that has not completed has nothing to download; the error names its task."""
    pending = CharacterSwapResult(id="t2", status=TaskStatus.PROCESSING)
    with pytest.raises(DownloadError, match="no output_url") as info:
        url_of(pending)
    assert info.value.task_id == "t2"
    with pytest.raises(DownloadError, match="takes a result with an output_url"):
        url_of(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- file names


def test_safe_filename_refuses_bad_arguments() -> None:
    """A non-string key, an odd suffix or no room for a name are errors, not odd names."""
    with pytest.raises(TypeError, match="key must be a str"):
        safe_filename(7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="suffix must be"):
        safe_filename("a", suffix="mp4")
    with pytest.raises(ValueError, match="leaves no room"):
        safe_filename("a", suffix=".mp4", max_length=10)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"chunk_size": True}, "chunk_size must be an integer >= 1"),
        ({"max_redirects": -1}, "max_redirects must be an integer >= 0"),
        ({"max_redirects": 1.5}, "max_redirects must be an integer >= 0"),
    ],
)
async def test_download_options_are_checked_before_any_io(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    """A bad chunk_size or max_redirects is a ValueError before the session is needed."""
    client = AkoolClient("k", base_url="http://127.0.0.1:9")  # never opened
    with pytest.raises(ValueError, match=message):
        await client.download("https://cdn.example/a.mp4", tmp_path / "a", **options)
    assert not await anyio.Path(tmp_path / "a").exists()


# --------------------------------------------------------------------------- structuring


def test_polled_structuring_errors_name_the_request() -> None:
    """A malformed poll answer raises a ResponseError carrying method, path and task id."""

    def broken(_data: Any) -> None:
        raise ResponseError("bad field")

    with pytest.raises(ResponseError) as info:
        structure_polled(broken, {}, method="GET", path="/detail", task_id="t9")
    assert (info.value.method, info.value.path, info.value.task_id) == ("GET", "/detail", "t9")
