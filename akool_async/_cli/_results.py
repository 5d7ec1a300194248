"""One JSON line per outcome, and the running count of a run's outcomes."""

from __future__ import annotations

import datetime
import json
import time
from collections import Counter
from typing import IO, TYPE_CHECKING, Any, Final

from akool_async import (
    AkoolError,
    CharacterSwap,
    HeadSwap,
    Outcome,
    SubmissionUncertainError,
    TaskFailedError,
)
from akool_async._converters import HEAD_SWAP_KIND, request_kind

from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BatchAbortedError, Ui

if TYPE_CHECKING:
    from akool_async import AkoolClient
    from akool_async.webhooks import WebhookStats

__all__ = [
    "NO_PRICE",
    "RECOVERY_SUFFIX",
    "ResultsWriter",
    "Tally",
    "iso_utc",
    "job_state",
    "outcome_record",
    "read_balance",
]

#: Appended to the results path for the append-only file of ids the results file missed.
RECOVERY_SUFFIX: Final = ".recovery.jsonl"

#: Shown as the credits of a head swap: Akool publishes no price and reports none.
NO_PRICE: Final = "n/a"


def outcome_record(outcome: Outcome, line: int | None) -> dict[str, Any]:
    """The JSON line written for one outcome (no secrets: errors are scrubbed by the client).

    ``credits`` is a number for character swaps, ``"n/a"`` for head swaps (no public price).
    ``submitted_at`` / ``finished_at`` are ISO 8601 UTC (or null), ``attempts`` the creates
    sent, ``replayed`` true when the outcome came from the journal (nothing sent this run).
    """
    job: object = outcome.job
    kind = request_kind(job) if isinstance(job, (CharacterSwap, HeadSwap)) else None
    result: Any = outcome.result
    err = outcome.error
    if result is None and isinstance(err, TaskFailedError):
        result = err.result
    status = getattr(result, "status", None)
    credits = NO_PRICE if kind == HEAD_SWAP_KIND else getattr(result, "credits", None)
    record: dict[str, Any] = {
        "key": outcome.key,
        "line": line,
        "kind": kind,
        "ok": outcome.ok,
        "task_id": outcome.task_id,
        "status": status.name.lower() if status is not None else None,
        "output_url": getattr(result, "output_url", None),
        "credits": credits,
        "failure_reason": getattr(result, "failure_reason", None),
        "error": None,
        "path": str(outcome.path) if outcome.path is not None else None,
        "download_error": None,
        "submitted_at": iso_utc(outcome.submitted_at),
        "finished_at": iso_utc(outcome.finished_at),
        "attempts": outcome.attempts,
        "replayed": outcome.replayed,
    }
    if err is not None:
        record["error"] = {
            "type": type(err).__name__,
            "message": str(err),
            "code": err.code,
            "http_status": err.http_status,
        }
    if outcome.download_error is not None:
        record["download_error"] = {
            "type": type(outcome.download_error).__name__,
            "message": str(outcome.download_error),
        }
    return record


def iso_utc(moment: datetime.datetime | None) -> str | None:
    """``2026-12-04T15:44:12.123456Z`` (UTC, ISO 8601), or None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


async def read_balance(client: AkoolClient) -> float | None:
    """The account's credit balance, or None when it cannot be read (shown as "n/a")."""
    try:
        return await client.get_credits()
    except AkoolError:
        return None


