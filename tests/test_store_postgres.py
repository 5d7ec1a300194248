"""The PostgreSQL job store against a real throwaway server: journal rules, leases, fleet."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest
from pg_cluster import PostgresCluster, postgres_cluster

from akool_async import _errors as errors
from akool_async._journal import (
    JobRecord,
    JobState,
    JournalConflictError,
    JournalError,
    JournalFormatError,
    JournalStateError,
    request_fingerprint,
)
from akool_async._store_postgres import JobLeasedError, PostgresStore
from akool_async._store_postgres_base import StoreBindingError, redact_url

pytestmark = pytest.mark.anyio

REQUEST = {"image": "https://x.test/a.png", "video": "https://x.test/v.mp4", "mode": "animate"}
FP = request_fingerprint("character_swap", REQUEST)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server for the session; a failed start fails the tests."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
async def store_url(pg_cluster: PostgresCluster) -> AsyncIterator[str]:
    """A URL to a fresh, empty database of the throwaway server (dropped afterwards)."""
    name = f"t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(pg_cluster.admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield pg_cluster.admin_dsn(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def sql(url: str, query: str, *args: Any) -> Any:
    """Run one statement on its own connection and return its rows."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def expire_leases(url: str, owner: str) -> None:
    """Make every lease of ``owner`` lapse, as if it stopped heartbeating a lease ago."""
    await sql(
        url,
        "UPDATE akool_jobs SET lease_until = now() - interval '1 second' WHERE owner = $1",
        owner,
    )


