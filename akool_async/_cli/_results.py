"""One JSON line per outcome, and the running count of a run's outcomes."""

from __future__ import annotations

import datetime
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

from akool_async import (
    AkoolError,
    CharacterSwap,
    HeadSwap,
    Outcome,
    SubmissionUncertainError,
    TaskFailedError,
)
from akool_async._converters import HEAD_SWAP_KIND, request_kind

from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

if TYPE_CHECKING:
    from akool_async import AkoolClient
    from akool_async.webhooks import WebhookStats

__all__ = ["NO_PRICE", "Tally", "iso_utc", "outcome_record", "read_balance"]

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

    @property
    def done(self) -> int:
        """Jobs with an outcome."""
        return self.completed + self.failed + self.uncertain

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
        if isinstance(outcome.error, SubmissionUncertainError):
            self.uncertain += 1
        else:
            self.failed += 1

    @property
    def exit_code(self) -> int:
        """0 all completed (and saved), 1 some failed, uncertain or not saved, 130 interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        bad = self.failed or self.uncertain or sum(self.download_errors.values())
        return EXIT_FAILED if bad else EXIT_OK
