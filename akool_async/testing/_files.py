"""Output files: the URLs of generated videos and analysis previews, and serving them.

``GET /files/{id}.mp4`` serves a completed swap's video, ``/files/{id}_{n}.png`` the n-th
person of a completed analysis; single ``bytes=`` Ranges get a 206 (416 when unsatisfiable).
"""

from __future__ import annotations

from aiohttp import web

from ._media import fake_mp4, fake_png
from ._tasks import SimTask, TaskBook

__all__ = ["OutputFiles", "parse_range", "ranged", "write_half"]


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range as (start, end inclusive); None = whole file; "invalid" = 416."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # unsupported units or multiple ranges: serve the whole file (RFC 9110)
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return "invalid"
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "invalid"
            return max(0, size - suffix), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return "invalid"
    if start >= size or end < start:
        return "invalid"
    return start, min(end, size - 1)


class OutputFiles:
    """Where outputs live (``base_url`` is set once the server listens) and their bytes."""

    def __init__(self, book: TaskBook) -> None:
        self._book = book
        self.base_url = ""

    def video_url(self, task: SimTask) -> str:
        """The output video URL of a swap task."""
        return f"{self.base_url}/files/{task.id}.mp4"

    def image_url(self, task: SimTask, index: int) -> str:
        """The preview image URL of person ``index`` found by an analysis."""
        return f"{self.base_url}/files/{task.id}_{index}.png"

    def content(self, name: str, now: float) -> tuple[bytes, str] | None:
        """(bytes, content type) of the file ``name`` at simulated time ``now``, or None."""
        if name.endswith(".mp4"):
            task = self._book.tasks.get(name[:-4])
            if task is None or task.kind == "analysis" or task.status(now) != 3:
                return None
            return fake_mp4(task.id), "video/mp4"
        if name.endswith(".png"):
            task_id, _, index = name[:-4].rpartition("_")
            task = self._book.tasks.get(task_id)
            if task is None or task.kind != "analysis" or task.status(now) != 3:
                return None
            if not index.isdigit() or int(index) >= task.people:
                return None
            return fake_png(name), "image/png"
        return None


def ranged(
    content: bytes, content_type: str, range_header: str | None
) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of a GET with an optional ``Range`` header."""
    size = len(content)
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type}
    span = parse_range(range_header, size)
    if span == "invalid":
        return 416, b"", {"Content-Range": f"bytes */{size}"}
    if isinstance(span, tuple):
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return 206, content[start : end + 1], headers
    return 200, content, headers


async def write_half(
    request: web.Request, status: int, body: bytes, headers: dict[str, str]
) -> None:
    """Announce ``body``'s full length but send only its first half (a truncated download)."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
