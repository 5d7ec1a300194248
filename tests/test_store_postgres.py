"""The PostgreSQL job store against a real throwaway server: schema, leases, events, fleet.

The rules both stores keep (states, conflicts, records, concurrency, cancellation) are
tested on both in ``test_store_rules.py``.
"""

from __future__ import annotations

import re
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest
from conftest import ManualClock
from job_stores import begin, drive
from pg_cluster import ClusterStartError, PostgresCluster

from akool_async import _errors as errors
from akool_async._store import (
    JobState,
    JournalBindingError,
    JournalError,
    JournalFormatError,
    JournalStateError,
)
from akool_async._store._postgres import JobLeasedError, PostgresStore
from akool_async._store._postgres_base import redact_url

pytest_plugins = ["pg_fixtures"]
pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- helpers


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


def test_cluster_that_cannot_start_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing server binaries raise ClusterStartError (a failure, not a skip); stop cleans up."""
    monkeypatch.setenv("AKOOL_PG_BINDIR", "/nonexistent/pg/bin")
    cluster = PostgresCluster()
    try:
        with pytest.raises(ClusterStartError, match="initdb"):
            cluster.start()
    finally:
        cluster.stop()
    assert not cluster.root.exists()


# ------------------------------------------------------------------ schema, options, task ids


async def test_get_by_task_id_finds_the_job_of_a_task(store_url: str) -> None:
    """get_by_task_id returns the record whose create returned that id, or None."""
    async with PostgresStore(store_url) as store:
        await drive(store, "a", JobState.COMPLETED)  # task id "task-a"
        rec = await store.set_local_path("a", "/out/a.mp4")
        assert await store.get_by_task_id("task-a") == rec
        assert await store.get_by_task_id("task-0") is None


async def test_schema_version_and_foreign_tables(store_url: str) -> None:
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
    in_query = redact_url(f"postgresql://app@/akool?host={tmp_path}&password=hunter2")
    assert in_query == f"postgresql://app@/akool?host={tmp_path}&password=***"
    store = PostgresStore(url)
    assert "hunter2" not in repr(store)
    assert "hunter2" not in store.path
    with pytest.raises(JournalError) as info:
        await store.__aenter__()
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)
    assert store.closed


# --------------------------------------------------------------------------- leases


async def test_two_stores_cannot_both_hold_a_job(store_url: str) -> None:
    """A job begun by one member is refused to another live member, naming the holder."""
    async with PostgresStore(store_url) as first, PostgresStore(store_url) as second:
        await begin(first, "a")
        await first.mark_sending("a")
        with pytest.raises(JobLeasedError, match=first.member_id) as info:
            await begin(second, "a")
        assert info.value.owner == first.member_id
        with pytest.raises(JobLeasedError):
            await second.mark_created("a", "task-x")
        assert await second.claim(["a"]) == []
        rec = await second.get("a")  # reading needs no lease
        assert rec is not None
        assert rec.state is JobState.SENDING
        lease = await second.lease("a")
        assert lease is not None
        assert (lease.owner, lease.expired) == (first.member_id, False)


async def test_dead_member_jobs_are_taken_over(store_url: str) -> None:
    """After a lease lapses, created jobs resume, sending ones come back uncertain, never sent."""
    async with PostgresStore(store_url, lease_ttl=5) as dead, PostgresStore(store_url) as heir:
        await drive(dead, "p", JobState.PENDING)
        await drive(dead, "s", JobState.SENDING)
        await drive(dead, "c", JobState.CREATED)
        await drive(dead, "done", JobState.COMPLETED)
        assert await heir.claim_next(10) == []  # all held by a live member
        await expire_leases(store_url, dead.member_id)

        taken = {rec.key: rec for rec in await heir.claim_next(10)}
        assert set(taken) == {"p", "s", "c"}  # finished jobs need no owner
        assert taken["p"].state is JobState.PENDING
        assert (taken["c"].state, taken["c"].task_id) == (JobState.CREATED, "task-c")
        assert taken["s"].state is JobState.UNCERTAIN
        assert isinstance(taken["s"].error, errors.SubmissionUncertainError)
        assert dead.member_id in str(taken["s"].error)
        assert taken["s"].attempts == 1
        with pytest.raises(JournalStateError, match="resubmit_uncertain"):
            await heir.mark_sending("s")
        assert (await heir.get("s")) == taken["s"]  # the takeover was committed
        for key in ("p", "s", "c"):
            lease = await heir.lease(key)
            assert lease is not None
            assert lease.owner == heir.member_id
        # The old owner, back from the dead, may not write the jobs it lost.
        with pytest.raises(JobLeasedError, match=heir.member_id):
            await dead.mark_created("s", "task-late")
        await heir.mark_completed("c", {"status": 3})


async def test_heartbeat_keeps_leases_and_members_alive(store_url: str) -> None:
    """A heartbeat renews a member's lapsed leases and liveness, so nobody takes its jobs."""
    async with PostgresStore(store_url) as owner, PostgresStore(store_url) as other:
        for key in "abc":
            await begin(owner, key)
        await expire_leases(store_url, owner.member_id)
        await sql(
            store_url,
            "UPDATE akool_members SET heartbeat = now() - interval '1 hour' WHERE id = $1",
            owner.member_id,
        )
        alive = {m.id: m.alive for m in await other.members()}
        assert alive == {owner.member_id: False, other.member_id: True}
        assert await other.heartbeat() == 0  # also forgets members silent for ten leases
        assert [m.id for m in await other.members()] == [other.member_id]
        assert await owner.heartbeat() == 3  # back, with the jobs nobody took
        assert all(m.alive for m in await other.members())
        assert await other.claim(["a", "b", "c"]) == []
        assert await other.claim_next(5) == []


