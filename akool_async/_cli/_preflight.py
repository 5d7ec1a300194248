"""Checks that run before the first create: every problem here is a UsageError (exit 2).

What would otherwise fail after paying (the results file, the download directory, the
journal, the webhook settings and port) is opened or validated up front.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from akool_async import Batch, ConfigurationError, JournalError
from akool_async._client import ENV_API_KEY, ENV_CLIENT_ID, ENV_CLIENT_SECRET
from akool_async._store import Journal

from ._common import UsageError
from ._env import env_value

if TYPE_CHECKING:
    from akool_async.webhooks import WebhookReceiver

__all__ = [
    "check_download_dir",
    "check_journal_path",
    "check_output",
    "enter_batch",
    "journal_states",
    "open_output",
    "serve_webhooks",
    "split_listen",
    "webhook_receiver",
]


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[IO[str]]:
    """The results stream: stdout for None or ``-``, else ``path`` opened for writing."""
    if path is None or path == "-":
        yield sys.stdout
        return
    try:
        stream = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageError(f"akool-async: --out {path}: cannot write ({_reason(exc)})") from None
    try:
        yield stream
    finally:
        # A write that failed was already reported (and its ids kept) by ResultsWriter;
        # closing would only flush the same unwritable bytes again.
        with contextlib.suppress(OSError):
            stream.close()


#: Bytes written to a probe file: enough to need a block of its own on a full disk.
PROBE_BYTES = 4096


def probe_directory(directory: Path, flag: str) -> None:
    """Create, write, flush to disk and remove a probe file in ``directory`` (UsageError)."""
    probe = directory / f".akool-async-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as stream:
            stream.write(b"\0" * PROBE_BYTES)
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as exc:
        raise UsageError(
            f"akool-async: {flag}: cannot write in {directory} ({_reason(exc)})"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def check_output(path: str | None) -> None:
    """Refuse a results path that cannot be written (its directory is probed, not the file).

    Nothing is truncated here: the results file is opened only once every check passed. A
    FIFO or a device (``/dev/stdout``) is taken as it is.
    """
    if path is None or path == "-":
        return
    target = Path(path)
    with contextlib.suppress(OSError):
        mode = target.stat().st_mode
        if stat.S_ISDIR(mode):
            raise UsageError(f"akool-async: --out {path}: cannot write (is a directory)")
        if not stat.S_ISREG(mode):
            return
    parent = target.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"akool-async: --out {path}: cannot write ({parent} {what})")
    probe_directory(parent, f"--out {path}")


def check_download_dir(path: str | None) -> None:
    """Create ``--download-dir`` now and probe it, so a bad one is refused before paying."""
    if path is None:
        return
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"akool-async: --download-dir {path}: not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"akool-async: --download-dir {path}: {_reason(exc)}") from None
    probe_directory(directory, f"--download-dir {path}")


def check_journal_path(journal: str | None) -> None:
    """Refuse a ``--journal`` path that cannot be a file or whose directory cannot be
    written (:func:`journal_states` then opens it)."""
    if journal is None or "://" in journal:
        return
    path = Path(journal)
    if path.is_dir():
        raise UsageError(f"akool-async: --journal {journal}: is a directory")
    parent = path.parent
    if not parent.is_dir():
        what = f"{parent} is not a directory" if parent.exists() else f"{parent} does not exist"
        raise UsageError(f"akool-async: --journal {journal}: {what}")
    # SQLite writes its -wal and -shm files beside the journal: the directory must take them.
    probe_directory(parent, f"--journal {journal}")


async def journal_states(journal: str | None) -> dict[str, str]:
    """Open the journal once before the run: held by another process, not a journal or
    not writable is a UsageError (one line). Returns each stored key's state.

    The batch opens it again right after; a process that takes it in between is refused
    to the batch the same way, still before anything is sent.
    """
    if journal is None or "://" in journal:
        return {}
    try:
        async with Journal(journal) as store:
            return {record.key: str(record.state) for record in await store.records()}
    except (JournalError, ConfigurationError) as exc:
        raise UsageError(f"akool-async: {exc.message}") from None
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(
            f"akool-async: --journal {journal}: cannot be opened ({_reason(exc)})"
        ) from None


async def enter_batch(stack: contextlib.AsyncExitStack, batch: Batch) -> None:
    """Enter ``batch`` (which opens its journal); a journal that cannot be used is exit 2."""
    try:
        await stack.enter_async_context(batch)
    except (JournalError, ConfigurationError) as exc:
        raise UsageError(f"akool-async: {exc.message}") from None
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"akool-async: the journal cannot be opened ({_reason(exc)})") from None


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` of ``--webhook-listen`` (host defaults to 127.0.0.1)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"akool-async: --webhook-listen must be HOST:PORT (got {listen!r})")
    return host or "127.0.0.1", int(port_text)


def webhook_receiver() -> WebhookReceiver:
    """A receiver for the environment's client id and secret; UsageError if it cannot be."""
    client_id = env_value(ENV_CLIENT_ID)
    secret = env_value(ENV_CLIENT_SECRET) or env_value(ENV_API_KEY)
    if not client_id or not secret:
        raise UsageError(
            f"akool-async: webhooks need ${ENV_CLIENT_ID} (Akool signs webhooks with it) and "
            f"${ENV_CLIENT_SECRET} (defaults to ${ENV_API_KEY}) to verify and decrypt them"
        )
    try:
        from akool_async.webhooks import WebhookReceiver  # noqa: PLC0415 - only with --webhook-listen

        return WebhookReceiver(client_id=client_id, client_secret=secret)
    except ConfigurationError as exc:
        raise UsageError(f"akool-async: {exc.message}") from None
    except ImportError:
        raise UsageError(
            "akool-async: webhooks need the `cryptography` package: "
            "pip install 'akool-async[webhooks]'"
        ) from None


@contextlib.asynccontextmanager
async def serve_webhooks(receiver: WebhookReceiver, listen: str, url: str) -> AsyncIterator[None]:
    """Serve ``receiver`` on ``listen`` (HOST:PORT) at ``url``'s path for the block."""
    from aiohttp import web  # noqa: PLC0415 - only with --webhook-listen

    from akool_async.webhooks import make_aiohttp_app  # noqa: PLC0415

    host, port = split_listen(listen)
    path = urlsplit(url).path or "/"
    runner: Any = web.AppRunner(make_aiohttp_app(receiver, path=path), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise UsageError(
                f"akool-async: --webhook-listen {listen}: cannot listen ({_reason(exc)})"
            ) from None
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).splitlines()[0]
