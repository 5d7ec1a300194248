"""Money safety at the process boundaries (issue #15), with real CLI processes.

Each case runs ``python -m akool_async run`` as a child against a simulator served from a
thread of this process and checks: no duplicate create (the simulator's counters), every
paid task id in the journal, the results file or the recovery file, one error line (no
traceback) and the documented exit code. Waits read the child's output; none sleeps.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from boundary_helpers import (
    ENDLESS_HEAD_SWAPS,
    FAST_DURATIONS,
    SCALE,
    Child,
    assert_one_line_error,
    cli_env,
    cs,
    hs,
    journal_ids,
    jsonl_ids,
    jsonl_records,
    paid_ids,
    run_cli,
    swap_creates,
    write_jobs,
)
from threaded_sim import ThreadedSimulator

from akool_async._cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from akool_async.testing import AkoolSimulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and locks")

FAST = ["--time-scale", str(SCALE), "--progress", "off"]
PLAIN = ["--time-scale", str(SCALE), "--progress", "plain", "--progress-interval", "0.01"]


@pytest.fixture
def sim() -> Iterator[AkoolSimulator]:
    """A fast simulator served from a thread."""
    with ThreadedSimulator(time_scale=SCALE, durations=FAST_DURATIONS) as simulator:
        yield simulator


def assert_no_id_lost(sim: AkoolSimulator, *places: Path, identical: int = 0) -> None:
    """Every task the simulator created is named by a journal, results or recovery file,
    and nothing was created twice (beyond ``identical`` requests that are two jobs)."""
    known: set[str] = set()
    for place in places:
        known |= journal_ids(place) if place.suffix == ".db" else jsonl_ids(place)
    lost = paid_ids(sim) - known
    assert not lost, f"{len(lost)} paid task id(s) written nowhere"
    assert sim.stats.duplicate_creates == identical


# ------------------------------------------------------------------ ownership and keys


def test_a_second_process_on_a_held_journal_is_refused_and_sends_nothing(
    tmp_path: Path,
) -> None:
    """An overlapping run on the same journal exits 2 naming the holder; it creates nothing."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(1), hs(2)])
    journal = tmp_path / "run.db"
    with ThreadedSimulator(time_scale=SCALE, durations=ENDLESS_HEAD_SWAPS) as sim:
        env = cli_env(sim)
        first = Child(["run", str(jobs), "--journal", str(journal), *PLAIN], env)
        try:
            first.wait_line("err", lambda line: "| 1 running," in line and " 1 completed," in line)
            before = swap_creates(sim)
            code, second = run_cli(["run", str(jobs), "--journal", str(journal), *FAST], env)
            after = swap_creates(sim)
        finally:
            first.kill()
        line = assert_one_line_error(second.err)
        assert code == EXIT_USAGE
        assert "is in use by host" in line
        assert f"pid {first.proc.pid}" in line
        assert after == before == 2
        assert_no_id_lost(sim, journal)


def test_keys_survive_comment_lines_added_on_top_between_two_runs(tmp_path: Path) -> None:
    """Keyless lines keyed by content: comments added on top, same journal, 0 new creates."""
    lines = [cs(1), cs(2), cs(2), hs(3)]  # two identical requests: two jobs, two keys
    jobs = write_jobs(tmp_path / "jobs.jsonl", lines)
    journal, out = tmp_path / "run.db", tmp_path / "results.jsonl"
    with ThreadedSimulator(time_scale=SCALE, durations=FAST_DURATIONS) as sim:
        env = cli_env(sim)
        argv = ["run", str(jobs), "--journal", str(journal), "--out", str(out), *FAST]
        code, _ = run_cli(argv, env)
        assert code == EXIT_OK
        first = {r["key"]: r["line"] for r in jsonl_records(out)}
        created = swap_creates(sim)
        write_jobs(jobs, ["# three comment lines", "#", "", *lines])
        code, child = run_cli(argv, env)
        assert code == EXIT_OK, child.err
        second = {r["key"]: r["line"] for r in jsonl_records(out)}
        assert swap_creates(sim) == created == 4
        assert_no_id_lost(sim, journal, out, identical=1)
    assert set(second) == set(first)
    assert len(first) == 4
    assert {k: line + 3 for k, line in first.items()} == second  # keys kept, lines moved


# ------------------------------------------------------------------ preflight


