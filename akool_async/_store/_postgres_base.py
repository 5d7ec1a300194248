"""Connection, schema, binding and the fleet-wide tables of the PostgreSQL job store.

:class:`PostgresDatabase` owns the pool, creates the schema on first open (under an
advisory lock, so concurrent first opens never race), checks the schema version and the
account/base-URL binding, registers this process as a *member*, and serves what members
share besides jobs: webhook events (stored, announced with NOTIFY, heard with LISTEN), a
token bucket per account for the fleet's request rate, and learned job durations.
:class:`~akool_async._store_postgres.PostgresStore` adds the jobs on top.

The URL may hold a password: it is redacted in ``path``, reprs and errors.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any, Final, Literal

import anyio
import attrs

from akool_async._clock import SYSTEM_CLOCK, Clock
from akool_async._errors import (
    ConfigurationError,
    JournalBindingError,
    JournalError,
    JournalFormatError,
    JournalStateError,
)

from . import _postgres_sql as sql
from ._postgres_db import (
    Connection,
    DatabaseErrors,
    Pool,
    connect,
    create_pool,
    database_errors,
)

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_POOL_SIZE",
    "POSTGRES_SCHEMA_VERSION",
    "Member",
    "PostgresDatabase",
    "StoredEvent",
    "positive_number",
    "redact_url",
    "url_password",
]

#: Schema version written by this code; a database with a higher one is refused.
POSTGRES_SCHEMA_VERSION: Final = 1
#: Seconds a lease lasts without a heartbeat (call heartbeat() every third of it).
DEFAULT_LEASE_TTL: Final = 30.0
#: Connections in the pool (LISTEN uses one more of its own per listener).
DEFAULT_POOL_SIZE: Final = 4


@attrs.frozen
class Member:
    """One process registered on the store; ``alive`` while it heartbeats within a lease."""

    id: str
    host: str
    pid: int
    started: datetime
    heartbeat: datetime
    alive: bool


@attrs.frozen
class StoredEvent:
    """A verified webhook event as stored: its id, task id, JSON text and receive time."""

    id: int
    task_id: str
    payload_json: str
    received: float


def redact_url(url: str) -> str:
    """``url`` with any password (in the user part or a ``password=`` query) as ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        user = urllib.parse.quote(parts.username or "", safe="")
        parts = parts._replace(netloc=f"{user}:***@{host}")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        hidden = [(n, "***" if n == "password" else v) for n, v in query]
        parts = parts._replace(query=urllib.parse.urlencode(hidden, safe="/*"))
    return urllib.parse.urlunsplit(parts)


