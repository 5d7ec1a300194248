"""The exception tree of akool-async.

Every exception the SDK raises on purpose derives from :class:`AkoolError`::

    AkoolError
    ├── ValidationError (+ ValueError) ........ bad input; nothing was sent
    │   └── FaceMappingError ................. obj_id not among the analysed people
    ├── ConfigurationError (+ ValueError) ..... missing key, insecure base URL, bad option
    ├── ClientStateError (+ RuntimeError) ..... client opened twice / used after close
    ├── TransportError ........................ no usable answer reached us
    │   ├── ConnectError ..................... connection failed before the request was sent
    │   ├── RequestTimeoutError (+ TimeoutError)
    │   └── ConnectionLostError .............. connection dropped after the request was sent
    ├── APIError .............................. the server answered, but not with success
    │   ├── HTTPStatusError .................. non-2xx without an Akool envelope (4xx)
    │   ├── ServerError ...................... HTTP 5xx, or code 2001
    │   ├── RateLimitError ................... HTTP 429, or code 1005 (has .retry_after)
    │   ├── RetryLaterError .................. code 1015 "try again later"
    │   ├── ResponseError .................... non-JSON, oversized or malformed body
    │   │   └── UnknownStatusError ........... a task status value the SDK does not know
    │   ├── InvalidParameterError ............ 1003
    │   ├── VerificationRequiredError ........ 1004
    │   ├── QuotaExceededError ............... 1006
    │   ├── NotFoundError .................... 1008, 1014
    │   ├── PermissionDeniedError ............ 1009
    │   ├── AuthenticationError .............. 1101, 1102
    │   ├── PaymentRequiredError ............. 1103
    │   ├── InsufficientCreditError .......... 1104
    │   ├── AccountBlockedError .............. 1200
    │   └── SubscriptionRequiredError ........ 1213, 1221
    ├── SubmissionUncertainError .............. a create was sent and its answer was lost
    ├── BatchAbortedError ..................... not sent: the batch stopped intake (has .cause)
    ├── TaskFailedError ....................... the task ended with status 4 (has .result)
    ├── WaitTimeoutError (+ TimeoutError) ..... a wait passed its deadline (has .task_id)
    ├── DownloadError ......................... a result could not be downloaded
    ├── JournalError .......................... a journal could not be opened or used
    │   ├── JournalFormatError ............... not a journal, or a newer schema
    │   ├── JournalConflictError (+ ValueError)  a key came back with another request
    │   ├── JournalStateError (+ RuntimeError)  a bug: illegal transition, closed journal
    │   ├── JournalLockedError ............... another process (or opener) holds the journal
    │   └── JournalBindingError .............. made for another account or base URL
    └── WebhookVerificationError .............. a webhook body was rejected (has .stage)

Unknown business codes map to plain :class:`APIError`. Every error carries ``method``,
``path``, ``http_status``, ``code``, ``msg`` and ``task_id`` where known, and ``retryable``
says whether repeating the same *idempotent* request may succeed. No error ever carries a
header, the API key, a token or a client secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeAlias

import attrs

__all__ = [
    "CODE_TO_ERROR",
    "APIError",
    "AccountBlockedError",
    "AkoolError",
    "AuthenticationError",
    "BatchAbortedError",
    "ClientStateError",
    "ConfigurationError",
    "ConnectError",
    "ConnectionLostError",
    "DownloadError",
    "FaceMappingError",
    "HTTPStatusError",
    "InsufficientCreditError",
    "InvalidParameterError",
    "JournalBindingError",
    "JournalConflictError",
    "JournalError",
    "JournalFormatError",
    "JournalHolder",
    "JournalLockedError",
    "JournalStateError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseError",
    "RetryLaterError",
    "ServerError",
    "SubmissionUncertainError",
    "SubscriptionRequiredError",
    "TaskFailedError",
    "TransportError",
    "UnknownStatusError",
    "ValidationError",
    "VerificationRequiredError",
    "WaitTimeoutError",
    "WebhookStage",
    "WebhookVerificationError",
    "error_for_code",
]


class AkoolError(Exception):
    """Base of every error akool-async raises on purpose.

    Attributes are ``None`` where they do not apply. ``retryable`` is a class-level default
    that subclasses override; it speaks about idempotent requests only (a create is retried
    under the stricter rule in ``_retry.create_may_retry``).
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        http_status: int | None = None,
        code: int | None = None,
        msg: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.task_id = task_id

    def _context(self) -> str:
        parts: list[str] = []
        if self.method and self.path:
            parts.append(f"{self.method} {self.path}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.task_id:
            parts.append(f"task {self.task_id}")
        return ", ".join(parts)

    def __str__(self) -> str:
        context = self._context()
        return f"{self.message} ({context})" if context else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable (multiprocessing, journals) with their attributes.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[AkoolError], message: str, state: dict[str, Any]) -> AkoolError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ValidationError(AkoolError, ValueError):
    """A request or option is invalid; raised before anything is sent.

    ``field`` names the offending field (``"CharacterSwap.duration"``), ``rule`` states the
    rule in words. ``errors`` lists every problem found when several were checked at once.
    """

    def __init__(
        self, field: str, rule: str, *, errors: Sequence[tuple[str, str]] | None = None
    ) -> None:
        self.field = field
        self.rule = rule
        self.errors: tuple[tuple[str, str], ...] = tuple(errors or ((field, rule),))
        if len(self.errors) > 1:
            listing = "; ".join(f"{f}: {r}" for f, r in self.errors)
            message = f"{len(self.errors)} invalid fields: {listing}"
        else:
            message = f"{field}: {rule}"
        super().__init__(message)


