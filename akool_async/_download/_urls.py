"""Download URLs and file names: pure checks, no I/O."""

from __future__ import annotations

import hashlib
import re
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from yarl import URL

from akool_async._errors import DownloadError
from akool_async._net import http_url_problem, split_url

__all__ = [
    "MAX_FILENAME_LENGTH",
    "DownloadError",
    "ResultOrUrl",
    "check_download_url",
    "redact_url",
    "safe_filename",
    "url_of",
]

#: Longest name :func:`safe_filename` returns, suffix included (ASCII, so also bytes). Leaves
#: room for the ``.<name>.<16 hex>.part`` temporary file within the usual 255-byte limit.
MAX_FILENAME_LENGTH = 120

#: Anything with an ``output_url`` attribute (every result model), or the URL itself.
ResultOrUrl: TypeAlias = Any

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


def redact_url(url: str) -> str:
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
    _check_parts(url)
    # Signed CDN URLs must reach the server byte for byte: keep an already-encoded URL as is.
    if url.isascii() and not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return URL(url, encoded=True)
    return URL(url)


def _check_parts(url: str) -> None:
    """Scheme, host and userinfo of a download URL (see :func:`check_download_url`)."""
    try:
        parts = split_url(url)
    except ValueError as exc:
        raise DownloadError(f"download URL {redact_url(url)!r} is not a valid URL: {exc}") from None
    shown = redact_url(url)
    problem = http_url_problem(parts)
    if problem == "scheme":
        scheme = parts.scheme.lower()
        what = f"a {scheme}: URL" if scheme else "a URL without a scheme"
        raise DownloadError(
            f"refusing to download {what}: only https (and http to loopback hosts) is allowed",
            url=shown,
        )
    if problem == "host":
        raise DownloadError(f"download URL {shown!r} has no host", url=shown)
    if problem == "credentials":
        raise DownloadError(
            f"refusing a download URL with credentials in it ({shown!r})", url=shown
        )
    if problem == "plain_http":
        raise DownloadError(
            f"refusing plain http download from {shown!r}: use https (plain http is allowed "
            "only for loopback hosts such as the simulator)",
            url=shown,
        )


def url_of(result_or_url: ResultOrUrl) -> str:
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
