"""What a run says about itself: outcome times and attempts, replayed outcomes kept apart from
this run's, balance and webhook counts, in outcomes, ``outcomes.stats``, results and summary."""

from __future__ import annotations

# The `sim` and `no_env` fixtures are imported from test_cli and named again as arguments.
# ruff: noqa: F811
import datetime
import json
from pathlib import Path

import pytest
from conftest import START_WALL, ManualClock
from test_cli import SCALE, cs, no_env, read_results, sim, write_jobs  # noqa: F401
from test_webhook_health import CLIENT_ID, SECRET, WRONG_ID, delivery

import akool_async as akool
from akool_async._cli import EXIT_OK, main
from akool_async._cli._jobs import Estimate
from akool_async._cli._progress import NO_ESTIMATE, Snapshot, format_eta
from akool_async._cli._results import Tally, outcome_record
from akool_async._cli._summary import summary_rows
from akool_async.testing import AkoolSimulator, Duration
from akool_async.webhooks import WebhookReceiver

pytestmark = pytest.mark.anyio

#: Every character swap takes exactly 22 simulated seconds (2 queued, 20 processing).
FIXED = {"character_swap": Duration(queue=2.0, process=20.0, sigma=0.0)}
FAST_RETRY = akool.RetryPolicy(attempts=6, timeout=30.0, initial=0.001, max_delay=0.01)


def char(i: int) -> akool.Job:
    """A keyed character swap of a 10-second video."""
    return akool.Job(
        akool.CharacterSwap(
            f"https://example.com/img/{i}.png", f"https://example.com/video/{i}.mp4?duration=10"
        ),
        key=f"job-{i}",
    )


def when(text: str) -> datetime.datetime:
    """An ISO 8601 UTC time of a results line (``...Z``) as an aware datetime."""
    assert text.endswith("Z")
    return datetime.datetime.fromisoformat(text[:-1] + "+00:00")


def manual_client(sim: AkoolSimulator, clock: ManualClock) -> akool.AkoolClient:
    """A client on the simulator's manual clock: every time it reads is simulated time."""
    return akool.AkoolClient(sim.api_key, base_url=sim.base_url, retry=FAST_RETRY, clock=clock)


async def test_outcomes_carry_submission_and_finish_times_and_create_attempts() -> None:
    """Times are the client clock's, in UTC; a create refused twice for rate counts 3 attempts."""
    async with AkoolSimulator(manual_clock=True, durations=FIXED) as sim:
        sim.inject("character_swap.create", "code_1005", "code_1005")
        clock = ManualClock(sim, settle=True)
        async with (
            manual_client(sim, clock) as client,
            client.batch([char(0), char(1)], concurrency=1) as outcomes,
        ):
            got = {o.key: o async for o in outcomes}
    assert [got[k].attempts for k in ("job-0", "job-1")] == [3, 1]
    for outcome in got.values():
        assert outcome.ok
        assert outcome.replayed is False
        submitted, finished = outcome.submitted_at, outcome.finished_at
        assert submitted is not None
        assert finished is not None
        assert submitted.tzinfo is datetime.timezone.utc
        assert submitted.timestamp() >= START_WALL
        # The task itself takes 22 simulated seconds after its create was sent.
        assert (finished - submitted).total_seconds() >= 22.0


