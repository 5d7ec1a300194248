"""Money safety of client.batch() at its boundaries, over real HTTP to the simulator.

Stable keys, intent written at the last moment, paid ids kept when the journal or the
download directory fails, fail fast, retry of failed tasks, preflight balance, binding.
"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

import akool_async as akool
from akool_async._batch._preflight import balance_check, check_balance
from akool_async._converters import request_fingerprint
from akool_async._journal import JobRecord, JobState, Journal, JournalBindingError
from akool_async.testing import AkoolSimulator, Duration, Fault

pytestmark = pytest.mark.anyio

SCALE = 0.001
FAST_RETRY = akool.RetryPolicy(attempts=6, timeout=30.0, initial=0.001, max_delay=0.01)
FAST_POLL = akool.PollPolicy().scaled(SCALE)
DURATIONS = {
    "character_swap": Duration(queue=2.0, process=20.0, sigma=0.2),
    "head_swap": Duration(queue=2.0, process=25.0, sigma=0.2),
    "analysis": Duration(queue=1.0, process=5.0),
}


def sim(**kw: Any) -> AkoolSimulator:
    """A simulator whose jobs take tens of simulated seconds, compressed by SCALE."""
    kw.setdefault("durations", DURATIONS)
    return AkoolSimulator(time_scale=SCALE, **kw)


def client_for(s: AkoolSimulator, **kw: Any) -> akool.AkoolClient:
    """An SDK client pointed at the simulator with time compressed like the simulator's."""
    kw.setdefault("limits", akool.Limits().scaled(SCALE))
    kw.setdefault("api_key", s.api_key)
    return akool.AkoolClient(
        base_url=s.base_url, retry=FAST_RETRY, poll=FAST_POLL, **kw
    )


def char(i: int, *, fail: bool = False) -> akool.CharacterSwap:
    """A character swap with its own source video (``fail``: its task fails)."""
    video = f"https://example.com/video/{i}.mp4?duration=5" + ("&fail=1" if fail else "")
    return akool.CharacterSwap(f"https://example.com/img/{i}.png", video, duration=5)


def key_of(req: akool.CharacterSwap | akool.HeadSwap) -> str:
    """The default key of the first occurrence of ``req``."""
    return request_fingerprint(req)[:16]


def creates(s: AkoolSimulator) -> int:
    """Character-swap create requests the simulator received."""
    return s.stats.requests.get("character_swap.create", 0)


# -- stable keys ---------------------------------------------------------------------------


async def test_default_keys_come_from_content_and_count_identical_requests() -> None:
    """Keyless jobs are keyed by fingerprint, identical ones get #2, #3 whatever the order."""
    a, b = char(1), char(2)
    async with (
        sim() as s,
        client_for(s) as client,
        client.batch([b, a, a, b, a], concurrency=2) as outcomes,
    ):
        keys = sorted([o.key async for o in outcomes])
    ka, kb = key_of(a), key_of(b)
    assert keys == sorted([ka, f"{ka}#2", f"{ka}#3", kb, f"{kb}#2"])


async def test_inserting_a_job_on_rerun_creates_nothing_twice(tmp_path: Path) -> None:
    """A rerun with a job inserted at the top keeps every key: only the new job is created."""
    path = tmp_path / "run.db"
    first = [char(i) for i in range(5)]
    async with sim() as s, client_for(s) as client:
        async with client.batch(first, journal=path) as outcomes:
            assert all([o.ok async for o in outcomes])
        async with client.batch([char(99), *reversed(first)], journal=path) as outcomes:
            again = [o async for o in outcomes]
        stats = s.stats
    assert all(o.ok for o in again), [o.error for o in again if not o.ok]
    assert creates(s) == 6
    assert stats.duplicate_creates == 0


# -- intent at the last moment -------------------------------------------------------------


