"""Journaled batches: rerun, resume, uncertain creates, key conflicts and SIGKILL at random."""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import anyio
import pytest
from anyio.streams.text import TextReceiveStream

import akool_async as akool
from akool_async._batch._resume import ResumeAction, resume_action, uncertain_from_earlier_run
from akool_async._converters import analyze_to_wire
from akool_async._journal import JobState, Journal
from akool_async.testing import AkoolSimulator, Duration, Fault

pytestmark = pytest.mark.anyio

SCALE = 0.001
FAST_RETRY = akool.RetryPolicy(attempts=4, timeout=10.0, initial=0.001, max_delay=0.01)
CHILD = Path(__file__).parent / "resume_helpers" / "batch_child.py"


def jobs(n: int, *, prefix: str = "job") -> list[akool.Job]:
    """Character swap jobs with stable keys (resume matches jobs by key)."""
    return [
        akool.Job(
            akool.CharacterSwap(
                f"https://example.com/img/{i}.png",
                f"https://example.com/video/{i}.mp4?duration={3 + i % 10}",
            ),
            key=f"{prefix}-{i}",
        )
        for i in range(n)
    ]


def sim(**kw: object) -> AkoolSimulator:
    """A time-compressed simulator with jobs of ~20 simulated seconds."""
    kw.setdefault("durations", {"character_swap": Duration(queue=2.0, process=18.0)})
    return AkoolSimulator(time_scale=SCALE, **kw)  # type: ignore[arg-type]


def client_for(s: AkoolSimulator) -> akool.AkoolClient:
    """An SDK client for the simulator with compressed polling."""
    return akool.AkoolClient(
        s.api_key,
        base_url=s.base_url,
        retry=FAST_RETRY,
        poll=akool.PollPolicy().scaled(SCALE),
        limits=akool.Limits().scaled(SCALE),
    )


def swap_creates(s: AkoolSimulator) -> int:
    """Character-swap create requests received by the simulator."""
    return s.stats.requests.get("character_swap.create", 0)


@pytest.mark.parametrize(
    ("state", "resubmit", "action"),
    [
        (JobState.PENDING, False, ResumeAction.SEND),
        (JobState.REJECTED, False, ResumeAction.SEND),
        (JobState.SENDING, False, ResumeAction.REPORT_UNCERTAIN),
        (JobState.UNCERTAIN, False, ResumeAction.REPORT_UNCERTAIN),
        (JobState.SENDING, True, ResumeAction.RESEND_UNCERTAIN),
        (JobState.UNCERTAIN, True, ResumeAction.RESEND_UNCERTAIN),
        (JobState.CREATED, True, ResumeAction.RESUME_POLLING),
        (JobState.COMPLETED, True, ResumeAction.REPLAY),
        (JobState.FAILED, False, ResumeAction.REPLAY),
    ],
)
def test_resume_policy_maps_each_stored_state_to_one_action(
    state: JobState, resubmit: bool, action: ResumeAction
) -> None:
    """The resume policy is a pure function of the stored state and the resubmit opt-in."""
    assert resume_action(state, resubmit_uncertain=resubmit) is action


def test_uncertain_error_from_an_earlier_run_names_the_opt_in_and_keeps_the_cause() -> None:
    """The uncertain error tells how to resend and chains the earlier run's error."""
    earlier = akool.RequestTimeoutError("read timed out")
    err = uncertain_from_earlier_run(jobs(1)[0].request, earlier)
    assert "resubmit_uncertain=True" in str(err)
    assert err.__cause__ is earlier


async def test_rerun_reemits_completed_jobs_without_any_request(tmp_path: Path) -> None:
    """A second run over a finished journal answers from the journal alone."""
    path = tmp_path / "run.db"
    async with sim() as s, client_for(s) as client:
        async with client.batch(jobs(20), journal=path) as outcomes:
            first = {o.key: o async for o in outcomes}
        before = s.stats.total_requests
        async with client.batch(jobs(20), journal=path) as outcomes:
            second = {o.key: o async for o in outcomes}
        after = s.stats.total_requests
    assert all(o.ok for o in first.values())
    assert after == before
    assert set(second) == set(first)
    for key, o in second.items():
        assert o.ok
        assert o.result is not None
        assert o.result.id == first[key].task_id
        assert o.result.output_url == first[key].result.output_url  # type: ignore[union-attr]


