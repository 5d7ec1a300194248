"""Fleet mode: batches sharing one real PostgreSQL job store (started by the tests)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest

import akool_async as akool
import akool_async.webhooks
from akool_async._batch._fleet import bucket_name
from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._store import JobRecord, PostgresStore
from akool_async.testing import AkoolSimulator, webhook_body

pytest_plugins = ["pg_fixtures"]  # pg_cluster, store_url
pytestmark = pytest.mark.anyio

DURATIONS = {"character_swap": 0.2}


@pytest.fixture
async def sim() -> AsyncIterator[AkoolSimulator]:
    """A real-time simulator with short jobs."""
    async with AkoolSimulator(durations=DURATIONS) as simulator:
        yield simulator


def jobs(n: int) -> list[akool.Job]:
    """``n`` character swaps with stable keys."""
    return [
        akool.Job(
            akool.CharacterSwap(f"https://x.test/{i}.png", f"https://x.test/{i}.mp4"),
            key=f"job-{i}",
        )
        for i in range(n)
    ]


async def run_member(
    sim: AkoolSimulator, url: str, work: list[akool.Job], found: list[akool.Outcome]
) -> None:
    """One fleet member: its own client and store, the whole jobs list."""
    async with akool.AkoolClient(sim.api_key, base_url=sim.base_url) as client:
        store = await PostgresStore.open(url, lease_ttl=3.0)
        try:
            async with client.batch(work, journal=store, concurrency=4) as outcomes:
                found.extend([outcome async for outcome in outcomes])
        finally:
            await store.aclose()


def creates(sim: AkoolSimulator) -> int:
    """Character-swap creates the simulator answered."""
    return sum(sim.stats.creates.values())


async def test_open_store_routes_a_url_to_postgres(store_url: str) -> None:
    """open_store(url) opens a PostgresStore, usable as async with and as an awaitable."""
    async with akool.open_store(store_url) as store:
        assert isinstance(store, PostgresStore)
        assert isinstance(store, akool.JobStore)
    store2 = await akool.open_store(store_url)
    try:
        assert isinstance(store2, PostgresStore)
    finally:
        await store2.aclose()


async def test_two_members_split_the_jobs_with_one_outcome_each(
    sim: AkoolSimulator, store_url: str
) -> None:
    """Two batches on the same jobs and store give one outcome per job in total, no job is
    created twice, and any process reads a job's state and result by key."""
    work = jobs(24)
    first: list[akool.Outcome] = []
    second: list[akool.Outcome] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_member, sim, store_url, work, first)
        tg.start_soon(run_member, sim, store_url, work, second)
    keys = [o.key for o in first + second]
    assert sorted(keys) == sorted(j.key for j in work)
    assert all(o.ok for o in first + second)
    assert creates(sim) == len(work)
    async with akool.open_store(store_url) as store:
        record = await store.get("job-3")
        assert record is not None
        assert record.state is akool.JobState.COMPLETED
        assert record.result is not None
        assert record.result.id == record.task_id
        assert record.error is None


async def test_takeover_resumes_a_dead_members_jobs_without_recreating(
    sim: AkoolSimulator, store_url: str
) -> None:
    """Jobs a vanished member left are taken over: a created one is polled by id, a
    sending one comes back uncertain, and nothing it sent is created again."""
    work = jobs(3)
    async with akool.AkoolClient(sim.api_key, base_url=sim.base_url) as client:
        dead = await PostgresStore.open(store_url, lease_ttl=0.5, member_id="dead")
        for job in work[:2]:
            await dead.begin(job.key, kind="character_swap",
                             fingerprint=request_fingerprint(job.request),
                             request=request_to_dict(job.request))  # fmt: skip
        task = await client.character_swap.create(work[0].request)
        await dead.mark_sending("job-0")
        await dead.mark_created("job-0", task.id)
        await dead.mark_sending("job-1")
        # "dead" never heartbeats again: its leases lapse after 0.5 s of server time.
        found: list[akool.Outcome] = []
        await run_member(sim, store_url, work, found)
        await dead.aclose()
    by_key = {o.key: o for o in found}
    assert set(by_key) == {"job-0", "job-1", "job-2"}
    assert by_key["job-0"].ok
    assert by_key["job-0"].task_id == task.id
    assert isinstance(by_key["job-1"].error, akool.SubmissionUncertainError)
    assert by_key["job-2"].ok
    # The test's own create (job-0) and job-2's; job-1 was never sent again.
    assert creates(sim) == 2


async def test_a_receiver_with_a_store_keeps_every_verified_event(store_url: str) -> None:
    """A receiver with store= writes each verified event to the store, where any member
    finds it by task id (even before any job has that id)."""
    async with AkoolSimulator() as sim:
        store = await PostgresStore.open(store_url)
        try:
            receiver = akool_async.webhooks.WebhookReceiver(
                client_id=sim.client_id, client_secret=sim.client_secret, store=store
            )
            plaintext = json.dumps({"_id": "task-77", "status": 3, "type": "x", "url": "u"})
            body = webhook_body(
                plaintext=plaintext,
                client_id=sim.client_id,
                client_secret=sim.client_secret,
                timestamp=int(time.time() * 1000),
                nonce="1234",
            )
            response = await receiver.handle(json.dumps(body))
            assert response.status == 200
            events = await store.pending_events(["task-77"])
            assert [e.task_id for e in events] == ["task-77"]
        finally:
            await store.aclose()