async def test_cancel_while_queued_behind_the_pacer_leaves_no_false_uncertain(
    tmp_path: Path,
) -> None:
    """Jobs cancelled while waiting for their pacing slot stay pending and are sent on rerun."""
    path = tmp_path / "run.db"
    jobs = [char(i) for i in range(8)]
    slow = akool.Limits(max_creates_per_second=4.0)  # real seconds: one create per 250 ms
    async with sim() as s:
        async with client_for(s, limits=slow) as client:
            with anyio.CancelScope() as scope:

                def progress(stats: akool.BatchStats) -> None:
                    if stats.running + stats.completed >= 2:  # two creates answered
                        scope.cancel()

                async with client.batch(jobs, journal=path, progress=progress) as outcomes:
                    async for _ in outcomes:
                        pass
            sent = creates(s)
        async with Journal(path) as journal:
            states = [r.state for r in await journal.records()]
        assert sent < len(jobs)
        assert JobState.SENDING not in states
        assert JobState.UNCERTAIN not in states
        assert states.count(JobState.CREATED) + states.count(JobState.COMPLETED) == sent
        assert states.count(JobState.PENDING) == len(jobs) - sent
        # Rerun: the jobs never sent are simply sent; nothing is uncertain or sent twice.
        async with client_for(s) as client, client.batch(jobs, journal=path) as outcomes:
            rerun = [o async for o in outcomes]
        stats = s.stats
    assert all(o.ok for o in rerun), [o.error for o in rerun if not o.ok]
    assert creates(s) == len(jobs)
    assert stats.duplicate_creates == 0


# -- a paid id survives a failing store or disk -------------------------------------------


class FullDiskJournal(Journal):
    """A journal whose disk fills up right after the ``fail_at``-th created task."""

    fail_at = 2

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.created = 0

    async def mark_created(
        self, key: str, task_id: str, *, analysis_id: str | None = None
    ) -> JobRecord:
        self.created += 1
        if self.created >= self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await super().mark_created(key, task_id, analysis_id=analysis_id)


async def test_journal_failure_after_create_keeps_the_id_and_stops_intake(
    tmp_path: Path,
) -> None:
    """The paid id reaches the outcome and the recovery file; no job is created afterwards."""
    path = tmp_path / "run.db"
    jobs = [char(i) for i in range(6)]
    async with sim() as s, client_for(s) as client:
        journal = await FullDiskJournal.open(path)
        try:
            async with client.batch(jobs, journal=journal, concurrency=1) as batch:
                got = {o.key: o async for o in batch}
                recovery = batch.recovery_path
        finally:
            await journal.aclose()
        sent = creates(s)
    lost = got[key_of(jobs[1])]
    assert isinstance(lost.error, akool.JournalError)
    assert lost.task_id is not None
    assert lost.error.task_id == lost.task_id
    assert got[key_of(jobs[0])].ok  # created before the failure: it still finished
    aborted = [o.error for k, o in got.items() if isinstance(o.error, akool.BatchAbortedError)]
    assert len(aborted) == 4
    assert len({id(e) for e in aborted}) == 1  # one shared error
    assert "not sent" in str(aborted[0])
    assert sent == 2  # nothing created after the failure
    assert recovery == Path(str(path) + ".recovery.jsonl")
    (line,) = recovery.read_text().splitlines()
    entry = json.loads(line)
    assert (entry["key"], entry["task_id"], entry["kind"]) == (
        lost.key,
        lost.task_id,
        "created",
    )
    assert entry["request"]["video"] == jobs[1].video


class FailingCompletionJournal(Journal):
    """A journal whose disk fails when a finished task is recorded."""

    async def mark_completed(self, key: str, result_raw: Any) -> JobRecord:
        raise OSError(errno.EIO, "Input/output error")


async def test_journal_failure_at_completion_reports_the_task_id(tmp_path: Path) -> None:
    """A completion the journal cannot record ends as a JournalError carrying the paid id."""
    path = tmp_path / "run.db"
    async with sim() as s, client_for(s) as client:
        journal = await FailingCompletionJournal.open(path)
        try:
            async with client.batch(journal=journal) as batch:
                outcome = await (await batch.submit(char(0))).outcome()
                later = await (await batch.submit(char(1))).outcome()
                batch.close()
                recovery = batch.recovery_path
        finally:
            await journal.aclose()
        sent = creates(s)
    assert isinstance(outcome.error, akool.JournalError)
    assert outcome.task_id is not None
    assert outcome.error.task_id == outcome.task_id
    assert isinstance(later.error, akool.BatchAbortedError)
    assert sent == 1
    assert recovery is not None
    (line,) = recovery.read_text().splitlines()
    entry = json.loads(line)
    assert (entry["task_id"], entry["kind"]) == (outcome.task_id, "completed")


