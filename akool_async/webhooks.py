"""Receive Akool webhooks: verify, decrypt, deduplicate and dispatch task results.

Akool ``POST``s a JSON body to the ``webhookurl``/``webhookUrl`` given at create time when a
task changes state (documented: status 2, 3 or 4; in practice at least 3 and 4)::

    {"signature": "<40 hex>", "dataEncrypt": "<base64>", "timestamp": 1710757981609,
     "nonce": "1529"}

It must be answered with HTTP 200, or Akool retries (retry policy undocumented).

Quick use
---------
One-off check of a body you already read::

    from akool_async.webhooks import verify_and_decrypt, WebhookVerificationError

    event = verify_and_decrypt(raw_body, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    event.id, event.status, event.output_url, event.type

A long-lived receiver that answers Akool, drops repeated deliveries and hands each new
event to listeners (the batch engine is one)::

    from akool_async.webhooks import WebhookReceiver, make_aiohttp_app

    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    unsubscribe = receiver.add_listener(lambda event: print(event.id, event.status))

    # aiohttp: a ready app ...
    app = make_aiohttp_app(receiver, path="/akool/webhook")
    # ... or a route in your own app
    my_app.router.add_post("/akool/webhook", receiver.aiohttp_handler)

FastAPI / Starlette (neither is a dependency; :meth:`WebhookReceiver.handle` is
framework-neutral and takes the raw body bytes)::

    from fastapi import FastAPI, Request, Response

    app = FastAPI()

    @app.post("/akool/webhook")
    async def akool_webhook(request: Request) -> Response:
        answer = await receiver.handle(await request.body())
        return Response(answer.body, status_code=answer.status,
                        media_type=answer.content_type)

Pass the *raw* body, not a re-serialised model: the signature covers the exact strings.

The crypto in brief (``akool-api.md`` §5.4-5.5)
------------------------------------------------
1. ``signature == sha1_hex("".join(sorted([client_id, str(timestamp), str(nonce),
   dataEncrypt])))``, compared in constant time **before** anything is decrypted.
2. ``dataEncrypt`` is Base64 of AES-CBC with key = ``client_secret`` as UTF-8 (16/24/32
   bytes -> AES-128/192/256), IV = the first 16 bytes of ``client_id`` as UTF-8, PKCS#7 padding
   to the 16-byte AES block. The plaintext is JSON: ``{"_id", "status", "type", "url"}``.
3. ``timestamp`` (epoch milliseconds) must lie within ``max_age`` seconds of now, in either
   direction, which bounds how long a captured delivery can be replayed; the receiver also
   remembers recent signatures and ``(id, status)`` pairs to recognise repeats.

Why ``client_id`` is needed even if you call the API with an API key only: Akool's webhook
signature is keyed by ``clientId`` alone (there is no secret in it), and the clientId is also
the AES IV. Without it a webhook can be neither verified nor decrypted, so API-key-only
users must look up the clientId that belongs to their credentials. ``client_secret`` is the
AES key (the clientSecret, which Akool documents as equal to the API key; 16, 24 or 32
characters). Treat **both** as secrets: anyone who
knows ``client_id`` can forge a valid signature, so the encryption is what really
authenticates a webhook. Neither value appears in any error message or repr.

Choices where the API document is ambiguous
-------------------------------------------
- A ``client_id`` shorter than 16 bytes is zero-padded to form the IV (Akool's Python sample
  and crypto-js); the official demo pads with spaces. Irrelevant for real 22-24 char ids.
- ``nonce`` may be a string or an integer (both appear in Akool's samples); ``timestamp`` may
  be a non-negative integer or a string of digits, at most 16 digits (epoch milliseconds).
  Floats, booleans and longer numbers are rejected (400), never a crash.
- ``status`` outside 1-4 is rejected (:class:`WebhookVerificationError`, stage ``"event"``)
  rather than guessed at; the job then still completes by polling. ``output_url`` is the
  decrypted ``url`` (``None`` if absent or empty); no failure reason is documented.
- The ``signature`` must be the exact lowercase hex Akool documents.
- With the default ``max_age=300`` a delivery that Akool re-sends unchanged more than five
  minutes later is rejected as stale (whether retries are re-signed is undocumented). A job
  never depends on its webhook: polling completes it anyway.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hmac
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs

from . import _webhook_crypto as _crypto
from . import _webhook_fields as fields
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ConfigurationError, WebhookStage, WebhookVerificationError
from ._fleet_events import EventStore, record_event
from ._models import TaskStatus
from ._webhook_health import DeliveryTally, WebhookStats
from ._webhook_memory import DeliveryMemory

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "DEFAULT_DEDUPE_SIZE",
    "DEFAULT_MAX_AGE",
    "DEFAULT_PATH",
    "MAX_BODY_BYTES",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookResponse",
    "WebhookStats",
    "WebhookVerificationError",
    "make_aiohttp_app",
    "verify_and_decrypt",
]

logger = logging.getLogger("akool_async.webhooks")

#: Seconds a webhook ``timestamp`` may lie in the past or the future.
DEFAULT_MAX_AGE: Final = 300.0
#: Signatures, ``(id, status)`` pairs and recent events each remembered by a receiver.
DEFAULT_DEDUPE_SIZE: Final = 10_000
#: URL path used by :func:`make_aiohttp_app`.
DEFAULT_PATH: Final = "/akool/webhook"
#: Largest body a receiver reads; a real webhook is well under 1 KiB.
MAX_BODY_BYTES: Final = 64 * 1024

#: What :func:`verify_and_decrypt` accepts: the raw body, or the JSON object already parsed.
Body: TypeAlias = "bytes | bytearray | memoryview | str | Mapping[str, Any]"

Stage = WebhookStage

# Answer for every failure after the signature matched. Telling "bad padding" apart from
# "bad JSON" in the HTTP answer would hand whoever knows the client_id (the only signing key)
# a CBC padding oracle; the exception and the log keep the precise reason.
_OPAQUE_REASON = "payload could not be decrypted into a valid event"


def _dict_proxy(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen
class WebhookEvent:
    """One verified, decrypted Akool webhook.

    ``id`` is the task ``_id`` returned by the create call; ``status`` the task status;
    ``output_url`` the result URL (decrypted ``url``; ``None`` unless present); ``type`` the
    decrypted ``type`` (undocumented for character/head swap); ``timestamp`` the delivery
    time from the outer payload (aware, UTC); ``nonce`` the outer nonce as a string;
    ``signature`` the outer signature; ``raw`` the decrypted JSON object, read-only.
    """

    id: str
    status: TaskStatus
    output_url: str | None
    type: str | None
    timestamp: _dt.datetime
    nonce: str
    signature: str
    raw: Mapping[str, Any] = attrs.field(converter=_dict_proxy, hash=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        """True when the task is COMPLETED or FAILED."""
        return self.status.is_terminal


# --------------------------------------------------------------------------- parsing


def _fail(message: str, stage: Stage, task_id: str | None = None) -> WebhookVerificationError:
    return WebhookVerificationError(message, stage=stage, task_id=task_id)


def _load_outer(body: Body) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if not isinstance(body, (bytes, str)):
        raise _fail(f"body must be bytes, str or a mapping, not {type(body).__name__}", "payload")
    if len(body) > MAX_BODY_BYTES:
        raise _fail(f"body is larger than {MAX_BODY_BYTES} bytes", "payload")
    try:
        return fields.load_object(body, "body")
    except ValueError as exc:
        raise _fail(str(exc), "payload") from None


def _parse_status(value: object, task_id: str) -> TaskStatus:
    try:
        number = fields.status_number(value)
    except ValueError as exc:
        raise _fail(str(exc), "event", task_id) from None
    try:
        return TaskStatus(number)
    except ValueError:
        raise _fail(
            f"decrypted 'status' {number} is not a known task status (1-4)", "event", task_id
        ) from None


def _build_event(
    data: Mapping[str, Any], *, timestamp_ms: int, nonce: str, signature: str
) -> WebhookEvent:
    task_id = data.get("_id")
    if not isinstance(task_id, str) or not task_id:
        raise _fail("decrypted event has no string '_id'", "event")
    status = _parse_status(data.get("status"), task_id)
    url = data.get("url")
    kind = data.get("type")
    try:
        when = _dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=_dt.timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise _fail("field 'timestamp' is out of range", "payload", task_id) from None
    return WebhookEvent(
        id=task_id,
        status=status,
        output_url=url if isinstance(url, str) and url else None,
        type=kind if isinstance(kind, str) else None,
        timestamp=when,
        nonce=nonce,
        signature=signature,
        raw=data,
    )


def _verify(
    body: Body,
    *,
    client_id: str,
    key: bytes,
    iv: bytes,
    max_age: float | None,
    now: float,
) -> WebhookEvent:
    outer = _load_outer(body)
    try:
        signature = fields.require_str(outer, "signature")
        data_encrypt = fields.require_str(outer, "dataEncrypt")
        timestamp_str, timestamp_ms = fields.timestamp_ms(outer)
        nonce = fields.nonce_text(outer)
    except ValueError as exc:
        raise _fail(str(exc), "payload") from None

    if max_age is not None:
        skew = now - timestamp_ms / 1000
        if skew > max_age:
            raise _fail(
                f"timestamp is {skew:.0f} s old, more than max_age={max_age:g} s", "timestamp"
            )
        if -skew > max_age:
            raise _fail(
                f"timestamp is {-skew:.0f} s in the future, more than max_age={max_age:g} s",
                "timestamp",
            )

    # Constant-time compare, and nothing is decoded or decrypted before it passes.
    expected = _crypto.signature(client_id, timestamp_str, nonce, data_encrypt)
    if not hmac.compare_digest(
        expected.encode("ascii"), signature.encode("utf-8", "surrogatepass")
    ):
        raise _fail(
            "signature does not match (forged or tampered payload, or wrong client_id)", "signature"
        )

    try:
        ciphertext = base64.b64decode(data_encrypt, validate=True)
    except (binascii.Error, ValueError):
        raise _fail("signature valid but 'dataEncrypt' is not valid Base64", "decrypt") from None
    try:
        plaintext = _crypto.decrypt(ciphertext, key, iv)
    except ValueError as exc:
        raise _fail(
            f"signature valid but decryption failed: {exc}; this usually means "
            "client_secret is wrong",
            "decrypt",
        ) from None
    try:
        data = json.loads(plaintext)
    except (ValueError, RecursionError):
        raise _fail(
            "signature valid but the decrypted data is not JSON; this usually means "
            "client_secret is wrong",
            "decrypt",
        ) from None
    if not isinstance(data, dict):
        raise _fail(f"decrypted data must be a JSON object, not {type(data).__name__}", "event")
    return _build_event(data, timestamp_ms=timestamp_ms, nonce=nonce, signature=signature)


def verify_and_decrypt(
    body: Body,
    *,
    client_id: str,
    client_secret: str,
    max_age: float | None = DEFAULT_MAX_AGE,
    now: float | _dt.datetime | None = None,
) -> WebhookEvent:
    """Verify and decrypt one Akool webhook body into a :class:`WebhookEvent`.

    ``body`` is the raw request body (bytes or str) or the already-parsed JSON object.
    ``max_age`` (seconds, default 300) bounds how far ``timestamp`` may lie in the past or
    the future; ``None`` disables the check. ``now`` (epoch seconds or an aware datetime;
    default: the system clock) is the reference time for that check.

    The signature is compared in constant time before anything is decoded or decrypted.
    Every problem with the body or the credentials raises :class:`WebhookVerificationError`
    (see its ``stage``); a negative ``max_age`` or a naive ``now`` raises
    :class:`~akool_async.ConfigurationError`; a missing ``cryptography`` package raises
    :class:`ImportError` naming ``pip install 'akool-async[webhooks]'``.
    """
    fields.check_max_age(max_age)
    reference = fields.now_seconds(now)
    try:
        key, iv = _crypto.credentials(client_id, client_secret)
    except ValueError as exc:
        raise _fail(str(exc), "config") from None
    return _verify(body, client_id=client_id, key=key, iv=iv, max_age=max_age, now=reference)


# --------------------------------------------------------------------------- receiver


@attrs.frozen
class WebhookResponse:
    """What to answer Akool: ``status`` (HTTP), ``body`` (JSON bytes), ``content_type``.

    Also says what happened: ``event`` is the verified event (also for a duplicate),
    ``duplicate`` is True for a repeated delivery (answered 200, not dispatched again),
    ``error`` is the rejection (status 400/413) with its precise reason for your logs.
    """

    status: int
    body: bytes
    content_type: str = "application/json"
    event: WebhookEvent | None = None
    duplicate: bool = False
    error: WebhookVerificationError | None = attrs.field(default=None, eq=False)

    @property
    def ok(self) -> bool:
        """True when the answer is 200 (accepted or a recognised duplicate)."""
        return self.status == 200


def _json_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class WebhookReceiver:
    """Framework-neutral webhook endpoint: verify, deduplicate, dispatch, answer.

    ``client_id`` and ``client_secret`` are your Akool credentials (see the module docstring
    for why both are needed). ``max_age`` (seconds, default 300; ``None`` disables) bounds
    the timestamp skew. ``dedupe_size`` (default 10 000) is how many signatures and
    ``(id, status)`` pairs are remembered to recognise repeated deliveries, and how many
    task ids :meth:`recent` keeps. ``clock`` supplies wall time (default: the system clock).
    ``store`` (a Postgres job store) keeps every verified event there and wakes the replica
    that owns its job, whichever replica received it (500 if it cannot be stored).

    Credentials are checked here, so a misconfigured receiver fails at start-up
    (:class:`~akool_async.ConfigurationError`, or ImportError without ``cryptography``)
    instead of answering every webhook with 400.

    :meth:`handle` answers:

    - 200 once a new event is verified and every listener took it (``accepted``);
    - 200 for a repeated delivery -- same signature, or same ``(id, status)`` -- which is not
      dispatched again (``duplicates``);
    - 400 when verification fails, 413 for an oversized body (``rejected``);
    - 500 when a listener raised (``listener_errors``): the event is not remembered, so
      Akool's retry dispatches it again. Listeners must therefore tolerate repeats.

    ``handle`` does not await between verification and dispatch, so concurrent deliveries
    of the same event on one event loop are dispatched at most once. It never raises for a
    bad body. :attr:`stats` counts deliveries by outcome; the first signature mismatch (a
    wrong client id) and the first undecryptable payload (a wrong client secret) are each
    logged once at WARNING with that likely cause, repeats at DEBUG.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        max_age: float | None = DEFAULT_MAX_AGE,
        dedupe_size: int = DEFAULT_DEDUPE_SIZE,
        clock: Clock | None = None,
        store: EventStore | None = None,
    ) -> None:
        fields.check_max_age(max_age)
        if isinstance(dedupe_size, bool) or not isinstance(dedupe_size, int) or dedupe_size < 1:
            raise ConfigurationError(f"dedupe_size must be an integer >= 1, got {dedupe_size!r}")
        try:
            self._key, self._iv = _crypto.credentials(client_id, client_secret)
        except ValueError as exc:
            raise ConfigurationError(f"WebhookReceiver: {exc}") from None
        self._client_id = client_id
        self._max_age = max_age
        self._dedupe_size = dedupe_size
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._memory = DeliveryMemory(dedupe_size)
        self._listeners: dict[int, Callable[[WebhookEvent], object]] = {}
        self._tokens = itertools.count()
        self._tally = DeliveryTally()
        self._store = store

    # -- counters ---------------------------------------------------------------------

    @property
    def accepted(self) -> int:
        """New events verified and dispatched to every listener."""
        return self._tally.accepted

    @property
    def duplicates(self) -> int:
        """Verified repeats of an earlier event, answered 200 and not dispatched."""
        return self._tally.duplicates

    @property
    def rejected(self) -> int:
        """Bodies that failed verification (answered 400 or 413)."""
        return self._tally.rejected

    @property
    def listener_errors(self) -> int:
        """Deliveries answered 500 because a listener raised."""
        return self._tally.listener_errors

    @property
    def stats(self) -> WebhookStats:
        """Deliveries so far by outcome, rejections by likely cause (a frozen snapshot)."""
        return self._tally.snapshot()

    @property
    def max_age(self) -> float | None:
        """The allowed timestamp skew in seconds (``None``: unchecked)."""
        return self._max_age

    def __repr__(self) -> str:
        # client_id is the only signing key and client_secret the AES key: show neither.
        return (
            f"WebhookReceiver(max_age={self._max_age!r}, dedupe_size={self._dedupe_size}, "
            f"accepted={self.accepted}, duplicates={self.duplicates}, "
            f"rejected={self.rejected}, listener_errors={self.listener_errors})"
        )

    # -- listeners and the recent-events buffer ---------------------------------------

    def add_listener(self, callback: Callable[[WebhookEvent], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every newly accepted event; returns an unsubscribe.

        Callbacks run synchronously inside :meth:`handle`, in subscription order, and must
        not block. If one raises, the others still run, the delivery is answered 500 and not
        remembered, so the same event may reach every listener again on Akool's retry.
        Unsubscribing twice is harmless.
        """
        token = next(self._tokens)
        self._listeners[token] = callback

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def recent(self, task_id: str) -> WebhookEvent | None:
        """The latest accepted event for ``task_id`` (terminal events win), or ``None``.

        Lets a batch that starts watching an id after its webhook arrived (webhooks can
        beat the create response) still see it. Holds the last ``dedupe_size`` task ids.
        """
        return self._memory.recent(task_id)

    # -- handling ---------------------------------------------------------------------

    def verify(self, body: Body) -> WebhookEvent:
        """:func:`verify_and_decrypt` with this receiver's credentials and clock.

        Pure: no counters, no deduplication, no dispatch.
        """
        return _verify(
            body,
            client_id=self._client_id,
            key=self._key,
            iv=self._iv,
            max_age=self._max_age,
            now=self._clock.wall(),
        )

    def _reject(self, error: WebhookVerificationError, status: int = 400) -> WebhookResponse:
        self._tally.reject(error.stage, error.message)
        reason = _OPAQUE_REASON if error.stage in ("decrypt", "event") else error.message
        return WebhookResponse(
            status=status, body=_json_body({"ok": False, "error": reason}), error=error
        )

    async def handle(self, body: bytes | bytearray | memoryview | str) -> WebhookResponse:
        """Process one delivery (the raw request body) and return what to answer.

        See the class docstring for the status codes. Never raises for a bad body.
        """
        if len(body) > MAX_BODY_BYTES:
            return self._reject(
                _fail(f"body is larger than {MAX_BODY_BYTES} bytes", "payload"), status=413
            )
        try:
            event = self.verify(body)
        except WebhookVerificationError as exc:
            return self._reject(exc)
        if self._store is not None and not await record_event(self._store, event):
            self._tally.listener_errors += 1  # not stored: a 500 makes Akool send it again
            return WebhookResponse(status=500, body=_json_body({"ok": False}), event=event)
        # No await from here on: check-and-remember is atomic on the event loop.
        if self._memory.is_repeat(event):
            self._tally.duplicates += 1
            return WebhookResponse(
                status=200,
                body=_json_body({"ok": True, "duplicate": True}),
                event=event,
                duplicate=True,
            )
        failures = [cb for cb in list(self._listeners.values()) if not _call(cb, event)]
        if failures:
            self._tally.listener_errors += 1
            return WebhookResponse(
                status=500,
                body=_json_body({"ok": False, "error": "event could not be dispatched"}),
                event=event,
            )
        self._memory.remember(event)
        self._tally.accepted += 1
        return WebhookResponse(
            status=200, body=_json_body({"ok": True, "duplicate": False}), event=event
        )

    async def aiohttp_handler(self, request: web.Request) -> web.StreamResponse:
        """An ``aiohttp.web`` handler: ``app.router.add_post(path, receiver.aiohttp_handler)``."""
        from aiohttp import web  # noqa: PLC0415 - keep aiohttp.web off the verify-only path

        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._tally.reject("payload", f"body is larger than {MAX_BODY_BYTES} bytes")
            raise
        answer = await self.handle(body)
        return web.Response(
            status=answer.status, body=answer.body, content_type=answer.content_type
        )


def _call(callback: Callable[[WebhookEvent], object], event: WebhookEvent) -> bool:
    """Run one listener; False (and a logged traceback) if it raised."""
    try:
        callback(event)
    except Exception:
        # A listener bug must not stop the other listeners; the delivery is answered 500.
        logger.exception("Akool webhook listener %r raised for task %s", callback, event.id)
        return False
    return True


def make_aiohttp_app(receiver: WebhookReceiver, path: str = DEFAULT_PATH) -> web.Application:
    """An ``aiohttp.web.Application`` serving ``receiver`` at ``POST path``.

    Run it with ``aiohttp.web.run_app(app)`` or an ``AppRunner``; or mount it into an
    existing app with ``parent.add_subapp("/hooks", app)``. Bodies over
    :data:`MAX_BODY_BYTES` are refused with 413.
    """
    from aiohttp import web  # noqa: PLC0415

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post(path, receiver.aiohttp_handler)
    return app