class Tally:
    """Outcomes of one run as they arrive; complete so far even when the run is cancelled.

    ``credits`` sums the character-swap credits of this run's outcomes; outcomes replayed
    from the journal are counted in ``replayed`` (and their credits in
    ``replayed_credits``). ``balance_before`` / ``balance_after`` and ``webhooks`` are
    filled by the run when known.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.completed = 0
        self.failed = 0
        self.uncertain = 0
        self.replayed = 0
        self.credits = 0.0
        self.replayed_credits = 0.0
        self.balance_before: float | None = None
        self.balance_after: float | None = None
        self.webhooks: WebhookStats | None = None
        self.head_swaps_completed = 0
        self.downloaded = 0
        self.download_errors: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.started = time.monotonic()
        self.elapsed = 0.0
        self.interrupted = False
        self.not_sent = 0
        self.abort: str | None = None  # why intake stopped (a BatchAbortedError's message)

    @property
    def done(self) -> int:
        """Jobs with an outcome."""
        return self.completed + self.failed + self.uncertain + self.not_sent

    @property
    def done_this_run(self) -> int:
        """Jobs with an outcome produced by this run (not replayed from the journal)."""
        return self.done - self.replayed

    @property
    def rate(self) -> float:
        """This run's outcomes per second (replayed ones excluded); 0.0 before any."""
        return self.done_this_run / self.elapsed if self.elapsed > 0 else 0.0

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        self.replayed += outcome.replayed
        if outcome.path is not None:
            self.downloaded += 1
        if outcome.download_error is not None:
            self.download_errors[type(outcome.download_error).__name__] += 1
        if outcome.ok:
            self.completed += 1
            if isinstance(outcome.job, HeadSwap):
                self.head_swaps_completed += 1
            value = getattr(outcome.result, "credits", None)
            if isinstance(value, (int, float)):
                if outcome.replayed:
                    self.replayed_credits += value
                else:
                    self.credits += value
            return
        self.errors[type(outcome.error).__name__] += 1
        if isinstance(outcome.error, BatchAbortedError):
            self.not_sent += 1
            self.abort = self.abort or str(outcome.error)
        elif isinstance(outcome.error, SubmissionUncertainError):
            self.uncertain += 1
        else:
            self.failed += 1

    @property
    def exit_code(self) -> int:
        """0 all completed (and saved), 1 some failed, uncertain or not saved, 130 interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        bad = self.failed or self.uncertain or self.not_sent or sum(self.download_errors.values())
        return EXIT_FAILED if bad else EXIT_OK


def job_state(outcome: Outcome) -> str:
    """``completed``, ``failed``, ``uncertain`` or ``not_sent`` (a stopped batch's jobs)."""
    if outcome.ok:
        return "completed"
    if isinstance(outcome.error, BatchAbortedError):
        return "not_sent"
    if isinstance(outcome.error, SubmissionUncertainError):
        return "uncertain"
    return "failed"


class ResultsWriter:
    """Writes result lines; once the results stream fails, keeps every paid id elsewhere.

    After the first failed write (disk full, file gone, closed pipe) each later line, and
    the one that failed, goes to ``<results>.recovery.jsonl`` (append-only) and every task
    id also to stderr as one line. ``failure`` says why the results stream broke.
    """

    def __init__(self, stream: IO[str], path: str | None, ui: Ui) -> None:
        self.stream = stream
        self.ui = ui
        self.recovery_path = None if path in (None, "-") else f"{path}{RECOVERY_SUFFIX}"
        self.failure: str | None = None
        self.recovery_failure: str | None = None
        self.recovered_ids = 0

    def write(self, record: dict[str, Any]) -> None:
        """One result line (flushed), or its recovery once the results stream has failed."""
        line = json.dumps(record) + "\n"
        if self.failure is None:
            try:
                self.stream.write(line)
                self.stream.flush()
            except OSError as exc:
                self.failure = exc.strerror or str(exc) or type(exc).__name__
            else:
                return
        self._recover(record, line)

    def _recover(self, record: dict[str, Any], line: str) -> None:
        task_id = record.get("task_id")
        if task_id:
            self.recovered_ids += 1
            self.ui.print(
                f"akool-async: paid task {task_id} (key {record.get('key')!r}): "
                f"{record.get('state')}"
            )
        if self.recovery_path is None or self.recovery_failure is not None:
            return
        try:
            with open(self.recovery_path, "a", encoding="utf-8", newline="\n") as recovery:
                recovery.write(line)
        except OSError as exc:
            self.recovery_failure = exc.strerror or str(exc) or type(exc).__name__

    def where_ids_are(self) -> str:
        """Where the ids the results stream missed are: the recovery file and/or stderr."""
        if self.recovery_path is not None and self.recovery_failure is None:
            return f"{self.recovery_path} and stderr"
        return "stderr above"
