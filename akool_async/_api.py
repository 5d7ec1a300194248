"""``Api``: the one internal request interface of a client.

Resources, downloads and batches talk to Akool through an :class:`Api` and nothing else:
``call()`` is auth -> pacing -> transport -> envelope decoding, inside ONE retry loop
(:func:`~akool_async._retry.retry_call`); ``http_session()`` lends the session to downloads
(it carries no credential). The policies, clock and jitter source are plain attributes.

Secrets (API key, client secret, bearer token) live only in :class:`Credentials` and in the
header dicts passed per request; they never appear in a repr, a log line or an exception
(errors are scrubbed on the way out as a second line of defence).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import anyio

from ._clock import Clock
from ._config import Limits, PollPolicy, RetryPolicy, Timeouts
from ._envelope import decode_response
from ._errors import (
    AkoolError,
    AuthenticationError,
    ClientStateError,
    RateLimitError,
    ResponseError,
    ValidationError,
)
from ._pacing import Pacer, share_cut
from ._retry import retry_call
from ._tracing import api_call_span, note_create_sent
from ._transport import RawResponse, Transport, encode_json

if TYPE_CHECKING:
    from ._fleet_budget import SharedBudget

__all__ = ["TOKEN_PATH", "Api", "Credentials"]

TOKEN_PATH = "/api/open/v3/getToken"  # noqa: S105 - a URL path, not a password

_logger = logging.getLogger("akool_async")


class Credentials:
    """The secrets of one client. Its repr never shows them."""

    __slots__ = ("api_key", "client_id", "client_secret", "kind")

    def __init__(
        self,
        kind: Literal["api_key", "token"],
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> None:
        self.kind = kind
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for scrubbing error texts."""
        return tuple(s for s in (self.api_key, self.client_secret) if s)

    def digest(self) -> str:
        """16 hex digits of the SHA-256 of the API key (or the client id): names the account
        in journals without revealing the credential."""
        credential = self.api_key if self.api_key is not None else self.client_id or ""
        return hashlib.sha256(credential.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Credentials(kind={self.kind!r}, <redacted>)"


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


def scrub(err: BaseException, secrets: tuple[str, ...]) -> None:
    """Remove every secret from ``err`` and its causes (defence in depth; normally a no-op)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AkoolError):
            texts = [current.message, current.msg or "", *map(str, current.args)]
            if any(secret in text for text in texts for secret in secrets):
                current.message = _redact(current.message, secrets)
                if current.msg:
                    current.msg = _redact(current.msg, secrets)
                current.args = tuple(
                    _redact(a, secrets) if isinstance(a, str) else a for a in current.args
                )
        current = current.__cause__ or current.__context__


class _TokenFailure(Exception):  # noqa: N818 - a private carrier, never seen by users
    """Carries a getToken failure through ``retry_call`` untouched.

    getToken has its own retries; its failure must not be judged as the failure of the
    call that needed the token (a create would otherwise look "sent and lost").
    """

    def __init__(self, error: AkoolError) -> None:
        super().__init__()
        self.error = error


def _encode_body(value: Any) -> bytes:
    """The JSON body, encoded before anything is paced, journaled or sent."""
    try:
        return encode_json(value)
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800") is valid in a Python str but not in UTF-8.
        raise ValidationError(
            "request", "contains text that cannot be encoded as UTF-8 (a lone surrogate)"
        ) from None


class Api:
    """Auth, pacing, transport, envelope and retries for one client (see the module doc).

    Open it with :meth:`open` inside the event loop and close it with :meth:`aclose`;
    ``session`` is an aiohttp session owned by the caller (used, never closed).
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str,
        timeouts: Timeouts,
        retry_policy: RetryPolicy,
        poll_policy: PollPolicy,
        limits: Limits,
        clock: Clock,
        user_agent: str,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeouts = timeouts
        self.retry_policy = retry_policy
        self.poll_policy = poll_policy
        self.limits = limits
        self.clock = clock
        self.rng = random.Random()  # jitter only, never security
        self.account_digest = credentials.digest()
        self._credentials = credentials
        self._user_agent = user_agent
        self._session = session
        # Akool rate-limits per API key, and a client is one key: every attempt (retries
        # included) takes a slot; any 429/1005 cuts both pacers (AIMD, see _pacing). GETs:
        # at most poll.max_polls_per_second; creates and analyses: limits.max_creates_per_second.
        self._get_pacer = Pacer(poll_policy.max_polls_per_second, clock)
        self._create_pacer = Pacer(limits.max_creates_per_second, clock)
        # A fleet's batch installs its store's budget here for its lifetime (_fleet_budget).
        self.shared_budget: SharedBudget | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._transport: Transport | None = None
        self._token_lock = anyio.Lock()
        self._api_key_headers: dict[str, str] | None = (
            {"x-api-key": credentials.api_key} if credentials.api_key is not None else None
        )
        self._bearer: dict[str, str] | None = None

    @property
    def state(self) -> Literal["new", "open", "closed"]:
        """``new`` until :meth:`open`, then ``open``, then ``closed`` for good."""
        return self._state

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the transport (the client's ``__aenter__``)."""
        if self._state != "new":
            raise ClientStateError(f"the request interface is {self._state}, not new")
        transport = Transport(
            self.base_url,
            timeouts=self.timeouts,
            limits=self.limits,
            user_agent=self._user_agent,
            session=self._session,
        )
        await transport.open()
        self._transport = transport
        self._state = "open"

    async def aclose(self) -> None:
        """Close the transport (the session too, unless the caller owns it); idempotent."""
        transport, self._transport = self._transport, None
        self._state = "closed"
        self._bearer = None
        if transport is not None:
            await transport.aclose()

    def _open_transport(self) -> Transport:
        transport = self._transport
        if transport is not None:
            return transport
        if self._state == "closed":
            raise ClientStateError(
                "this AkoolClient is closed; API calls must happen inside its `async with` "
                "block (create a new client to continue)"
            )
        raise ClientStateError(
            "this AkoolClient is not open yet; use `async with AkoolClient(...) as client:`"
        )

    def http_session(self) -> aiohttp.ClientSession:
        """The client's session, for downloads (no credential on it); ClientStateError
        outside the client's block."""
        return self._open_transport().session

    # -- the one request path -------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool,
        create_request: object = None,
        task_id: str | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Send one API call with auth, pacing, envelope decoding and retries; return data.

        ``idempotent=False`` marks a create: it is resent only when the error proves no
        task was created, and an ambiguous failure raises ``SubmissionUncertainError``
        carrying ``create_request``. ``task_id`` is attached to errors. ``before_send`` is
        awaited once per attempt, after the pacing slot, once a connection is held, right
        before the request goes out; if it raises, nothing is sent.
        """
        transport = self._open_transport()
        body = None if json is None else _encode_body(json)
        pacer = self._get_pacer if idempotent else self._create_pacer
        refreshed = False
        tries = 0

        async def send(headers: Mapping[str, str]) -> dict[str, Any]:
            return await self._send(
                transport,
                method,
                path,
                params=params,
                body=body,
                headers=headers,
                task_id=task_id,
                attempt=tries,
                before_send=before_send,
            )

        async def attempt() -> dict[str, Any]:
            nonlocal refreshed, tries
            headers = await self._auth_headers()
            await pacer.acquire()
            if self.shared_budget is not None:
                await self.shared_budget.acquire()
            tries += 1
            if create_request is not None:
                note_create_sent(self.clock.wall())  # the current batch job's attempts
            try:
                try:
                    data = await send(headers)
                except AuthenticationError as err:
                    # 1101 proves the request was rejected (nothing created): with a token,
                    # refresh it once per call and send the same request again.
                    if err.code != 1101 or self._api_key_headers is not None or refreshed:
                        raise
                    refreshed = True
                    _logger.debug("%s %s: token rejected (1101), refreshing once", method, path)
                    data = await send(await self._refreshed_headers(headers))
            except RateLimitError as err:
                if self.shared_budget is None:
                    self._throttled(err.retry_after)
                else:
                    # The fleet's bucket is the one rate: cut it, not this member's pacers
                    # (each sees only its share of the traffic and would cut below it).
                    self._get_pacer.pause(err.retry_after)
                    self._create_pacer.pause(err.retry_after)
                    await self.shared_budget.throttled()
                raise
            except AkoolError:
                pacer.succeeded()  # failed, but not throttled: no rate signal
                raise
            pacer.succeeded()
            return data

        try:
            return await retry_call(
                attempt,
                policy=self.retry_policy,
                clock=self.clock,
                rng=self.rng,
                create_request=create_request,
                idempotent=idempotent,
            )
        except _TokenFailure as carrier:
            err = carrier.error
            scrub(err, self._secrets())
            raise err from err.__cause__
        except AkoolError as err:
            if task_id is not None and err.task_id is None:
                err.task_id = task_id
            scrub(err, self._secrets())
            raise

    async def _send(
        self,
        transport: Transport,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str],
        task_id: str | None,
        attempt: int,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        # A span per attempt when tracing: method, path (no query), status, code, task id.
        with api_call_span(method, path, attempt=attempt, task_id=task_id) as span:
            raw = await transport.request(
                method, path, params=params, body=body, headers=headers, on_ready=before_send
            )
            span.response(raw.status)
            data = self._decode(raw, method, path, task_id)
            span.answered(data)
            return data

    def _decode(
        self, raw: RawResponse, method: str, path: str, task_id: str | None
    ) -> dict[str, Any]:
        return decode_response(
            raw.status,
            raw.headers,
            raw.body,
            method=method,
            path=path,
            now_wall=self.clock.wall(),
            task_id=task_id,
        )

    def _throttled(self, retry_after: float | None) -> None:
        # The limit is per key across endpoints: a throttled poll slows creates too.
        self._get_pacer.throttled(retry_after)
        self._create_pacer.throttled(retry_after)
        share_cut((self._get_pacer, self._create_pacer))

    def _secrets(self) -> tuple[str, ...]:
        secrets = self._credentials.secrets()
        bearer = self._bearer
        if bearer is not None:
            secrets += (bearer["Authorization"][len("Bearer ") :],)
        return secrets

    # -- auth ---------------------------------------------------------------------------

    async def _auth_headers(self) -> dict[str, str]:
        """The API key header, or a bearer token (fetched once, shared by every caller)."""
        if self._api_key_headers is not None:
            return self._api_key_headers
        if self._bearer is not None:
            return self._bearer
        async with self._token_lock:
            if self._bearer is None:  # another caller may have fetched it meanwhile
                self._bearer = await self._bearer_from_token()
            return self._bearer

    async def _refreshed_headers(self, stale: Mapping[str, str]) -> dict[str, str]:
        """A fresh token unless another caller already replaced ``stale``."""
        async with self._token_lock:
            if self._bearer is None or self._bearer is stale:
                self._bearer = None
                self._bearer = await self._bearer_from_token()
            return self._bearer

    async def _bearer_from_token(self) -> dict[str, str]:
        try:
            return {"Authorization": "Bearer " + await self._fetch_token()}
        except AkoolError as err:
            raise _TokenFailure(err) from None

    async def _fetch_token(self) -> str:
        transport = self._open_transport()
        creds = self._credentials
        body = encode_json({"clientId": creds.client_id, "clientSecret": creds.client_secret})

        async def attempt() -> dict[str, Any]:
            raw = await transport.request("POST", TOKEN_PATH, body=body)
            return decode_response(
                raw.status,
                raw.headers,
                raw.body,
                method="POST",
                path=TOKEN_PATH,
                now_wall=self.clock.wall(),
                whole_body=True,
            )

        # getToken creates nothing and costs nothing: safe to retry like a GET.
        answer = await retry_call(attempt, policy=self.retry_policy, clock=self.clock, rng=self.rng)
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise ResponseError(
                "getToken answered success without a token",
                method="POST",
                path=TOKEN_PATH,
                code=answer.get("code"),
            )
        _logger.debug("obtained a bearer token from getToken")
        return token