class FakeClock:
    """A clock whose wall time advances by one second per read."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        self.now += 1.0
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def begin(store: PostgresStore, key: str) -> JobRecord:
    """Record ``key`` with the standard request."""
    return await store.begin(key, kind="character_swap", fingerprint=FP, request=REQUEST)


PATHS: dict[JobState, list[str]] = {
    JobState.PENDING: [],
    JobState.SENDING: ["sending"],
    JobState.CREATED: ["sending", "created"],
    JobState.COMPLETED: ["sending", "created", "completed"],
    JobState.FAILED: ["sending", "created", "failed"],
    JobState.UNCERTAIN: ["sending", "uncertain"],
    JobState.REJECTED: ["rejected"],
}

# Every legal (from-state, operation) pair, written out independently of the module.
LEGAL = {
    (JobState.PENDING, "sending"),
    (JobState.PENDING, "resubmit"),
    (JobState.PENDING, "rejected"),
    (JobState.SENDING, "created"),
    (JobState.SENDING, "uncertain"),
    (JobState.SENDING, "rejected"),
    (JobState.CREATED, "completed"),
    (JobState.CREATED, "failed"),
    (JobState.UNCERTAIN, "resubmit"),
    (JobState.REJECTED, "sending"),
    (JobState.REJECTED, "resubmit"),
}


def operations(store: PostgresStore, key: str) -> dict[str, Callable[[], Awaitable[JobRecord]]]:
    """Each state-changing call on ``key``, by name."""
    lost = errors.ConnectionLostError("lost")
    return {
        "sending": lambda: store.mark_sending(key),
        "resubmit": lambda: store.mark_sending(key, resubmit_uncertain=True),
        "created": lambda: store.mark_created(key, f"task-{key}"),
        "uncertain": lambda: store.mark_uncertain(key, lost),
        "rejected": lambda: store.mark_rejected(key, errors.InsufficientCreditError("no")),
        "completed": lambda: store.mark_completed(key, {"_id": f"task-{key}", "status": 3}),
        "failed": lambda: store.mark_failed(key, {"status": 4}, errors.TaskFailedError("x")),
    }


async def drive(store: PostgresStore, key: str, state: JobState) -> JobRecord:
    """Create ``key`` and move it into ``state``."""
    rec = await begin(store, key)
    for step in PATHS[state]:
        rec = await operations(store, key)[step]()
    assert rec.state is state
    return rec


# --------------------------------------------------------------------------- journal rules


async def test_lifecycle_records_every_field(store_url: str) -> None:
    """A job goes pending -> sending -> created -> completed with ids, raw result and times."""
    async with PostgresStore(store_url, clock=FakeClock()) as store:
        rec = await begin(store, "a")
        assert (rec.state, rec.kind, rec.fingerprint, rec.attempts) == (
            JobState.PENDING,
            "character_swap",
            FP,
            0,
        )
        assert rec.request == REQUEST
        assert rec.created_at == rec.updated_at == 1001.0
        rec = await store.mark_sending("a")
        assert (rec.state, rec.attempts, rec.updated_at) == (JobState.SENDING, 1, 1002.0)
        rec = await store.mark_created("a", "task-9")
        assert (rec.state, rec.task_id) == (JobState.CREATED, "task-9")
        rec = await store.mark_completed("a", {"_id": "task-9", "status": 3, "url": "u"})
        assert rec.state is JobState.COMPLETED
        assert rec.result_raw == {"_id": "task-9", "status": 3, "url": "u"}
        assert rec.error is None
        rec = await store.set_local_path("a", "/out/a.mp4")
        assert rec.local_path == "/out/a.mp4"
        assert await store.get("a") == rec
        assert await store.get_by_task_id("task-9") == rec
        assert await store.get_by_task_id("task-0") is None


async def test_head_swap_analysis_id_and_failure(store_url: str) -> None:
    """A head swap keeps its analysis id and a failed task stores its raw data and error."""
    async with PostgresStore(store_url) as store:
        await store.begin("h", kind="head_swap", fingerprint="f" * 64, request={"faces": []})
        await store.set_analysis_id("h", "an-1")
        await store.mark_sending("h")
        rec = await store.mark_created("h", "task-2")
        assert rec.analysis_id == "an-1"
        err = errors.TaskFailedError("task failed", task_id="task-2", result=object())
        rec = await store.mark_failed("h", {"_id": "task-2", "status": 4}, err)
        assert rec.state is JobState.FAILED
        assert rec.result_raw == {"_id": "task-2", "status": 4}
        stored = rec.error
        assert isinstance(stored, errors.TaskFailedError)
        assert stored.task_id == "task-2"
        rec2 = await store.begin("h2", kind="head_swap", fingerprint="e" * 64, request={})
        await store.mark_sending(rec2.key)
        rec2 = await store.mark_created("h2", "task-3", analysis_id="an-3")
        assert (rec2.task_id, rec2.analysis_id) == ("task-3", "an-3")


@pytest.mark.parametrize("state", list(JobState))
async def test_transitions_from_each_state_follow_the_table(
    store_url: str, state: JobState
) -> None:
    """From every state, exactly the documented transitions succeed and others raise."""
    async with PostgresStore(store_url) as store:
        for name in operations(store, "x"):
            key = f"{state.value}-{name}"
            before = await drive(store, key, state)
            call = operations(store, key)[name]
            if (state, name) in LEGAL:
                after = await call()
                assert after.state is not state or name == "resubmit"
            else:
                with pytest.raises(JournalStateError) as info:
                    await call()
                assert info.value.key == key
                assert info.value.state == state.value
                assert await store.get(key) == before  # nothing changed


async def test_uncertain_rejected_and_deadline_rules(store_url: str) -> None:
    """Uncertain needs resubmit_uncertain, rejected may resend, record_error keeps created."""
    async with PostgresStore(store_url) as store:
        await drive(store, "u", JobState.UNCERTAIN)
        with pytest.raises(JournalStateError, match="resubmit_uncertain=True"):
            await store.mark_sending("u")
        rec = await store.mark_sending("u", resubmit_uncertain=True)
        assert (rec.state, rec.attempts, rec.error_json) == (JobState.SENDING, 2, None)

        await drive(store, "r", JobState.SENDING)
        err = errors.InsufficientCreditError("low credit", code=1104, http_status=200)
        rec = await store.mark_rejected("r", err)
        assert isinstance(rec.error, errors.InsufficientCreditError)
        assert rec.error.code == 1104
        rec = await store.mark_sending("r")
        assert (rec.state, rec.attempts, rec.error) == (JobState.SENDING, 2, None)

        await drive(store, "t", JobState.CREATED)
        rec = await store.record_error("t", errors.WaitTimeoutError("late", task_id="task-t"))
        assert rec.state is JobState.CREATED
        assert isinstance(rec.error, errors.WaitTimeoutError)
        rec = await store.mark_completed("t", {"status": 3})
        assert (rec.state, rec.error) == (JobState.COMPLETED, None)
        with pytest.raises(JournalStateError):
            await store.record_error("t", errors.WaitTimeoutError("late"))


async def test_setters_and_unknown_keys(store_url: str) -> None:
    """Setters are limited to their states and changing an unknown key raises."""
    async with PostgresStore(store_url) as store:
        await drive(store, "c", JobState.CREATED)
        with pytest.raises(JournalStateError, match="local path"):
            await store.set_local_path("c", "out.mp4")
        with pytest.raises(JournalStateError, match="analysis id"):
            await store.set_analysis_id("c", "an")
        assert await store.get("nope") is None
        with pytest.raises(JournalStateError, match="no job with key 'nope'"):
            await store.mark_sending("nope")


async def test_begin_is_idempotent_and_conflicts_name_the_key(store_url: str) -> None:
    """The same request returns the stored record; another request or kind is a conflict."""
    async with PostgresStore(store_url) as store:
        await drive(store, "k", JobState.CREATED)
        rec = await begin(store, "k")
        assert (rec.state, rec.task_id) == (JobState.CREATED, "task-k")
        for kind, fingerprint in (("character_swap", "0" * 64), ("head_swap", FP)):
            with pytest.raises(JournalConflictError, match="'k'") as info:
                await store.begin("k", kind=kind, fingerprint=fingerprint, request={})  # type: ignore[arg-type]
            assert isinstance(info.value, ValueError)
            assert info.value.key == "k"
        assert (await store.counts())[JobState.CREATED] == 1


async def test_begin_validates_arguments(store_url: str) -> None:
    """begin refuses an empty key, an unknown kind and a request that is not JSON."""
    async with PostgresStore(store_url) as store:
        with pytest.raises(ValueError, match="empty"):
            await store.begin("", kind="character_swap", fingerprint=FP, request={})
        with pytest.raises(ValueError, match="kind"):
            await store.begin("a", kind="lip_sync", fingerprint=FP, request={})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await store.begin("a", kind="character_swap", fingerprint=FP, request={"x": {1j}})
        assert await store.records() == []


async def test_reopen_records_pages_and_counts(store_url: str) -> None:
    """Records survive reopening in order, page in insertion order, filter and count."""
    async with PostgresStore(store_url) as store:
        for key, state in zip("abcdefg", JobState, strict=True):
            await drive(store, key, state)
        before = await store.records()
    store = await PostgresStore.open(store_url)
    try:
        assert await store.records() == before
        assert [r.key for r in before] == list("abcdefg")
        for i in range(10):
            await drive(store, f"k{i}", JobState.CREATED if i % 3 else JobState.PENDING)
        paged = [r.key async for r in store.iter_records(page_size=3)]
        assert paged == [*"abcdefg", *(f"k{i}" for i in range(10))]
        pending = await store.records(["pending"])
        assert [r.key for r in pending] == ["a", "k0", "k3", "k6", "k9"]
        counts = await store.counts()
        assert counts == {**dict.fromkeys(JobState, 1), "pending": 5, "created": 7}
    finally:
        await store.aclose()


async def test_schema_version_and_foreign_tables(store_url: str, pg_cluster: PostgresCluster) -> None:
    """The schema records its version; a newer one, or a foreign akool_jobs table, is refused."""
    async with PostgresStore(store_url):
        pass
    rows = await sql(store_url, "SELECT value FROM akool_meta WHERE name = 'schema_version'")
    assert [r[0] for r in rows] == ["1"]
    await sql(store_url, "UPDATE akool_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(JournalFormatError, match="newer akool-async"):
        await PostgresStore.open(store_url)
    await sql(store_url, "DROP TABLE akool_meta")
    with pytest.raises(JournalFormatError, match="not an akool-async store"):
        await PostgresStore.open(store_url)


async def test_concurrent_first_opens_do_not_race(store_url: str) -> None:
    """Six stores opening one empty database at once all succeed and create one schema."""
    stores: list[PostgresStore] = []

    async def open_one() -> None:
        stores.append(await PostgresStore.open(store_url, pool_size=1))

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(open_one)
        assert len(stores) == 6
        assert len({s.member_id for s in stores}) == 6
        assert len(await stores[0].members()) == 6
    finally:
        for store in stores:
            await store.aclose()
    rows = await sql(store_url, "SELECT count(*) FROM akool_meta WHERE name = 'schema_version'")
    assert rows[0][0] == 1


async def test_lifecycle_misuse_is_reported(store_url: str) -> None:
    """Use before open or after close raises, a second open is refused, aclose is idempotent."""
    store = PostgresStore(store_url)
    with pytest.raises(JournalStateError, match="not open"):
        await store.get("a")
    async with store:
        with pytest.raises(JournalStateError, match="already opened"):
            await store.__aenter__()
    await store.aclose()
    assert store.closed
    with pytest.raises(JournalStateError, match="closed"):
        await begin(store, "a")


def test_invalid_options_raise_configuration_error() -> None:
    """A URL that is not postgresql:// or a bad lease_ttl raises ConfigurationError."""
    with pytest.raises(errors.ConfigurationError, match="postgresql://"):
        PostgresStore("mysql://u:hunter2@h/db")
    with pytest.raises(errors.ConfigurationError, match="lease_ttl"):
        PostgresStore("postgresql://h/db", lease_ttl=-1)


