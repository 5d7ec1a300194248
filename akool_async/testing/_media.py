"""Deterministic fake media: what a source video URL "contains", and the output files.

Source videos are never fetched: their duration, the people in them and a forced failure
come from test hooks in the URL's query (``duration=N``, ``people=N``, ``fail=1``) or,
without hooks, from a hash of the URL. Outputs are a small valid-looking MP4 per id and
PNG previews.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
import zlib
from urllib.parse import parse_qs, urlsplit

#: Bytes of every simulated output video (ftyp + moov + mdat boxes).
MP4_SIZE = 32 * 1024


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _stream(seed: bytes, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:size])


@functools.lru_cache(maxsize=256)
def fake_mp4(file_id: str) -> bytes:
    """``MP4_SIZE`` bytes starting with an ``ftyp`` box (brand ``isom``), deterministic per id."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    mvhd = _box(b"mvhd", b"\0" * 4 + struct.pack(">IIII", 0, 0, 1000, 10_000) + b"\0" * 80)
    moov = _box(b"moov", mvhd)
    header = ftyp + moov
    mdat = _box(b"mdat", _stream(file_id.encode(), MP4_SIZE - len(header) - 8))
    return header + mdat


@functools.lru_cache(maxsize=256)
def fake_png(file_id: str) -> bytes:
    """A valid 8x8 RGB PNG whose colour is derived from ``file_id``."""
    r, g, b = hashlib.sha256(file_id.encode()).digest()[:3]
    raw = b"".join(b"\0" + bytes((r, g, b)) * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _url_hash(url: str) -> int:
    return int.from_bytes(hashlib.sha256(url.encode()).digest()[:8], "big")


def _query_hook(url: str, name: str) -> str | None:
    try:
        values = parse_qs(urlsplit(url).query).get(name)
    except ValueError:
        return None
    return values[-1] if values else None


def video_seconds(url: str) -> float:
    """Detected duration of a source video URL: its ``duration=N`` query parameter if it is a
    positive number, else 3-20 s derived from a hash of the URL (deterministic)."""
    hook = _query_hook(url, "duration")
    if hook is not None:
        try:
            value = float(hook)
        except ValueError:
            value = 0.0
        if value > 0 and math.isfinite(value):
            return int(value) if value.is_integer() else value
    return 3 + _url_hash(url) % 18


def people_in(url: str) -> int:
    """People detected in a source video URL: its ``people=N`` query parameter (N >= 0) if
    present, else 1-3 derived from a hash of the URL (deterministic)."""
    hook = _query_hook(url, "people")
    if hook is not None and hook.isdigit():
        return int(hook)
    return 1 + (_url_hash(url) >> 8) % 3


def forced_failure(url: str) -> bool:
    """True when the URL carries the ``fail=1`` test hook (the task will fail)."""
    return _query_hook(url, "fail") in ("1", "true")