def url_password(url: str) -> str | None:
    """The password in ``url`` (user part or ``password=`` query), if any."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        return urllib.parse.unquote(parts.password)
    found = dict(urllib.parse.parse_qsl(parts.query)).get("password")
    return found or None


def positive_number(name: str, value: float) -> float:
    """``value`` as a float, or ConfigurationError naming ``name``."""
    if not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"PostgresStore {name} must be a finite number > 0, got {value!r}")
    return float(value)


class PostgresDatabase:
    """The store's connection pool, schema, binding, members and fleet-wide tables."""

    def __init__(
        self,
        url: str,
        *,
        account: str | None = None,
        base_url: str | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        member_id: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Clock | None = None,
    ) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError(f"not a postgresql:// URL: {redact_url(url)!r}")
        self._url = url
        self._redacted = redact_url(url)
        self._account = account
        self._base_url = base_url
        self._lease_ttl = positive_number("lease_ttl", lease_ttl)
        self._pool_size = int(positive_number("pool_size", pool_size))
        self._host = socket.gethostname()
        self._member = member_id or f"{self._host}:{os.getpid()}:{secrets.token_hex(4)}"
        self._clock = clock or SYSTEM_CLOCK
        self._pool: Pool | None = None
        self._db_errors: DatabaseErrors = database_errors()
        self._listeners: set[Connection] = set()
        self._state: Literal["new", "opening", "open", "closed"] = "new"

    @property
    def path(self) -> str:
        """The store's URL with any password redacted."""
        return self._redacted

    @property
    def member_id(self) -> str:
        """This process's member id (the ``owner`` of the jobs it holds)."""
        return self._member

    @property
    def lease_ttl(self) -> float:
        """Seconds a lease lasts without a heartbeat."""
        return self._lease_ttl

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._state == "closed"

    async def _aopen(self) -> None:
        if self._state != "new":
            raise JournalStateError(f"store {self._redacted} was already opened")
        self._state = "opening"
        try:
            with anyio.CancelScope(shield=True):
                self._pool = await self._guard(create_pool(self._url, self._pool_size))
                self._state = "open"
                await self._write(self._prepare)
        except BaseException:
            await self.aclose()
            raise

    async def _prepare(self, conn: Connection) -> None:
        # The advisory lock serialises first opens by several processes (CREATE TABLE IF
        # NOT EXISTS alone still races in the catalogue).
        await conn.execute("SELECT pg_advisory_xact_lock($1)", sql.SCHEMA_LOCK)
        if await conn.fetchval("SELECT to_regclass('akool_meta')") is None:
            if await conn.fetchval("SELECT to_regclass('akool_jobs')") is not None:
                raise JournalFormatError(
                    f"{self._redacted} has an akool_jobs table but no akool_meta: not an "
                    "akool-async store; refusing to touch it",
                    path=self._redacted,
                )
            for statement in sql.SCHEMA_V1:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO akool_meta (name, value) VALUES ('schema_version', $1), "
                "('creator', 'akool-async')",
                str(POSTGRES_SCHEMA_VERSION),
            )
        meta = {row[0]: row[1] for row in await conn.fetch(sql.META)}
        self._check_version(meta.get("schema_version"))
        await conn.execute(sql.DOWNLOADS_TABLE)
        await conn.execute(sql.PRUNE_EVENTS)
        await self._bind_in(conn, meta, self._account, self._base_url)
        await conn.execute(sql.REGISTER_MEMBER, self._member, self._host, os.getpid())

    async def _bind_in(
        self, conn: Connection, meta: dict[str, str], account: str | None, base_url: str | None
    ) -> None:
        for name, value in (("account", account), ("base_url", base_url)):
            if value is None:
                continue
            stored = meta.get(name)
            if stored is None:
                await conn.execute(
                    "INSERT INTO akool_meta (name, value) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO NOTHING",
                    name,
                    value,
                )
            elif stored != value:
                raise JournalBindingError(self._redacted, name, stored=stored, given=value)

    async def bind(self, *, account: str | None = None, base_url: str | None = None) -> None:
        """Bind the open store to ``account``/``base_url`` as opening with them would.

        Raises :class:`JournalBindingError` if it was made for other values.
        """

        async def run(conn: Connection) -> None:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", sql.SCHEMA_LOCK)
            meta = {row[0]: row[1] for row in await conn.fetch(sql.META)}
            await self._bind_in(conn, meta, account, base_url)

        await self._write(run)

    def _check_version(self, text: str | None) -> None:
        try:
            version = int(text or "")
        except ValueError:
            raise JournalFormatError(
                f"{self._redacted}: store has no valid schema_version", path=self._redacted
            ) from None
        if version > POSTGRES_SCHEMA_VERSION:
            raise JournalFormatError(
                f"{self._redacted} was written by a newer akool-async (store schema "
                f"{version}; this version reads schema {POSTGRES_SCHEMA_VERSION}); upgrade "
                "akool-async to use it",
                path=self._redacted,
            )

    async def aclose(self) -> None:
        """Release this member's leases, close listeners and the pool. Idempotent."""
        if self._state == "closed":
            return
        was_open = self._state == "open"
        self._state = "closed"
        pool, self._pool = self._pool, None
        with anyio.CancelScope(shield=True):
            for conn in list(self._listeners):
                await self._close_quietly(conn)
            if pool is None:
                return
            try:
                if was_open:
                    # Released leases let other members take the jobs at once; a job left
                    # ``sending`` becomes uncertain when taken (its create may be out).
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute(sql.RELEASE_ALL, self._member)
                        await conn.execute(sql.REMOVE_MEMBER, self._member)
            except self._db_errors:
                pass  # unreachable server: the leases lapse by themselves
            finally:
                await pool.close()

    async def _close_quietly(self, conn: Connection) -> None:
        self._listeners.discard(conn)
        with suppress(*self._db_errors):  # already broken: nothing to release
            await conn.close()

    # ------------------------------------------------------------------ plumbing

    async def _guard(self, awaitable: Any) -> Any:
        """Await ``awaitable``, turning driver and network errors into JournalError."""
        try:
            return await awaitable
        except self._db_errors as exc:
            raise JournalError(f"store {self._redacted}: {self._describe(exc)}") from exc

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        password = url_password(self._url)
        return text.replace(password, "***") if password else text

    def _require_pool(self) -> Pool:
        if self._state != "open" or self._pool is None:
            word = "closed" if self._state == "closed" else "not open"
            raise JournalStateError(
                f"store {self._redacted} is {word}; use `async with await PostgresStore.open(url)`"
            )
        return self._pool

    async def _read(self, fn: Callable[[Connection], Any]) -> Any:
        pool = self._require_pool()

        async def run() -> Any:
            async with pool.acquire() as conn:
                return await fn(conn)

        return await self._guard(run())

    async def _write(self, fn: Callable[[Connection], Any]) -> Any:
        pool = self._require_pool()

        async def run() -> Any:
            async with pool.acquire() as conn, conn.transaction():
                return await fn(conn)

        # Shielded: once called, the transaction commits or rolls back as a whole.
        with anyio.CancelScope(shield=True):
            result = await self._guard(run())
        # Returned outside the block: mypy sees CancelScope.__exit__ as able to swallow.
        return result  # noqa: RET504

    async def held_elsewhere(self, keys: Iterable[str]) -> set[str]:
        """Those ``keys`` a live member other than this one holds (one query): the keys
        ``begin`` would refuse with ``JobLeasedError`` now."""
        ids = list(keys)
        rows = await self._read(lambda conn: conn.fetch(sql.HELD_ELSEWHERE, ids, self._member))
        return {row[0] for row in rows}

    async def members(self) -> list[Member]:
        """Every registered member, oldest first, with whether it is alive."""
        rows = await self._read(lambda conn: conn.fetch(sql.MEMBERS, self._lease_ttl))
        return [Member(*row) for row in rows]

    # ------------------------------------------------------------------ webhook events

    async def record_event(self, task_id: str, payload_json: str) -> int:
        """Store a verified webhook event and NOTIFY its task id; returns the event id.

        Kept whether or not a job has this task id yet: a later owner finds it with
        :meth:`pending_events`.
        """

        async def run(conn: Connection) -> int:
            row = await conn.fetchrow(sql.INSERT_EVENT, task_id, payload_json)
            assert row is not None
            return int(row[0])

        event_id: int = await self._write(run)
        return event_id

    async def pending_events(self, task_ids: Iterable[str]) -> list[StoredEvent]:
        """Stored events for ``task_ids``, oldest first."""
        ids = list(task_ids)
        rows = await self._read(lambda conn: conn.fetch(sql.EVENTS_FOR, ids))
        return [StoredEvent(*row) for row in rows]

    async def discard_events(self, task_ids: Iterable[str]) -> None:
        """Delete the stored events of ``task_ids`` (their jobs' outcomes are recorded)."""
        ids = list(task_ids)
        await self._write(lambda conn: conn.execute(sql.DELETE_EVENTS, ids))

    @asynccontextmanager
    async def listen(self, callback: Callable[[str], object]) -> AsyncIterator[None]:
        """Call ``callback(task_id)`` for every event stored by any member, while open.

        LISTEN runs on a dedicated connection; the callback runs in the event loop and
        must not block (set an ``anyio.Event``, put into a stream...).
        """
        self._require_pool()
        conn: Connection = await self._guard(connect(self._url))
        self._listeners.add(conn)

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            callback(payload)

        try:
            await self._guard(conn.add_listener(sql.NOTIFY_CHANNEL, on_notify))
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_quietly(conn)

    # ------------------------------------------------------------------ rate and durations

    async def take_tokens(
        self, account: str, rate: float, burst: float, count: int, *, recovery: float = 0.002
    ) -> tuple[int, float]:
        """Take up to ``count`` tokens of ``account``'s fleet-wide bucket in one transaction:
        ``(granted, wait)``, ``wait`` being the seconds until a token is due when none was.

        The bucket refills at ``rate * factor`` per second of server time up to ``burst``;
        each granted token adds ``recovery`` to the factor (additive increase up to 1).
        """
        rate, burst = positive_number("rate", rate), max(1.0, positive_number("burst", burst))
        args = (account, rate, burst, recovery, max(1, count))

        async def run(conn: Connection) -> tuple[float, float, float]:
            row = await conn.fetchrow(sql.TAKE_FROM_BUCKET, *args)
            if row is None:
                await conn.execute(sql.INSERT_RATE, account, burst)
                row = await conn.fetchrow(sql.TAKE_FROM_BUCKET, *args)
            assert row is not None
            return float(row[0]), float(row[1]), float(row[2])

        level, factor, granted = await self._write(run)
        return int(granted), 0.0 if granted else (1 - level) / (rate * factor)

    async def throttled(
        self, account: str, factor: float = 0.9, *, floor: float = 0.1, cooldown: float = 0.0
    ) -> float:
        """The server throttled ``account``: cut the fleet's rate factor; returns the factor.

        Multiplies the factor by ``factor`` (not below ``floor``) and empties the bucket;
        at most one cut per ``cooldown`` seconds, so one burst of refusals seen by many
        members cuts once.
        """

        async def run(conn: Connection) -> float:
            await conn.execute(sql.INSERT_RATE, account, 0.0)
            cut = await conn.fetchval(sql.THROTTLE, account, factor, floor, cooldown)
            if cut is None:
                cut = await conn.fetchval(
                    "SELECT factor FROM akool_rate WHERE account = $1", account
                )
            return float(cut)

        new_factor: float = await self._write(run)
        return new_factor

    async def rate_factor(self, account: str) -> float:
        """The fleet's current rate factor for ``account`` (1.0 when never throttled)."""
        found = await self._read(
            lambda conn: conn.fetchval("SELECT factor FROM akool_rate WHERE account = $1", account)
        )
        return 1.0 if found is None else float(found)

    async def record_duration(self, bucket: str, seconds: float) -> None:
        """Remember that a job of ``bucket`` took ``seconds`` (the latest 1024 are kept)."""

        async def run(conn: Connection) -> None:
            await conn.execute(sql.INSERT_DURATION, bucket, float(seconds))
            await conn.execute(sql.PRUNE_DURATIONS, bucket)

        await self._write(run)

    async def durations(self, bucket: str, limit: int = 256) -> list[float]:
        """Up to ``limit`` recorded durations of ``bucket`` in seconds, latest first."""
        rows = await self._read(lambda conn: conn.fetch(sql.DURATIONS, bucket, limit))
        return [float(row[0]) for row in rows]
