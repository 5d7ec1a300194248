"""Job stores: where a batch records every job so that no paid task id is ever lost.

:class:`JobStore` is the interface the batch talks to; :class:`Journal` (one SQLite file,
one process at a time) is the embedded implementation. :func:`open_store` turns what the
user passed as ``journal=`` (a path, or a store already open) into a store.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from akool_async._errors import (
    JournalBindingError,
    JournalConflictError,
    JournalError,
    JournalFormatError,
    JournalHolder,
    JournalLockedError,
    JournalStateError,
)

from ._postgres import JobLeasedError, PostgresStore
from ._records import (
    JobKind,
    JobRecord,
    JobState,
    canonical_json,
    error_from_json,
    error_to_json,
)
from ._schema import SCHEMA_VERSION
from ._sqlite import DEFAULT_BUSY_TIMEOUT, Journal

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "JobKind",
    "JobLeasedError",
    "JobRecord",
    "JobState",
    "JobStore",
    "Journal",
    "JournalBindingError",
    "JournalConflictError",
    "JournalError",
    "JournalFormatError",
    "JournalHolder",
    "JournalLockedError",
    "JournalStateError",
    "OpenStore",
    "PostgresStore",
    "StoreSpec",
    "canonical_json",
    "error_from_json",
    "error_to_json",
    "is_store_url",
    "open_store",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@runtime_checkable
class JobStore(Protocol):
    """What a batch needs from a job store (SQLite :class:`Journal` today, Postgres next).

    States and the only legal transitions (anything else raises
    :class:`JournalStateError` and changes nothing)::

        pending ──► sending ──► created ──► completed
           │           │           └──────► failed
           │           ├──► uncertain ──(resubmit_uncertain=True)──► sending
           └───────────┴──► rejected ──► sending
        failed ──(retry_failed=True)──► sending

    ``pending``: recorded, nothing sent. ``sending``: the create is about to leave.
    ``created``: the task id is known. ``completed``/``failed``: terminal remote status.
    ``uncertain``: the create was sent and its answer lost; a task may exist and be charged.
    ``rejected``: a definite error, nothing was created, so it may be sent again.

    Never pay twice, never lose an id — each implementation keeps these invariants:

    - Every write is durable when it returns, runs to its end even if the caller is
      cancelled (shielded), and checks the current state inside the same transaction
      as the change (compare-and-set), so two writers can never both move a job to
      ``sending``.
    - ``mark_sending`` is committed before the create leaves; ``mark_created`` right after
      it returns. A job found ``sending`` by a later run was maybe sent: it becomes
      ``uncertain``, never ``sending`` again without ``resubmit_uncertain=True``.
    - ``begin`` is idempotent for the same (kind, fingerprint) and raises
      :class:`JournalConflictError` for another one: a key never names two requests.
    - ``record_error`` keeps a job ``created`` (a deadline is not a state): a later run
      resumes polling by id.

    Ownership: opening a store makes the process its owner (SQLite: an exclusive OS lock,
    a second opener gets :class:`JournalLockedError`; Postgres: leases with heartbeats);
    :meth:`aclose` gives ownership up. ``bind`` ties the store to the account digest and
    base URL that made it (:class:`JournalBindingError` for others).
    """

    @property
    def path(self) -> str:
        """Where the store lives, for messages (a file path; never a password)."""
        ...

    async def bind(self, *, account: str | None = None, base_url: str | None = None) -> None:
        """Record or check the account digest and base URL this store works for."""
        ...

    async def get(self, key: str) -> JobRecord | None:
        """The record for ``key``, or None."""
        ...

    async def records(self, states: Iterable[JobState | str] | None = None) -> list[JobRecord]:
        """All records (or those in ``states``) in insertion order."""
        ...

    def iter_records(
        self, states: Iterable[JobState | str] | None = None, *, page_size: int = 1000
    ) -> AsyncIterator[JobRecord]:
        """Records (or those in ``states``) in insertion order, a page at a time."""
        ...

    async def counts(self) -> dict[JobState, int]:
        """Number of records in every state (states with none give 0)."""
        ...

    async def begin(
        self, key: str, *, kind: JobKind, fingerprint: str, request: Mapping[str, Any]
    ) -> JobRecord:
        """Record a new ``pending`` job, or return the stored one for the same request."""
        ...

    async def mark_sending(
        self, key: str, *, resubmit_uncertain: bool = False, retry_failed: bool = False
    ) -> JobRecord:
        """``pending``/``rejected`` (``uncertain`` with ``resubmit_uncertain``, ``failed``
        with ``retry_failed``) -> ``sending``."""
        ...

    async def mark_created(
        self, key: str, task_id: str, *, analysis_id: str | None = None
    ) -> JobRecord:
        """``sending`` -> ``created`` with the task id."""
        ...

    async def mark_uncertain(self, key: str, error: BaseException) -> JobRecord:
        """``sending`` -> ``uncertain``: the create was sent and its answer lost."""
        ...

    async def mark_rejected(self, key: str, error: BaseException) -> JobRecord:
        """``pending``/``sending`` -> ``rejected``: a definite error, nothing was created."""
        ...

    async def mark_completed(self, key: str, result_raw: Mapping[str, Any]) -> JobRecord:
        """``created`` -> ``completed`` with the result's raw data."""
        ...

    async def mark_failed(
        self, key: str, result_raw: Mapping[str, Any] | None, error: BaseException
    ) -> JobRecord:
        """``created`` -> ``failed`` with the result's raw data and the error."""
        ...

    async def record_error(self, key: str, error: BaseException) -> JobRecord:
        """Store a non-terminal error (e.g. a deadline) on a ``created`` job."""
        ...

    async def set_analysis_id(self, key: str, analysis_id: str) -> JobRecord:
        """Store a head-swap analysis id on a job not yet sent (``pending``/``rejected``)."""
        ...

    async def set_local_path(self, key: str, path: str | os.PathLike[str]) -> JobRecord:
        """Record where a ``completed`` job's output was downloaded."""
        ...

    async def expect_download(self, key: str, facts: Mapping[str, Any]) -> None:
        """Record a download's facts (``path``, ``size``, ``etag``, ``sha256``) right
        before its file is published, so a run killed before :meth:`set_local_path` can
        recognise that file (:meth:`expected_download`)."""
        ...

    async def expected_download(self, key: str) -> dict[str, Any] | None:
        """The facts :meth:`expect_download` recorded for ``key``, or None."""
        ...

    async def aclose(self) -> None:
        """Give up ownership and close. Idempotent."""
        ...


