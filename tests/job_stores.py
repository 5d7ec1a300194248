"""What the job-store tests share: the standard request and the state helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from akool_async import CharacterSwap
from akool_async import _errors as errors
from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._store import JobRecord, JobState, Journal, PostgresStore

SWAP = CharacterSwap("https://x.test/a.png", "https://x.test/v.mp4", mode="animate")
REQUEST = request_to_dict(SWAP)
FP = request_fingerprint(SWAP)

#: Either store: the tests below run the same calls on both.
Store = Journal | PostgresStore


@dataclasses.dataclass(frozen=True)
class NewStore:
    """Stores on one test's SQLite file or PostgreSQL database."""

    #: A store object, not yet opened (``async with`` it).
    make: Callable[..., Store]
    #: The store's ``open`` classmethod on the same file or database.
    open: Callable[[], Awaitable[Store]]


# How to bring a fresh key into each state, step by step.
PATHS: dict[JobState, list[str]] = {
    JobState.PENDING: [],
    JobState.SENDING: ["sending"],
    JobState.CREATED: ["sending", "created"],
    JobState.COMPLETED: ["sending", "created", "completed"],
    JobState.FAILED: ["sending", "created", "failed"],
    JobState.UNCERTAIN: ["sending", "uncertain"],
    JobState.REJECTED: ["rejected"],
}

# Every legal (from-state, operation) pair, written out independently of the module.
LEGAL = {
    (JobState.PENDING, "sending"),
    (JobState.PENDING, "resubmit"),
    (JobState.PENDING, "rejected"),
    (JobState.SENDING, "created"),
    (JobState.SENDING, "uncertain"),
    (JobState.SENDING, "rejected"),
    (JobState.CREATED, "completed"),
    (JobState.CREATED, "failed"),
    (JobState.UNCERTAIN, "resubmit"),
    (JobState.REJECTED, "sending"),
    (JobState.REJECTED, "resubmit"),
}


async def begin(store: Store, key: str) -> JobRecord:
    """Record ``key`` with the standard request."""
    return await store.begin(key, kind="character_swap", fingerprint=FP, request=REQUEST)


def operations(store: Store, key: str) -> dict[str, Callable[[], Awaitable[JobRecord]]]:
    """Each state-changing call on ``key``, by name (a created job's task id is task-<key>)."""
    lost = errors.ConnectionLostError("lost")
    return {
        "sending": lambda: store.mark_sending(key),
        "resubmit": lambda: store.mark_sending(key, resubmit_uncertain=True),
        "created": lambda: store.mark_created(key, f"task-{key}"),
        "uncertain": lambda: store.mark_uncertain(key, lost),
        "rejected": lambda: store.mark_rejected(key, errors.InsufficientCreditError("no")),
        "completed": lambda: store.mark_completed(key, {"_id": f"task-{key}", "status": 3}),
        "failed": lambda: store.mark_failed(key, {"status": 4}, errors.TaskFailedError("x")),
    }


async def drive(store: Store, key: str, state: JobState) -> JobRecord:
    """Create ``key`` and move it into ``state``."""
    rec = await begin(store, key)
    for step in PATHS[state]:
        rec = await operations(store, key)[step]()
    assert rec.state is state
    return rec


async def empty_database(url: str) -> None:
    """Drop every table of the test database (a fresh schema, no tables)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
