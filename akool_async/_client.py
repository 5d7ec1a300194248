"""``AkoolClient``: the one owner of I/O, auth, configuration and the clock.

One :class:`AkoolClient` owns one :class:`~akool_async._transport.Transport` (one pooled
aiohttp session) for the lifetime of its ``async with`` block. Every API call goes through
:meth:`AkoolClient._request`: auth headers -> transport -> envelope decoding -> retry policy.

Secrets (API key, client secret, bearer token) live only in :class:`_Credentials` and in
the header dicts handed to the transport; they never appear in a repr, a log line or an
exception (errors are scrubbed on the way out as a second line of defence).
"""

from __future__ import annotations

import logging
import os
import platform
import random
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import aiohttp
import anyio

from ._batch import DEFAULT_MAX_IN_FLIGHT, Batch, BatchStats, JobSource
from ._clock import SYSTEM_CLOCK, Clock
from ._config import (
    DEFAULT_LIMITS,
    DEFAULT_POLL_POLICY,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TIMEOUTS,
    Limits,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from ._download import DEFAULT_CHUNK_SIZE, MAX_REDIRECTS, Downloader
from ._download import download as _download
from ._envelope import decode_response, success_data
from ._errors import (
    AkoolError,
    AuthenticationError,
    ClientStateError,
    ConfigurationError,
    RateLimitError,
    ResponseError,
)
from ._journal import Journal
from ._net import is_loopback_host
from ._pacing import Pacer, share_cut
from ._resources import CharacterSwapResource, HeadSwapResource
from ._retry import retry_call
from ._transport import RawResponse, Transport

if TYPE_CHECKING:
    from .webhooks import WebhookReceiver

__all__ = ["DEFAULT_BASE_URL", "AkoolClient"]

#: Where Akool's Open API lives unless ``base_url`` or ``$AKOOL_BASE_URL`` says otherwise.
DEFAULT_BASE_URL = "https://openapi.akool.com"
TOKEN_PATH = "/api/open/v3/getToken"  # noqa: S105 - a URL path, not a password
CREDIT_PATH = "/api/open/v3/faceswap/quota/info"

ENV_API_KEY = "AKOOL_API_KEY"
ENV_CLIENT_ID = "AKOOL_CLIENT_ID"
ENV_CLIENT_SECRET = "AKOOL_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
ENV_BASE_URL = "AKOOL_BASE_URL"

_logger = logging.getLogger("akool_async")

_NO_CREDENTIALS = (
    "no Akool credentials: pass AkoolClient(api_key=...) or set $AKOOL_API_KEY "
    "(or pass client_id=/client_secret=, or set $AKOOL_CLIENT_ID and $AKOOL_CLIENT_SECRET). "
    "To try the SDK offline, run the simulator with `python -m akool_async.testing` and "
    "point base_url at it"
)


class _Credentials:
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
        return tuple(s for s in (self.api_key, self.client_secret) if s)

    def __repr__(self) -> str:
        return f"_Credentials(kind={self.kind!r}, <redacted>)"


def _nonempty(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ConfigurationError(f"{name} is empty")
    return value


def _resolve_credentials(
    api_key: str | None, client_id: str | None, client_secret: str | None
) -> _Credentials:
    """Explicit arguments win over the environment; an API key wins over client id/secret."""
    if api_key is not None:
        if client_id is not None or client_secret is not None:
            raise ConfigurationError("pass either api_key or client_id/client_secret, not both")
        return _Credentials("api_key", api_key=_nonempty("api_key", api_key))
    if client_id is None and client_secret is None:
        env_key = os.environ.get(ENV_API_KEY)
        if env_key:
            return _Credentials("api_key", api_key=_nonempty(f"${ENV_API_KEY}", env_key))
    cid = client_id if client_id is not None else os.environ.get(ENV_CLIENT_ID) or None
    secret = (
        client_secret if client_secret is not None else os.environ.get(ENV_CLIENT_SECRET) or None
    )
    if cid is None and secret is None:
        raise ConfigurationError(_NO_CREDENTIALS)
    if cid is None or secret is None:
        missing = "client_id" if cid is None else "client_secret"
        env = ENV_CLIENT_ID if cid is None else ENV_CLIENT_SECRET
        raise ConfigurationError(
            f"client_id and client_secret go together: {missing} is missing "
            f"(pass it or set ${env}); or use api_key instead"
        )
    return _Credentials(
        "token",
        client_id=_nonempty("client_id", cid),
        client_secret=_nonempty("client_secret", secret),
    )


def _check_base_url(value: object) -> str:
    """``value`` without a trailing slash, if it is https (or http to a loopback host)."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"base_url must be a non-empty URL string, got {value!r}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigurationError(f"base_url {value!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise ConfigurationError(
            f"base_url must be an https URL such as {DEFAULT_BASE_URL!r}, got {value!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("base_url must not contain credentials; pass api_key instead")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url must not have a query or fragment, got {value!r}")
    if scheme == "http" and not is_loopback_host(host):
        raise ConfigurationError(
            f"base_url must use https (got {value!r}): the API key would travel in clear "
            "text. Plain http is allowed only for loopback hosts (127.0.0.0/8, ::1, "
            "localhost), e.g. the simulator from `python -m akool_async.testing`"
        )
    return value.rstrip("/")


def _user_agent() -> str:
    from . import __version__  # noqa: PLC0415 - the package is fully imported by now

    return (
        f"akool-async/{__version__} aiohttp/{aiohttp.__version__} "
        f"python/{platform.python_version()}"
    )


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


def _scrub(err: BaseException, secrets: tuple[str, ...]) -> None:
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


async def _token_or_carrier(get: Callable[[], Awaitable[dict[str, str]]]) -> dict[str, str]:
    try:
        return await get()
    except AkoolError as err:
        raise _TokenFailure(err) from None


class AkoolClient:
    """An asyncio client for Akool Character Swap and Head Swap. Use it as ``async with``.

    - ``api_key``: sent as ``x-api-key``; defaults to ``$AKOOL_API_KEY``.
    - ``client_id``/``client_secret``: the legacy pair, exchanged once for a bearer token
      (``POST /api/open/v3/getToken``, cached, refreshed once on code 1101); default
      ``$AKOOL_CLIENT_ID``/``$AKOOL_CLIENT_SECRET``. Explicit arguments win over the
      environment, and an API key wins over the pair.
    - ``base_url``: default ``$AKOOL_BASE_URL`` or ``https://openapi.akool.com``; must be
      https unless the host is loopback (the simulator).
    - ``timeouts``, ``retry``, ``poll``, ``limits``: frozen policy values (seconds).
    - ``clock``: where every sleep and time read goes (default: the real clock).

    The client is entered once; entering it again or using it after the block raises
    :class:`ClientStateError`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        base_url: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        poll: PollPolicy = DEFAULT_POLL_POLICY,
        limits: Limits = DEFAULT_LIMITS,
        clock: Clock | None = None,
    ) -> None:
        for name, value, cls in (
            ("timeouts", timeouts, Timeouts),
            ("retry", retry, RetryPolicy),
            ("poll", poll, PollPolicy),
            ("limits", limits, Limits),
        ):
            if not isinstance(value, cls):
                raise ConfigurationError(
                    f"{name} must be an akool_async.{cls.__name__}, got {type(value).__name__}"
                )
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError("clock must implement monotonic(), wall() and sleep()")
        self._credentials = _resolve_credentials(api_key, client_id, client_secret)
        if base_url is None:
            base_url = os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        self._base_url = _check_base_url(base_url)
        self._timeouts = timeouts
        self._retry = retry
        self._poll = poll
        self._limits = limits
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._rng = random.Random()  # jitter only, never security
        # Akool rate-limits per API key, and a client is one key: the client owns the
        # request budget. Every attempt (retries included) takes a slot; any 429/1005
        # cuts both pacers (AIMD, see _pacing). GETs: at most poll.max_polls_per_second;
        # creates (and analyses): at most limits.max_creates_per_second.
        self._get_pacer = Pacer(poll.max_polls_per_second, self._clock)
        self._create_pacer = Pacer(limits.max_creates_per_second, self._clock)
        self._state: Literal["new", "open", "closed"] = "new"
        self._transport: Transport | None = None
        self._token_lock: anyio.Lock | None = None
        # The static API-key header (session-level); None in token mode, where the bearer
        # header dict is built once per token and passed with each request.
        creds = self._credentials
        self._headers: dict[str, str] | None = (
            {"x-api-key": creds.api_key} if creds.api_key is not None else None
        )
        self._bearer: dict[str, str] | None = None
        self.character_swap = CharacterSwapResource(self)
        """Character Swap: ``create``, ``get``, ``wait``, ``run``."""
        self.head_swap = HeadSwapResource(self)
        """Head Swap: ``analyze``, ``get_analysis``, ``wait_analysis``, ``create``, ``get``,
        ``wait``, ``run``."""

    # -- configuration ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root requests go to (no trailing slash)."""
        return self._base_url

    @property
    def auth(self) -> Literal["api_key", "token"]:
        """``"api_key"`` (x-api-key header) or ``"token"`` (client id/secret -> bearer)."""
        return self._credentials.kind

    @property
    def timeouts(self) -> Timeouts:
        """Per-request timeouts."""
        return self._timeouts

    @property
    def retry_policy(self) -> RetryPolicy:
        """How failed requests are retried."""
        return self._retry

    @property
    def poll_policy(self) -> PollPolicy:
        """How ``wait`` (and batches, by default) poll task status."""
        return self._poll

    @property
    def limits(self) -> Limits:
        """Connection and response-size bounds."""
        return self._limits

    @property
    def clock(self) -> Clock:
        """The clock every sleep and deadline of this client uses."""
        return self._clock

    def __repr__(self) -> str:
        return f"AkoolClient(base_url={self._base_url!r}, auth={self._credentials.kind!r})"

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> AkoolClient:
        if self._state == "open":
            raise ClientStateError(
                "this AkoolClient is already open; enter `async with` once per client"
            )
        if self._state == "closed":
            raise ClientStateError(
                "this AkoolClient was closed and cannot be reopened; create a new AkoolClient"
            )
        transport = Transport(
            self._base_url,
            timeouts=self._timeouts,
            limits=self._limits,
            user_agent=_user_agent(),
            # The key goes on each API request, never on the session: the session also
            # fetches output files from Akool's CDN, which must never see a credential.
        )
        await transport.open()
        self._transport = transport
        self._token_lock = anyio.Lock()
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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

    # ``batch()`` (at the end of the class) belongs to the batch engine (``_batch.py``); it
    # uses only ``poll_policy``, ``retry_policy``, ``clock`` and the two resources above.

    # -- auth ---------------------------------------------------------------------------

    async def _bearer_headers(self) -> dict[str, str]:
        headers = self._bearer
        if headers is not None:
            return headers
        lock = self._token_lock
        assert lock is not None
        async with lock:
            if self._bearer is None:  # another caller may have fetched it meanwhile
                self._bearer = {"Authorization": "Bearer " + await self._fetch_token()}
            return self._bearer

    async def _refresh_bearer(self, stale: Mapping[str, str]) -> dict[str, str]:
        """A fresh token unless another caller already replaced ``stale``."""
        lock = self._token_lock
        assert lock is not None
        async with lock:
            if self._bearer is None or self._bearer is stale:
                self._bearer = None
                self._bearer = {"Authorization": "Bearer " + await self._fetch_token()}
            return self._bearer

    async def _fetch_token(self) -> str:
        transport = self._open_transport()
        creds = self._credentials
        body = {"clientId": creds.client_id, "clientSecret": creds.client_secret}
        clock = self._clock

        async def attempt() -> dict[str, Any]:
            raw = await transport.request("POST", TOKEN_PATH, json=body)
            return decode_response(
                raw.status,
                raw.headers,
                raw.body,
                method="POST",
                path=TOKEN_PATH,
                now_wall=clock.wall(),
                whole_body=True,
            )

        # getToken creates nothing and costs nothing: safe to retry like a GET.
        answer = await retry_call(attempt, policy=self._retry, clock=clock, rng=self._rng)
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

    # -- the one request path -------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool,
        create_request: object = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """Send one API call with auth, envelope decoding and the retry policy; return data.

        ``idempotent=False`` marks a create: it is resent only when the error proves no
        task was created, and an ambiguous failure raises ``SubmissionUncertainError``
        carrying ``create_request``. ``task_id`` is attached to errors.
        """
        transport = self._transport
        if transport is None:
            transport = self._open_transport()  # raises the right ClientStateError
        clock = self._clock
        pacer = self._get_pacer if idempotent else self._create_pacer
        started = clock.monotonic()
        first: AkoolError | None = None
        headers = self._headers
        if headers is not None:
            # Fast path (API key): the first try inline, without the retry machinery's
            # closures and frames (every I/O wake-up resumes the whole await chain); a
            # failure goes to the retry policy exactly as if it had been its first try.
            wait = pacer.reserve(started)
            if wait:
                await clock.sleep(wait)
            sent = started + wait  # the booked slot: the pacer measures rates over slots
            try:
                raw = await transport.request(
                    method, path, params=params, json=json, headers=headers
                )
                data = success_data(raw.status, raw.body)
                if data is None:
                    data = self._decode(raw, method, path, task_id)
            except RateLimitError as err:
                self._throttled(err.retry_after)
                first = err
            except AkoolError as err:
                pacer.succeeded(sent)  # failed, but not throttled: no rate signal
                first = err
            else:
                pacer.succeeded(sent)
                return data
        return await self._request_retrying(
            transport,
            pacer,
            method,
            path,
            params=params,
            json=json,
            idempotent=idempotent,
            create_request=create_request,
            task_id=task_id,
            first=first,
            started=started,
        )

    async def _request_retrying(
        self,
        transport: Transport,
        pacer: Pacer,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        idempotent: bool,
        create_request: object,
        task_id: str | None,
        first: AkoolError | None,
        started: float,
    ) -> dict[str, Any]:
        """The general path: bearer tokens (refreshed once on 1101) and the retry policy."""
        clock = self._clock
        refreshed = False

        async def attempt() -> dict[str, Any]:
            nonlocal refreshed
            headers = (
                self._headers
                if self._headers is not None
                else await _token_or_carrier(self._bearer_headers)
            )
            raw = await transport.request(method, path, params=params, json=json, headers=headers)
            try:
                return self._decode(raw, method, path, task_id)
            except AuthenticationError as err:
                # 1101 proves the request was rejected (nothing created): with a token,
                # refresh it once per call and send the same request again.
                if err.code != 1101 or self._headers is not None or refreshed:
                    raise
                refreshed = True
                _logger.debug("%s %s: token rejected (1101), refreshing once", method, path)
            assert headers is not None
            stale = headers
            headers = await _token_or_carrier(lambda: self._refresh_bearer(stale))
            raw = await transport.request(method, path, params=params, json=json, headers=headers)
            return self._decode(raw, method, path, task_id)

        async def paced_attempt() -> dict[str, Any]:
            await pacer.acquire()
            try:
                data = await attempt()
            except RateLimitError as err:
                self._throttled(err.retry_after)
                raise
            except AkoolError:
                pacer.succeeded()  # failed, but not throttled: no rate signal
                raise
            pacer.succeeded()
            return data

        try:
            return await retry_call(
                paced_attempt,
                policy=self._retry,
                clock=clock,
                rng=self._rng,
                create_request=create_request,
                idempotent=idempotent,
                first_error=first,
                started=started,
            )
        except _TokenFailure as carrier:
            err = carrier.error
            _scrub(err, self._secrets())
            raise err from err.__cause__
        except AkoolError as err:
            if task_id is not None and err.task_id is None:
                err.task_id = task_id
            _scrub(err, self._secrets())
            raise

    def _decode(
        self, raw: RawResponse, method: str, path: str, task_id: str | None
    ) -> dict[str, Any]:
        return decode_response(
            raw.status,
            raw.headers,
            raw.body,
            method=method,
            path=path,
            now_wall=self._clock.wall(),
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

    # -- account --------------------------------------------------------------------------

    async def get_credits(self) -> float:
        """The account's credit balance (``GET /api/open/v3/faceswap/quota/info``)."""
        data = await self._request("GET", CREDIT_PATH, idempotent=True)
        credit = data.get("credit")
        if not isinstance(credit, (int, float)) or isinstance(credit, bool):
            raise ResponseError(
                f"quota/info answered without a numeric credit (got {type(credit).__name__})",
                method="GET",
                path=CREDIT_PATH,
                code=1000,
            )
        return float(credit)

    # -- bulk -----------------------------------------------------------------------------

    def batch(
        self,
        jobs: JobSource | None = None,
        *,
        concurrency: int = 16,
        deadline: float | None = None,
        poll: PollPolicy | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        progress: Callable[[BatchStats], None] | None = None,
        journal: str | os.PathLike[str] | Journal | None = None,
        resubmit_uncertain: bool = False,
        webhook_url: str | None = None,
        webhooks: WebhookReceiver | None = None,
        download_dir: str | os.PathLike[str] | None = None,
        download_concurrency: int = 4,
    ) -> Batch:
        """Run many jobs: ``async with client.batch(jobs) as outcomes: async for o in outcomes``.

        ``jobs`` is any iterable or async iterable of requests or :class:`Job` (pulled lazily);
        without it, submit jobs with ``await batch.submit(job)`` and call ``batch.close()``.
        ``concurrency`` (16) bounds creates in flight; ``deadline`` (seconds per job, None =
        no limit) turns a job still running into a ``WaitTimeoutError`` outcome; ``poll``
        overrides the client's :class:`PollPolicy`; ``max_in_flight`` (10,000) bounds jobs
        whose outcome has not been consumed; ``progress`` receives a :class:`BatchStats`
        snapshot on every state change (keep it cheap).

        ``journal`` (a path or an open ``Journal``) records every job in SQLite before its
        create is sent and its task id right after: rerunning the same jobs with the same
        journal re-emits finished jobs without a request, resumes polling of created ones,
        reports creates that were sent but never acknowledged as ``SubmissionUncertainError``
        (unless ``resubmit_uncertain=True``) and submits the rest. Jobs are matched by key
        (``Job.key``, or the input position), so give stable keys when resuming.

        ``webhook_url`` is set on every request that has none; with ``webhooks`` (an
        :class:`akool_async.webhooks.WebhookReceiver` receiving at that URL) a job completes
        as soon as its event arrives, and polling drops to ``PollPolicy.reconcile_interval``.

        ``download_dir`` saves each completed output there (``safe_filename(key)``, at most
        ``download_concurrency`` at a time) before its outcome is yielded; ``Outcome.path``
        is the file, ``Outcome.download_error`` says why there is none. With a journal the
        path is recorded, and a rerun only fetches what is missing.
        """
        return Batch(
            self,
            jobs,
            concurrency=concurrency,
            deadline=deadline,
            poll=poll,
            max_in_flight=max_in_flight,
            progress=progress,
            journal=journal,
            resubmit_uncertain=resubmit_uncertain,
            webhook_url=webhook_url,
            webhooks=webhooks,
            downloader=(
                None
                if download_dir is None
                else Downloader(self, download_dir, concurrency=download_concurrency)
            ),
        )

    async def download(
        self,
        result: object,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_redirects: int = MAX_REDIRECTS,
    ) -> Path:
        """Save a result's ``output_url`` (or a URL string) to ``path`` and return the path.

        Streams to a temporary file beside ``path``, fsyncs, then renames atomically; resumes
        with HTTP Range after a dropped connection and retries transient errors under the
        client's :class:`RetryPolicy`. Only https URLs (plain http to loopback) are fetched,
        and no credential is ever sent with them. Raises ``DownloadError``.
        """
        return await _download(
            self,
            result,
            path,
            overwrite=overwrite,
            chunk_size=chunk_size,
            max_redirects=max_redirects,
        )