class FaceMappingError(ValidationError):
    """A face mapping names an ``obj_id`` the head-swap analysis did not detect."""

    def __init__(self, missing: Sequence[int], detected: Sequence[int], video_url: str) -> None:
        self.missing = tuple(missing)
        self.detected = tuple(detected)
        self.video_url = video_url
        super().__init__(
            "HeadSwap.faces",
            f"obj_id {list(self.missing)} not detected in the video; detected obj_ids are "
            f"{list(self.detected)}",
        )


class ConfigurationError(AkoolError, ValueError):
    """The client or a batch was configured in a way that cannot work."""


class ClientStateError(AkoolError, RuntimeError):
    """The client was used outside its ``async with`` block, or opened twice."""


class TransportError(AkoolError):
    """No usable answer reached us (network level)."""

    retryable = True


class ConnectError(TransportError):
    """The connection failed before the request was sent: the server never saw it."""


class RequestTimeoutError(TransportError, TimeoutError):
    """The request timed out; for a create, the server may have processed it."""


class ConnectionLostError(TransportError):
    """The connection dropped after the request was sent; the server may have processed it."""


class APIError(AkoolError):
    """The server answered, but not with success (business code != 1000 or HTTP error)."""


class HTTPStatusError(APIError):
    """A non-2xx HTTP answer without an Akool envelope (a gateway or proxy answered)."""


class ServerError(APIError):
    """HTTP 5xx, or business code 2001: a server-side failure, worth retrying."""

    retryable = True