async def test_learned_durations_are_shared(sim: AkoolSimulator, store_url: str) -> None:
    """A batch on a Postgres store records each learned duration in the store."""
    found: list[akool.Outcome] = []
    await run_member(sim, store_url, jobs(4), found)
    async with akool.open_store(store_url) as store:
        assert isinstance(store, PostgresStore)
        stored = await store.durations("character_swap:720p:-1")
        assert len(stored) == 4
        assert all(d > 0 for d in stored)


def test_bucket_names_flatten_the_schedulers_buckets() -> None:
    """A scheduler bucket (kind, (resolution, size class)) is stored as one readable name."""
    assert bucket_name(("character_swap", ("1080p", 3))) == "character_swap:1080p:3"


async def test_keys_another_live_member_holds_are_found_in_one_query(store_url: str) -> None:
    """held_elsewhere names the keys a live other member holds: not unknown keys, not the
    asker's own, not those whose holder's lease lapsed."""
    async with (
        PostgresStore(store_url, lease_ttl=30.0) as holder,
        PostgresStore(store_url, lease_ttl=30.0) as asker,
        PostgresStore(store_url, lease_ttl=0.5) as short,
    ):
        for store, key in ((holder, "held"), (asker, "mine"), (short, "lapsing")):
            await store.begin(key, kind="character_swap", fingerprint="f" * 64,
                              request={"kind": "character_swap"})  # fmt: skip
        assert await asker.held_elsewhere(["held", "mine", "lapsing", "unknown"]) == {
            "held",
            "lapsing",
        }
        conn = await asyncpg.connect(store_url)
        try:  # the holder of "lapsing" stopped heartbeating a while ago
            await conn.execute(
                "UPDATE akool_jobs SET lease_until = now() - interval '1 second' "
                "WHERE key = 'lapsing'"
            )
        finally:
            await conn.close()
        assert await asker.held_elsewhere(["held", "lapsing"]) == {"held"}


class CountingStore(PostgresStore):
    """A Postgres store that records the keys begin() was called for."""

    begun: list[str]

    async def begin(self, key: str, **kw: Any) -> JobRecord:
        self.begun.append(key)
        return await super().begin(key, **kw)


async def test_a_member_leaves_keys_held_elsewhere_without_trying_them(
    sim: AkoolSimulator, store_url: str
) -> None:
    """A batch whose input holds keys a live member owns creates only the others and gives
    outcomes for those alone, while the holder keeps its leases."""
    work = jobs(6)
    async with PostgresStore(store_url, lease_ttl=30.0) as holder:
        for job in work[:4]:
            await holder.begin(job.key, kind="character_swap",
                               fingerprint=request_fingerprint(job.request),
                               request=request_to_dict(job.request))  # fmt: skip
        found: list[akool.Outcome] = []
        async with akool.AkoolClient(sim.api_key, base_url=sim.base_url) as client:
            member = await CountingStore.open(store_url, lease_ttl=30.0)
            member.begun = []
            try:
                async with client.batch(work, journal=member, concurrency=2) as outcomes:
                    async for outcome in outcomes:
                        found.append(outcome)
                        if len(found) == 2:
                            break  # the held four would wait for their owner to finish
            finally:
                await member.aclose()
        assert sorted(o.key for o in found) == ["job-4", "job-5"]
        assert sorted(member.begun) == ["job-4", "job-5"]  # one query left the other four
        assert creates(sim) == 2
        for job in work[:4]:
            lease = await holder.lease(job.key)
            assert lease is not None
            assert lease.owner == holder.member_id


async def test_a_submitted_job_another_member_finished_settles_from_the_store(
    sim: AkoolSimulator, store_url: str
) -> None:
    """submit() of a key a live member holds and finished: the handle settles with the
    fleet's outcome from the store (replayed), and nothing is created again."""
    (job,) = jobs(1)
    async with (
        akool.AkoolClient(sim.api_key, base_url=sim.base_url) as client,
        PostgresStore(store_url, lease_ttl=30.0) as holder,
    ):
        await holder.begin(job.key, kind="character_swap",
                           fingerprint=request_fingerprint(job.request),
                           request=request_to_dict(job.request))  # fmt: skip
        await holder.mark_sending(job.key)
        result = await client.character_swap.run(job.request)
        await holder.mark_created(job.key, result.id)
        await holder.mark_completed(job.key, result.raw)
        member = await PostgresStore.open(store_url, lease_ttl=30.0)
        try:
            async with client.batch(journal=member) as batch:
                handle = await batch.submit(job.request, key=job.key)
                with anyio.fail_after(30):  # a guard against a hang, not a synchronisation
                    outcome = await handle.outcome()
        finally:
            await member.aclose()
    assert outcome.ok
    assert outcome.task_id == result.id
    assert outcome.replayed
    assert creates(sim) == 1
