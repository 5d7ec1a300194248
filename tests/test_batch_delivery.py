"""Batches that deliver: downloads into a directory, webhooks into the outcome stream."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from conftest import ManualClock

import akool_async as akool
from akool_async._journal import Journal
from akool_async.testing import AkoolSimulator, Duration
from akool_async.webhooks import WebhookReceiver, make_aiohttp_app

pytestmark = pytest.mark.anyio

SCALE = 0.001
FAST_RETRY = akool.RetryPolicy(attempts=6, timeout=30.0, initial=0.001, max_delay=0.01)


def jobs(n: int) -> list[akool.Job]:
    """Character swaps with stable keys."""
    return [
        akool.Job(
            akool.CharacterSwap(
                f"https://example.com/img/{i}.png", f"https://example.com/v/{i}.mp4?duration=6"
            ),
            key=f"clip/{i}",  # a key that is not a safe file name as it stands
        )
        for i in range(n)
    ]


def sim(**kw: object) -> AkoolSimulator:
    """A time-compressed simulator with ~20 s (simulated) jobs."""
    kw.setdefault("durations", {"character_swap": Duration(queue=2.0, process=18.0)})
    return AkoolSimulator(time_scale=SCALE, **kw)  # type: ignore[arg-type]


def client_for(s: AkoolSimulator, poll: akool.PollPolicy | None = None) -> akool.AkoolClient:
    """An SDK client for the simulator with compressed polling."""
    return akool.AkoolClient(
        s.api_key,
        base_url=s.base_url,
        retry=FAST_RETRY,
        poll=poll or akool.PollPolicy().scaled(SCALE),
        limits=akool.Limits().scaled(SCALE),
    )


async def expected_bytes(url: str) -> bytes:
    """The output file as a plain GET sees it (independent of the SDK)."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.read()


async def test_client_download_saves_the_output_byte_identical(tmp_path: Path) -> None:
    """client.download() writes exactly the bytes the output URL serves."""
    async with sim() as s, client_for(s) as client:
        result = await client.character_swap.run(jobs(1)[0].request)
        target = tmp_path / "out.mp4"
        path = await client.download(result, target)
        assert result.output_url is not None
        want = await expected_bytes(result.output_url)
    assert path == target
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(want).digest()


async def test_batch_download_dir_saves_each_output_and_the_journal_remembers(
    tmp_path: Path,
) -> None:
    """download_dir saves every output under a safe name; a rerun fetches nothing again."""
    out = tmp_path / "videos"
    db = tmp_path / "run.db"
    async with sim() as s, client_for(s) as client:
        async with client.batch(jobs(5), journal=db, download_dir=out) as outcomes:
            got = [o async for o in outcomes]
        files_requests = s.stats.requests.get("files", 0)
        for o in got:
            assert o.ok
            assert o.path is not None
            assert o.download_error is None
            assert o.path.parent == out
            assert o.result is not None
            assert o.result.output_url is not None
            assert o.path.read_bytes() == await expected_bytes(o.result.output_url)
        async with client.batch(jobs(5), journal=db, download_dir=out) as outcomes:
            again = {o.key: o async for o in outcomes}
        # The check above made 5 plain GETs of its own; the rerun made none.
        assert s.stats.requests.get("files", 0) == files_requests + 5
    assert {o.key: o.path for o in got} == {k: o.path for k, o in again.items()}
    assert len(list(out.iterdir())) == 5


async def test_old_undownloaded_result_warns_before_expiry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Replaying a result completed over six days ago and never downloaded logs a warning."""

    week_ago = ManualClock(start_wall=time.time() - 7 * 24 * 3600, frozen=True)
    db = tmp_path / "run.db"
    async with sim() as s, client_for(s) as client:
        async with client.batch(jobs(1), journal=db) as outcomes:
            (first,) = [o async for o in outcomes]
        assert first.result is not None
        # Rewrite the record as if it had completed a week ago.
        async with Journal(tmp_path / "old.db", clock=week_ago) as old:
            record = await old.begin(
                "clip/0",
                kind="character_swap",
                fingerprint=akool._converters.request_fingerprint(jobs(1)[0].request),
                request=akool._converters.request_to_dict(jobs(1)[0].request),
            )
            await old.mark_sending(record.key)
            await old.mark_created(record.key, first.result.id)
            await old.mark_completed(record.key, dict(first.result.raw))
        with caplog.at_level(logging.WARNING, logger="akool_async"):
            async with client.batch(jobs(1), journal=tmp_path / "old.db") as outcomes:
                (replayed,) = [o async for o in outcomes]
    assert replayed.ok
    assert any("never downloaded" in r.getMessage() for r in caplog.records)
    assert any("7.0 days ago" in r.getMessage() for r in caplog.records)


async def test_webhook_events_complete_jobs_without_polling_them() -> None:
    """With a receiver, jobs complete on their webhook; polling waits for reconciliation."""
    # Reconciliation far beyond the jobs' duration: any completion must come by webhook.
    poll = akool.PollPolicy(reconcile_interval=3600.0).scaled(SCALE)
    async with sim() as s, client_for(s, poll) as client:
        receiver = WebhookReceiver(client_id=s.client_id, client_secret=s.client_secret)
        runner = web.AppRunner(make_aiohttp_app(receiver))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            url = f"http://127.0.0.1:{port}/akool/webhook"
            async with client.batch(jobs(8), webhook_url=url, webhooks=receiver) as outcomes:
                got = [o async for o in outcomes]
            polls = s.stats.polls
        finally:
            await runner.cleanup()
    assert all(o.ok for o in got)
    assert receiver.accepted == 8
    # One poll per job (triggered by its webhook, to fetch the full result), no more.
    assert all(polls.get(o.task_id or "", 0) == 1 for o in got), polls


async def test_job_whose_webhook_never_arrives_completes_by_reconciliation() -> None:
    """If no webhook is ever delivered, the slow reconciliation poll still finishes the job."""
    poll = akool.PollPolicy(reconcile_interval=30.0).scaled(SCALE)
    async with sim() as s, client_for(s, poll) as client:
        receiver = WebhookReceiver(client_id=s.client_id, client_secret=s.client_secret)
        # Nothing listens here: every delivery fails.
        url = "http://127.0.0.1:9/akool/webhook"
        async with client.batch(jobs(3), webhook_url=url, webhooks=receiver) as outcomes:
            got = [o async for o in outcomes]
    assert all(o.ok for o in got)
    assert receiver.accepted == 0


async def test_leaving_a_batch_closes_its_journal_and_unsubscribes_its_webhooks(
    tmp_path: Path,
) -> None:
    """After the block, the batch's own journal is closed and the receiver forgets it."""
    async with sim() as s, client_for(s) as client:
        receiver = WebhookReceiver(client_id=s.client_id, client_secret=s.client_secret)
        batch = client.batch(jobs(2), journal=tmp_path / "run.db", webhooks=receiver)
        async with batch as outcomes:
            assert len(receiver._listeners) == 1
            assert [o.ok async for o in outcomes] == [True, True]
        assert batch._journal is not None
        assert batch._journal.closed
        assert receiver._listeners == {}