async def test_unusable_download_directory_keeps_ids_and_stops_intake(tmp_path: Path) -> None:
    """A download directory that is a file: result and id kept, recovery line, no new creates."""
    path = tmp_path / "run.db"
    blocker = tmp_path / "out"
    blocker.write_text("not a directory")
    async with sim() as s, client_for(s) as client:
        async with client.batch(journal=path, download_dir=blocker) as batch:
            first = await (await batch.submit(char(0))).outcome()
            later = [await batch.submit(char(i)) for i in range(1, 4)]
            batch.close()
            rest = [await handle.outcome() for handle in later]
            recovery = batch.recovery_path
        sent = creates(s)
    assert first.ok
    assert first.download_error is not None
    assert first.task_id is not None
    assert all(isinstance(o.error, akool.BatchAbortedError) for o in rest)
    assert sent == 1
    assert recovery is not None
    (line,) = recovery.read_text().splitlines()
    assert json.loads(line)["task_id"] == first.task_id


async def test_unfinished_lists_created_jobs_without_a_journal() -> None:
    """Interrupted without a journal, the batch names every created job still unfinished."""
    forever = {"character_swap": Duration(queue=10**9, process=0.0)}
    jobs = [char(i) for i in range(3)]
    async with sim(durations=forever) as s, client_for(s) as client:
        running = anyio.Event()

        def progress(stats: akool.BatchStats) -> None:
            if stats.running == len(jobs):
                running.set()

        async with client.batch(jobs, progress=progress) as batch:
            await running.wait()
            unfinished = batch.unfinished()
        tasks = [s.task(task_id) for _, task_id in unfinished]  # each one the server made
    assert sorted(k for k, _ in unfinished) == sorted(key_of(j) for j in jobs)
    assert len({t.id for t in tasks}) == len(jobs)


# -- download and journal agree ------------------------------------------------------------


class CrashBeforeRecordingJournal(Journal):
    """A journal that dies between a saved download and recording its path."""

    async def set_local_path(self, key: str, path: Any) -> JobRecord:
        raise OSError(errno.EIO, "Input/output error")


async def run_and_crash_before_recording(
    client: akool.AkoolClient, job: akool.CharacterSwap, path: Path, out: Path
) -> tuple[akool.Outcome, dict[str, Any] | None]:
    """One batch whose journal dies right after the download: its outcome and the
    download facts the journal recorded before the file appeared."""
    journal = await CrashBeforeRecordingJournal.open(path)
    try:
        async with client.batch([job], journal=journal, download_dir=out) as outcomes:
            (first,) = [o async for o in outcomes]
        return first, await journal.expected_download(first.key)
    finally:
        await journal.aclose()


async def test_saved_but_unrecorded_download_is_taken_as_done(tmp_path: Path) -> None:
    """A file saved by a run that failed to journal it is recorded on rerun, not refused."""
    path, out = tmp_path / "run.db", tmp_path / "out"
    job = char(1)
    async with sim() as s, client_for(s) as client:
        first, _ = await run_and_crash_before_recording(client, job, path, out)
        assert first.path is not None
        assert first.path.exists()
        async with client.batch([job], journal=path, download_dir=out) as outcomes:
            (second,) = [o async for o in outcomes]
        assert creates(s) == 1
    assert second.ok
    assert second.download_error is None
    assert second.path == first.path
    async with Journal(path) as j:
        record = await j.get(second.key)
    assert record is not None
    assert record.local_path == str(first.path)


@pytest.mark.parametrize("change", ["same size", "shorter"])
async def test_a_file_that_is_not_the_recorded_download_is_kept_and_reported(
    tmp_path: Path, change: str
) -> None:
    """A file at the job's path that differs from the recorded size/sha256 is not taken as
    done, not overwritten, and reported as a download error naming what differs."""
    path, out = tmp_path / "run.db", tmp_path / "out"
    job = char(1)
    async with sim() as s, client_for(s) as client:
        first, facts = await run_and_crash_before_recording(client, job, path, out)
        assert first.path is not None
        saved = first.path.read_bytes()
        assert facts is not None
        assert {name: facts[name] for name in ("path", "size", "sha256")} == {
            "path": str(first.path),
            "size": len(saved),
            "sha256": hashlib.sha256(saved).hexdigest(),
        }
        other = bytes(b ^ 0xFF for b in saved) if change == "same size" else saved[:-1]
        first.path.write_bytes(other)
        async with client.batch([job], journal=path, download_dir=out) as outcomes:
            (second,) = [o async for o in outcomes]
    assert second.ok  # the task completed; only its local file is in question
    assert isinstance(second.download_error, akool.DownloadError)
    differs = "sha256 differs" if change == "same size" else f"has {len(other)} bytes"
    assert differs in str(second.download_error)
    assert first.path.read_bytes() == other