def test_a_download_dir_that_is_a_file_is_refused_before_any_create(
    tmp_path: Path, sim: AkoolSimulator
) -> None:
    """--download-dir naming a regular file: one line, exit 2, nothing sent."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(5)])
    videos = tmp_path / "videos"
    videos.write_text("not a directory")
    code, child = run_cli(["run", str(jobs), "--download-dir", str(videos), *FAST], cli_env(sim))
    assert code == EXIT_USAGE
    assert f"--download-dir {videos}" in assert_one_line_error(child.err)
    assert sim.stats.total_requests == 0


def test_a_download_dir_under_a_file_is_refused_before_any_create(
    tmp_path: Path, sim: AkoolSimulator
) -> None:
    """--download-dir whose parent is a regular file: one line, exit 2, nothing sent."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(1)])
    (tmp_path / "plain").write_text("a file")
    videos = tmp_path / "plain" / "videos"
    code, child = run_cli(["run", str(jobs), "--download-dir", str(videos), *FAST], cli_env(sim))
    assert code == EXIT_USAGE
    assert "--download-dir" in assert_one_line_error(child.err)
    assert sim.stats.total_requests == 0


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_lone_surrogate_is_refused_per_line_before_any_create(
    tmp_path: Path, sim: AkoolSimulator, dry_run: bool
) -> None:
    """A lone surrogate (valid JSON) in any string field or key is a line error, exit 2."""
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            cs(1),
            cs(2, prompt="caf\ud800"),
            hs(3, faces=[{"obj_id": 0, "img_url": "https://example.com/\udfff.png"}]),
            cs(4, key="k\ud800"),
        ],
    )
    argv = ["run", str(jobs), *FAST, *(["--dry-run"] if dry_run else [])]
    code, child = run_cli(argv, cli_env(sim))
    assert code == EXIT_USAGE
    text = "\n".join(child.err)
    assert "Traceback" not in text
    assert "line 2: CharacterSwap.prompt: must be valid Unicode text" in text
    assert "line 3: HeadSwap.faces[0].img_url: must be valid Unicode text" in text
    assert "line 4: key: must be valid Unicode text" in text
    assert "3 invalid line(s)" in child.err[-1]
    assert sim.stats.total_requests == 0


def test_a_balance_below_the_estimate_is_refused_with_both_numbers(tmp_path: Path) -> None:
    """Estimate 200 credits, balance 100: exit 2 naming both, no create; the flag skips it."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(10)])  # 10 x 20
    with ThreadedSimulator(time_scale=SCALE, durations=FAST_DURATIONS, credit=100) as sim:
        code, child = run_cli(["run", str(jobs), *FAST], cli_env(sim))
        assert code == EXIT_USAGE
        line = assert_one_line_error(child.err)
        assert "estimate (200 credits) exceeds the balance (100 credits)" in line
        assert swap_creates(sim) == 0
        out = tmp_path / "results.jsonl"
        argv = ["run", str(jobs), "--no-balance-check", "--out", str(out), *FAST]
        code, child = run_cli(argv, cli_env(sim))
        assert swap_creates(sim) > 0  # the check was skipped: the account ran dry instead
        assert code == EXIT_FAILED
        assert_no_id_lost(sim, out)


def test_a_wrong_key_with_the_balance_check_is_one_line_and_no_create(
    tmp_path: Path, sim: AkoolSimulator
) -> None:
    """The balance read fails with a wrong key: one line, exit 1, no create was sent."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(20)])
    code, child = run_cli(["run", str(jobs), *FAST], cli_env(sim, AKOOL_API_KEY="wrong-key-1"))
    assert code == EXIT_FAILED
    line = assert_one_line_error(child.err)
    assert "AuthenticationError" in line
    assert "nothing was sent" in line
    assert "wrong-key-1" not in "\n".join(child.err)
    assert swap_creates(sim) == 0


def test_a_wrong_key_fails_fast_with_one_line(tmp_path: Path, sim: AkoolSimulator) -> None:
    """Without the balance check, a wrong key stops intake: one line, not one per job."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(60)])
    out = tmp_path / "results.jsonl"
    argv = ["run", str(jobs), "--no-balance-check", "--concurrency", "2", "--out", str(out)]
    code, child = run_cli([*argv, *FAST], cli_env(sim, AKOOL_API_KEY="wrong-key-1"))
    assert code == EXIT_FAILED
    line = assert_one_line_error(child.err)
    assert line.startswith("akool-async: stopped:")
    assert "were not sent" in line
    states = [r["state"] for r in jsonl_records(out)]
    assert states.count("not_sent") >= 60 - 2
    assert swap_creates(sim) <= 2
    assert paid_ids(sim) == set()


@pytest.mark.parametrize("allow", [False, True], ids=["refused", "allowed"])
def test_max_credits_with_unpriced_jobs_needs_allow_unpriced(
    tmp_path: Path, sim: AkoolSimulator, allow: bool
) -> None:
    """Head swaps have no public price: --max-credits refuses them unless --allow-unpriced."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(1), hs(2), hs(3)])
    out = tmp_path / "results.jsonl"
    argv = ["run", str(jobs), "--max-credits", "1000", "--out", str(out), *FAST]
    code, child = run_cli([*argv, *(["--allow-unpriced"] if allow else [])], cli_env(sim))
    if allow:
        assert code == EXIT_OK, child.err
        assert swap_creates(sim) == 3
        assert_no_id_lost(sim, out)
        return
    assert code == EXIT_USAGE
    line = assert_one_line_error(child.err, starts="refusing to start")
    assert "2 job(s) without an estimate (2 head swap(s): no public price)" in line
    assert "--allow-unpriced" in line
    assert sim.stats.total_requests == 0


