"""The rows of a run report: one :class:`ReportRow` per job, from ``results.jsonl`` or a journal.

``results.jsonl`` lines (written by ``akool-async run``) and journal records (exported by
``akool-async journal PATH export`` or read from the journal) say the same things with
different fields; :func:`report_row` reads either into one shape.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = ["OUTCOMES", "ReportRow", "epoch_seconds", "report_row"]

#: Outcome -> label, in the order the report shows them.
OUTCOMES: Final = {
    "completed": "completed",
    "failed": "failed",
    "uncertain": "uncertain",
    "error": "other errors",
    "unfinished": "unfinished",
}

_JOURNAL_OUTCOMES: Final = {
    "completed": "completed",
    "failed": "failed",
    "uncertain": "uncertain",
    "rejected": "error",
}
# Epoch numbers above this are milliseconds (Akool's create_time/update_time).
_MILLISECONDS_FROM: Final = 1e11


@attrs.frozen(kw_only=True)
class ReportRow:
    """One job as the report shows it; times are seconds since the epoch (or None)."""

    key: str
    kind: str | None = None
    outcome: str  # a key of OUTCOMES
    task_id: str | None = None
    output_url: str | None = None
    path: str | None = None
    credits: int | None = None
    error_type: str | None = None
    reason: str | None = None
    download_error: str | None = None
    started: float | None = None
    finished: float | None = None
    attempts: int | None = None
    replayed: bool = False

    @property
    def duration(self) -> float | None:
        """Seconds from submission (or task creation) to the end, when both are known."""
        if self.started is None or self.finished is None or self.finished < self.started:
            return None
        return self.finished - self.started


def epoch_seconds(value: object) -> float | None:
    """A time as seconds since the epoch: a number (seconds or milliseconds) or ISO 8601."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return _iso_seconds(value)
    else:
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return number / 1000 if number > _MILLISECONDS_FROM else number


def _iso_seconds(text: str) -> float | None:
    try:
        stamp = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_fields(error: object) -> tuple[str | None, str | None]:
    if isinstance(error, Mapping):
        return _text(error.get("type")), _text(error.get("message"))
    return None, _text(error)


def _results_outcome(line: Mapping[str, Any], error_type: str | None) -> str:
    if line.get("ok") is True:
        return "completed"
    if error_type == "SubmissionUncertainError":
        return "uncertain"
    if line.get("status") == "failed" or error_type == "TaskFailedError":
        return "failed"
    return "error"


def _from_results_line(line: Mapping[str, Any]) -> ReportRow:
    error_type, message = _error_fields(line.get("error"))
    _, download_message = _error_fields(line.get("download_error"))
    started = epoch_seconds(line.get("submitted_at"))
    finished = epoch_seconds(line.get("finished_at"))
    if started is None or finished is None:  # the task's own times, when a line has them
        started = epoch_seconds(line.get("created_at")) or started
        finished = epoch_seconds(line.get("updated_at")) or finished
    return ReportRow(
        key=_text(line.get("key")) or "?",
        kind=_text(line.get("kind")),
        outcome=_results_outcome(line, error_type),
        task_id=_text(line.get("task_id")),
        output_url=_text(line.get("output_url")),
        path=_text(line.get("path")),
        credits=_integer(line.get("credits")),
        error_type=error_type,
        reason=_text(line.get("failure_reason")) or message,
        download_error=download_message,
        started=started,
        finished=finished,
        attempts=_integer(line.get("attempts")),
        replayed=line.get("replayed") is True,
    )


def _from_journal_record(record: Mapping[str, Any]) -> ReportRow:
    state = str(record.get("state"))
    outcome = _JOURNAL_OUTCOMES.get(state, "unfinished")
    result = record.get("result")
    result = result if isinstance(result, Mapping) else {}
    error_type, message = _error_fields(record.get("error"))
    reason = _text(result.get("faceswap_fail_reason")) or _text(result.get("error_reason"))
    # The journal's own times (one clock for every job: the run's), not the task's: head
    # swap results carry no update_time, and a simulator's task times are scaled.
    started = epoch_seconds(record.get("created_at"))
    finished = epoch_seconds(record.get("updated_at"))
    # Character Swap names its output "video" ("video_url" is the input); Head Swap "video_url".
    output = result.get("video" if record.get("kind") == "character_swap" else "video_url")
    return ReportRow(
        key=_text(record.get("key")) or "?",
        kind=_text(record.get("kind")),
        outcome=outcome,
        task_id=_text(record.get("task_id")),
        output_url=_text(output) if outcome == "completed" else None,
        path=_text(record.get("local_path")),
        credits=_integer(record.get("credits")),
        error_type=error_type,
        reason=reason or message,
        started=started,
        finished=finished if outcome != "unfinished" else None,
        attempts=_integer(record.get("attempts")),
    )


def report_row(data: Mapping[str, Any]) -> ReportRow:
    """A ``results.jsonl`` line, or a journal record as exported, as one :class:`ReportRow`."""
    if "state" in data and "ok" not in data:
        return _from_journal_record(data)
    return _from_results_line(data)