async def test_created_jobs_resume_polling_without_a_new_create(tmp_path: Path) -> None:
    """Jobs created by an interrupted run are polled to completion, never created again."""
    path = tmp_path / "run.db"
    all_created = anyio.Event()

    def progress(stats: akool.BatchStats) -> None:
        if stats.running == 10:
            all_created.set()

    # Simulated time stands still until advance(): no job can finish during the first run,
    # however long its creates take.
    async with sim(manual_clock=True) as s, client_for(s) as client:
        async with client.batch(jobs(10), journal=path, progress=progress):
            await all_created.wait()
            # Leave the block while every job is running remotely.
        async with Journal(path) as journal:
            counts = await journal.counts()
        assert counts[JobState.CREATED] == 10
        creates_before = swap_creates(s)
        s.advance(3600.0)  # every job has finished remotely by now
        async with client.batch(jobs(10), journal=path) as outcomes:
            got = [o async for o in outcomes]
        creates_after = swap_creates(s)
    assert creates_before == creates_after == 10
    assert len(got) == 10
    assert all(o.ok for o in got)


async def test_unacknowledged_create_is_uncertain_until_explicitly_resubmitted(
    tmp_path: Path,
) -> None:
    """A create whose answer was lost is reported, not resent, unless the caller opts in."""
    path = tmp_path / "run.db"
    async with sim() as s, client_for(s) as client:
        s.inject("character_swap.create", ["drop_after"])
        async with client.batch(jobs(1), journal=path) as outcomes:
            (first,) = [o async for o in outcomes]
        assert isinstance(first.error, akool.SubmissionUncertainError)
        assert swap_creates(s) == 1
        async with client.batch(jobs(1), journal=path) as outcomes:
            (second,) = [o async for o in outcomes]
        assert isinstance(second.error, akool.SubmissionUncertainError)
        assert "resubmit_uncertain=True" in str(second.error)
        assert swap_creates(s) == 1
        async with client.batch(jobs(1), journal=path, resubmit_uncertain=True) as outcomes:
            (third,) = [o async for o in outcomes]
        assert third.ok
        assert swap_creates(s) == 2  # the explicit resubmit, and nothing else


async def test_key_reused_with_a_different_request_is_a_clear_error(tmp_path: Path) -> None:
    """Reusing a journal key for a different request fails that job, naming the key."""
    path = tmp_path / "run.db"
    other = akool.Job(
        akool.CharacterSwap("https://example.com/other.png", "https://example.com/o.mp4"),
        key="job-0",
    )
    async with sim() as s, client_for(s) as client:
        async with client.batch(jobs(2), journal=path) as outcomes:
            assert all([o.ok async for o in outcomes])
        async with client.batch([other, *jobs(2)[1:]], journal=path) as outcomes:
            got = {o.key: o async for o in outcomes}
    assert isinstance(got["job-0"].error, akool.JournalConflictError)
    assert "job-0" in str(got["job-0"].error)
    assert got["job-1"].ok


async def test_rejected_create_is_recorded_and_sent_again_on_rerun(tmp_path: Path) -> None:
    """A create the server definitely refused (1104) created nothing, so a rerun sends it."""
    path = tmp_path / "run.db"
    async with sim() as s, client_for(s) as client:
        s.inject("character_swap.create", Fault(kind="code", code=1104))
        async with client.batch(jobs(1), journal=path) as outcomes:
            (first,) = [o async for o in outcomes]
        assert isinstance(first.error, akool.InsufficientCreditError)
        # Same journal, same account and server, credit again: the job is sent again.
        async with client.batch(jobs(1), journal=path) as outcomes:
            (second,) = [o async for o in outcomes]
        assert second.ok
        assert swap_creates(s) == 2  # the refused create and the one that paid


