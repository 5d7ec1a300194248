"""``akool-async journal PATH``: look inside a journal without disturbing the run that owns it.

The journal is opened read-only (SQLite ``mode=ro``, no ownership lock), so it can be read
while a batch writes it. :func:`journal_summary` counts jobs per state, adds up the credits
of completed jobs and lists the uncertain and failed jobs; :func:`export_jsonl` writes one
JSON line per job.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Final, Protocol, TextIO, TypeVar

import anyio
import anyio.to_thread
import attrs

from akool_async._converters import result_from_raw
from akool_async._errors import AkoolError
from akool_async._store import JobRecord, JobState, JournalError
from akool_async._store._base import records_in_pages
from akool_async._store._schema import inspect
from akool_async._store._sqlite import count_states, read_page

__all__ = [
    "FailedJob",
    "JournalSummary",
    "ReadOnlyJournal",
    "UncertainJob",
    "configure_journal_parser",
    "export_jsonl",
    "format_summary",
    "journal_main",
    "journal_summary",
    "record_credits",
    "record_to_json",
    "summary_to_json",
]

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
_PAGE_SIZE: Final = 1000
_T = TypeVar("_T")


class RecordSource(Protocol):
    """What the summary needs from a store: a :class:`~akool_async._store.JobStore` or
    a :class:`ReadOnlyJournal`."""

    @property
    def path(self) -> str: ...

    async def counts(self) -> dict[JobState, int]: ...

    def iter_records(
        self, states: Sequence[JobState | str] | None = None, *, page_size: int = _PAGE_SIZE
    ) -> AsyncIterator[JobRecord]: ...


class ReadOnlyJournal:
    """A journal file opened for reading only: no lock taken, nothing written.

    A running batch keeps writing while this reads (SQLite WAL readers never block the
    writer). Open it with :meth:`open`, close it with :meth:`aclose`. Raises
    :class:`JournalError` (or its subclass ``JournalFormatError``) for a missing file, a file
    that is not a journal, or one written by a newer schema.
    """

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self._path = path
        self._conn = conn
        self._limiter = anyio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> ReadOnlyJournal:
        """Open the journal at ``path`` read-only (blocking work runs in a thread)."""
        text = os.fspath(path)
        conn = await anyio.to_thread.run_sync(_connect_read_only, text)
        return cls(text, conn)

    @property
    def path(self) -> str:
        """The journal file's path as given."""
        return self._path

    async def aclose(self) -> None:
        """Close the connection. Idempotent."""
        await anyio.to_thread.run_sync(self._conn.close, limiter=self._limiter)

    async def __aenter__(self) -> ReadOnlyJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def counts(self) -> dict[JobState, int]:
        """Number of records in every state (states with none give 0)."""
        return await self._read(lambda: count_states(self._conn))

    def iter_records(
        self, states: Sequence[JobState | str] | None = None, *, page_size: int = _PAGE_SIZE
    ) -> AsyncIterator[JobRecord]:
        """Records (or those in ``states``) in insertion order, a page at a time."""
        return records_in_pages(self._page, states, page_size)

    async def _page(self, after: int, limit: int) -> list[JobRecord]:
        return await self._read(lambda: read_page(self._conn, after, limit))

    async def _read(self, fn: Callable[[], _T]) -> _T:
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self._path}: {type(exc).__name__}: {exc}") from exc


def _connect_read_only(path: str) -> sqlite3.Connection:
    if not os.path.exists(path):
        raise JournalError(f"journal {path} does not exist")
    if os.path.isdir(path):
        raise JournalError(f"journal {path} is a directory, not a journal file")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise JournalError(f"journal {path} cannot be opened: {exc}") from exc
    try:
        kind = inspect(conn, path)
    except BaseException:
        conn.close()
        raise
    if kind == "fresh":
        conn.close()
        raise JournalError(f"{path} is an empty SQLite database, not an akool-async journal")
    return conn


# --------------------------------------------------------------------------- summary


@attrs.frozen(kw_only=True)
class UncertainJob:
    """A job whose create was sent and never acknowledged: a task may exist and be charged."""

    key: str
    kind: str
    fingerprint: str
    request: Mapping[str, Any]
    attempts: int
    error_type: str | None
    error_message: str | None


@attrs.frozen(kw_only=True)
class FailedJob:
    """A job that ended ``failed`` (the task failed) or ``rejected`` (nothing was created)."""

    key: str
    kind: str
    state: JobState
    task_id: str | None
    error_type: str | None
    error_message: str | None


