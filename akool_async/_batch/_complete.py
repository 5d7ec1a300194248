"""Completion: a job's terminal value becomes its outcome, stored and downloaded.

With neither a journal nor a downloader the outcome is built and handed out at once;
otherwise the terminal value is written to the journal and the output downloaded first.
A job finished by an earlier run is replayed from its stored record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import attrs

from akool_async._clock import Clock
from akool_async._converters import result_from_raw
from akool_async._download import Downloader, DownloadError
from akool_async._errors import AkoolError, TaskFailedError
from akool_async._journal import JobRecord, Journal
from akool_async._models import TaskStatus

from ._outcomes import Outcome, Request

__all__ = ["Completion"]

#: Akool deletes character-swap outputs after 7 days; warn a day ahead.
EXPIRY_WARNING_AGE = 6 * 24 * 3600.0

_logger = logging.getLogger("akool_async")


def outcome_for(key: str, request: Request, task_id: str, value: Any) -> Outcome:
    """The outcome of a terminal result, or of the error that ended the job's polling."""
    if isinstance(value, AkoolError):
        return Outcome(key=key, job=request, error=value, task_id=task_id)
    if value.status is TaskStatus.FAILED:
        err = TaskFailedError(
            f"task failed: {value.failure_reason or 'no reason given'}",
            result=value,
            task_id=task_id,
        )
        return Outcome(key=key, job=request, error=err, task_id=task_id)
    return Outcome(key=key, job=request, result=value, task_id=task_id)


class Completion:
    """Stores terminal values in the journal and downloads outputs (both optional)."""

    def __init__(
        self, clock: Clock, journal: Journal | None, downloader: Downloader | None
    ) -> None:
        self._clock = clock
        self.journal = journal
        self._downloader = downloader

    def needs_io(self, outcome: Outcome) -> bool:
        """True when :meth:`finish` has work to do for ``outcome`` (else it is final)."""
        return self.journal is not None or (self._downloader is not None and outcome.ok)

    async def finish(self, outcome: Outcome, value: Any) -> Outcome:
        """Record the terminal ``value`` of ``outcome``'s job, then download its output."""
        journal, key = self.journal, outcome.key
        if journal is None:
            pass
        elif isinstance(value, AkoolError):
            # Not terminal remotely (deadline, lost task): keep `created` so a rerun resumes.
            await journal.record_error(key, value)
        elif value.status is TaskStatus.FAILED:
            assert outcome.error is not None
            await journal.mark_failed(key, value.raw, outcome.error)
        else:
            await journal.mark_completed(key, value.raw)
        return await self.download(outcome)

    async def replay(self, key: str, request: Request, record: JobRecord) -> Outcome:
        """The outcome an earlier run recorded, without any API request."""
        result = result_from_raw(record.kind, record.result_raw or {})
        outcome = outcome_for(key, request, result.id, result)
        if not outcome.ok:
            return outcome
        if record.local_path is not None and await anyio.Path(record.local_path).exists():
            return attrs.evolve(outcome, path=Path(record.local_path))
        age = self._clock.wall() - record.updated_at
        if age > EXPIRY_WARNING_AGE:
            _logger.warning(
                "job %r (task %s) completed %.1f days ago and its output was never "
                "downloaded: Akool deletes outputs after 7 days",
                key,
                result.id,
                age / 86400,
            )
        return await self.download(outcome)

    async def download(self, outcome: Outcome) -> Outcome:
        """Save ``outcome``'s output (when it succeeded and downloads are on)."""
        if self._downloader is None or outcome.result is None:
            return outcome
        try:
            path = await self._downloader.download(outcome.key, outcome.result)
        except DownloadError as err:
            return attrs.evolve(outcome, download_error=err)
        if self.journal is not None:
            await self.journal.set_local_path(outcome.key, path)
        return attrs.evolve(outcome, path=path)
