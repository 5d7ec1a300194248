"""Deterministic fake media: a small valid-looking MP4 per output id and PNG previews."""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib

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
