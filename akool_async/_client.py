"""``AkoolClient``: the one owner of I/O, auth, configuration and the clock.

One :class:`AkoolClient` owns one :class:`~akool_async._api.Api` (auth, pacing, one pooled
aiohttp session, envelope decoding, retries) for the lifetime of its ``async with`` block,
and hands that interface to its resources, its batches and its downloads.

Secrets (API key, client secret, bearer token) live only in the ``Credentials`` of the
``Api``; they never appear in a repr, a log line or an exception.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import aiohttp

from ._api import Api, Credentials
from ._batch import DEFAULT_MAX_IN_FLIGHT, Batch, BatchStats, JobSource
from ._batch._estimate import AdaptiveTiming
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
from ._download import DEFAULT_CHUNK_SIZE, MAX_REDIRECTS, Downloader, download_file
from ._errors import ClientStateError, ConfigurationError, ResponseError
from ._net import http_url_problem, split_url
from ._resources import CharacterSwapResource, HeadSwapResource
from ._store import JobStore

if TYPE_CHECKING:
    from .webhooks import WebhookReceiver

__all__ = ["DEFAULT_BASE_URL", "AkoolClient"]

#: Where Akool's Open API lives unless ``base_url`` or ``$AKOOL_BASE_URL`` says otherwise.
DEFAULT_BASE_URL = "https://openapi.akool.com"
CREDIT_PATH = "/api/open/v3/faceswap/quota/info"

ENV_API_KEY = "AKOOL_API_KEY"
ENV_CLIENT_ID = "AKOOL_CLIENT_ID"
ENV_CLIENT_SECRET = "AKOOL_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
ENV_BASE_URL = "AKOOL_BASE_URL"

_NO_CREDENTIALS = (
    "no Akool credentials: pass AkoolClient(api_key=...) or set $AKOOL_API_KEY "
    "(or pass client_id=/client_secret=, or set $AKOOL_CLIENT_ID and $AKOOL_CLIENT_SECRET). "
    "To try the SDK offline, run the simulator with `python -m akool_async.testing` and "
    "point base_url at it"
)


def _secret_value(name: str, value: object) -> str:
    """``value`` without surrounding whitespace (a key read from a file ends in a newline);
    ConfigurationError if it is not a string, empty, or holds control characters."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise ConfigurationError(f"{name} is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        # Never quote the value: it is a secret.
        raise ConfigurationError(f"{name} contains control characters; check how it was read")
    return value


def _environment(name: str) -> str | None:
    return os.environ.get(name) or None


def _resolve_credentials(
    api_key: str | None, client_id: str | None, client_secret: str | None
) -> Credentials:
    """Explicit arguments win over the environment; an API key wins over client id/secret."""
    if api_key is not None:
        if client_id is not None or client_secret is not None:
            raise ConfigurationError("pass either api_key or client_id/client_secret, not both")
        return Credentials("api_key", api_key=_secret_value("api_key", api_key))
    if client_id is None and client_secret is None:
        env_key = _environment(ENV_API_KEY)
        if env_key is not None:
            return Credentials("api_key", api_key=_secret_value(f"${ENV_API_KEY}", env_key))
    return _token_credentials(
        client_id if client_id is not None else _environment(ENV_CLIENT_ID),
        client_secret if client_secret is not None else _environment(ENV_CLIENT_SECRET),
    )


def _token_credentials(client_id: str | None, client_secret: str | None) -> Credentials:
    if client_id is None and client_secret is None:
        raise ConfigurationError(_NO_CREDENTIALS)
    if client_id is None or client_secret is None:
        missing = "client_id" if client_id is None else "client_secret"
        env = ENV_CLIENT_ID if client_id is None else ENV_CLIENT_SECRET
        raise ConfigurationError(
            f"client_id and client_secret go together: {missing} is missing "
            f"(pass it or set ${env}); or use api_key instead"
        )
    return Credentials(
        "token",
        client_id=_secret_value("client_id", client_id),
        client_secret=_secret_value("client_secret", client_secret),
    )