async def test_keep_alive_heartbeats_every_third_of_a_lease(store_url: str) -> None:
    """keep_alive heartbeats, then sleeps lease_ttl / 3 on the store's clock."""
    slept: list[float] = []
    first_sleep = anyio.Event()

    class RecordingClock(ManualClock):
        async def sleep(self, seconds: float) -> None:
            slept.append(seconds)
            first_sleep.set()
            await anyio.sleep_forever()

    clock = RecordingClock(start_wall=1_000.0, wall_step=1.0)
    async with PostgresStore(store_url, lease_ttl=9, clock=clock) as store:
        await begin(store, "a")
        await expire_leases(store_url, store.member_id)
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.keep_alive)
            await first_sleep.wait()
            tg.cancel_scope.cancel()
        lease = await store.lease("a")
        assert lease is not None
        assert not lease.expired
        assert slept == [3.0]


async def test_closing_releases_leases_for_others(store_url: str) -> None:
    """A member that closes cleanly releases its jobs; another takes them at once."""
    async with PostgresStore(store_url) as leaver:
        await drive(leaver, "p", JobState.PENDING)
        await drive(leaver, "c", JobState.CREATED)
        leaver_id = leaver.member_id
    async with PostgresStore(store_url) as heir:
        assert {r.key for r in await heir.claim_next(10)} == {"p", "c"}
        assert leaver_id not in {m.id for m in await heir.members()}


async def test_members_running_one_job_list_split_it(store_url: str) -> None:
    """Two members beginning the same 100 keys at once each get a disjoint part of the whole."""
    keys = [f"job-{i}" for i in range(100)]
    got: dict[str, set[str]] = {}

    async def run_list(store: PostgresStore, order: list[str]) -> None:
        mine = got.setdefault(store.member_id, set())

        async def one(key: str) -> None:
            try:
                await begin(store, key)
            except JobLeasedError:
                return
            mine.add(key)

        async with anyio.create_task_group() as tg:
            for key in order:
                tg.start_soon(one, key)

    async with PostgresStore(store_url) as a, PostgresStore(store_url) as b:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_list, a, keys)
            tg.start_soon(run_list, b, keys[::-1])
        assert got[a.member_id].isdisjoint(got[b.member_id])
        assert got[a.member_id] | got[b.member_id] == set(keys)
        owners = await sql(store_url, "SELECT key, owner FROM akool_jobs")
        assert {r[0]: r[1] for r in owners} == {
            key: member for member, taken in got.items() for key in taken
        }


async def test_concurrent_claims_skip_locked_rows(store_url: str) -> None:
    """Two members claiming 100 free keys at once in chunks get disjoint sets covering all."""
    keys = [f"job-{i}" for i in range(100)]
    async with PostgresStore(store_url) as seeder:
        for key in keys:
            await begin(seeder, key)
    claimed: dict[str, list[str]] = {}

    async def claim_all(store: PostgresStore, order: list[str]) -> None:
        mine = claimed.setdefault(store.member_id, [])

        async def chunk(part: list[str]) -> None:
            mine.extend(rec.key for rec in await store.claim(part))

        async with anyio.create_task_group() as tg:
            for start in range(0, len(order), 10):
                tg.start_soon(chunk, order[start : start + 10])

    async with PostgresStore(store_url) as a, PostgresStore(store_url) as b:
        async with anyio.create_task_group() as tg:
            tg.start_soon(claim_all, a, keys)
            tg.start_soon(claim_all, b, keys[::-1])
        first, second = claimed[a.member_id], claimed[b.member_id]
        assert len(first) + len(second) == 100
        assert set(first).isdisjoint(second)
        assert set(first) | set(second) == set(keys)


