"""The summary printed at the end of a run (a box table on a terminal, else plain lines).

What this run did is kept apart from what it replayed from the journal: the rate, the time
left and the credits charged count this run's outcomes only.
"""

from __future__ import annotations

from ._common import Ui, format_duration
from ._jobs import Estimate
from ._progress import format_eta
from ._results import Tally

__all__ = ["credits_note", "format_balance", "print_summary", "summary_rows"]

Rows = list[tuple[str, str]]


def print_summary(
    ui: Ui,
    tally: Tally,
    est: Estimate,
    *,
    title: str,
    out: str | None,
    download_dir: str | None,
    journal: str | None,
) -> None:
    """Print the summary of a run titled ``title`` (``akool-async run``, ``... demo``)."""
    rows = summary_rows(tally, est, out=out, download_dir=download_dir, journal=journal)
    ui.table(f"{title}: {'interrupted' if tally.interrupted else 'summary'}", rows)


def summary_rows(
    tally: Tally,
    est: Estimate,
    *,
    out: str | None,
    download_dir: str | None,
    journal: str | None,
) -> Rows:
    """The ``(name, value)`` rows of the summary."""
    rows = _count_rows(tally)
    if download_dir is not None:
        rows.append(("downloaded", _downloads(tally, download_dir, journal)))
    rows += _credit_rows(tally, est)
    rows.append(("balance", format_balance(tally.balance_before, tally.balance_after)))
    if tally.webhooks is not None:
        hooks = tally.webhooks
        rows.append(("webhooks", f"{hooks.accepted} accepted, {hooks.rejected} rejected"))
    rows.append(("elapsed", format_duration(tally.elapsed)))
    rows.append(("rate", f"{tally.rate:.1f} jobs/s (this run's outcomes)"))
    left = tally.total - tally.done
    if left > 0:
        rows.append(("time left", format_eta(left, tally.rate) + " at this run's rate"))
    rows.append(("results", out if out not in (None, "-") else "stdout"))
    return rows


def format_balance(before: float | None, after: float | None) -> str:
    """``10,000 before, 9,880 after`` (``n/a`` for a balance that could not be read)."""

    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f}"

    if before is None and after is None:
        return "n/a"
    return f"{shown(before)} before, {shown(after)} after"


def _count_rows(tally: Tally) -> Rows:
    uncertain = f"{tally.uncertain}" + (" (check before resubmitting)" if tally.uncertain else "")
    rows = [
        ("jobs", f"{tally.total}"),
        ("completed", f"{tally.completed}"),
        ("failed", f"{tally.failed}"),
        ("uncertain", uncertain),
    ]
    if tally.replayed:
        rows.append(("replayed from the journal", f"{tally.replayed} (nothing sent for them)"))
    if tally.interrupted:
        rows.append(("no outcome yet", f"{tally.total - tally.done} (interrupted)"))
    if tally.errors:
        rows.append(("errors", ", ".join(f"{n} {k}" for k, n in tally.errors.most_common())))
    return rows


def _downloads(tally: Tally, download_dir: str, journal: str | None) -> str:
    saved = f"{tally.downloaded} file(s) in {download_dir}"
    failures = sum(tally.download_errors.values())
    if failures:
        saved += f"; {failures} not saved" + (
            " (re-run the same command to fetch only those)"
            if journal
            else " (their output_url is in the results)"
        )
    return saved


def _credit_rows(tally: Tally, est: Estimate) -> Rows:
    charged = f"{tally.credits:,.0f} in this run (character swaps"
    if tally.head_swaps_completed:
        charged += f"; head swaps: n/a, Akool reports no price for {tally.head_swaps_completed}"
    rows = [("credits charged", charged + ")")]
    if tally.replayed:
        replayed = f"{tally.replayed_credits:,.0f} (charged by earlier runs)"
        rows.append(("credits replayed", replayed))
    rows.append(("credits estimated", est.summary()))
    note = credits_note(tally, est)
    if note:
        rows.append(("credits note", note))
    return rows


def credits_note(tally: Tally, est: Estimate) -> str:
    """Why "credits charged" differs from "credits estimated" (empty when they agree)."""
    if round(tally.credits) == est.credits:
        return ""
    reasons = []
    if tally.replayed:
        reasons.append(
            f"{tally.replayed} outcome(s) replayed from the journal were charged by earlier runs"
        )
    if est.no_duration:
        reasons.append(
            f"{est.no_duration} character swap(s) without a duration are charged, not estimated"
        )
    if tally.failed or tally.uncertain or tally.interrupted:
        reasons.append("jobs without a completed outcome are estimated but not charged")
    reasons.append(
        "Akool charges every started 5 s of the video it actually made, "
        "which can differ from the duration stated"
    )
    return "they differ: " + "; ".join(reasons)
