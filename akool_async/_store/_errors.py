"""The job store's exceptions, in one place (they join ``akool_async._errors`` at merge).

::

    AkoolError
    └── JournalError .......................... a journal could not be opened or used
        ├── JournalFormatError ............... not a journal, or written by a newer schema
        ├── JournalConflictError (+ ValueError)  a key reused with another request
        ├── JournalStateError (+ RuntimeError)   illegal transition, unknown key, closed
        ├── JournalLockedError ............... another process (or opener) holds the journal
        └── JournalBindingError .............. made for another account or base URL
"""

from __future__ import annotations

import attrs

from akool_async._errors import AkoolError

__all__ = [
    "JournalBindingError",
    "JournalConflictError",
    "JournalError",
    "JournalFormatError",
    "JournalHolder",
    "JournalLockedError",
    "JournalStateError",
]


class JournalError(AkoolError):
    """A journal could not be opened or used."""


class JournalFormatError(JournalError):
    """The file is not an akool-async journal, or was written by a newer schema."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.journal_path = path


class JournalConflictError(JournalError, ValueError):
    """A key already in the journal was submitted again with a different request."""

    def __init__(
        self, key: str, *, kind: str, fingerprint: str, stored_kind: str, stored_fingerprint: str
    ) -> None:
        self.key = key
        self.kind = kind
        self.fingerprint = fingerprint
        self.stored_kind = stored_kind
        self.stored_fingerprint = stored_fingerprint
        super().__init__(
            f"job key {key!r} is already in the journal with a different request "
            f"(stored {stored_kind} {stored_fingerprint[:12]}..., "
            f"now {kind} {fingerprint[:12]}...); use a new key or a new journal"
        )


class JournalStateError(JournalError, RuntimeError):
    """A bug: an illegal state transition, an unknown key, or use of a closed journal."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        state: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.state = state
        self.target = target


@attrs.frozen
class JournalHolder:
    """Who holds a journal: host name, process id and since when (ISO 8601, UTC)."""

    host: str
    pid: int
    since: str

    def __str__(self) -> str:
        return f"host {self.host!r} pid {self.pid} since {self.since}"


class JournalLockedError(JournalError):
    """The journal is held by another process (or another open journal in this one).

    ``holder`` is a :class:`JournalHolder`, or None when the holder could not be read
    (it was still writing its name). Nothing was read or written by the refused opener.
    """

    def __init__(self, path: str, holder: JournalHolder | None) -> None:
        who = f"by {holder}" if holder is not None else "by another process"
        super().__init__(f"journal {path} is in use {who}; wait for it to finish or stop it")
        self.path = path  # the journal's path (no HTTP request is involved)
        self.holder = holder


class JournalBindingError(JournalError):
    """The journal was made for another account or base URL; ``field`` says which.

    ``field`` is ``"account"`` or ``"base_url"``. The account digest is never printed.
    """

    def __init__(self, path: str, field: str, *, stored: str, given: str) -> None:
        if field == "account":
            what, this = "another account", "this account"
        else:
            what, this = f"base URL {stored}, not {given}", "this base URL"
        super().__init__(f"journal {path} was made for {what}; use a new journal for {this}")
        self.path = path  # the journal's path (no HTTP request is involved)
        self.field = field
