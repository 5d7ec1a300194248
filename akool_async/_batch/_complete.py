"""Completion: a job's terminal value becomes its outcome, stored and downloaded.

With neither a journal nor a downloader the outcome is built and handed out at once;
otherwise the terminal value is written to the journal and the output downloaded first.
A job finished by an earlier run is replayed from its stored record.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import attrs

from akool_async._clock import Clock
from akool_async._converters import request_to_dict, result_from_raw
from akool_async._download import Downloaded, Downloader, DownloadError
from akool_async._errors import AkoolError, JournalError, TaskFailedError
from akool_async._journal import JobRecord, Journal
from akool_async._models import TaskStatus

from ._outcomes import Outcome, Request
from ._recovery import BatchStop, RecoveryLog, StoreGuard

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
    """Stores terminal values in the journal and downloads outputs (both optional).

    A store write that fails turns the outcome into a :class:`JournalError` carrying the
    task id (also in the recovery file); a download directory that fails locally keeps the
    result, records the id in the recovery file and stops intake.
    """

    def __init__(
        self,
        clock: Clock,
        journal: Journal | None,
        downloader: Downloader | None,
        guard: StoreGuard | None = None,
        stop: BatchStop | None = None,
    ) -> None:
        self._clock = clock
        self.journal = journal
        self._downloader = downloader
        self._stop = stop or BatchStop()
        self._guard = guard or StoreGuard(self._stop, RecoveryLog(None))

    def needs_io(self, outcome: Outcome) -> bool:
        """True when :meth:`finish` has work to do for ``outcome`` (else it is final)."""
        return self.journal is not None or (self._downloader is not None and outcome.ok)

    async def finish(self, outcome: Outcome, value: Any) -> Outcome:
        """Record the terminal ``value`` of ``outcome``'s job, then download its output."""
        journal, key = self.journal, outcome.key
        if journal is None:
            return await self.download(outcome)
        if isinstance(value, AkoolError):
            # Not terminal remotely (deadline, lost task): keep `created` so a rerun resumes.
            call, step = journal.record_error(key, value), "an error"
        elif value.status is TaskStatus.FAILED:
            assert outcome.error is not None
            call, step = journal.mark_failed(key, value.raw, outcome.error), "failed"
        else:
            call, step = journal.mark_completed(key, value.raw), "completed"
        try:
            await self._write(call, outcome, step)
        except JournalError as err:
            return Outcome(key=key, job=outcome.job, error=err, task_id=outcome.task_id)
        return await self.download(outcome)

    async def _write(self, call: Awaitable[Any], outcome: Outcome, step: str) -> None:
        await self._guard.write(
            call,
            key=outcome.key,
            step=step,
            task_id=outcome.task_id,
            request=request_to_dict(outcome.job),
        )

    async def replay(self, key: str, request: Request, record: JobRecord) -> Outcome:
        """The outcome an earlier run recorded, without any API request."""
        result = result_from_raw(record.kind, record.result_raw or {})
        outcome = outcome_for(key, request, result.id, result)
        if not outcome.ok:
            return outcome
        if record.local_path is not None and await anyio.Path(record.local_path).exists():
            return attrs.evolve(outcome, path=Path(record.local_path))
        saved = await self._saved_earlier(key)
        if isinstance(saved, Path):
            # Saved by a run that stopped before journaling it: the file is the download
            # whose size and sha256 were recorded right before it was published.
            return await self._recorded(attrs.evolve(outcome, path=saved))
        if saved is not None:
            return attrs.evolve(outcome, download_error=saved)
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

    async def _saved_earlier(self, key: str) -> Path | DownloadError | None:
        """The file a killed run published for ``key`` (None: no file, download it);
        a DownloadError when a file is at that path but is not that download."""
        if self._downloader is None or self.journal is None:
            return None
        target = self._downloader.path_for(key)
        if not await anyio.Path(target).exists():
            return None
        facts = await self.journal.expected_download(key)
        expected = None if facts is None else Downloaded.from_facts(facts)
        if expected is not None and expected.path == target:
            differs = await expected.matches()
            if differs is None:
                return target
        else:
            differs = "no download to this path was recorded in the journal"
        return DownloadError(
            f"{str(target)!r} already exists and is not this job's download ({differs}); "
            "move it away to download again",
            file=target,
        )

    async def download(self, outcome: Outcome) -> Outcome:
        """Save ``outcome``'s output (when it succeeded and downloads are on)."""
        if self._downloader is None or outcome.result is None:
            return outcome
        try:
            saved = await self._downloader.fetch(
                outcome.key, outcome.result, before_publish=self._expect(outcome)
            )
        except JournalError as err:  # the facts could not be recorded: nothing was published
            unrecorded = DownloadError(f"the download was not saved: {err}")
            return attrs.evolve(outcome, download_error=unrecorded)
        except DownloadError as err:
            if _local_failure(err):
                await self._directory_failed(outcome, err)
            return attrs.evolve(outcome, download_error=err)
        except OSError as exc:  # the directory itself (a file of that name, read-only ...)
            unusable = DownloadError(f"could not use the download directory: {exc}")
            unusable.__cause__ = exc
            await self._directory_failed(outcome, unusable)
            return attrs.evolve(outcome, download_error=unusable)
        return await self._recorded(attrs.evolve(outcome, path=saved.path))

    def _expect(self, outcome: Outcome) -> Callable[[Downloaded], Awaitable[None]] | None:
        """Records a download's facts before its file is published (with a journal)."""
        journal = self.journal
        if journal is None:
            return None

        async def expect(done: Downloaded) -> None:
            call = journal.expect_download(outcome.key, done.facts())
            await self._write(call, outcome, "a download about to be saved")

        return expect

    async def _recorded(self, outcome: Outcome) -> Outcome:
        """``outcome`` after its download path was journaled (the file is there either way)."""
        if self.journal is not None and outcome.path is not None:
            with contextlib.suppress(JournalError):
                await self._write(
                    self.journal.set_local_path(outcome.key, outcome.path), outcome, "a download"
                )
        return outcome

    async def _directory_failed(self, outcome: Outcome, err: DownloadError) -> None:
        """A paid output could not be saved locally: keep its id and stop intake."""
        await self._guard.recovery.append(
            key=outcome.key,
            task_id=outcome.task_id,
            kind="download",
            request=request_to_dict(outcome.job),
            error=err,
        )
        self._stop.stop(err)


def _local_failure(err: DownloadError) -> bool:
    """True when the local side failed (disk, permissions), not the server or the URL."""
    cause = err.__cause__
    return isinstance(cause, OSError) and not isinstance(cause, FileExistsError)
