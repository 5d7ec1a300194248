"""What every job store shares, written once: ``async with``, begin's checks, the state machine.

:class:`StoreBase` implements the transition and update methods of
:class:`~akool_async._store.JobStore` (``mark_*``, ``record_error``, ``set_*``) as pure
changes of a :class:`JobRecord`. A store supplies :meth:`~StoreBase._apply`, which reads the
row, calls the change and writes the result back in one transaction, so the state check is
a compare-and-set (SQLite: ``BEGIN IMMEDIATE``; Postgres: ``FOR UPDATE``); ``_page`` (one
page of records, for ``records``/``iter_records``); and ``_aopen``/``aclose``.
"""

from __future__ import annotations

import abc
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from akool_async._errors import JournalConflictError, JournalStateError

from ._records import ALLOWED_FROM, KINDS, JobRecord, JobState, canonical_json, error_to_json

__all__ = ["StoreBase", "records_in_pages"]

_Change = Callable[[JobRecord], JobRecord]
_Store = TypeVar("_Store", bound="StoreBase")


class StoreBase(abc.ABC):
    """The part of a job store that does not depend on where records are kept.

    Transition methods raise :class:`JournalStateError` on an unknown key (from
    :meth:`_apply`) or an illegal transition, and return the record as committed.
    """

    @abc.abstractmethod
    async def _apply(self, key: str, change: _Change) -> JobRecord:
        """Read ``key``'s record, write ``change(record)`` back (stamped) in one transaction.

        Raises :class:`JournalStateError` when there is no such key; returns the new record.
        """

    @abc.abstractmethod
    async def _page(self, after: int, limit: int) -> list[JobRecord]:
        """Up to ``limit`` records with ``seq > after`` in ``seq`` order, in one short read."""

    @abc.abstractmethod
    async def _aopen(self) -> None:
        """Open the store (once); raises :class:`JournalStateError` if it was opened before."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Give up ownership and close. Idempotent."""

    async def __aenter__(self: _Store) -> _Store:
        await self._aopen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def records(self, states: Iterable[JobState | str] | None = None) -> list[JobRecord]:
        """All records (or those in ``states``) in insertion order."""
        return [rec async for rec in self.iter_records(states)]

    def iter_records(
        self, states: Iterable[JobState | str] | None = None, *, page_size: int = 1000
    ) -> AsyncIterator[JobRecord]:
        """Records (or those in ``states``) in insertion order, read ``page_size`` at a time.

        Each page is its own short read, so writers are never blocked by a slow consumer;
        records inserted while iterating appear if they come after the current page.
        """
        return records_in_pages(self._page, states, page_size)

    @staticmethod
    def _request_json(key: object, kind: str, request: Mapping[str, Any]) -> str:
        """Check ``begin``'s key and kind; the request as canonical JSON (TypeError if not JSON)."""
        if not isinstance(key, str):
            raise TypeError(f"journal key must be a str, got {type(key).__name__}")
        if not key:
            raise ValueError("journal key must not be empty")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        return canonical_json(dict(request))

    @staticmethod
    def _check_same_request(stored: JobRecord, kind: str, fingerprint: str) -> None:
        """Raise :class:`JournalConflictError` if ``stored`` was begun for another request."""
        if stored.fingerprint != fingerprint or stored.kind != kind:
            raise JournalConflictError(
                stored.key,
                kind=kind,
                fingerprint=fingerprint,
                stored_kind=stored.kind,
                stored_fingerprint=stored.fingerprint,
            )

    async def mark_sending(
        self, key: str, *, resubmit_uncertain: bool = False, retry_failed: bool = False
    ) -> JobRecord:
        """``pending``/``rejected`` -> ``sending``; committed before returning.

        Call it immediately before sending the create. From ``uncertain`` only with
        ``resubmit_uncertain=True`` (the caller accepts the risk of paying twice).
        Increments ``attempts`` and clears the stored error. ``retry_failed=True`` moves
        only a ``failed`` job (its task failed; Akool refunded it) to ``sending``, keeping
        the failed task's error (and so its id) until the new task is created.
        """
        if retry_failed:
            return await self._update(
                key,
                frozenset({JobState.FAILED}),
                lambda rec: attrs.evolve(
                    rec, state=JobState.SENDING, attempts=rec.attempts + 1, local_path=None
                ),
                "retry the failed task of",
            )

        def change(rec: JobRecord) -> JobRecord:
            if rec.state is JobState.UNCERTAIN and not resubmit_uncertain:
                raise JournalStateError(
                    f"job {key!r} is uncertain (its create may have created a task); "
                    "resending it needs resubmit_uncertain=True",
                    key=key,
                    state=rec.state.value,
                    target=JobState.SENDING.value,
                )
            return attrs.evolve(rec, attempts=rec.attempts + 1, error_json=None)

        return await self._transition(key, JobState.SENDING, change)

    async def mark_created(
        self, key: str, task_id: str, *, analysis_id: str | None = None
    ) -> JobRecord:
        """``sending`` -> ``created`` with the task id; committed before returning."""
        if not task_id:
            raise ValueError("task_id must be a non-empty str")

        def change(rec: JobRecord) -> JobRecord:
            # error_json is None here unless the job retries a failed task: then it keeps
            # that task's error (and id) as history.
            return attrs.evolve(rec, task_id=task_id, analysis_id=analysis_id or rec.analysis_id)

        return await self._transition(key, JobState.CREATED, change)

    async def mark_uncertain(self, key: str, error: BaseException) -> JobRecord:
        """``sending`` -> ``uncertain``: the create was sent and its answer lost."""
        error_json = error_to_json(error)
        return await self._transition(
            key, JobState.UNCERTAIN, lambda rec: attrs.evolve(rec, error_json=error_json)
        )

    async def mark_rejected(self, key: str, error: BaseException) -> JobRecord:
        """``pending``/``sending`` -> ``rejected``: a definite error, nothing was created."""
        error_json = error_to_json(error)
        return await self._transition(
            key, JobState.REJECTED, lambda rec: attrs.evolve(rec, error_json=error_json)
        )

    async def mark_completed(self, key: str, result_raw: Mapping[str, Any]) -> JobRecord:
        """``created`` -> ``completed`` with the result's raw data."""
        raw_json = canonical_json(dict(result_raw))
        return await self._transition(
            key,
            JobState.COMPLETED,
            lambda rec: attrs.evolve(rec, result_raw_json=raw_json, error_json=None),
        )

    async def mark_failed(
        self, key: str, result_raw: Mapping[str, Any] | None, error: BaseException
    ) -> JobRecord:
        """``created`` -> ``failed`` with the result's raw data and the error."""
        raw_json = None if result_raw is None else canonical_json(dict(result_raw))
        error_json = error_to_json(error)
        return await self._transition(
            key,
            JobState.FAILED,
            lambda rec: attrs.evolve(rec, result_raw_json=raw_json, error_json=error_json),
        )

    async def record_error(self, key: str, error: BaseException) -> JobRecord:
        """Store a non-terminal error (e.g. ``WaitTimeoutError``) on a ``created`` job.

        The state stays ``created``: the remote task may still finish, and a later run
        resumes polling it by id.
        """
        error_json = error_to_json(error)
        return await self._update(
            key,
            frozenset({JobState.CREATED}),
            lambda rec: attrs.evolve(rec, error_json=error_json),
            "record an error on",
        )

    async def set_analysis_id(self, key: str, analysis_id: str) -> JobRecord:
        """Store a finished head-swap analysis id before the create (``pending``/``rejected``).

        A resumed run can then skip re-analysing the video.
        """
        return await self._update(
            key,
            frozenset({JobState.PENDING, JobState.REJECTED}),
            lambda rec: attrs.evolve(rec, analysis_id=analysis_id),
            "set the analysis id of",
        )

    async def set_local_path(self, key: str, path: str | os.PathLike[str]) -> JobRecord:
        """Record where a ``completed`` job's output was downloaded."""
        local = os.fspath(path)
        return await self._update(
            key,
            frozenset({JobState.COMPLETED}),
            lambda rec: attrs.evolve(rec, local_path=local),
            "set the local path of",
        )

    async def _transition(self, key: str, target: JobState, change: _Change) -> JobRecord:
        """Move ``key`` to ``target`` if :data:`ALLOWED_FROM` permits, applying ``change``."""
        allowed = ALLOWED_FROM[target]

        def refuse(rec: JobRecord) -> JournalStateError:
            return JournalStateError(
                f"illegal journal transition for job {key!r}: {rec.state} -> {target} "
                f"(allowed from: {_names(allowed)})",
                key=key,
                state=rec.state.value,
                target=target.value,
            )

        return await self._checked(
            key, allowed, lambda rec: attrs.evolve(change(rec), state=target), refuse
        )

    async def _update(
        self, key: str, allowed: frozenset[JobState], change: _Change, what: str
    ) -> JobRecord:
        """Apply ``change`` to ``key`` if its state is in ``allowed`` (``what`` names it)."""

        def refuse(rec: JobRecord) -> JournalStateError:
            return JournalStateError(
                f"cannot {what} job {key!r} in state {rec.state} (allowed in: {_names(allowed)})",
                key=key,
                state=rec.state.value,
            )

        return await self._checked(key, allowed, change, refuse)

    async def _checked(
        self,
        key: str,
        allowed: frozenset[JobState],
        change: _Change,
        refuse: Callable[[JobRecord], JournalStateError],
    ) -> JobRecord:
        """Apply ``change`` inside the store's transaction, or raise ``refuse(record)``
        if the stored state is not in ``allowed`` (checked before anything changes)."""

        def checked(rec: JobRecord) -> JobRecord:
            if rec.state not in allowed:
                raise refuse(rec)
            return change(rec)

        return await self._apply(key, checked)


def _names(states: frozenset[JobState]) -> str:
    return ", ".join(sorted(s.value for s in states))


async def records_in_pages(
    read_page: Callable[[int, int], Awaitable[list[JobRecord]]],
    states: Iterable[JobState | str] | None,
    page_size: int,
) -> AsyncIterator[JobRecord]:
    """Records (or those in ``states``) in ``seq`` order, ``read_page(after_seq, limit)``
    giving the next ``page_size`` of them each time."""
    wanted = None if states is None else frozenset(JobState(s) for s in states)
    last = 0
    while True:
        batch = await read_page(last, page_size)
        if not batch:
            return
        for rec in batch:
            if wanted is None or rec.state in wanted:
                yield rec
        last = batch[-1].seq