async def test_rerun_replays_outcomes_with_the_earlier_runs_times_and_counts_them(
    tmp_path: Path,
) -> None:
    """Replayed outcomes say so, keep their first run's times, and are left out of credits."""
    journal = tmp_path / "run.db"
    async with AkoolSimulator(time_scale=SCALE, durations=FIXED) as sim:
        client = akool.AkoolClient(
            sim.api_key, base_url=sim.base_url, retry=FAST_RETRY,
            poll=akool.PollPolicy().scaled(SCALE),
        )
        async with client:
            async with client.batch([char(i) for i in range(3)], journal=journal) as outcomes:
                first = {o.key: o async for o in outcomes}
                first_stats = outcomes.stats
            between = datetime.datetime.now(datetime.timezone.utc)
            async with client.batch([char(i) for i in range(3)], journal=journal) as outcomes:
                second = {o.key: o async for o in outcomes}
                second_stats = outcomes.stats
    assert first_stats.replayed == 0
    assert first_stats.credits == 3 * 20
    assert second_stats.replayed == 3
    assert second_stats.completed == 3
    assert second_stats.credits == 0  # nothing charged in this run
    for key, outcome in second.items():
        assert outcome.replayed is True
        assert outcome.attempts == 1
        before, after = first[key].submitted_at, first[key].finished_at
        assert before is not None
        assert after is not None
        assert outcome.finished_at is not None
        # When the journal recorded the outcome: in the first run, not now.
        assert before <= outcome.finished_at <= after < between


async def test_batch_stats_count_the_receivers_accepted_and_rejected_webhooks(
    simulator: AkoolSimulator,
) -> None:
    """``outcomes.stats`` shows the batch's receiver's delivery counts (0 without one)."""
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET)
    async with akool.AkoolClient(simulator.api_key, base_url=simulator.base_url) as client:
        async with client.batch() as plain:
            assert (plain.stats.webhooks_accepted, plain.stats.webhooks_rejected) == (0, 0)
            plain.close()
        async with client.batch(webhooks=receiver) as batch:
            assert (await receiver.handle(delivery("task-0001"))).status == 200
            assert (await receiver.handle(delivery("task-0002"))).status == 200
            assert (await receiver.handle(delivery("task-0003", client_id=WRONG_ID))).status == 400
            stats = batch.stats
            batch.close()
    assert (stats.webhooks_accepted, stats.webhooks_rejected) == (2, 1)


def test_results_line_has_iso_utc_times_attempts_and_replayed() -> None:
    """A results line spells the times as ISO 8601 UTC and carries attempts and replayed."""
    at = datetime.datetime(2026, 12, 4, 15, 0, 1, tzinfo=datetime.timezone.utc)
    outcome = akool.Outcome(
        key="k",
        job=char(0).request,
        error=akool.SubmissionUncertainError("lost"),
        submitted_at=at,
        finished_at=at + datetime.timedelta(seconds=30),
        attempts=2,
        replayed=True,
    )
    record = outcome_record(outcome, 7)
    assert record["submitted_at"] == "2026-12-04T15:00:01Z"
    assert record["finished_at"] == "2026-12-04T15:00:31Z"
    assert (record["attempts"], record["replayed"]) == (2, True)
    failed = akool.Outcome(key="b", job=char(1).request, error=akool.AkoolError("x"))
    bare = outcome_record(failed, 1)
    assert (bare["submitted_at"], bare["finished_at"], bare["attempts"], bare["replayed"]) == (
        None,
        None,
        0,
        False,
    )


def test_time_left_is_a_dash_until_this_run_has_a_rate_and_never_zero_with_jobs_left() -> None:
    """No rate yet: an em dash; replayed outcomes give no rate; jobs left: never 0.0s."""
    assert format_eta(5, 0.0) == NO_ESTIMATE
    assert format_eta(1, 1e9) == "0.1s"
    assert format_eta(0, 0.0) == "0.0s"
    replayed_only = Snapshot(10, akool.BatchStats(completed=6, running=4, replayed=6), 2.0)
    assert replayed_only.rate == 0.0
    assert replayed_only.eta == NO_ESTIMATE
    assert "ETA \u2014" in replayed_only.line()
    moving = Snapshot(10, akool.BatchStats(completed=8, running=2, replayed=6), 2.0)
    assert moving.rate == 1.0  # two outcomes of this run in two seconds
    assert moving.eta == "2.0s"


