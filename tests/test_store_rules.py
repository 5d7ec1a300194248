"""The rules every job store keeps, run on the SQLite journal and on PostgreSQL alike.

States, transitions, conflicts, records, lifecycle misuse, concurrency and cancellation.
What only one store has (files and locks; leases, events and the fleet) stays in
``test_journal.py`` and ``test_store_postgres.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from conftest import ManualClock
from job_stores import (
    FP,
    LEGAL,
    REQUEST,
    NewStore,
    Store,
    begin,
    drive,
    empty_database,
    operations,
)

from akool_async import _errors as errors
from akool_async._clock import Clock
from akool_async._store import (
    JobState,
    Journal,
    JournalConflictError,
    JournalStateError,
    PostgresStore,
)

pytest_plugins = ["pg_fixtures"]
pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
async def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> NewStore:
    """Makes unopened stores on one SQLite file, or on an emptied PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "j.db"

        def sqlite(*, clock: Clock | None = None) -> Store:
            return Journal(path, clock=clock)

        return NewStore(sqlite, lambda: Journal.open(path))
    # Asked for here, not in the signature: the SQLite cases need no server.
    url: str = request.getfixturevalue("pg_cluster").dsn
    await empty_database(url)

    def postgres(*, clock: Clock | None = None) -> Store:
        return PostgresStore(url, clock=clock)

    return NewStore(postgres, lambda: PostgresStore.open(url))


@pytest.fixture
async def store(new_store: NewStore) -> AsyncIterator[Store]:
    """An open store of either kind, closed after the test."""
    async with new_store.make() as opened:
        yield opened


async def test_character_swap_lifecycle_records_every_field(
    new_store: NewStore, tmp_path: Path
) -> None:
    """A job goes pending -> sending -> created -> completed with ids, raw result and times."""
    clock = ManualClock(start_wall=1_000.0, wall_step=1.0)  # wall time: 1001, 1002, ...
    async with new_store.make(clock=clock) as store:
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
        assert rec.state.is_terminal
        assert rec.result_raw == {"_id": "task-9", "status": 3, "url": "u"}
        assert rec.error is None
        assert await store.expected_download("a") is None  # nothing recorded yet
        facts = {"path": str(tmp_path / "a.mp4"), "size": 9, "etag": '"v1"', "sha256": "ab" * 32}
        await store.expect_download("a", facts)
        later = {**facts, "size": 10, "etag": None}
        await store.expect_download("a", later)  # a later download replaces it
        assert await store.expected_download("a") == later
        rec = await store.set_local_path("a", tmp_path / "a.mp4")
        assert rec.local_path == str(tmp_path / "a.mp4")
        assert await store.get("a") == rec
        assert rec.created_at == 1001.0


async def test_head_swap_analysis_id_and_failure(store: Store) -> None:
    """A head swap keeps its analysis id and a failed task stores its raw data and error."""
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
    assert not hasattr(stored, "result")  # not plain data, so not stored


async def test_mark_created_can_supply_analysis_id(store: Store) -> None:
    """mark_created records the analysis id when given."""
    await store.begin("h", kind="head_swap", fingerprint="f" * 64, request={})
    await store.mark_sending("h")
    rec = await store.mark_created("h", "task-3", analysis_id="an-3")
    assert (rec.task_id, rec.analysis_id) == ("task-3", "an-3")


@pytest.mark.parametrize("state", list(JobState))
async def test_transitions_from_each_state_follow_the_table(store: Store, state: JobState) -> None:
    """From every state, exactly the documented transitions succeed and others raise."""
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


async def test_uncertain_needs_explicit_resubmit(store: Store) -> None:
    """An uncertain job is only sent again with resubmit_uncertain=True, counting attempts."""
    await drive(store, "u", JobState.UNCERTAIN)
    with pytest.raises(JournalStateError, match="resubmit_uncertain=True"):
        await store.mark_sending("u")
    rec = await store.mark_sending("u", resubmit_uncertain=True)
    assert (rec.state, rec.attempts, rec.error_json) == (JobState.SENDING, 2, None)


async def test_rejected_keeps_error_and_may_be_sent_again(store: Store) -> None:
    """A rejected job stores its error; sending it again is allowed since nothing was created."""
    await drive(store, "r", JobState.SENDING)
    err = errors.InsufficientCreditError("low credit", code=1104, http_status=200)
    rec = await store.mark_rejected("r", err)
    stored = rec.error
    assert isinstance(stored, errors.InsufficientCreditError)
    assert stored.code == 1104
    rec = await store.mark_sending("r")
    assert (rec.state, rec.attempts, rec.error) == (JobState.SENDING, 2, None)


async def test_retry_failed_sends_a_failed_job_again_keeping_its_error(store: Store) -> None:
    """retry_failed moves only a failed job to sending; its error stays until the next one."""
    await drive(store, "f", JobState.FAILED)
    rec = await store.mark_sending("f", retry_failed=True)
    assert (rec.state, rec.attempts, rec.local_path) == (JobState.SENDING, 2, None)
    assert isinstance(rec.error, errors.TaskFailedError)
    rec = await store.mark_created("f", "task-f2")
    assert (rec.state, rec.task_id) == (JobState.CREATED, "task-f2")
    assert isinstance(rec.error, errors.TaskFailedError)  # the failed task's, as history
    await drive(store, "p", JobState.PENDING)
    with pytest.raises(JournalStateError, match="cannot retry the failed task of job 'p'"):
        await store.mark_sending("p", retry_failed=True)