async def test_claim_skips_a_row_being_claimed_instead_of_waiting(store_url: str) -> None:
    """A row locked by another claimer's open transaction is skipped, the rest are taken."""
    async with PostgresStore(store_url) as seeder:
        for key in "abc":
            await begin(seeder, key)
    other = await asyncpg.connect(store_url)
    try:
        async with other.transaction(), PostgresStore(store_url) as store:
            await other.execute("SELECT 1 FROM akool_jobs WHERE key = 'b' FOR UPDATE")
            # A claim that waited for the lock would hang here (until the test's timeout).
            taken = await store.claim(["a", "b", "c"])
            assert [rec.key for rec in taken] == ["a", "c"]
    finally:
        await other.close()


# --------------------------------------------------------------------------- events


async def test_event_wakes_the_listening_owner(store_url: str) -> None:
    """An event stored by any replica wakes the owner's listener and stays readable."""
    heard: list[str] = []
    woken = anyio.Event()

    def on_event(task_id: str) -> None:
        heard.append(task_id)
        if task_id == "task-1":
            woken.set()

    async with PostgresStore(store_url) as owner, PostgresStore(store_url) as replica:
        await drive(owner, "a", JobState.CREATED)  # task id "task-a"
        async with owner.listen(on_event):
            event_id = await replica.record_event("task-1", '{"status": 3}')
            with anyio.fail_after(10):  # a guard against a hang, not a synchronisation
                await woken.wait()
        assert heard == ["task-1"]
        events = await owner.pending_events(["task-1", "task-2"])
        assert [(e.id, e.task_id, e.payload_json) for e in events] == [
            (event_id, "task-1", '{"status": 3}')
        ]
        await owner.discard_events(["task-1"])
        assert await owner.pending_events(["task-1"]) == []


async def test_event_for_unknown_task_is_kept_for_a_later_owner(store_url: str) -> None:
    """An event whose task id no job has yet is stored, and a later member finds it."""
    async with PostgresStore(store_url) as receiver:
        await receiver.record_event("task-unknown", '{"status": 4}')
        await receiver.record_event("task-unknown", '{"status": 3}')
    async with PostgresStore(store_url) as later:
        events = await later.pending_events(["task-unknown"])
        assert [e.payload_json for e in events] == ['{"status": 4}', '{"status": 3}']
        assert events[0].id < events[1].id


async def test_a_jobs_events_go_once_its_outcome_is_recorded(store_url: str) -> None:
    """Completing a job deletes its task's stored events; other tasks' events stay."""
    async with PostgresStore(store_url) as store:
        await drive(store, "a", JobState.CREATED)  # task id "task-a"
        await store.record_event("task-a", '{"status": 3}')
        await store.record_event("task-b", '{"status": 3}')
        await store.mark_completed("a", {"_id": "task-a", "status": 3})
        assert await store.pending_events(["task-a"]) == []
        assert [e.task_id for e in await store.pending_events(["task-a", "task-b"])] == ["task-b"]


async def test_unclaimed_events_older_than_eight_days_go_at_open(store_url: str) -> None:
    """An event no job claimed is pruned by the next open once it is 8 days old."""
    async with PostgresStore(store_url) as store:
        await store.record_event("task-old", '{"status": 3}')
        await store.record_event("task-new", '{"status": 3}')
    conn = await asyncpg.connect(store_url)
    try:
        await conn.execute(
            "UPDATE akool_events SET received = now() - interval '9 days' "
            "WHERE task_id = 'task-old'"
        )
    finally:
        await conn.close()
    async with PostgresStore(store_url) as later:
        events = await later.pending_events(["task-old", "task-new"])
    assert [e.task_id for e in events] == ["task-new"]


# --------------------------------------------------------------------------- rate budget


async def db_now(url: str) -> float:
    """The server's clock, in seconds since the epoch."""
    rows = await sql(url, "SELECT extract(epoch FROM clock_timestamp())::float8")
    return float(rows[0][0])


async def take(
    store: PostgresStore, account: str, rate: float, burst: float, *, recovery: float = 0.002
) -> float:
    """One token: 0.0 when granted, else the seconds until one is due."""
    granted, wait = await store.take_tokens(account, rate, burst, 1, recovery=recovery)
    return 0.0 if granted else wait


async def test_several_tokens_are_granted_in_one_take(store_url: str) -> None:
    """take_tokens grants what the bucket holds, up to the count asked for, then waits."""
    async with PostgresStore(store_url) as store:
        assert await store.take_tokens("acct", 10, 3, 4) == (3, 0.0)
        granted, wait = await store.take_tokens("acct", 10, 3, 4)
        assert granted == 0
        assert 0 < wait <= 0.1