# ------------------------------------------------------------------ failure after payment


def stderr_paid_ids(err: list[str]) -> set[str]:
    """Task ids the CLI named on stderr after the results stream broke."""
    return {ln.split()[3] for ln in err if ln.startswith("akool-async: paid task ")}


def test_a_results_file_past_its_size_limit_keeps_every_paid_id(
    tmp_path: Path, sim: AkoolSimulator
) -> None:
    """Results file past its size limit (EFBIG) mid-run: intake stops, no paid id is lost.

    The size limit holds for the recovery file too, so how many ids it takes depends on
    how many jobs were running; the one error line must say truthfully where they are.
    """
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(400)])
    out = tmp_path / "results.jsonl"
    recovery = tmp_path / "results.jsonl.recovery.jsonl"
    argv = ["run", str(jobs), "--out", str(out), "--concurrency", "2", *FAST]
    code, child = run_cli(argv, cli_env(sim), fsize=32 * 1024)
    assert code == EXIT_FAILED
    line = assert_one_line_error(child.err)
    assert "the results file" in line
    assert swap_creates(sim) < 400  # intake stopped
    named = stderr_paid_ids(child.err)
    assert named, "no paid id was named after the results file failed"
    kept = jsonl_ids(recovery) if recovery.exists() else set()
    assert kept <= named
    assert (str(recovery) in line) == (kept == named), line
    lost = paid_ids(sim) - jsonl_ids(out) - named
    assert not lost, f"{len(lost)} paid task id(s) written nowhere"
    assert sim.stats.duplicate_creates == 0


def test_a_results_file_on_a_full_disk_sends_every_missed_id_to_the_recovery_file(
    tmp_path: Path, sim: AkoolSimulator
) -> None:
    """Results on a full disk (ENOSPC from the first line): every id in the recovery file."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(40)])
    out = tmp_path / "results.jsonl"
    out.symlink_to("/dev/full")
    recovery = tmp_path / "results.jsonl.recovery.jsonl"
    argv = ["run", str(jobs), "--out", str(out), "--concurrency", "2", *FAST]
    code, child = run_cli(argv, cli_env(sim))
    assert code == EXIT_FAILED
    line = assert_one_line_error(child.err)
    assert "the results file" in line
    assert str(recovery) in line
    assert jsonl_ids(recovery) == stderr_paid_ids(child.err)
    assert_no_id_lost(sim, recovery)


def test_a_full_journal_disk_keeps_every_paid_id(tmp_path: Path, sim: AkoolSimulator) -> None:
    """A journal on a 128 KiB tmpfs fills up mid-run: exit 1, one line, no paid id lost."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        journal, out = mount / "run.db", tmp_path / "results.jsonl"
        jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(400)])
        argv = ["run", str(jobs), "--journal", str(journal), "--out", str(out), *FAST]
        code, child = run_cli(argv, cli_env(sim))
        assert code == EXIT_FAILED
        assert_one_line_error(child.err)
        recovery = mount / "run.db.recovery.jsonl"
        assert_no_id_lost(sim, journal, out, recovery)
        assert swap_creates(sim) < 400  # intake stopped
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_ctrl_c_without_a_journal_writes_every_created_task_id(
    tmp_path: Path,
) -> None:
    """SIGINT with jobs still running and no journal: exit 130, their ids in the results."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [*(cs(i) for i in range(3)), hs(4), hs(5)])
    out = tmp_path / "results.jsonl"
    with ThreadedSimulator(time_scale=SCALE, durations=ENDLESS_HEAD_SWAPS) as sim:
        child = Child(["run", str(jobs), "--out", str(out), *PLAIN], cli_env(sim))
        try:
            child.wait_line("err", lambda line: " 3 completed," in line and "| 2 running," in line)
            child.signal(signal.SIGINT)
            code = child.finish()
        finally:
            child.kill()
        assert code == EXIT_INTERRUPTED
        records = jsonl_records(out)
        interrupted = {r["task_id"] for r in records if r.get("state") == "interrupted"}
        assert len(interrupted) == 2
        assert child.err[-1].startswith("interrupted:")
        assert str(out) in child.err[-1]
        assert "Traceback" not in "\n".join(child.err)
        assert_no_id_lost(sim, out)


def test_killed_between_download_and_journal_the_rerun_completes(
    tmp_path: Path, sim: AkoolSimulator
) -> None:
    """Files saved but their paths never journaled (a kill in between): the rerun exits 0."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(4)])
    journal, videos = tmp_path / "run.db", tmp_path / "videos"
    argv = ["run", str(jobs), "--journal", str(journal), "--download-dir", str(videos), *FAST]
    code, _ = run_cli(argv, cli_env(sim))
    assert code == EXIT_OK
    saved = sorted(p.name for p in videos.iterdir())
    # The state a SIGKILL after the rename and before the journal write leaves behind.
    with contextlib.closing(sqlite3.connect(journal)) as conn, conn:
        conn.execute("UPDATE jobs SET local_path = NULL")
    created = swap_creates(sim)
    out = tmp_path / "results.jsonl"
    code, child = run_cli([*argv, "--out", str(out)], cli_env(sim))
    assert code == EXIT_OK, child.err
    assert swap_creates(sim) == created
    assert sorted(p.name for p in videos.iterdir()) == saved
    assert all(r["ok"] and r["path"] for r in jsonl_records(out))
    assert_no_id_lost(sim, journal)


