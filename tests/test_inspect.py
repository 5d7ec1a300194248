"""``akool-async journal``: summary, JSON and export of a real SQLite journal, read-only."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import anyio
import pytest

import akool_async as akool
from akool_async._cli import main
from akool_async._cli._journal import (
    ReadOnlyJournal,
    export_jsonl,
    format_summary,
    journal_summary,
    summary_to_json,
)
from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._errors import SubmissionUncertainError, TaskFailedError
from akool_async._store import JobState, Journal

pytestmark = pytest.mark.anyio

COMPLETED_RAW = {
    "_id": "task-done",
    "video_status": 3,
    "video": "https://cdn.test/out/done.mp4",
    "deduction_credit": 15,
    "create_time": 1_700_000_000_000,
    "update_time": 1_700_000_090_000,
}


def _swap(i: int) -> akool.CharacterSwap:
    return akool.CharacterSwap(f"https://x.test/face-{i}.png", "https://x.test/v.mp4", duration=9)


async def _begin(journal: Journal, key: str, i: int) -> None:
    req = _swap(i)
    await journal.begin(
        key,
        kind="character_swap",
        fingerprint=request_fingerprint(req),
        request=request_to_dict(req),
    )


async def fill(journal: Journal) -> None:
    """Put one job in every state into ``journal`` through its public API."""
    for i, key in enumerate(("p", "s", "c", "done", "done2", "bad", "lost", "no")):
        await _begin(journal, key, i)
    for key in ("s", "c", "done", "done2", "bad", "lost"):
        await journal.mark_sending(key)
    await journal.mark_created("c", "task-c")
    await journal.mark_created("done", "task-done")
    await journal.mark_completed("done", COMPLETED_RAW)
    await journal.mark_created("done2", "task-done2")
    await journal.mark_completed("done2", {**COMPLETED_RAW, "_id": "task-done2"})
    await journal.mark_created("bad", "task-bad")
    failed_raw = {"_id": "task-bad", "video_status": 4, "faceswap_fail_reason": "no face <found>"}
    await journal.mark_failed("bad", failed_raw, TaskFailedError("task failed: no face <found>"))
    await journal.mark_uncertain("lost", SubmissionUncertainError("the create's answer was lost"))
    await journal.mark_rejected("no", ValueError("image URL refused"))


async def _make_journal(path: Path) -> None:
    async with Journal(path) as journal:
        await fill(journal)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "run.db"
    anyio.run(_make_journal, path, backend="asyncio")
    return path


async def test_summary_counts_credits_uncertain_and_failures(journal_path: Path) -> None:
    """The summary counts every state, adds completed credits and lists the jobs to look at."""
    async with await ReadOnlyJournal.open(journal_path) as journal:
        summary = await journal_summary(journal)
    assert dict(summary.counts) == {
        JobState.PENDING: 1,
        JobState.SENDING: 1,
        JobState.CREATED: 1,
        JobState.COMPLETED: 2,
        JobState.FAILED: 1,
        JobState.UNCERTAIN: 1,
        JobState.REJECTED: 1,
    }
    assert summary.total == 8
    assert summary.credits_charged == 30
    (lost,) = summary.uncertain
    assert lost.key == "lost"
    assert lost.fingerprint == request_fingerprint(_swap(6))
    assert lost.request == request_to_dict(_swap(6))
    assert (lost.error_type, lost.attempts) == ("SubmissionUncertainError", 1)
    assert [(f.key, f.state, f.task_id, f.error_type) for f in summary.failures] == [
        ("bad", JobState.FAILED, "task-bad", "TaskFailedError"),
        ("no", JobState.REJECTED, None, "ValueError"),
    ]
    text = format_summary(summary)
    assert "completed         2" in text
    assert "credits charged: 30" in text
    assert "https://x.test/face-6.png" in text  # the uncertain job's request
    assert "bad  failed task task-bad  TaskFailedError: task failed: no face <found>" in text


async def test_summary_json_is_plain_data(journal_path: Path) -> None:
    """The JSON form round-trips through json and names states by their values."""
    async with await ReadOnlyJournal.open(journal_path) as journal:
        data = summary_to_json(await journal_summary(journal))
    assert json.loads(json.dumps(data)) == data
    assert data["counts"]["uncertain"] == 1
    assert data["credits_charged"] == 30
    assert data["uncertain"][0]["request"]["image"] == "https://x.test/face-6.png"
    assert data["failures"][1] == {
        "key": "no",
        "kind": "character_swap",
        "state": "rejected",
        "task_id": None,
        "error": {"type": "ValueError", "message": "image URL refused"},
    }


async def test_summary_reads_while_a_batch_owns_the_journal(tmp_path: Path) -> None:
    """Reading takes no lock: it works while the journal is open for writing, and sees commits."""
    path = tmp_path / "live.db"
    async with Journal(path) as owner:
        await fill(owner)
        async with await ReadOnlyJournal.open(path) as reader:
            before = await journal_summary(reader)
            await owner.mark_completed("c", {**COMPLETED_RAW, "_id": "task-c"})
            after = await journal_summary(reader)
        await owner.mark_sending("p")  # the owner still writes after the reader has gone
    assert before.counts[JobState.COMPLETED] == 2
    assert after.counts[JobState.COMPLETED] == 3
    assert after.credits_charged == 45


async def test_export_writes_one_line_per_job(journal_path: Path) -> None:
    """Export writes every job in insertion order with its request, result, error and times."""
    out = io.StringIO()
    async with await ReadOnlyJournal.open(journal_path) as journal:
        assert await export_jsonl(journal, out) == 8
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["key"] for line in lines] == ["p", "s", "c", "done", "done2", "bad", "lost", "no"]
    done = lines[3]
    assert (done["state"], done["task_id"], done["credits"]) == ("completed", "task-done", 15)
    assert done["result"] == COMPLETED_RAW
    assert done["request"] == request_to_dict(_swap(3))
    assert done["updated_at"] >= done["created_at"] > 0
    assert lines[5]["error"]["type"] == "TaskFailedError"
    assert lines[0]["result"] is None


def test_command_prints_summary_json_and_export(
    journal_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command prints text, --json, and exports to --out, each with exit code 0."""
    assert main(["journal", str(journal_path)]) == 0
    assert "uncertain (1)" in capsys.readouterr().out
    assert main(["journal", str(journal_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 8
    out = tmp_path / "export.jsonl"
    assert main(["journal", str(journal_path), "export", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 8
    assert "wrote 8 job(s)" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing", "text", "foreign", "newer", "empty", "postgres"])
def test_command_bad_input_is_one_line_exit_2(
    case: str, tmp_path: Path, journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path that is not a readable journal gives exit 2 and one line on stderr."""
    path = tmp_path / f"{case}.db"
    if case == "text":
        path.write_text("not a database\n")
    elif case == "foreign":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (x)")
        conn.close()
    elif case == "newer":
        path = journal_path
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE journal_meta SET value = '99' WHERE name = 'schema_version'")
        conn.close()
    elif case == "empty":
        sqlite3.connect(path).close()
    arg = "postgresql://user:pw@db/x" if case == "postgres" else str(path)
    assert main(["journal", arg]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert "pw" not in err


def test_command_usage_errors_exit_2(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out without export and --json with export are refused with exit 2."""
    assert main(["journal", str(journal_path), "--out", "x.jsonl"]) == 2
    assert main(["journal", str(journal_path), "export", "--json"]) == 2
    assert main(["journal"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_akool_async_cli_routes_journal_and_report(
    journal_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`akool-async journal PATH` and `akool-async report PATH --html F` run through main()."""
    assert main(["journal", str(journal_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 8
    page = tmp_path / "run.html"
    assert main(["report", str(journal_path), "--html", str(page)]) == 0
    assert "uncertain" in page.read_text(encoding="utf-8").lower()
    assert main(["journal", str(tmp_path / "missing.db")]) == 2
    assert "Traceback" not in capsys.readouterr().err