class RateLimitError(APIError):
    """HTTP 429 or business code 1005. ``retry_after`` is the server's hint in seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RetryLaterError(APIError):
    """Business code 1015: the server could not take the request now; try again later."""

    retryable = True


class ResponseError(APIError):
    """The body was not JSON, too large, or not the shape the API documents."""

    retryable = True


class UnknownStatusError(ResponseError):
    """A task status value outside 1-4; the SDK refuses to guess what it means."""

    retryable = False


class InvalidParameterError(APIError):
    """1003: a parameter was rejected, or the feature is not enabled for the account."""


class VerificationRequiredError(APIError):
    """1004: the account requires verification."""


class QuotaExceededError(APIError):
    """1006: the quota balance is insufficient."""


class NotFoundError(APIError):
    """1008 (character swap) or 1014 (head swap): no such id for this team."""


class PermissionDeniedError(APIError):
    """1009: permission denied."""


class AuthenticationError(APIError):
    """1101 (invalid or expired token/key) or 1102 (no credentials sent)."""


class PaymentRequiredError(APIError):
    """1103: the account is not paid or payment is overdue."""


class InsufficientCreditError(APIError):
    """1104: the credit balance cannot cover the task."""


class AccountBlockedError(APIError):
    """1200: the account is blocked."""


class SubscriptionRequiredError(APIError):
    """1213 or 1221: the feature needs a subscription."""


class SubmissionUncertainError(AkoolError):
    """A create was sent but its answer was lost: a task may exist and may be charged.

    The SDK never resends such a create by itself. ``request`` is the request object,
    ``__cause__`` the underlying transport or response error. Check your Akool dashboard or
    the journal before resubmitting.
    """

    def __init__(self, message: str, *, request: object = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.request = request


class BatchAbortedError(AkoolError):
    """The job was not sent: its batch stopped intake before the job's create left.

    A batch stops at the first answer no other job can get past (credentials refused,
    account blocked, credit exhausted) or when its journal or download directory fails
    after a task was paid for. Every job not yet sent shares one such error; ``cause`` is
    the original error. Nothing was created for the job: it is safe to run it again.
    """

    def __init__(self, message: str, *, cause: BaseException | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.cause = cause


class TaskFailedError(AkoolError):
    """The task ended with status 4 (failed). ``result`` is the final result object."""

    def __init__(self, message: str, *, result: object = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.result = result


class WaitTimeoutError(AkoolError, TimeoutError):
    """Waiting for a task passed its deadline; the task may still finish remotely."""

    def __init__(self, message: str, *, deadline: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.deadline = deadline


# --------------------------------------------------------------------------- downloads


class DownloadError(AkoolError):
    """A result could not be downloaded; nothing was left at the target path.

    ``url`` is the output URL without its query (signed CDN URLs carry tokens there),
    ``file`` the target path (None when the failure came before one was known),
    ``bytes_received`` how far the last attempt got. ``method``/``path``/``http_status``
    describe the last HTTP exchange, as on every :class:`AkoolError`. ``__cause__`` holds the
    underlying error when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        file: Path | None = None,
        bytes_received: int = 0,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.url = url
        self.file = file
        self.bytes_received = bytes_received


# --------------------------------------------------------------------------- journals


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


# --------------------------------------------------------------------------- webhooks

#: Where a webhook body failed verification.
WebhookStage: TypeAlias = Literal["config", "payload", "timestamp", "signature", "decrypt", "event"]


class WebhookVerificationError(AkoolError):
    """A webhook body was rejected: malformed, stale, forged, tampered or undecryptable.

    ``stage`` says where it failed: ``"config"`` (unusable credentials), ``"payload"``
    (outer JSON), ``"timestamp"`` (outside ``max_age``), ``"signature"`` (does not match),
    ``"decrypt"`` (Base64, AES or padding: tampering or a wrong ``client_secret``) or
    ``"event"`` (the decrypted JSON is not a valid event). The message never contains
    ``client_id`` or ``client_secret``.
    """

    def __init__(self, message: str, *, stage: WebhookStage, task_id: str | None = None) -> None:
        super().__init__(message, task_id=task_id)
        self.stage: WebhookStage = stage


#: One table from business code to exception class. Printed in the README.
CODE_TO_ERROR: Mapping[int, type[APIError]] = {
    1003: InvalidParameterError,
    1004: VerificationRequiredError,
    1005: RateLimitError,
    1006: QuotaExceededError,
    1008: NotFoundError,
    1009: PermissionDeniedError,
    1014: NotFoundError,
    1015: RetryLaterError,
    1101: AuthenticationError,
    1102: AuthenticationError,
    1103: PaymentRequiredError,
    1104: InsufficientCreditError,
    1200: AccountBlockedError,
    1213: SubscriptionRequiredError,
    1221: SubscriptionRequiredError,
    2001: ServerError,
}


def error_for_code(code: int) -> type[APIError]:
    """The exception class for a business code; unknown codes give :class:`APIError`."""
    return CODE_TO_ERROR.get(code, APIError)