# -- fail fast -----------------------------------------------------------------------------


async def test_a_refused_key_stops_the_batch_after_one_create() -> None:
    """With a wrong key, one AuthenticationError and one shared BatchAbortedError for the rest."""
    jobs = [char(i) for i in range(10)]
    async with sim() as s, client_for(s, api_key="wrong-key") as client:
        async with client.batch(jobs, concurrency=1) as outcomes:
            got = [o async for o in outcomes]
        sent = creates(s)
    auth = [o for o in got if isinstance(o.error, akool.AuthenticationError)]
    aborted = [o.error for o in got if isinstance(o.error, akool.BatchAbortedError)]
    assert len(auth) == 1
    assert len(aborted) == 9
    assert len({id(e) for e in aborted}) == 1
    assert aborted[0].cause is auth[0].error
    assert "refused the API key" in str(aborted[0])
    assert "1101" in str(aborted[0])
    assert sent == 1


async def test_running_out_of_credit_stops_intake_and_created_jobs_finish(
    tmp_path: Path,
) -> None:
    """Credit for two jobs: two finish, the third is refused (1104), the rest are not sent."""
    jobs = [char(i) for i in range(6)]
    # A 5 s 720p character swap costs 10 credits.
    async with sim(credit=20) as s, client_for(s) as client:
        async with client.batch(jobs, concurrency=1, journal=tmp_path / "r.db") as outcomes:
            got = [o async for o in outcomes]
        sent = creates(s)
        stats = s.stats
    ok = [o for o in got if o.ok]
    refused = [o for o in got if isinstance(o.error, akool.InsufficientCreditError)]
    aborted = [o for o in got if isinstance(o.error, akool.BatchAbortedError)]
    assert len(refused) == 1
    assert len(ok) + len(refused) == sent
    assert len(ok) >= 1
    assert len(ok) + len(refused) + len(aborted) == len(jobs)
    assert aborted
    assert "insufficient credit" in str(aborted[0].error)
    assert stats.duplicate_creates == 0
    async with Journal(tmp_path / "r.db") as journal:
        records = {r.key: r for r in await journal.records()}
    for o in aborted:  # not sent: absent or pending, so a rerun simply sends them
        assert o.key not in records or records[o.key].state is JobState.PENDING


async def test_after_a_credit_stop_journaled_jobs_still_replay(tmp_path: Path) -> None:
    """Once credit runs out, jobs an earlier run finished are replayed, not aborted."""
    path = tmp_path / "run.db"
    done = [char(i) for i in range(3)]
    async with sim() as s, client_for(s) as client:
        async with client.batch(done, journal=path) as outcomes:
            assert all([o.ok async for o in outcomes])
        s.inject("character_swap.create", Fault(kind="code", code=1104))
        async with client.batch([char(50), *done, char(51)], journal=path, concurrency=1) as b:
            got = {o.key: o async for o in b}
        assert creates(s) == 4  # three paid earlier, then the one refused
    assert all(got[key_of(j)].ok for j in done)
    assert isinstance(got[key_of(char(50))].error, akool.InsufficientCreditError)
    assert isinstance(got[key_of(char(51))].error, akool.BatchAbortedError)


async def test_an_injected_ban_stops_intake() -> None:
    """Code 1200 (account blocked) on a create stops intake like a refused key."""
    jobs = [char(i) for i in range(4)]
    async with sim() as s, client_for(s) as client:
        s.inject("character_swap.create", Fault(kind="code", code=1200))
        async with client.batch(jobs, concurrency=1) as outcomes:
            got = [o async for o in outcomes]
        sent = creates(s)
    assert sum(isinstance(o.error, akool.AccountBlockedError) for o in got) == 1
    assert sum(isinstance(o.error, akool.BatchAbortedError) for o in got) == 3
    assert sent == 1


