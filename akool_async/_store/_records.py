"""What a job store holds: job states, the job record, and errors as JSON.

Shared by every store implementation: the states and their legal transitions
(:data:`ALLOWED_FROM`), the immutable :class:`JobRecord` snapshot, the canonical JSON form
of requests and results, and the (de)serialisation of errors, which rebuilds only
``akool_async`` exception classes.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from typing import Any, Final, Literal, cast

import attrs

import akool_async._errors as sdk_errors
from akool_async._converters import result_from_raw
from akool_async._errors import (
    AkoolError,
    JournalBindingError,
    JournalConflictError,
    JournalError,
    JournalFormatError,
    JournalLockedError,
    JournalStateError,
)

__all__ = [
    "ALLOWED_FROM",
    "KINDS",
    "TERMINAL",
    "JobKind",
    "JobRecord",
    "JobState",
    "canonical_json",
    "error_from_json",
    "error_to_json",
]

JobKind = Literal["character_swap", "head_swap"]
KINDS: Final = frozenset({"character_swap", "head_swap"})


class JobState(str, enum.Enum):
    """Where a stored job stands; ``JobStore``'s docstring draws the transitions."""

    PENDING = "pending"
    SENDING = "sending"
    CREATED = "created"
    COMPLETED = "completed"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    REJECTED = "rejected"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for ``completed``, ``failed`` and ``rejected`` (the run is over for the job).

        ``uncertain`` is not terminal: it waits for a human decision (resubmit or not).
        """
        return self in TERMINAL


TERMINAL: Final = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.REJECTED})

_S = JobState
#: target state -> states it may be entered from (uncertain -> sending needs the flag).
ALLOWED_FROM: Final[Mapping[JobState, frozenset[JobState]]] = {
    _S.SENDING: frozenset({_S.PENDING, _S.REJECTED, _S.UNCERTAIN}),
    _S.CREATED: frozenset({_S.SENDING}),
    _S.UNCERTAIN: frozenset({_S.SENDING}),
    _S.REJECTED: frozenset({_S.PENDING, _S.SENDING}),
    _S.COMPLETED: frozenset({_S.CREATED}),
    _S.FAILED: frozenset({_S.CREATED}),
}


@attrs.frozen(kw_only=True)
class JobRecord:
    """One job as stored (a snapshot; it does not change under you).

    JSON columns are kept as text (``request_json``, ``result_raw_json``, ``error_json``)
    so records stay hashable and cheap; the properties decode them on demand.
    Timestamps are wall-clock seconds since the epoch.
    """

    seq: int  # insertion order
    key: str
    kind: str
    fingerprint: str
    state: JobState
    request_json: str
    task_id: str | None = None
    analysis_id: str | None = None
    result_raw_json: str | None = None
    error_json: str | None = None
    local_path: str | None = None
    attempts: int = 0  # how many times the create was marked as sending
    created_at: float
    updated_at: float

    @property
    def request(self) -> dict[str, Any]:
        """The request dict as given to ``begin`` (a fresh copy)."""
        return cast("dict[str, Any]", json.loads(self.request_json))

    @property
    def result_raw(self) -> dict[str, Any] | None:
        """The terminal result's raw data, or None."""
        if self.result_raw_json is None:
            return None
        return cast("dict[str, Any]", json.loads(self.result_raw_json))

    @property
    def result(self) -> Any:
        """The terminal result as a model (``CharacterSwapResult``/``HeadSwapResult``), or None."""
        raw = self.result_raw
        if raw is None:
            return None
        return result_from_raw(self.kind, raw)

    @property
    def error(self) -> AkoolError | None:
        """The recorded error rebuilt as its exception class, or None."""
        return None if self.error_json is None else error_from_json(self.error_json)


def canonical_json(value: object) -> str:
    """``value`` as canonical JSON: the same data always gives the same text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


_MISSING: Final = object()
_MAX_CAUSE_DEPTH: Final = 4


def _json_safe(value: object) -> object:
    """``value`` as plain JSON data, or ``_MISSING`` when it cannot be stored faithfully."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _MISSING
    if isinstance(value, (list, tuple)):
        items = [_json_safe(v) for v in value]
        return _MISSING if any(i is _MISSING for i in items) else items
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        pairs = {k: _json_safe(v) for k, v in value.items()}
        return _MISSING if any(v is _MISSING for v in pairs.values()) else pairs
    return _MISSING


def _error_data(err: BaseException, depth: int) -> dict[str, Any]:
    if isinstance(err, AkoolError):
        message = err.message
        attributes: dict[str, object] = {}
        for name, value in vars(err).items():
            # Objects such as SubmissionUncertainError.request or TaskFailedError.result
            # are not JSON; the store keeps the request and result_raw separately.
            safe = _json_safe(value)
            if name != "message" and safe is not _MISSING:
                attributes[name] = safe
    else:
        message, attributes = str(err), {}
    data: dict[str, Any] = {"type": type(err).__name__, "message": message, "attrs": attributes}
    cause = err.__cause__
    if cause is not None and depth < _MAX_CAUSE_DEPTH:
        data["cause"] = _error_data(cause, depth + 1)
    return data


def error_to_json(err: BaseException) -> str:
    """Serialise an exception: class name, message, JSON-safe attributes and its cause.

    Attributes that are not plain data (a request or result object) are left out. Errors
    never carry credentials, so nothing secret is written.
    """
    return canonical_json(_error_data(err, 0))


def _error_classes() -> dict[str, type[AkoolError]]:
    # Only AkoolError subclasses can be rebuilt: a stored name never picks arbitrary code.
    found: dict[str, type[AkoolError]] = {}
    for name in dir(sdk_errors):
        obj = getattr(sdk_errors, name)
        if isinstance(obj, type) and issubclass(obj, AkoolError):
            found[name] = obj
    for cls in (
        JournalError,
        JournalFormatError,
        JournalConflictError,
        JournalStateError,
        JournalLockedError,
        JournalBindingError,
    ):
        found[cls.__name__] = cls
    return found


_ERROR_CLASSES: Final = _error_classes()
_BASE_ATTRIBUTES: Final = ("method", "path", "http_status", "code", "msg", "task_id")


def _tuplify(value: object) -> object:
    # Error attributes hold tuples (ValidationError.errors, FaceMappingError.missing);
    # JSON turned them into lists.
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


def _error_from_data(data: Mapping[str, Any]) -> AkoolError:
    name = str(data.get("type", "AkoolError"))
    message = str(data.get("message", ""))
    cls = _ERROR_CLASSES.get(name)
    if cls is None:
        cls, message = AkoolError, f"{name}: {message}"
    # Rebuild without calling __init__ (subclass signatures differ), like
    # AkoolError.__reduce__ does for pickling.
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    state: dict[str, object] = dict.fromkeys(_BASE_ATTRIBUTES)
    attributes = data.get("attrs") or {}
    state.update((k, _tuplify(v)) for k, v in attributes.items() if str(k).isidentifier())
    state["message"] = message
    err.__dict__.update(state)
    cause = data.get("cause")
    if isinstance(cause, Mapping):
        err.__cause__ = _error_from_data(cause)
    return err


def error_from_json(text: str) -> AkoolError:
    """Rebuild an error written by :func:`error_to_json` as its ``akool_async`` class.

    An unknown class name (a builtin exception, or a class from a newer version) gives a
    plain :class:`AkoolError` whose message starts with the original class name.
    """
    data = json.loads(text)
    if not isinstance(data, Mapping):
        raise TypeError(f"not a serialised error: {text[:80]!r}")
    return _error_from_data(data)
