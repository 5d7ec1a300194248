"""The PostgreSQL job store: the journal's states and rules, shared by a fleet of processes.

Same records, states, transitions, conflict checks and messages as the SQLite
:class:`~akool_async._store.Journal` (both inherit them from ``_base.StoreBase``), in tables
of one database (``akool_meta``, ``akool_jobs``, ``akool_members``, ``akool_events``,
``akool_rate``, ``akool_durations``; SQL in ``_postgres_sql``). What a fleet adds:

- **Leases.** Each process opening the store is a *member* (``host:pid:random``). A job is
  owned by one member until ``lease_until`` (server time); :meth:`PostgresStore.heartbeat`
  (every ``lease_ttl / 3``) renews this member's leases. :meth:`~PostgresStore.begin`,
  :meth:`~PostgresStore.claim`, :meth:`~PostgresStore.claim_next` and every write take a
  job only when it is unowned, its lease expired, or it is already ours; a job held by a
  live member raises :class:`JobLeasedError`. Taking over a ``sending`` job from another
  member makes it ``uncertain`` (its create may have gone out): never re-created.
- **Events, rate, durations, binding**: see ``_postgres_base``.

Each write is one transaction and is shielded from cancellation, as in the journal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, cast

import attrs

from akool_async._clock import Clock
from akool_async._errors import JournalError, JournalStateError, SubmissionUncertainError

from . import _postgres_sql as sql
from ._base import StoreBase
from ._postgres_base import DEFAULT_LEASE_TTL, DEFAULT_POOL_SIZE, PostgresDatabase
from ._postgres_db import Connection, Row
from ._records import ALLOWED_FROM, JobKind, JobRecord, JobState, canonical_json, error_to_json
from ._schema import row_to_record

__all__ = ["ALLOWED_FROM", "JobLease", "JobLeasedError", "PostgresStore", "canonical_json"]


class JobLeasedError(JournalError):
    """The job is owned by another live member of the fleet; this member must leave it."""

    def __init__(self, key: str, *, owner: str, lease_until: datetime | None) -> None:
        until = "?" if lease_until is None else lease_until.isoformat(timespec="seconds")
        super().__init__(f"job {key!r} is held by store member {owner} (lease until {until})")
        self.key = key
        self.owner = owner
        self.lease_until = lease_until


@attrs.frozen
class JobLease:
    """Who holds a job: ``owner`` (a member id or None), until when, and whether it lapsed."""

    owner: str | None
    lease_until: datetime | None
    expired: bool


def _record(row: Row) -> JobRecord:
    """A row of ``akool_jobs`` (the SQLite journal's column order) as a :class:`JobRecord`."""
    return row_to_record(tuple(row))


class PostgresStore(PostgresDatabase, StoreBase):
    """A job store in a PostgreSQL database, shared by every process that opens it.

    ::

        async with PostgresStore("postgresql://app@db/akool") as store:  # or: await .open()
            rec = await store.begin("order-17", kind="character_swap",
                                    fingerprint=fp, request=request_dict)

    Options: ``account`` (a digest of the credential, never the credential) and
    ``base_url`` bind the store on first open; ``lease_ttl`` (default 30 s) is how long a
    silent member keeps its jobs; ``member_id`` names this process (default
    ``host:pid:random``); ``pool_size`` connections; ``clock`` stamps
    ``created_at``/``updated_at``.
    """

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        account: str | None = None,
        base_url: str | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        member_id: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Clock | None = None,
    ) -> PostgresStore:
        """Connect, create the schema if missing and register this member.

        Raises :class:`JournalFormatError` for a newer schema, :class:`JournalBindingError`
        for another account or base URL, :class:`JournalError` if the server is unreachable.
        """
        store = cls(
            url,
            account=account,
            base_url=base_url,
            lease_ttl=lease_ttl,
            member_id=member_id,
            pool_size=pool_size,
            clock=clock,
        )
        return await store.__aenter__()  # opens it, as `async with store` would

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> JobRecord | None:
        """The record for ``key``, or None; any member may read any job."""
        row = await self._read(lambda conn: conn.fetchrow(sql.SELECT_ONE, key))
        return None if row is None else _record(row)

    async def get_by_task_id(self, task_id: str) -> JobRecord | None:
        """The record whose create returned ``task_id`` (the latest if several), or None."""
        row = await self._read(lambda conn: conn.fetchrow(sql.SELECT_BY_TASK_ID, task_id))
        return None if row is None else _record(row)

    async def _page(self, after: int, limit: int) -> list[JobRecord]:
        rows = await self._read(lambda conn: conn.fetch(sql.SELECT_PAGE, after, limit))
        return [_record(row) for row in rows]

    async def counts(self) -> dict[JobState, int]:
        """Number of records in every state (states with none give 0)."""
        rows = await self._read(lambda conn: conn.fetch(sql.SELECT_COUNTS))
        found = dict.fromkeys(JobState, 0)
        for state, n in rows:
            found[JobState(state)] = n
        return found

    async def records_for(self, keys: Iterable[str]) -> dict[str, JobRecord]:
        """The records of those ``keys`` that exist, by key (one query)."""
        rows = await self._read(lambda conn: conn.fetch(sql.SELECT_KEYS, list(keys)))
        return {row[1]: _record(row) for row in rows}

    async def lease(self, key: str) -> JobLease | None:
        """Who holds ``key`` now (None for an unknown key)."""
        row = await self._read(lambda conn: conn.fetchrow(sql.LEASE_OF, key))
        return None if row is None else JobLease(row[0], row[1], bool(row[2]))

    # ------------------------------------------------------------------ leases

    def _take(self, row: Row) -> JobRecord:
        """The record as this member may hold it; raises if a live member owns it.

        Taking a ``sending`` job from another member (dead, or released) makes it
        ``uncertain``: its create may have been sent, so it is never sent again silently.
        """
        rec = _record(row)
        owner: str | None = row["owner"]
        if owner == self._member:
            return rec
        if owner is not None and not row["expired"]:
            raise JobLeasedError(rec.key, owner=owner, lease_until=row["lease_until"])
        if rec.state is JobState.SENDING:
            error = SubmissionUncertainError(
                f"store member {owner or '(released)'} stopped while sending this create; "
                "a task may exist and may be charged"
            )
            return attrs.evolve(
                rec,
                state=JobState.UNCERTAIN,
                error_json=error_to_json(error),
                updated_at=self._clock.wall(),
            )
        return rec

    async def _store(self, conn: Connection, rec: JobRecord) -> None:
        await conn.execute(
            sql.UPDATE_JOB,
            rec.seq,
            rec.state.value,
            rec.task_id,
            rec.analysis_id,
            rec.result_raw_json,
            rec.error_json,
            rec.local_path,
            rec.attempts,
            rec.updated_at,
            self._member,
            self._lease_ttl,
        )

    async def _claim_rows(self, query: str, *args: object) -> list[JobRecord]:
        async def run(conn: Connection) -> list[JobRecord]:
            taken = [self._take(row) for row in await conn.fetch(query, *args)]
            for rec in taken:
                await self._store(conn, rec)
            return taken

        result: list[JobRecord] = await self._write(run)
        return result

    async def claim(self, keys: Iterable[str]) -> list[JobRecord]:
        """Take the jobs among ``keys`` that are free, lapsed or ours; skip the others.

        Rows another member is claiming at this instant are skipped (``SKIP LOCKED``), so
        members claiming the same keys at once split them. Returns the records taken.
        """
        return await self._claim_rows(sql.CLAIM_KEYS, list(keys), self._member)

    async def claim_next(self, limit: int) -> list[JobRecord]:
        """Take up to ``limit`` unfinished jobs (pending, sending, created) nobody holds.

        For taking over a dead member's work: created jobs resume polling by id, sending
        ones come back uncertain.
        """
        return await self._claim_rows(sql.CLAIM_NEXT, self._member, limit)

    async def release(self, keys: Iterable[str]) -> None:
        """Give up this member's leases on ``keys`` (others may take them at once)."""
        keys = list(keys)
        await self._write(lambda conn: conn.execute(sql.RELEASE_KEYS, self._member, keys))

    async def heartbeat(self) -> int:
        """Renew this member's registration and all its leases; returns the leases held.

        Also forgets members silent for ten leases.
        """

        async def run(conn: Connection) -> int:
            await conn.execute(sql.REGISTER_MEMBER, self._member, self._host, os.getpid())
            await conn.execute(sql.PRUNE_MEMBERS, self._lease_ttl)
            status = await conn.execute(sql.HEARTBEAT_JOBS, self._member, self._lease_ttl)
            return int(status.rsplit(" ", 1)[1])

        count: int = await self._write(run)
        return count

    async def keep_alive(self) -> None:
        """Heartbeat every ``lease_ttl / 3`` (on the store's clock) until cancelled."""
        while True:
            await self.heartbeat()
            await self._clock.sleep(self._lease_ttl / 3)

    # ------------------------------------------------------------------ writes

    async def begin(
        self, key: str, *, kind: JobKind, fingerprint: str, request: Mapping[str, Any]
    ) -> JobRecord:
        """Record a new ``pending`` job owned by this member, or take the stored one.

        Raises :class:`JournalConflictError` if ``key`` exists with another kind or
        fingerprint, :class:`JobLeasedError` if a live member holds it.
        """
        request_json = self._request_json(key, kind, request)
        now = self._clock.wall()

        async def run(conn: Connection) -> JobRecord:
            row = await conn.fetchrow(
                sql.INSERT_JOB, key, kind, fingerprint, JobState.PENDING.value, request_json,
                now, now, self._member, self._lease_ttl,
            )  # fmt: skip
            if row is not None:
                return _record(row)
            row = await conn.fetchrow(sql.SELECT_FOR_UPDATE, key)
            assert row is not None  # the conflict was on this key; rows are never deleted
            self._check_same_request(_record(row), kind, fingerprint)
            rec = self._take(row)
            await self._store(conn, rec)
            return rec

        result: JobRecord = await self._write(run)
        return result

    async def expect_download(self, key: str, facts: Mapping[str, Any]) -> None:
        """Record a download's facts (path, size, etag, sha256) before it is published."""
        text = json.dumps(dict(facts))
        await self._write(lambda conn: conn.execute(sql.PUT_DOWNLOAD, key, text))

    async def expected_download(self, key: str) -> dict[str, Any] | None:
        """The facts :meth:`expect_download` recorded for ``key``, or None."""
        text = await self._read(lambda conn: conn.fetchval(sql.GET_DOWNLOAD, key))
        return None if text is None else cast("dict[str, Any]", json.loads(text))

    async def _apply(self, key: str, change: Callable[[JobRecord], JobRecord]) -> JobRecord:
        now = self._clock.wall()

        async def run(conn: Connection) -> JobRecord:
            row = await conn.fetchrow(sql.SELECT_FOR_UPDATE, key)
            if row is None:
                raise JournalStateError(f"no job with key {key!r} in the journal", key=key)
            new = attrs.evolve(change(self._take(row)), updated_at=now)
            await self._store(conn, new)
            if new.state.is_terminal and new.task_id is not None:
                # Its outcome is recorded: the task's webhook events have done their job.
                await conn.execute(sql.DELETE_EVENTS, [new.task_id])
            return new

        result: JobRecord = await self._write(run)
        return result

    def __repr__(self) -> str:
        return f"PostgresStore({self._redacted!r}, {self._state}, member={self._member!r})"