def _check_base_url(value: object) -> str:
    """``value`` without a trailing slash, if it is https (or http to a loopback host)."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"base_url must be a non-empty URL string, got {value!r}")
    try:
        parts = split_url(value)
    except ValueError as exc:
        raise ConfigurationError(f"base_url {value!r} is not a valid URL: {exc}") from None
    problem = http_url_problem(parts)
    if problem in ("scheme", "host"):
        raise ConfigurationError(
            f"base_url must be an https URL such as {DEFAULT_BASE_URL!r}, got {value!r}"
        )
    if problem == "credentials":
        raise ConfigurationError("base_url must not contain credentials; pass api_key instead")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url must not have a query or fragment, got {value!r}")
    if problem == "plain_http":
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


class AkoolClient:
    """An asyncio client for Akool Character Swap and Head Swap. Use it as ``async with``.

    - ``api_key``: sent as ``x-api-key``; defaults to ``$AKOOL_API_KEY``. Surrounding
      whitespace (a newline read from a file) is removed.
    - ``client_id``/``client_secret``: the legacy pair, exchanged once for a bearer token
      (``POST /api/open/v3/getToken``, cached, refreshed once on code 1101); default
      ``$AKOOL_CLIENT_ID``/``$AKOOL_CLIENT_SECRET``. Explicit arguments win over the
      environment, and an API key wins over the pair.
    - ``base_url``: default ``$AKOOL_BASE_URL`` or ``https://openapi.akool.com``; must be
      https unless the host is loopback (the simulator).
    - ``timeouts``, ``retry``, ``poll``, ``limits``: frozen policy values (seconds).
    - ``clock``: where every sleep and time read goes (default: the real clock).
    - ``session``: an ``aiohttp.ClientSession`` you own (e.g. your aiohttp app's): the client
      sends through it and leaves it open. No credential is ever set on it.

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
        session: aiohttp.ClientSession | None = None,
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
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError(
                f"session must be an aiohttp.ClientSession, got {type(session).__name__}"
            )
        credentials = _resolve_credentials(api_key, client_id, client_secret)
        self._auth: Literal["api_key", "token"] = credentials.kind
        if base_url is None:
            base_url = os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        self._api = Api(
            credentials,
            base_url=_check_base_url(base_url),
            timeouts=timeouts,
            retry_policy=retry,
            poll_policy=poll,
            limits=limits,
            clock=clock if clock is not None else SYSTEM_CLOCK,
            user_agent=_user_agent(),
            session=session,
        )
        # What the client learns about durations steers every poll: wait(), run() and the
        # batches that keep the client's PollPolicy share it.
        self._poll_timing = AdaptiveTiming(poll, self._api.rng)
        self.character_swap = CharacterSwapResource(self._api, self._poll_timing)
        """Character Swap: ``create``, ``get``, ``wait``, ``run``."""
        self.head_swap = HeadSwapResource(self._api, self._poll_timing)
        """Head Swap: ``analyze``, ``get_analysis``, ``wait_analysis``, ``create``, ``get``,
        ``wait``, ``run``."""

    # -- configuration ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root requests go to (no trailing slash)."""
        return self._api.base_url

    @property
    def account_digest(self) -> str:
        """A SHA-256 digest of the credential (16 hex digits), never the credential; it binds
        job stores to the account."""
        return self._api.account_digest

    @property
    def auth(self) -> Literal["api_key", "token"]:
        """``"api_key"`` (x-api-key header) or ``"token"`` (client id/secret -> bearer)."""
        return self._auth

    @property
    def timeouts(self) -> Timeouts:
        """Per-request timeouts."""
        return self._api.timeouts

    @property
    def retry_policy(self) -> RetryPolicy:
        """How failed requests are retried."""
        return self._api.retry_policy

    @property
    def poll_policy(self) -> PollPolicy:
        """How ``wait`` (and batches, by default) poll task status."""
        return self._api.poll_policy

    @property
    def limits(self) -> Limits:
        """Connection and response-size bounds."""
        return self._api.limits

    @property
    def clock(self) -> Clock:
        """The clock every sleep and deadline of this client uses."""
        return self._api.clock

    def __repr__(self) -> str:
        return f"AkoolClient(base_url={self.base_url!r}, auth={self._auth!r})"

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> AkoolClient:
        state = self._api.state
        if state == "open":
            raise ClientStateError(
                "this AkoolClient is already open; enter `async with` once per client"
            )
        if state == "closed":
            raise ClientStateError(
                "this AkoolClient was closed and cannot be reopened; create a new AkoolClient"
            )
        await self._api.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._api.aclose()

    # -- account --------------------------------------------------------------------------

    async def get_credits(self) -> float:
        """The account's credit balance (``GET /api/open/v3/faceswap/quota/info``)."""
        data = await self._api.call("GET", CREDIT_PATH, idempotent=True)
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
        journal: str | os.PathLike[str] | JobStore | None = None,
        resubmit_uncertain: bool = False,
        retry_failed: bool = False,
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

        A job's key is ``Job.key``, or else derived from its request's content: the first
        16 hex digits of its fingerprint, ``"<fp16>#2"``, ``"#3"`` ... for identical
        requests; never its position, so reordering or inserting jobs changes no key.

        ``journal`` (a SQLite path, a ``postgresql://`` URL shared by a fleet of processes --
        see "Running a fleet" in the README -- or an open store; bound to this client's
        account digest and base URL: another one raises ``JournalBindingError`` before any
        create) records every job: ``sending`` right before the create's bytes go (after its
        pacing slot; a job stopped earlier stays ``pending``, not sent) and the task id right
        after. Rerunning the same jobs with the same journal re-emits finished jobs without a
        request, resumes polling of created ones, reports creates that were sent but never
        acknowledged as ``SubmissionUncertainError`` (unless ``resubmit_uncertain=True``) and
        submits the rest; ``retry_failed=True`` creates jobs whose task failed (status 4,
        refunded) again, never uncertain ones.

        Fail fast: refused credentials (1101/1102), a blocked account (1200), no credit
        (1104), or a journal/download directory failing after a create stop intake; jobs not
        yet sent share one ``BatchAbortedError``, created ones still finish. Paid ids the
        journal could not record go to ``<journal>.recovery.jsonl`` (``Batch.recovery_path``)
        and the outcome (a ``JournalError`` carrying ``task_id``); ``Batch.unfinished()``
        lists created jobs still without an outcome (after an interrupt, without a journal).

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
            retry_failed=retry_failed,
            webhook_url=webhook_url,
            webhooks=webhooks,
            timing=self._poll_timing if poll is None else None,
            api=self._api,
            downloader=(
                None
                if download_dir is None
                else Downloader(self._api, download_dir, concurrency=download_concurrency)
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
        downloaded = await download_file(
            self._api,
            result,
            path,
            overwrite=overwrite,
            chunk_size=chunk_size,
            max_redirects=max_redirects,
        )
        return downloaded.path
