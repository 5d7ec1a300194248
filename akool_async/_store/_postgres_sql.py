"""The PostgreSQL job store's schema and statements (asyncpg ``$n`` parameters).

Kept apart from the store's logic so the SQL reads as one document. Lease times use the
server's clock (``now()`` / ``clock_timestamp()``), so members on different machines agree
on when a lease expires whatever their own clocks say. Job timestamps (``created_at``,
``updated_at``) are the caller's wall clock, as in the SQLite journal.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACTIVE_STATES",
    "CLAIM_KEYS",
    "CLAIM_NEXT",
    "DELETE_EVENTS",
    "DOWNLOADS_TABLE",
    "DURATIONS",
    "EVENTS_FOR",
    "GET_DOWNLOAD",
    "HEARTBEAT_JOBS",
    "HELD_ELSEWHERE",
    "INSERT_DURATION",
    "INSERT_EVENT",
    "INSERT_JOB",
    "INSERT_RATE",
    "JOB_COLUMNS",
    "LEASE_OF",
    "MEMBERS",
    "META",
    "NOTIFY_CHANNEL",
    "PRUNE_DURATIONS",
    "PRUNE_EVENTS",
    "PRUNE_MEMBERS",
    "PUT_DOWNLOAD",
    "REGISTER_MEMBER",
    "RELEASE_ALL",
    "RELEASE_KEYS",
    "REMOVE_MEMBER",
    "SCHEMA_LOCK",
    "SCHEMA_V1",
    "SELECT_BY_TASK_ID",
    "SELECT_COUNTS",
    "SELECT_FOR_UPDATE",
    "SELECT_KEYS",
    "SELECT_ONE",
    "SELECT_PAGE",
    "TAKE_FROM_BUCKET",
    "THROTTLE",
    "UPDATE_JOB",
]

#: Channel of the NOTIFY sent for each stored webhook event; the payload is the task id.
NOTIFY_CHANNEL: Final = "akool_events"
#: Advisory lock key held while the schema is inspected or created ("AKJ1" as an int), so
#: several processes opening a fresh database at once never race on CREATE TABLE.
SCHEMA_LOCK: Final = 0x414B4A31
#: States whose job still needs a live owner (claim_next hands these out).
ACTIVE_STATES: Final = ("pending", "sending", "created")
#: Durations kept per bucket; older ones are deleted as new ones arrive.
DURATIONS_KEPT: Final = 1024

#: Added after schema 1 shipped, so created on every open (under SCHEMA_LOCK): download facts
#: recorded right before a file is published (see ``JobStore.expect_download``).
DOWNLOADS_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS akool_downloads (key text PRIMARY KEY, facts text NOT NULL)"
)
PUT_DOWNLOAD: Final = (
    "INSERT INTO akool_downloads (key, facts) VALUES ($1, $2) "
    "ON CONFLICT (key) DO UPDATE SET facts = EXCLUDED.facts"
)
GET_DOWNLOAD: Final = "SELECT facts FROM akool_downloads WHERE key = $1"

SCHEMA_V1: Final = (
    "CREATE TABLE akool_meta (name text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE akool_jobs (
        seq         bigserial PRIMARY KEY,
        key         text NOT NULL UNIQUE,
        kind        text NOT NULL,
        fingerprint text NOT NULL,
        state       text NOT NULL,
        request     text NOT NULL,
        task_id     text,
        analysis_id text,
        result_raw  text,
        error       text,
        local_path  text,
        attempts    integer NOT NULL DEFAULT 0,
        created_at  double precision NOT NULL,
        updated_at  double precision NOT NULL,
        owner       text,
        lease_until timestamptz
    )""",
    "CREATE INDEX akool_jobs_task_id ON akool_jobs (task_id) WHERE task_id IS NOT NULL",
    "CREATE INDEX akool_jobs_owner ON akool_jobs (owner) WHERE owner IS NOT NULL",
    """CREATE INDEX akool_jobs_active ON akool_jobs (seq)
        WHERE state IN ('pending', 'sending', 'created')""",
    """CREATE TABLE akool_members (
        id        text PRIMARY KEY,
        host      text NOT NULL,
        pid       integer NOT NULL,
        started   timestamptz NOT NULL,
        heartbeat timestamptz NOT NULL
    )""",
    """CREATE TABLE akool_events (
        id       bigserial PRIMARY KEY,
        task_id  text NOT NULL,
        payload  text NOT NULL,
        received timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX akool_events_task_id ON akool_events (task_id)",
    """CREATE TABLE akool_rate (
        account text PRIMARY KEY,
        tokens  double precision NOT NULL,
        updated timestamptz NOT NULL,
        factor  double precision NOT NULL DEFAULT 1,
        cut_at  timestamptz
    )""",
    """CREATE TABLE akool_durations (
        id      bigserial PRIMARY KEY,
        bucket  text NOT NULL,
        seconds double precision NOT NULL
    )""",
    "CREATE INDEX akool_durations_bucket ON akool_durations (bucket, id DESC)",
)

META: Final = "SELECT name, value FROM akool_meta"

JOB_COLUMNS: Final = (
    "seq, key, kind, fingerprint, state, request, task_id, analysis_id, result_raw, error, "
    "local_path, attempts, created_at, updated_at, owner, lease_until, "
    "(lease_until IS NULL OR lease_until < now()) AS expired"
)
SELECT_ONE: Final = f"SELECT {JOB_COLUMNS} FROM akool_jobs WHERE key = $1"  # noqa: S608
SELECT_FOR_UPDATE: Final = f"{SELECT_ONE} FOR UPDATE"
SELECT_BY_TASK_ID: Final = (
    f"SELECT {JOB_COLUMNS} FROM akool_jobs WHERE task_id = $1 ORDER BY seq DESC LIMIT 1"  # noqa: S608
)
SELECT_PAGE: Final = f"SELECT {JOB_COLUMNS} FROM akool_jobs WHERE seq > $1 ORDER BY seq LIMIT $2"  # noqa: S608
SELECT_COUNTS: Final = "SELECT state, count(*) FROM akool_jobs GROUP BY state"
LEASE_OF: Final = "SELECT owner, lease_until, lease_until < now() FROM akool_jobs WHERE key = $1"
# Keys among $1 that a live member other than $2 holds (what begin() would refuse).
HELD_ELSEWHERE: Final = """
    SELECT key FROM akool_jobs
    WHERE key = ANY($1::text[]) AND owner IS NOT NULL AND owner <> $2 AND lease_until >= now()"""

# A new job is owned by its creator from the start. $8 = member id, $9 = lease seconds.
INSERT_JOB: Final = f"""
    INSERT INTO akool_jobs (key, kind, fingerprint, state, request, attempts, created_at,
                            updated_at, owner, lease_until)
    VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, now() + make_interval(secs => $9))
    ON CONFLICT (key) DO NOTHING
    RETURNING {JOB_COLUMNS}"""  # noqa: S608
# Every write renews the writer's lease. $11 = member id, $12 = lease seconds.
UPDATE_JOB: Final = """
    UPDATE akool_jobs SET state = $2, task_id = $3, analysis_id = $4, result_raw = $5,
        error = $6, local_path = $7, attempts = $8, updated_at = $9,
        owner = $10, lease_until = now() + make_interval(secs => $11)
    WHERE seq = $1"""

# Rows another member is claiming right now are skipped, not waited for: each key ends up
# with exactly one of the concurrent claimers. $1 = keys, $2 = member id.
CLAIM_KEYS: Final = f"""
    SELECT {JOB_COLUMNS} FROM akool_jobs
    WHERE key = ANY($1::text[])
      AND (owner IS NULL OR owner = $2 OR lease_until < now())
    ORDER BY seq
    FOR UPDATE SKIP LOCKED"""  # noqa: S608
SELECT_KEYS: Final = f"SELECT {JOB_COLUMNS} FROM akool_jobs WHERE key = ANY($1::text[])"  # noqa: S608
# $1 = member id, $2 = how many.
CLAIM_NEXT: Final = f"""
    SELECT {JOB_COLUMNS} FROM akool_jobs
    WHERE state IN ('pending', 'sending', 'created')
      AND owner IS DISTINCT FROM $1
      AND (owner IS NULL OR lease_until < now())
    ORDER BY seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED"""  # noqa: S608
RELEASE_KEYS: Final = """
    UPDATE akool_jobs SET owner = NULL, lease_until = NULL
    WHERE owner = $1 AND key = ANY($2::text[])"""
RELEASE_ALL: Final = "UPDATE akool_jobs SET owner = NULL, lease_until = NULL WHERE owner = $1"

# Also the heartbeat: a member whose row was removed comes back with its next beat.
REGISTER_MEMBER: Final = """
    INSERT INTO akool_members (id, host, pid, started, heartbeat)
    VALUES ($1, $2, $3, now(), now())
    ON CONFLICT (id) DO UPDATE SET heartbeat = now()"""
# A lease still in this member's name is renewed even if it lapsed: nobody took the job.
HEARTBEAT_JOBS: Final = """
    UPDATE akool_jobs SET lease_until = now() + make_interval(secs => $2) WHERE owner = $1"""
REMOVE_MEMBER: Final = "DELETE FROM akool_members WHERE id = $1"
# Members silent for ten leases are forgotten (their jobs were free long ago). $1 = lease s.
PRUNE_MEMBERS: Final = """
    DELETE FROM akool_members WHERE heartbeat < now() - make_interval(secs => 10 * $1)"""
# $1 = lease seconds: a member is alive while its last heartbeat is younger than a lease.
MEMBERS: Final = """
    SELECT id, host, pid, started, heartbeat,
           heartbeat >= now() - make_interval(secs => $1) AS alive
    FROM akool_members ORDER BY started, id"""

INSERT_EVENT: Final = """
    WITH stored AS (
        INSERT INTO akool_events (task_id, payload) VALUES ($1, $2) RETURNING id
    )
    SELECT id, pg_notify('akool_events', $1) FROM stored"""
EVENTS_FOR: Final = """
    SELECT id, task_id, payload, extract(epoch FROM received)::float8 FROM akool_events
    WHERE task_id = ANY($1::text[]) ORDER BY id"""
DELETE_EVENTS: Final = "DELETE FROM akool_events WHERE task_id = ANY($1::text[])"
#: Events no job claimed within 8 days (Akool deletes outputs after 7) go at each open.
PRUNE_EVENTS: Final = "DELETE FROM akool_events WHERE received < now() - interval '8 days'"

# The token bucket in one statement. The row is locked first (FOR UPDATE returns the
# newest version after waiting), refilled by the server time elapsed at rate * factor up to
# the burst, and a token is taken if one is whole. ``updated`` never moves backwards, so the
# refill over any span never exceeds rate * span. A granted token adds ``$4`` to the factor
# (additive increase, up to 1). $1 account, $2 rate, $3 burst, $4 recovery step.
TAKE_FROM_BUCKET: Final = """
    WITH old AS (
        SELECT tokens, updated, factor, clock_timestamp() AS now
        FROM akool_rate WHERE account = $1 FOR UPDATE
    ), filled AS (
        SELECT GREATEST(updated, now) AS now, factor,
               LEAST($3::float8, tokens + $2::float8 * factor
                     * GREATEST(0, extract(epoch FROM now - updated))::float8) AS tokens
        FROM old
    ), level AS (
        SELECT now, factor, tokens, LEAST($5::float8, GREATEST(0, floor(tokens))) AS granted
        FROM filled
    ), taken AS (
        UPDATE akool_rate SET
            tokens = level.tokens - level.granted,
            updated = level.now,
            factor = LEAST(1, level.factor + $4::float8 * level.granted)
        FROM level WHERE account = $1
        RETURNING 1
    )
    SELECT tokens, factor, granted FROM level"""
INSERT_RATE: Final = """
    INSERT INTO akool_rate (account, tokens, updated, factor)
    VALUES ($1, $2, clock_timestamp(), 1) ON CONFLICT (account) DO NOTHING"""
# Multiplicative decrease, at most once per $4 seconds; the bucket is emptied so the fleet
# does not answer a throttle with a burst. $1 account, $2 factor, $3 floor, $4 cooldown.
THROTTLE: Final = """
    UPDATE akool_rate SET
        factor = GREATEST($3::float8, factor * $2::float8),
        tokens = LEAST(tokens, 0),
        cut_at = clock_timestamp()
    WHERE account = $1
      AND (cut_at IS NULL OR cut_at <= clock_timestamp() - make_interval(secs => $4))
    RETURNING factor"""

INSERT_DURATION: Final = "INSERT INTO akool_durations (bucket, seconds) VALUES ($1, $2)"
PRUNE_DURATIONS: Final = f"""
    DELETE FROM akool_durations WHERE bucket = $1 AND id <= (
        SELECT id FROM akool_durations WHERE bucket = $1
        ORDER BY id DESC OFFSET {DURATIONS_KEPT} LIMIT 1)"""  # noqa: S608
DURATIONS: Final = """
    SELECT seconds FROM akool_durations WHERE bucket = $1 ORDER BY id DESC LIMIT $2"""