# -- balance preflight ---------------------------------------------------------------------


def test_balance_check_sums_priced_requests_and_counts_unpriced() -> None:
    """Priced requests are summed; head swaps and swaps without duration are unpriced."""
    unpriced = akool.CharacterSwap("https://example.com/i.png", "https://example.com/v.mp4")
    head = akool.HeadSwap("https://example.com/s.mp4", {0: "https://example.com/f.png"})
    check = balance_check([char(1), char(2), unpriced, head], balance=15)
    assert (check.estimate, check.priced, check.unpriced) == (20, 2, 2)
    assert not check.enough
    assert not check.complete
    assert "2 job(s) have no estimate" in check.message()
    assert balance_check([char(1)], balance=10).enough


async def test_check_balance_reads_the_account_balance() -> None:
    """check_balance compares the estimate with the balance the server reports."""
    async with sim(credit=25) as s, client_for(s) as client:
        check = await check_balance(client, [char(1), char(2), char(3)])
    assert check.balance == 25
    assert check.estimate == 30
    assert not check.enough


# -- retry what failed ---------------------------------------------------------------------


async def test_retry_failed_recreates_failed_tasks_only_when_asked(tmp_path: Path) -> None:
    """A failed task is replayed by default and created anew (same key) with retry_failed."""
    path = tmp_path / "run.db"
    jobs = [char(1), char(2, fail=True)]
    async with sim() as s, client_for(s) as client:
        async with client.batch(jobs, journal=path) as outcomes:
            first = {o.key: o async for o in outcomes}
        failed_key = key_of(jobs[1])
        old_id = first[failed_key].task_id
        assert isinstance(first[failed_key].error, akool.TaskFailedError)
        async with client.batch(jobs, journal=path) as outcomes:
            [o async for o in outcomes]
        assert creates(s) == 2  # replayed, nothing sent
        async with client.batch(jobs, journal=path, retry_failed=True) as outcomes:
            retried = {o.key: o async for o in outcomes}
        assert creates(s) == 3  # only the failed job was created again
    assert retried[failed_key].task_id not in (None, old_id)
    assert retried[key_of(jobs[0])].ok
    async with Journal(path) as journal:
        record = await journal.get(failed_key)
    assert record is not None
    assert record.attempts == 2
    assert record.task_id == retried[failed_key].task_id


async def test_retry_failed_never_resends_uncertain_jobs(tmp_path: Path) -> None:
    """An uncertain job stays uncertain under retry_failed: only resubmit_uncertain sends it."""
    path = tmp_path / "run.db"
    job = char(1)
    async with sim() as s, client_for(s) as client:
        s.inject("character_swap.create", "drop_after")
        async with client.batch([job], journal=path) as outcomes:
            (first,) = [o async for o in outcomes]
        assert isinstance(first.error, akool.SubmissionUncertainError)
        async with client.batch([job], journal=path, retry_failed=True) as outcomes:
            (second,) = [o async for o in outcomes]
        assert creates(s) == 1
    assert isinstance(second.error, akool.SubmissionUncertainError)


# -- binding -------------------------------------------------------------------------------


async def test_a_journal_refuses_another_base_url_before_any_create(tmp_path: Path) -> None:
    """The same journal against another server fails with JournalBindingError, nothing sent."""
    path = tmp_path / "run.db"
    async with (
        sim() as s,
        client_for(s) as client,
        client.batch([char(1)], journal=path) as outcomes,
    ):
        [o async for o in outcomes]
    async with sim() as other, client_for(other) as client:
        with pytest.raises(JournalBindingError):
            async with client.batch([char(1)], journal=path) as outcomes:
                [o async for o in outcomes]
        assert creates(other) == 0


def test_client_account_digest_is_not_the_key() -> None:
    """account_digest is a (shortened) SHA-256 hex digest, never the credential itself."""
    client = akool.AkoolClient("secret-key-123", base_url="http://127.0.0.1:1")
    digest = client.account_digest
    assert len(digest) == 16
    assert "secret-key-123" not in digest
    assert digest == akool.AkoolClient("secret-key-123").account_digest