async def _run_child(
    s: AkoolSimulator,
    journal: Path,
    n: int,
    kill_after: int | None,
    *,
    mixed: bool = False,
    resubmit: bool = False,
) -> list[str]:
    """Run the child batch; SIGKILL it after `kill_after` outcome lines (None: to the end)."""
    env = {**os.environ, "AKOOL_API_KEY": s.api_key}
    args = [sys.executable, str(CHILD), s.base_url, str(journal), str(n), str(int(mixed))]
    if resubmit:
        args.append("resubmit")
    lines: list[str] = []
    async with await anyio.open_process(args, env=env) as proc:
        assert proc.stdout is not None
        buffer = ""
        async for chunk in TextReceiveStream(proc.stdout):
            buffer += chunk
            *complete, buffer = buffer.split("\n")
            lines.extend(complete)
            outcomes = sum(1 for line in lines if line.startswith("outcome"))
            if kill_after is not None and outcomes >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
        await proc.wait()
    return lines


@pytest.mark.parametrize(
    ("n", "profile", "mixed", "max_kill_gap"),
    [
        pytest.param(120, "flaky", False, 25, id="quick"),
        pytest.param(
            2000, "chaos", True, 400, id="soak", marks=[pytest.mark.soak, pytest.mark.timeout(900)]
        ),
    ],
)
async def test_sigkill_at_random_points_never_pays_twice_or_loses_an_id(
    tmp_path: Path, n: int, profile: str, mixed: bool, max_kill_gap: int
) -> None:
    """Three SIGKILLs mid-batch, then a resume: one outcome per job, no duplicate create."""
    path = tmp_path / "run.db"
    rng = random.Random(20261122)
    durations = {
        "character_swap": Duration(queue=2.0, process=18.0),
        "head_swap": Duration(queue=2.0, process=20.0),
        "analysis": Duration(queue=1.0, process=4.0),
    }
    async with sim(faults=profile, seed=3, durations=durations) as s:
        finished_before = 0
        for _ in range(3):
            # Replayed outcomes arrive at once: count only outcomes of new work.
            kill_after = finished_before + rng.randint(1, max_kill_gap)
            await _run_child(s, path, n, kill_after=kill_after, mixed=mixed)
            async with Journal(path) as journal:
                counts = await journal.counts()
            # A rerun answers these at once: terminal ones, and sent-but-unacknowledged ones.
            finished = sum(counts.values()) - counts[JobState.PENDING] - counts[JobState.CREATED]
            assert finished > finished_before  # the killed run did new work
            assert finished < n  # ... and was killed before the end
            finished_before = finished
        lines = await _run_child(s, path, n, kill_after=None, mixed=mixed)
        stats = s.stats
        # Analyses are free and a resumed run may analyse a source video again; only
        # swap creates cost credits, so duplicates are counted over those alone.
        sources = (f"https://example.com/source/{v}.mp4?people=2&duration=8" for v in range(50))
        analysis_keys = {s.fingerprint(analyze_to_wire(url)) for url in sources}
    duplicate_swaps = sum(
        count - 1 for key, count in stats.creates.items() if key not in analysis_keys
    )
    assert lines[-1] == "done"
    final = [line.split() for line in lines if line.startswith("outcome")]
    keys = [parts[1] for parts in final]
    assert sorted(keys) == sorted(f"job-{i}" for i in range(n))  # exactly one outcome each
    assert duplicate_swaps == 0
    async with Journal(path) as journal:
        records = await journal.records()
    known_ids = {r.task_id for r in records if r.task_id}
    uncertain = [r for r in records if r.state is JobState.UNCERTAIN]
    swap_creates_sent = stats.requests.get("character_swap.create", 0) + stats.requests.get(
        "head_swap.create", 0
    )
    # Every task the server created is known by id or flagged uncertain: none lost. (The
    # simulator's `creates` also counts analyses, which the journal does not track by id.)
    created_tasks = sum(stats.tasks["character_swap"].values()) + sum(
        stats.tasks["head_swap"].values()
    )
    assert created_tasks <= len(known_ids) + len(uncertain)
    assert len(known_ids) <= created_tasks <= swap_creates_sent
    assert all(r.state.is_terminal or r.state is JobState.UNCERTAIN for r in records)