@attrs.frozen(kw_only=True)
class JournalSummary:
    """What a journal holds: counts per state, credits charged, jobs that need a look."""

    path: str
    counts: Mapping[JobState, int]
    credits_charged: int
    completed_without_credits: int  # completed jobs whose result states no charge (head swaps)
    uncertain: tuple[UncertainJob, ...]
    failures: tuple[FailedJob, ...]

    @property
    def total(self) -> int:
        """Number of jobs in the journal."""
        return sum(self.counts.values())


def record_credits(record: JobRecord) -> int | None:
    """Credits a completed record's result says were charged, or None when it does not say."""
    raw = record.result_raw
    if raw is None:
        return None
    try:
        credits = getattr(result_from_raw(record.kind, raw), "credits", None)
    except (AkoolError, ValueError, TypeError):
        credits = raw.get("deduction_credit")
    return credits if isinstance(credits, int) and not isinstance(credits, bool) else None


def _error_parts(record: JobRecord) -> tuple[str | None, str | None]:
    if record.error_json is None:
        return None, None
    try:
        data = json.loads(record.error_json)
    except ValueError:
        return None, record.error_json
    if not isinstance(data, Mapping):
        return None, str(data)
    return str(data.get("type", "")) or None, str(data.get("message", ""))


def _failure_message(record: JobRecord) -> tuple[str | None, str | None]:
    kind, message = _error_parts(record)
    if message:
        return kind, message
    raw = record.result_raw or {}
    reason = raw.get("faceswap_fail_reason") or raw.get("error_reason")
    return kind, (str(reason) if reason else message)


async def journal_summary(store: RecordSource) -> JournalSummary:
    """Read ``store`` (a :class:`ReadOnlyJournal` or any job store) into a summary."""
    counts = await store.counts()
    credits = 0
    without = 0
    uncertain: list[UncertainJob] = []
    failures: list[FailedJob] = []
    interesting = (JobState.COMPLETED, JobState.UNCERTAIN, JobState.FAILED, JobState.REJECTED)
    async for rec in store.iter_records(interesting):
        if rec.state is JobState.COMPLETED:
            charged = record_credits(rec)
            credits += charged or 0
            without += charged is None
            continue
        error_type, message = _failure_message(rec)
        if rec.state is JobState.UNCERTAIN:
            uncertain.append(
                UncertainJob(
                    key=rec.key,
                    kind=rec.kind,
                    fingerprint=rec.fingerprint,
                    request=rec.request,
                    attempts=rec.attempts,
                    error_type=error_type,
                    error_message=message,
                )
            )
        else:
            failures.append(
                FailedJob(
                    key=rec.key,
                    kind=rec.kind,
                    state=rec.state,
                    task_id=rec.task_id,
                    error_type=error_type,
                    error_message=message,
                )
            )
    return JournalSummary(
        path=store.path,
        counts={state: counts.get(state, 0) for state in JobState},
        credits_charged=credits,
        completed_without_credits=without,
        uncertain=tuple(uncertain),
        failures=tuple(failures),
    )


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def format_summary(summary: JournalSummary) -> str:
    """The summary as plain text lines (no colours, no box drawing)."""
    lines = [f"journal {summary.path}: {summary.total} job(s)"]
    lines.extend(f"  {state.value:<10} {summary.counts[state]:>8,}" for state in JobState)
    credits = f"credits charged: {summary.credits_charged:,}"
    if summary.completed_without_credits:
        credits += (
            f" (plus {summary.completed_without_credits:,} completed job(s) whose result "
            "states no charge)"
        )
    lines.append(credits)
    if summary.uncertain:
        lines.append(
            f"uncertain ({len(summary.uncertain)}): sent, never acknowledged; a task may exist "
            "and be charged. Check the Akool dashboard before re-running with "
            "--resubmit-uncertain"
        )
    for job in summary.uncertain:
        request = json.dumps(dict(job.request), sort_keys=True, ensure_ascii=False)
        lines.append(f"  {job.key}  {job.kind}  fingerprint {job.fingerprint[:16]}")
        lines.append(f"    request: {request}")
        if job.error_message:
            lines.append(f"    reason: {job.error_type}: {_one_line(job.error_message)}")
    if summary.failures:
        lines.append(f"failed or rejected ({len(summary.failures)}):")
    for fail in summary.failures:
        task = f" task {fail.task_id}" if fail.task_id else ""
        reason = f"{fail.error_type or 'error'}: {_one_line(fail.error_message)}"
        lines.append(f"  {fail.key}  {fail.state.value}{task}  {reason}")
    return "\n".join(lines)