def test_summary_rows_keep_this_run_apart_from_replayed_outcomes() -> None:
    """Counts, credits, rate, time left, balance and webhooks as the summary shows them."""
    tally = Tally(10)
    tally.completed, tally.replayed = 7, 5
    tally.credits, tally.replayed_credits = 40.0, 100.0
    tally.elapsed = 4.0
    tally.balance_before = 10_000.0
    tally.webhooks = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET).stats
    rows = dict(summary_rows(tally, Estimate(200, 10, 0, 0), out=None, download_dir=None,
                             journal="run.db"))
    assert rows["replayed from the journal"] == "5 (nothing sent for them)"
    assert rows["credits charged"] == "40 in this run (character swaps)"
    assert rows["credits replayed"] == "100 (charged by earlier runs)"
    assert rows["rate"] == "0.5 jobs/s (this run's outcomes)"
    assert rows["time left"] == "6.0s at this run's rate"
    assert rows["balance"] == "10,000 before, n/a after"
    assert rows["webhooks"] == "0 accepted, 0 rejected"
    tally.balance_before = None
    assert dict(summary_rows(tally, Estimate(0, 0, 0, 0), out=None, download_dir=None,
                             journal=None))["balance"] == "n/a"


def test_cli_rerun_says_what_was_replayed_and_the_balance_before_and_after(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first run charges and shows the balance drop; a rerun replays every line for free."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1), cs(2), cs(3))
    argv = ["run", str(jobs), "--journal", str(tmp_path / "run.db"), "--time-scale", str(SCALE)]
    first_out, second_out = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    initial = sim.balance()  # read while the simulator is idle
    assert main([*argv, "--out", str(first_out), "--progress", "off"]) == EXIT_OK
    lines = capsys.readouterr().err.splitlines()
    first = read_results(first_out)
    charged = sum(r["credits"] for r in first.values())
    assert charged > 0
    assert f"balance: {initial:,} before, {initial - charged:,} after" in lines
    assert f"credits charged: {charged:,} in this run (character swaps)" in lines
    assert not any(line.startswith("replayed from the journal") for line in lines)
    for record in first.values():
        assert record["replayed"] is False
        assert record["attempts"] == 1
        assert when(record["submitted_at"]) < when(record["finished_at"])

    assert main([*argv, "--out", str(second_out), "--progress", "off"]) == EXIT_OK
    lines = capsys.readouterr().err.splitlines()
    second = read_results(second_out)
    assert "replayed from the journal: 3 (nothing sent for them)" in lines
    assert "credits charged: 0 in this run (character swaps)" in lines
    assert f"credits replayed: {charged:,} (charged by earlier runs)" in lines
    assert "rate: 0.0 jobs/s (this run's outcomes)" in lines
    remaining = initial - charged
    assert f"balance: {remaining:,} before, {remaining:,} after" in lines
    assert all(r["replayed"] is True for r in second.values())
    for key, record in second.items():
        # When the first run's journal recorded the outcome, not when it was replayed.
        replayed_at = when(record["finished_at"])
        assert when(first[key]["submitted_at"]) <= replayed_at <= when(first[key]["finished_at"])


def test_cli_summary_counts_webhooks_when_a_receiver_was_used(
    tmp_path: Path, sim: AkoolSimulator, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With --webhook-url the summary says how many deliveries were accepted and rejected."""
    from test_cli import free_port  # noqa: PLC0415 - a helper of the CLI tests

    monkeypatch.setenv("AKOOL_CLIENT_ID", sim.client_id)
    port = free_port()
    url = f"http://127.0.0.1:{port}/akool/webhook"
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1), cs(2))
    argv = ["run", str(jobs), "--out", str(tmp_path / "r.jsonl"), "--time-scale", str(SCALE)]
    argv += ["--webhook-url", url, "--webhook-listen", f"127.0.0.1:{port}", "--progress", "off"]
    assert main(argv) == EXIT_OK
    lines = capsys.readouterr().err.splitlines()
    row = next(line for line in lines if line.startswith("webhooks: "))
    accepted = int(row.split()[1])
    assert accepted >= 1  # at least one terminal event reached the receiver and was verified
    assert row == f"webhooks: {accepted} accepted, 0 rejected"
    assert json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])["ok"] is True