def test_a_journal_made_against_another_base_url_is_refused(
    tmp_path: Path, sim: AkoolSimulator
) -> None:
    """The same journal pointed at another server: one line, exit 2, nothing created there."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(i) for i in range(3)])
    journal = tmp_path / "run.db"
    argv = ["run", str(jobs), "--journal", str(journal), *FAST]
    assert run_cli(argv, cli_env(sim))[0] == EXIT_OK
    with ThreadedSimulator(time_scale=SCALE, durations=FAST_DURATIONS) as other:
        code, child = run_cli(argv, cli_env(other))
        assert code == EXIT_USAGE
        assert "was made for base URL" in assert_one_line_error(child.err)
        assert swap_creates(other) == 0
    assert_no_id_lost(sim, journal)


def test_retry_failed_recreates_only_failed_tasks(tmp_path: Path, sim: AkoolSimulator) -> None:
    """--retry-failed sends again the FAILED jobs, never the completed or uncertain ones."""
    failing = [cs(i, video=f"https://example.com/v{i}.mp4?fail=1&duration=8") for i in (7, 8)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(1), cs(2), *failing])
    journal, first_out, second_out = (tmp_path / n for n in ("run.db", "1.jsonl", "2.jsonl"))
    argv = ["run", str(jobs), "--journal", str(journal), *FAST]
    sim.inject("character_swap.create", "drop_after")  # the first create: uncertain
    assert run_cli([*argv, "--out", str(first_out)], cli_env(sim))[0] == EXIT_FAILED
    first = [r["state"] for r in jsonl_records(first_out)]
    failed, uncertain = first.count("failed"), first.count("uncertain")
    assert failed >= 1
    assert uncertain == 1
    created = swap_creates(sim)
    argv += ["--out", str(second_out), "--retry-failed"]
    code, child = run_cli(argv, cli_env(sim))
    assert code == EXIT_FAILED, child.err  # the fail=1 videos fail again
    assert swap_creates(sim) == created + failed
    assert sim.stats.duplicate_creates == failed  # refunded tasks, created again on purpose
    second = [r["state"] for r in jsonl_records(second_out)]
    assert second.count("uncertain") == uncertain  # reported again, never resent
    # Only the create whose answer was dropped after processing has an id known nowhere.
    lost = paid_ids(sim) - journal_ids(journal) - jsonl_ids(first_out, second_out)
    assert len(lost) <= uncertain


def test_retry_failed_without_a_journal_is_a_usage_error(
    tmp_path: Path, sim: AkoolSimulator
) -> None:
    """--retry-failed needs --journal: exit 2 with one clear line."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [cs(1)])
    code, child = run_cli(["run", str(jobs), "--retry-failed", *FAST], cli_env(sim))
    assert code == EXIT_USAGE
    assert "--retry-failed needs --journal" in assert_one_line_error(child.err, starts="--retry")
    assert sim.stats.total_requests == 0


def test_a_cut_last_line_is_not_read_as_a_record(tmp_path: Path) -> None:
    """Helper check: a results file cut mid-line yields its whole lines only."""
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"task_id": "a"}) + '\n{"task_id": "b', encoding="utf-8")
    assert jsonl_ids(path) == {"a"}