async def test_deadline_error_keeps_job_created(store: Store) -> None:
    """record_error stores a WaitTimeoutError but the job stays created, resumable by id."""
    await drive(store, "t", JobState.CREATED)
    rec = await store.record_error("t", errors.WaitTimeoutError("late", task_id="task-t"))
    assert rec.state is JobState.CREATED
    assert isinstance(rec.error, errors.WaitTimeoutError)
    rec = await store.mark_completed("t", {"status": 3})
    assert (rec.state, rec.error) == (JobState.COMPLETED, None)
    with pytest.raises(JournalStateError):
        await store.record_error("t", errors.WaitTimeoutError("late"))


async def test_setters_are_limited_to_their_states(store: Store) -> None:
    """set_local_path needs a completed job and set_analysis_id a job not yet sent."""
    await drive(store, "c", JobState.CREATED)
    with pytest.raises(JournalStateError, match="local path"):
        await store.set_local_path("c", "out.mp4")
    with pytest.raises(JournalStateError, match="analysis id"):
        await store.set_analysis_id("c", "an")


async def test_unknown_key_raises(store: Store) -> None:
    """Changing a key that was never begun is a bug and raises JournalStateError."""
    assert await store.get("nope") is None
    with pytest.raises(JournalStateError, match="no job with key 'nope'"):
        await store.mark_sending("nope")


async def test_begin_is_idempotent_for_the_same_request(store: Store) -> None:
    """Beginning a known key with the same fingerprint returns the stored record unchanged."""
    await drive(store, "k", JobState.CREATED)
    rec = await begin(store, "k")
    assert (rec.state, rec.task_id) == (JobState.CREATED, "task-k")


@pytest.mark.parametrize("state", [JobState.PENDING, JobState.CREATED])
@pytest.mark.parametrize(
    ("kind", "fingerprint"),
    [("character_swap", "0" * 64), ("head_swap", FP)],
)
async def test_begin_conflict_names_the_key(
    store: Store, state: JobState, kind: Any, fingerprint: str
) -> None:
    """A key reused with another request or kind raises JournalConflictError naming the key."""
    await drive(store, "order-17", state)
    with pytest.raises(JournalConflictError, match="'order-17'") as info:
        await store.begin("order-17", kind=kind, fingerprint=fingerprint, request={})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, errors.AkoolError)
    assert info.value.key == "order-17"
    assert (await store.counts())[state] == 1


async def test_begin_validates_arguments(store: Store) -> None:
    """begin refuses an empty key, an unknown kind and a request that is not JSON."""
    with pytest.raises(ValueError, match="empty"):
        await store.begin("", kind="character_swap", fingerprint=FP, request={})
    with pytest.raises(ValueError, match="kind"):
        await store.begin("a", kind="lip_sync", fingerprint=FP, request={})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await store.begin("a", kind="character_swap", fingerprint=FP, request={"x": {1j}})
    assert await store.records() == []


async def test_reopen_records_pages_and_counts(new_store: NewStore) -> None:
    """Records survive reopening in order, page in insertion order, filter and count."""
    async with new_store.make() as store:
        for key, state in zip("abcdefg", JobState, strict=True):
            await drive(store, key, state)
        before = await store.records()
    store = await new_store.open()
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


async def test_records_filter_pages_and_counts(store: Store) -> None:
    """Records keep insertion order across pages and filter by state; counts covers all states."""
    for i in range(10):
        await drive(store, f"k{i}", JobState.CREATED if i % 3 else JobState.PENDING)
    paged = [r.key async for r in store.iter_records(page_size=3)]
    assert paged == [f"k{i}" for i in range(10)]
    pending = await store.records(["pending"])
    assert [r.key for r in pending] == ["k0", "k3", "k6", "k9"]
    counts = await store.counts()
    assert counts == {**dict.fromkeys(JobState, 0), "pending": 4, "created": 6}


async def test_lifecycle_misuse_is_reported(new_store: NewStore) -> None:
    """Use before open or after close raises, a second open is refused, aclose is idempotent."""
    store = new_store.make()
    with pytest.raises(JournalStateError, match="not open"):
        await store.get("a")
    async with store:
        with pytest.raises(JournalStateError, match="already opened"):
            await store.__aenter__()
    await store.aclose()
    assert store.closed
    with pytest.raises(JournalStateError, match="closed"):
        await begin(store, "a")


async def test_concurrent_tasks_all_land(store: Store) -> None:
    """Two hundred tasks writing at once leave every record complete and the counts right."""

    async def job(i: int) -> None:
        key = f"k{i}"
        await begin(store, key)
        await store.mark_sending(key)
        await store.mark_created(key, f"task-{i}")
        await store.mark_completed(key, {"_id": f"task-{i}"})

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(job, i)
    records = await store.records()
    assert {r.key for r in records} == {f"k{i}" for i in range(200)}
    assert all(r.task_id == f"task-{r.key[1:]}" for r in records)
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert (await store.counts())[JobState.COMPLETED] == 200


async def test_write_called_under_cancellation_still_commits(store: Store) -> None:
    """A write issued in an already-cancelled scope still commits; a read there does not run."""
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


async def test_cancelling_many_writers_leaves_consistent_records(store: Store) -> None:
    """Cancelling a task group mid-write leaves every record in a state its calls could reach."""
    for i in range(50):
        await drive(store, f"k{i}", JobState.SENDING)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(store.mark_created, f"k{i}", f"task-{i}")
            await anyio.lowlevel.checkpoint()  # let some writes start
            scope.cancel()
    for rec in await store.records():
        assert rec.state in (JobState.SENDING, JobState.CREATED)
        assert (rec.task_id is None) == (rec.state is JobState.SENDING)