async def test_password_never_shown(tmp_path: Any) -> None:
    """An unreachable server gives a JournalError; no repr or message shows the password."""
    url = f"postgresql://app:hunter2@/akool?host={tmp_path}"
    assert redact_url(url) == f"postgresql://app:***@/akool?host={tmp_path}"
    store = PostgresStore(url)
    assert "hunter2" not in repr(store)
    assert "hunter2" not in store.path
    with pytest.raises(JournalError) as info:
        await store.__aenter__()
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)
    assert store.closed


async def test_concurrent_tasks_all_land(store_url: str) -> None:
    """A hundred tasks writing at once leave every record complete and the counts right."""
    async with PostgresStore(store_url) as store:

        async def job(i: int) -> None:
            key = f"k{i}"
            await begin(store, key)
            await store.mark_sending(key)
            await store.mark_created(key, f"task-{i}")
            await store.mark_completed(key, {"_id": f"task-{i}"})

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(job, i)
        records = await store.records()
        assert {r.key for r in records} == {f"k{i}" for i in range(100)}
        assert all(r.task_id == f"task-{r.key[1:]}" for r in records)
        assert (await store.counts())[JobState.COMPLETED] == 100


async def test_write_called_under_cancellation_still_commits(store_url: str) -> None:
    """A write issued in an already-cancelled scope still commits; a read there does not run."""
    async with PostgresStore(store_url) as store:
        await drive(store, "a", JobState.SENDING)
        results: list[object] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            results.append(await store.mark_created("a", "task-7"))
            results.append(await store.get("a"))  # cancelled here, before it runs
        assert scope.cancelled_caught
        assert len(results) == 1
        rec = await store.get("a")
        assert rec is not None
        assert (rec.state, rec.task_id) == (JobState.CREATED, "task-7")


async def test_cancelling_many_writers_leaves_consistent_records(store_url: str) -> None:
    """Cancelling a task group mid-write leaves every record in a state its calls could reach."""
    async with PostgresStore(store_url) as store:
        for i in range(30):
            await drive(store, f"k{i}", JobState.SENDING)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                for i in range(30):
                    tg.start_soon(store.mark_created, f"k{i}", f"task-{i}")
                await anyio.lowlevel.checkpoint()
                scope.cancel()
        for rec in await store.records():
            assert rec.state in (JobState.SENDING, JobState.CREATED)
            assert (rec.task_id is None) == (rec.state is JobState.SENDING)