#: What ``journal=`` accepts: a SQLite path, a ``postgresql://`` URL, or an open store.
StoreSpec = str | os.PathLike[str] | JobStore


def is_store_url(spec: object) -> bool:
    """Whether ``spec`` names a PostgreSQL store (a ``postgresql://``/``postgres://`` URL)."""
    return isinstance(spec, str) and spec.startswith(_POSTGRES_SCHEMES)


class OpenStore:
    """What :func:`open_store` returns: ``await`` it for the store, or ``async with`` it to
    have a store it opened closed at the end (a store object passed in is never closed)."""

    def __init__(self, spec: StoreSpec, account: str | None, base_url: str | None) -> None:
        self._spec = spec
        self._account = account
        self._base_url = base_url
        self._store: JobStore | None = None

    def __await__(self) -> Generator[Any, None, JobStore]:
        return _open(self._spec, self._account, self._base_url).__await__()

    async def __aenter__(self) -> JobStore:
        self._store = await _open(self._spec, self._account, self._base_url)
        return self._store

    async def __aexit__(self, *exc_info: object) -> None:
        store, self._store = self._store, None
        if store is not None and store is not self._spec:
            await store.aclose()


def open_store(
    spec: StoreSpec, *, account: str | None = None, base_url: str | None = None
) -> OpenStore:
    """The job store for ``spec``: ``store = await open_store(...)`` or
    ``async with open_store(...) as store``.

    A path opens a SQLite :class:`Journal`, a ``postgresql://`` URL a
    :class:`PostgresStore` (asyncpg is imported only then: :class:`ConfigurationError`
    naming ``pip install 'akool-async[postgres]'`` when missing). A store object is used as
    given (``result is spec``) after :meth:`JobStore.bind`, and stays the caller's to close.
    ``account`` (a credential digest) and ``base_url`` bind a store on its first open.
    Any process may read any job: ``(await store.get(key)).state``, ``.result``, ``.error``.
    """
    return OpenStore(spec, account, base_url)


async def _open(spec: StoreSpec, account: str | None, base_url: str | None) -> JobStore:
    if is_store_url(spec):
        assert isinstance(spec, str)
        return await PostgresStore.open(spec, account=account, base_url=base_url)
    if isinstance(spec, (str, os.PathLike)):
        return await Journal.open(spec, account=account, base_url=base_url)
    if isinstance(spec, JobStore):
        await spec.bind(account=account, base_url=base_url)
        return spec
    raise TypeError(f"journal must be a path or a job store, got {type(spec).__name__}")
