"""The download's file: an ``O_EXCL`` temporary file beside the target, published atomically."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

import anyio
import anyio.to_thread

from ._urls import DownloadError

__all__ = ["Sink", "check_target", "file_sha256", "make_directory", "open_sink"]


class Sink:
    """An ``O_EXCL`` temporary file in the target directory, written off the event loop."""

    def __init__(self, fd: int, tmp: Path, flush_size: int) -> None:
        self.fd: int | None = fd
        self.tmp = tmp
        self._flush_size = flush_size
        self._pending = bytearray()
        self._written = 0
        self._digest = hashlib.sha256()

    @property
    def sha256(self) -> str:
        """The sha256 hex digest of the bytes received so far."""
        return self._digest.hexdigest()

    @property
    def size(self) -> int:
        """Bytes received into this file so far (written or buffered)."""
        return self._written + len(self._pending)

    async def add(self, data: bytes) -> None:
        self._digest.update(data)
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
        self._digest = hashlib.sha256()

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


def check_target(target: Path, overwrite: bool) -> None:
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


def make_directory(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)


async def open_sink(target: Path, *, overwrite: bool, flush_size: int) -> Sink:
    """Check ``target`` (its directory exists; no file there unless ``overwrite``) and open a
    temporary file beside it."""
    await anyio.to_thread.run_sync(check_target, target, overwrite)
    fd, tmp = await anyio.to_thread.run_sync(_open_temp, target.parent, target.name)
    return Sink(fd, tmp, flush_size)


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file's bytes (read in 1 MiB blocks; call off the loop)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