def summary_to_json(summary: JournalSummary) -> dict[str, Any]:
    """The summary as plain JSON data (``json.dumps`` takes it as it is)."""
    return {
        "path": summary.path,
        "total": summary.total,
        "counts": {state.value: summary.counts[state] for state in JobState},
        "credits_charged": summary.credits_charged,
        "completed_without_credits": summary.completed_without_credits,
        "uncertain": [
            {
                "key": job.key,
                "kind": job.kind,
                "fingerprint": job.fingerprint,
                "request": dict(job.request),
                "attempts": job.attempts,
                "error": None
                if job.error_type is None and job.error_message is None
                else {"type": job.error_type, "message": job.error_message},
            }
            for job in summary.uncertain
        ],
        "failures": [
            {
                "key": fail.key,
                "kind": fail.kind,
                "state": fail.state.value,
                "task_id": fail.task_id,
                "error": {"type": fail.error_type, "message": fail.error_message},
            }
            for fail in summary.failures
        ],
    }


def record_to_json(record: JobRecord) -> dict[str, Any]:
    """One journal record as plain JSON data (timestamps in seconds since the epoch)."""
    error: Any = None
    if record.error_json is not None:
        try:
            error = json.loads(record.error_json)
        except ValueError:
            error = {"type": None, "message": record.error_json}
    return {
        "key": record.key,
        "kind": record.kind,
        "state": record.state.value,
        "task_id": record.task_id,
        "analysis_id": record.analysis_id,
        "fingerprint": record.fingerprint,
        "attempts": record.attempts,
        "request": record.request,
        "result": record.result_raw,
        "error": error,
        "credits": record_credits(record),
        "local_path": record.local_path,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


async def export_jsonl(store: RecordSource, out: TextIO) -> int:
    """Write one JSON line per job of ``store`` to ``out``, in insertion order; return the
    number of lines."""
    written = 0
    async for rec in store.iter_records():
        out.write(json.dumps(record_to_json(rec), ensure_ascii=False) + "\n")
        written += 1
    return written


# --------------------------------------------------------------------------- command


def configure_journal_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``PATH [export] [--json] [--out FILE]`` to ``parser`` (a sub-command's parser)."""
    parser.add_argument("path", metavar="PATH", help="journal file (SQLite) of a run")
    parser.add_argument(
        "action",
        nargs="?",
        choices=["export"],
        metavar="export",
        help="write every job as one JSON line instead of the summary",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--out", metavar="FILE", help="with export: write here (default stdout)")
    return parser


def _usage_problem(args: argparse.Namespace) -> str | None:
    if str(args.path).startswith(("postgresql://", "postgres://")):
        return "a postgresql:// job store is not available yet; pass a SQLite journal path"
    if args.action == "export" and args.json:
        return "--json is for the summary; export always writes JSON lines"
    if args.action != "export" and args.out is not None:
        return "--out goes with export: akool-async journal PATH export --out FILE"
    return None


async def _export(journal: ReadOnlyJournal, out_path: str | None) -> int:
    if out_path is None:
        await export_jsonl(journal, sys.stdout)
        return EXIT_OK
    try:
        with open(out_path, "w", encoding="utf-8") as out:  # noqa: ASYNC230 (a local file)
            count = await export_jsonl(journal, out)
    except OSError as exc:
        sys.stderr.write(f"akool-async: cannot write {out_path}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    sys.stderr.write(f"akool-async: wrote {count} job(s) to {out_path}\n")
    return EXIT_OK


async def journal_main(args: argparse.Namespace) -> int:
    """Run ``akool-async journal`` for arguments parsed by :func:`configure_journal_parser`."""
    problem = _usage_problem(args)
    if problem is not None:
        sys.stderr.write(f"akool-async journal: {problem}\n")
        return EXIT_USAGE
    try:
        journal = await ReadOnlyJournal.open(args.path)
    except JournalError as exc:
        sys.stderr.write(f"akool-async: {exc.message}\n")
        return EXIT_USAGE
    try:
        if args.action == "export":
            return await _export(journal, args.out)
        summary = await journal_summary(journal)
    except JournalError as exc:
        sys.stderr.write(f"akool-async: {exc.message}\n")
        return EXIT_USAGE
    finally:
        await journal.aclose()
    if args.json:
        print(json.dumps(summary_to_json(summary), indent=2, ensure_ascii=False))
    else:
        print(format_summary(summary))
    return EXIT_OK
