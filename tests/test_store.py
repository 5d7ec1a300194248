"""Job store ownership and binding: one process per SQLite journal, one account and server."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import akool_async as akool
from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._store import (
    JobState,
    JobStore,
    Journal,
    JournalBindingError,
    JournalError,
    JournalLockedError,
    open_store,
)

pytestmark = pytest.mark.anyio

HOLDER = Path(__file__).parent / "journal_helpers" / "journal_holder.py"
SWAP = akool.CharacterSwap("https://x.test/a.png", "https://x.test/v.mp4")
LOCKED_MESSAGE = re.compile(
    r"journal .+ is in use by host '[^']+' pid (\d+) since "
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; wait for it to finish or stop it"
)


async def begin(journal: JobStore, key: str) -> None:
    """Record ``key`` with the standard request."""
    await journal.begin(
        key,
        kind="character_swap",
        fingerprint=request_fingerprint(SWAP),
        request=request_to_dict(SWAP),
    )


def snapshot(directory: Path) -> dict[str, str]:
    """Name -> sha256 of every file in ``directory``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@contextlib.contextmanager
def holding_child(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process that holds the journal at ``path`` open until it is killed."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    args = [sys.executable, str(HOLDER), str(path)]
    with subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline() == "ready\n"
            yield proc
        finally:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- ownership


async def test_second_process_is_refused_until_the_holder_dies(tmp_path: Path) -> None:
    """A journal held by a live child is refused naming its pid; after SIGKILL it opens."""
    path = tmp_path / "jobs.db"
    async with Journal(path) as journal:
        await begin(journal, "a")
    with holding_child(path) as child:
        before = snapshot(tmp_path)
        with pytest.raises(JournalLockedError) as info:
            await Journal.open(path)
        assert snapshot(tmp_path) == before  # the refused opener touched nothing
        err = info.value
        assert err.path == str(path)
        assert err.holder is not None
        assert err.holder.pid == child.pid
        assert err.holder.host
        match = LOCKED_MESSAGE.fullmatch(str(err))
        assert match is not None, str(err)
        assert int(match.group(1)) == child.pid
        assert isinstance(err, JournalError)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
    async with Journal(path) as journal:  # the lock died with the process
        rec = await journal.get("a")
        assert rec is not None
        assert rec.state is JobState.PENDING


async def test_second_open_in_one_process_is_refused(tmp_path: Path) -> None:
    """Two Journal objects on one file in one process: the second is refused, naming us."""
    path = tmp_path / "jobs.db"
    async with Journal(path) as first:
        await begin(first, "a")
        second = Journal(path)
        with pytest.raises(JournalLockedError) as info:
            await second.__aenter__()
        assert info.value.holder is not None
        assert info.value.holder.pid == os.getpid()
        assert second.closed
        await first.mark_sending("a")  # the holder is unaffected
    async with Journal(path) as again:  # released by aclose
        rec = await again.get("a")
        assert rec is not None
        assert rec.state is JobState.SENDING


async def test_lock_file_names_the_holder_only_while_held(tmp_path: Path) -> None:
    """The sidecar lock file holds this process's pid while open and is emptied on close."""
    path = tmp_path / "jobs.db"
    lock = tmp_path / "jobs.db.lock"
    async with Journal(path):
        assert f'"pid": {os.getpid()}' in lock.read_text()
    assert lock.read_text() == ""


async def test_unreadable_holder_line_still_refuses(tmp_path: Path) -> None:
    """A holder whose line cannot be read yet is reported as another process."""
    path = tmp_path / "jobs.db"
    lock = tmp_path / "jobs.db.lock"
    async with Journal(path):
        lock.write_text("not json")
        with pytest.raises(JournalLockedError, match="in use by another process") as info:
            await Journal.open(path)
        assert info.value.holder is None


async def test_lock_file_that_cannot_be_created_is_a_journal_error(tmp_path: Path) -> None:
    """A journal in a missing directory fails with JournalError naming the lock file."""
    with pytest.raises(JournalError, match=r"jobs\.db\.lock"):
        await Journal.open(tmp_path / "missing" / "jobs.db")


async def test_in_memory_journal_needs_no_lock(tmp_path: Path) -> None:
    """An in-memory journal opens without a lock file and works."""
    async with Journal(":memory:") as journal:
        await begin(journal, "a")
        assert (await journal.counts())[JobState.PENDING] == 1
    assert not os.path.exists(":memory:.lock")  # noqa: ASYNC240 (one stat, no await needed)


# --------------------------------------------------------------------------- binding


def meta(path: Path) -> dict[str, str]:
    """The journal_meta table of the journal at ``path``."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT name, value FROM journal_meta").fetchall())


async def test_account_binding_refuses_another_account(tmp_path: Path) -> None:
    """A journal made for one account digest refuses another and never prints either."""
    path = tmp_path / "jobs.db"
    async with Journal(path, account="digest-one"):
        pass
    with pytest.raises(JournalBindingError, match="made for another account") as info:
        await Journal.open(path, account="digest-two")
    assert (info.value.field, info.value.path) == ("account", str(path))
    assert "digest" not in str(info.value)
    async with Journal(path, account="digest-one"):  # the same account is fine
        pass
    async with Journal(path):  # no account given: nothing to check
        pass
    assert meta(path)["account"] == "digest-one"


async def test_base_url_binding_names_both_urls(tmp_path: Path) -> None:
    """A journal made for one base URL refuses another, naming both."""
    path = tmp_path / "jobs.db"
    async with Journal(path, base_url="https://a.test"):
        pass
    with pytest.raises(JournalBindingError) as info:
        await Journal.open(path, base_url="https://b.test")
    assert info.value.field == "base_url"
    assert "for base URL https://a.test, not https://b.test" in str(info.value)


async def test_refused_binding_records_nothing(tmp_path: Path) -> None:
    """A refused open records none of its values, even the one that matched nothing yet."""
    path = tmp_path / "jobs.db"
    async with Journal(path, account="digest-one"):
        pass
    with pytest.raises(JournalBindingError):
        await Journal.open(path, account="digest-two", base_url="https://b.test")
    assert "base_url" not in meta(path)


async def test_journal_without_binding_accepts_and_keeps_the_first_values(
    tmp_path: Path,
) -> None:
    """A journal made before binding existed takes the first values, then holds to them."""
    path = tmp_path / "jobs.db"
    async with Journal(path) as journal:
        await begin(journal, "a")
    assert meta(path) == {"schema_version": "1", "creator": "akool-async"}  # as older versions
    async with Journal(path, account="digest-one", base_url="https://a.test") as journal:
        assert await journal.get("a") is not None
    assert meta(path)["account"] == "digest-one"
    assert meta(path)["base_url"] == "https://a.test"
    with pytest.raises(JournalBindingError, match=r"https://a\.test, not https://b\.test"):
        await Journal.open(path, base_url="https://b.test")


# --------------------------------------------------------------------------- open_store


async def test_open_store_opens_a_path_the_caller_then_owns(tmp_path: Path) -> None:
    """open_store on a path opens a bound Journal that the caller closes."""
    path = tmp_path / "jobs.db"
    store = await open_store(path, account="digest-one", base_url="https://a.test")
    try:
        assert isinstance(store, Journal)
        assert store.path == str(path)
        await begin(store, "a")
    finally:
        await store.aclose()
    assert meta(path)["account"] == "digest-one"


async def test_open_store_binds_an_open_store_and_returns_it(tmp_path: Path) -> None:
    """An open store is returned as given after its binding is checked."""
    async with Journal(tmp_path / "jobs.db", base_url="https://a.test") as journal:
        assert await open_store(journal, base_url="https://a.test") is journal
        with pytest.raises(JournalBindingError):
            await open_store(journal, base_url="https://b.test")
        assert not journal.closed


async def test_open_store_routes_postgres_urls_and_hides_the_password() -> None:
    """A postgresql:// URL opens a Postgres store; an unreachable one is a JournalError
    that does not repeat the password."""
    with pytest.raises(akool.JournalError) as info:
        await open_store("postgresql://user:s3cret@127.0.0.1:1/jobs")
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


async def test_open_store_refuses_other_objects() -> None:
    """Something that is neither a path nor a store is a TypeError."""
    with pytest.raises(TypeError, match="path or a job store"):
        await open_store(42)  # type: ignore[arg-type]
