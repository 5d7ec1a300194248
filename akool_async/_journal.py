"""Old import path of the job journal, kept while modules move to ``akool_async._store``."""

from __future__ import annotations

from ._store import (
    DEFAULT_BUSY_TIMEOUT,
    SCHEMA_VERSION,
    JobKind,
    JobRecord,
    JobState,
    Journal,
    JournalBindingError,
    JournalConflictError,
    JournalError,
    JournalFormatError,
    JournalLockedError,
    JournalStateError,
    error_from_json,
    error_to_json,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "JobKind",
    "JobRecord",
    "JobState",
    "Journal",
    "JournalBindingError",
    "JournalConflictError",
    "JournalError",
    "JournalFormatError",
    "JournalLockedError",
    "JournalStateError",
    "error_from_json",
    "error_to_json",
]
