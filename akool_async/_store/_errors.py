"""The job store's exceptions: they live in ``akool_async._errors`` with every other one,
and stay importable from here for the store's modules."""

from __future__ import annotations

from akool_async._errors import (
    JournalBindingError,
    JournalConflictError,
    JournalError,
    JournalFormatError,
    JournalHolder,
    JournalLockedError,
    JournalStateError,
)

__all__ = [
    "JournalBindingError",
    "JournalConflictError",
    "JournalError",
    "JournalFormatError",
    "JournalHolder",
    "JournalLockedError",
    "JournalStateError",
]