async def test_token_bucket_bounds_the_fleet(store_url: str) -> None:
    """Eight takers on two members get at most rate * T + burst tokens over T of server time."""
    rate, burst, span = 40.0, 5.0, 0.5
    granted = 0
    async with PostgresStore(store_url) as a, PostgresStore(store_url) as b:
        start = await db_now(store_url)

        async def taker(store: PostgresStore) -> None:
            nonlocal granted
            while await db_now(store_url) < start + span:
                wait = await take(store, "acct", rate, burst)
                if wait == 0:
                    granted += 1
                else:
                    assert 0 < wait <= 1 / rate + 1e-9
                    await anyio.sleep(min(wait, 0.01))  # pacing, not synchronisation

        async with anyio.create_task_group() as tg:
            for store in (a, b) * 4:
                tg.start_soon(taker, store)
        elapsed = await db_now(store_url) - start
    assert burst <= granted <= rate * elapsed + burst


async def test_token_bucket_refills_by_server_time(store_url: str) -> None:
    """An empty bucket whose last take was 0.1 s ago at 10/s grants one token, then waits."""
    async with PostgresStore(store_url) as store:
        assert await take(store, "acct", 10, 1) == 0.0
        assert await take(store, "acct", 10, 1) > 0
        await sql(
            store_url,
            "UPDATE akool_rate SET tokens = 0, updated = clock_timestamp() - interval '100 ms'",
        )
        assert await take(store, "acct", 10, 1) == 0.0
        wait = await take(store, "acct", 10, 1)
        assert 0 < wait <= 0.1
        assert await take(store, "other", 10, 1) == 0.0  # accounts are separate


async def test_throttle_cuts_the_shared_rate_and_it_recovers(store_url: str) -> None:
    """throttled() cuts the factor for every member, once per cooldown; grants add it back."""
    async with PostgresStore(store_url) as a, PostgresStore(store_url) as b:
        assert await a.rate_factor("acct") == 1.0
        assert await a.throttled("acct", 0.5) == 0.5
        assert await b.throttled("acct", 0.5, cooldown=60) == 0.5  # same burst: one cut
        assert await b.rate_factor("acct") == 0.5
        assert await b.throttled("acct", 0.5) == 0.25
        assert await b.throttled("acct", 0.1, floor=0.2) == 0.2
        # The bucket was emptied: the next take waits about 1 / (rate * factor).
        assert await take(a, "acct", 1, 1) > 1.0
        await sql(store_url, "UPDATE akool_rate SET tokens = 100")
        for _ in range(4):
            assert await take(a, "acct", 1, 100, recovery=0.1) == 0.0
        assert await b.rate_factor("acct") == pytest.approx(0.6)
        for _ in range(10):
            await take(a, "acct", 1, 100, recovery=0.1)
        assert await b.rate_factor("acct") == 1.0


# --------------------------------------------------------------------------- durations, binding


async def test_durations_are_shared_latest_first(store_url: str) -> None:
    """Durations recorded by one member are read by a later one, latest first, per bucket."""
    async with PostgresStore(store_url) as first:
        for i in range(300):
            await first.record_duration("character_swap/720p", float(i))
        await first.record_duration("head_swap/720p", 42.5)
    async with PostgresStore(store_url) as later:
        found = await later.durations("character_swap/720p")
        assert found == [float(i) for i in range(299, 43, -1)]
        assert await later.durations("character_swap/720p", limit=3) == [299.0, 298.0, 297.0]
        assert await later.durations("head_swap/720p") == [42.5]
        assert await later.durations("head_swap/1080p") == []


async def test_store_is_bound_to_account_and_base_url(store_url: str) -> None:
    """The first open binds the account digest and base URL; another one is refused."""
    digest = "a" * 64
    async with PostgresStore(store_url, account=digest, base_url="https://api.test"):
        pass
    async with PostgresStore(store_url, account=digest, base_url="https://api.test"):
        pass
    async with PostgresStore(store_url):  # no binding asked for: no check
        pass
    with pytest.raises(JournalBindingError, match="another account") as info:
        await PostgresStore.open(store_url, account="b" * 64, base_url="https://api.test")
    assert "b" * 64 not in str(info.value)
    with pytest.raises(JournalBindingError, match=re.escape("https://other.test")):
        await PostgresStore.open(store_url, account=digest, base_url="https://other.test")
    rows = await sql(store_url, "SELECT count(*) FROM akool_members")
    assert rows[0][0] == 0  # refused opens left no member behind
