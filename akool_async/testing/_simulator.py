"""``AkoolSimulator``: a real ``aiohttp.web`` server that behaves like the Akool Open API.

Everything here follows ``akool-api.md``; where the contract is silent the choice is named in
the docstring of ``AkoolSimulator`` (and in the module ``akool_async.testing`` docstring).
Task status is computed lazily from per-task scheduled timestamps on a (scalable or manual)
clock, so tens of thousands of tasks cost no timers; webhooks go through one background task.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import json
import math
import random
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import parse_qs, urlsplit

import attrs
from aiohttp import web
from yarl import URL

from akool_async._json import compact_encoder

from ._faults import (
    AFTER_KINDS,
    CREATE_ENDPOINTS,
    ENDPOINTS,
    FILE_KINDS,
    Fault,
    FaultInjector,
    FaultPlan,
    FaultSpec,
    profile,
)
from ._media import fake_mp4, fake_png
from ._webhooks import (
    DEFAULT_WEBHOOK_ATTEMPTS,
    DEFAULT_WEBHOOK_BACKOFF,
    WebhookDelivery,
    WebhookDispatcher,
    plaintext_json,
)

#: Default API key (24 characters, so it is also a valid AES-192 webhook key).
DEFAULT_API_KEY = "sim-akool-api-key-000001"
#: Default client id (24 hex characters, like the documented example).
DEFAULT_CLIENT_ID = "64db241f6d9e5c4bd1000001"
#: Default client secret: the same value as the API key, as on the real platform.
DEFAULT_CLIENT_SECRET = DEFAULT_API_KEY
#: Default initial credit balance of an account.
DEFAULT_CREDIT = 10_000_000
#: Default size of the bounded request log.
DEFAULT_LOG_SIZE = 10_000

#: Character swap credits per started 5-second block, by resolution (akool-api.md 3.2).
CHARACTER_SWAP_RATES: Mapping[str, int] = {"480p": 5, "720p": 10, "1080p": 15}
#: Head swap credits per started 5-second block (undocumented: the simulator's choice).
HEAD_SWAP_RATES: Mapping[str, int] = {"480p": 5, "720p": 10}
CHARACTER_SWAP_MODEL = "wavespeed-ai/wan-2.2/animate"
HEAD_SWAP_MODELS: tuple[str, ...] = ("akool-premium",)
CHARACTER_SWAP_FAIL_REASON = "Failed to process the video. Please check your input resources."
HEAD_SWAP_FAIL_REASON = "Failed to process the video. Please check your input resources."
ANALYSIS_FAIL_REASON = "No person detected in the video."
#: Webhook ``type`` values (undocumented for these features: the simulator's choice).
WEBHOOK_TYPES: Mapping[str, str] = {"character_swap": "character swap", "head_swap": "head swap"}

STATUS_NAMES: Mapping[int, str] = {1: "queueing", 2: "processing", 3: "completed", 4: "failed"}
KINDS: tuple[str, ...] = ("analysis", "character_swap", "head_swap")


@attrs.frozen(kw_only=True)
class Duration:
    """Simulated seconds a task of one kind spends queueing (status 1) and processing (2).

    processing = (``process`` + ``per_video_second`` * source seconds) *
    ``resolution_factor.get(resolution, 1.0)``. With ``sigma`` > 0 queueing and processing
    are each multiplied by a seeded lognormal draw of median 1 and that sigma; 0 = fixed.
    """

    queue: float = 0.0
    process: float = 10.0
    per_video_second: float = 0.0
    resolution_factor: Mapping[str, float] = attrs.field(factory=dict)
    sigma: float = 0.0

    @classmethod
    def fixed(cls, total: float) -> Duration:
        """``total`` simulated seconds from create to the end: 20 % queueing, 80 % processing."""
        return cls(queue=0.2 * total, process=0.8 * total)


#: Default durations: swaps take minutes, analyses tens of seconds (simulated seconds).
DEFAULT_DURATIONS: Mapping[str, Duration] = {
    "character_swap": Duration(
        queue=5.0,
        process=30.0,
        per_video_second=6.0,
        resolution_factor={"480p": 0.7, "720p": 1.0, "1080p": 1.6},
        sigma=0.25,
    ),
    "head_swap": Duration(
        queue=5.0,
        process=30.0,
        per_video_second=8.0,
        resolution_factor={"480p": 0.8, "720p": 1.0},
        sigma=0.25,
    ),
    "analysis": Duration(queue=2.0, process=10.0, per_video_second=0.5, sigma=0.2),
}


@attrs.frozen(kw_only=True)
class Account:
    """Credentials and identity of one simulated team."""

    api_key: str
    client_id: str
    client_secret: str
    team_id: str
    uid: int


@attrs.frozen(kw_only=True)
class RequestLogEntry:
    """One answered request. ``code`` is the business code (None when there was no envelope);
    ``status`` is the HTTP status (0 when the connection was dropped); ``time`` is the
    simulated epoch in seconds. Never contains credentials."""

    method: str
    path: str
    endpoint: str
    status: int
    code: int | None
    time: float


@attrs.frozen(kw_only=True)
class TaskInfo:
    """A snapshot of one task or analysis, for tests (``kind`` is one of ``KINDS``)."""

    id: str
    kind: str
    status: int
    team_id: str
    create_time: float
    processing_at: float
    finished_at: float
    will_fail: bool
    price: int
    webhook_url: str | None


@attrs.frozen(kw_only=True)
class SimulatorStats:
    """A frozen snapshot of the simulator's counters.

    - ``requests``: endpoint name -> requests received (including faulted ones).
    - ``creates``: request fingerprint (see ``AkoolSimulator.fingerprint``) -> creates
      processed; ``duplicate_creates`` sums the excess over 1.
    - ``polls``: task or analysis id -> result/detail requests answered for it.
    - ``tasks``: kind -> state name (queueing/processing/completed/failed) -> count, now.
    - ``faults``: fault kind -> times injected.
    - ``max_concurrent_creates``: most create requests in flight at once (server side).
    """

    requests: Mapping[str, int]
    creates: Mapping[str, int]
    polls: Mapping[str, int]
    tasks: Mapping[str, Mapping[str, int]]
    faults: Mapping[str, int]
    webhooks_delivered: int
    webhooks_failed: int
    webhooks_skipped: int
    webhook_attempts: int
    max_concurrent_creates: int
    in_flight_creates: int
    rate_limited: int

    @property
    def total_requests(self) -> int:
        """All requests received."""
        return sum(self.requests.values())

    @property
    def duplicate_creates(self) -> int:
        """Creates whose fingerprint had already been created before."""
        return sum(n - 1 for n in self.creates.values() if n > 1)


class _ApiError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class _Clock:
    """Simulated seconds since start: ``real elapsed / time_scale`` plus manual advances."""

    def __init__(self, *, time_scale: float, manual: bool) -> None:
        self.time_scale = time_scale
        self.manual = manual
        self._epoch0 = time.time()
        self._mono0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        if self.manual:
            return self._offset
        return (time.monotonic() - self._mono0) / self.time_scale + self._offset

    def epoch(self, at: float | None = None) -> float:
        return self._epoch0 + (self.now() if at is None else at)

    def epoch_ms(self, at: float | None = None) -> int:
        return round(self.epoch(at) * 1000)

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def to_real(self, sim_seconds: float) -> float | None:
        if self.manual:
            return None
        return max(0.0, sim_seconds * self.time_scale)


class _AccountState:
    __slots__ = ("account", "balance", "bucket", "bucket_at", "refunds")

    def __init__(self, account: Account, credit: int) -> None:
        self.account = account
        self.balance = credit
        self.refunds: list[tuple[float, int]] = []
        self.bucket = 0.0
        self.bucket_at = 0.0


class _Task:
    __slots__ = (
        "create_ms",
        "create_s",
        "fields",
        "id",
        "internal_id",
        "kind",
        "owner",
        "people",
        "price",
        "resolution",
        "t_done",
        "t_proc",
        "video_duration",
        "video_url",
        "webhook_url",
        "will_fail",
    )

    def __init__(
        self,
        *,
        id: str,
        internal_id: str,
        kind: str,
        owner: _AccountState,
        create_s: float,
        create_ms: int,
        t_proc: float,
        t_done: float,
        will_fail: bool,
        price: int,
        video_duration: float,
        resolution: str,
        video_url: str,
        webhook_url: str | None,
        people: int,
        fields: dict[str, Any],
    ) -> None:
        self.id = id
        self.internal_id = internal_id
        self.kind = kind
        self.owner = owner
        self.create_s = create_s
        self.create_ms = create_ms
        self.t_proc = t_proc
        self.t_done = t_done
        self.will_fail = will_fail
        self.price = price
        self.video_duration = video_duration
        self.resolution = resolution
        self.video_url = video_url
        self.webhook_url = webhook_url
        self.people = people
        self.fields = fields

    def status(self, now: float) -> int:
        if now < self.t_proc:
            return 1
        if now < self.t_done:
            return 2
        return 4 if self.will_fail else 3

    def progress(self, now: float) -> int:
        status = self.status(now)
        if status in {1, 4}:
            return 0
        if status == 3:
            return 100
        span = self.t_done - self.t_proc
        return min(99, max(1, int(100 * (now - self.t_proc) / span))) if span > 0 else 99


def _url_hash(url: str) -> int:
    return int.from_bytes(hashlib.sha256(url.encode()).digest()[:8], "big")


@functools.lru_cache(maxsize=4096)
def _query(url: str) -> Mapping[str, list[str]] | None:
    # Cached: a create reads up to three hooks of the same URL, and a batch often reuses
    # one source video. The mapping is shared, so callers only read it.
    plain = _plain_query(url)
    if plain is not None:
        return plain
    try:
        return parse_qs(urlsplit(url).query)
    except ValueError:
        return None


def _plain_query(url: str) -> dict[str, list[str]] | None:
    """``parse_qs(urlsplit(url).query)`` for a URL with nothing to strip or decode (printable
    ASCII without spaces; no ``%`` or ``+`` in the query), else None. Every create reads
    its video URL's hooks, and urlsplit plus parse_qs were a twentieth of its cost."""
    if not (url.isascii() and url.isprintable()) or " " in url:
        return None
    query = url.partition("#")[0].partition("?")[2]
    if "%" in query or "+" in query:
        return None
    fields: dict[str, list[str]] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if value:  # parse_qs drops blank values and pairs without "="
            fields.setdefault(name, []).append(value)
    return fields


def _query_hook(url: str, name: str) -> str | None:
    query = _query(url)
    values = query.get(name) if query is not None else None
    return values[-1] if values else None


def video_seconds(url: str) -> float:
    """Detected duration of a source video URL: its ``duration=N`` query parameter if it is a
    positive number, else 3-20 s derived from a hash of the URL (deterministic)."""
    hook = _query_hook(url, "duration")
    if hook is not None:
        try:
            value = float(hook)
        except ValueError:
            value = 0.0
        if value > 0 and math.isfinite(value):
            return int(value) if value.is_integer() else value
    return 3 + _url_hash(url) % 18


def people_in(url: str) -> int:
    """People detected in a source video URL: its ``people=N`` query parameter (N >= 0) if
    present, else 1-3 derived from a hash of the URL (deterministic)."""
    hook = _query_hook(url, "people")
    if hook is not None and hook.isdigit():
        return int(hook)
    return 1 + (_url_hash(url) >> 8) % 3


def forced_failure(url: str) -> bool:
    """True when the URL carries the ``fail=1`` test hook (the task will fail)."""
    return _query_hook(url, "fail") in ("1", "true")


#: ``json.dumps(x, separators=(",", ":"))`` and its sorted, non-ASCII form (fingerprints),
#: each set up once instead of on every call.
_compact_json = compact_encoder()
_canonical_json = compact_encoder(ensure_ascii=False, sort_keys=True)

#: Plainly an http(s) URL with a host: what urlsplit would also say, without its cost.
_PLAIN_HTTP_URL = re.compile(r"https?://[A-Za-z0-9._-]+(?::[0-9]*)?(?:[/?#]|\Z)")


def _is_http_url(value: str) -> bool:
    if _PLAIN_HTTP_URL.match(value) is not None:
        return True
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _opt(body: Mapping[str, Any], key: str) -> Any:
    return body.get(key)


def _url_field(body: Mapping[str, Any], key: str, *, label: str | None = None) -> str:
    name = label or key
    value = body.get(key)
    if value is None or value == "":
        raise _ApiError(1003, f"{name} cannot be empty")
    if not isinstance(value, str) or not _is_http_url(value):
        raise _ApiError(1003, f"{name} must be an http or https URL")
    return value


def _webhook_field(body: Mapping[str, Any]) -> str | None:
    # Both spellings are accepted on both create endpoints; if both are sent, the lowercase
    # `webhookurl` (character swap's documented spelling) wins.
    for key in ("webhookurl", "webhookUrl"):
        value = body.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not _is_http_url(value):
            raise _ApiError(1003, f"{key} must be an http or https URL")
        return value
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


LatencySpec: TypeAlias = float | Mapping[str, float] | None
FaultsSpec: TypeAlias = FaultPlan | str | None
Handler: TypeAlias = Callable[[web.Request, _AccountState], Awaitable[dict[str, Any]]]


class AkoolSimulator:
    """A faithful, fault-injecting Akool Open API server on 127.0.0.1 (async context manager).

    Keyword-only options (times are simulated seconds unless stated; defaults in brackets):

    - ``api_key`` [``DEFAULT_API_KEY``], ``client_id`` [``DEFAULT_CLIENT_ID``],
      ``client_secret`` [= ``api_key``]: the first account. ``client_secret`` is the webhook
      AES key, so it must be 16, 24 or 32 characters.
    - ``credit`` [``DEFAULT_CREDIT``]: its initial balance in credits.
    - ``time_scale`` [1.0]: real seconds per simulated second (0.01 -> 100 s in 1 s).
    - ``manual_clock`` [False]: simulated time moves only through ``advance()``.
    - ``durations``: ``{kind: Duration | total seconds}`` overriding ``DEFAULT_DURATIONS``;
      kinds are ``character_swap``, ``head_swap``, ``analysis``.
    - ``failure_rate`` [0.0]: probability a task fails; a float applies to both swap kinds, a
      mapping per kind (may include ``analysis``). Seeded by ``seed``.
    - ``seed`` [0]: seeds durations, failures, ids, tokens and webhook nonces.
    - ``faults`` [None]: a ``FaultPlan``, a profile name (``none``/``flaky``/``chaos``) or None.
    - ``rate_limit`` [None]: requests per simulated second per account (token bucket, burst
      = the rate, at least 1); beyond it the answer is code 1005.
    - ``latency`` [None]: real seconds (not scaled) added before answering; a float for every
      endpoint or ``{endpoint: seconds}``.
    - ``webhook_on_processing`` [False]: also send a status-2 webhook.
    - ``webhook_attempts`` [4] and ``webhook_backoff`` [2.0 simulated s, doubling]: retries on
      a non-200 answer.
    - ``host`` ["127.0.0.1"], ``port`` [0 = ephemeral], ``log_size`` [10000 entries].

    Test hooks in source video URLs: ``duration=N`` (detected seconds), ``people=N`` (persons
    found by an analysis; 0 makes the analysis fail), ``fail=1`` (a swap task fails; its
    analysis still succeeds).
    Errors are HTTP 200 ``{"code": N, "msg": "..."}`` with no ``data`` key.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
        credit: int = DEFAULT_CREDIT,
        time_scale: float = 1.0,
        manual_clock: bool = False,
        durations: Mapping[str, Duration | float] | None = None,
        failure_rate: float | Mapping[str, float] = 0.0,
        seed: int = 0,
        faults: FaultsSpec = None,
        rate_limit: float | None = None,
        latency: LatencySpec = None,
        webhook_on_processing: bool = False,
        webhook_attempts: int = DEFAULT_WEBHOOK_ATTEMPTS,
        webhook_backoff: float = DEFAULT_WEBHOOK_BACKOFF,
        host: str = "127.0.0.1",
        port: int = 0,
        log_size: int = DEFAULT_LOG_SIZE,
    ) -> None:
        if not time_scale > 0:
            raise ValueError("time_scale must be > 0")
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError("rate_limit must be > 0 requests per second, or None")
        self._clock = _Clock(time_scale=time_scale, manual=manual_clock)
        self._seed = seed
        self._rng = random.Random(seed)
        self._id_salt = random.Random(f"{seed}/ids").getrandbits(24)
        self._id_counter = 0
        self._durations: dict[str, Duration] = dict(DEFAULT_DURATIONS)
        for kind, spec in (durations or {}).items():
            if kind not in KINDS:
                raise ValueError(f"unknown task kind {kind!r}; expected one of {KINDS}")
            self._durations[kind] = spec if isinstance(spec, Duration) else Duration.fixed(spec)
        if isinstance(failure_rate, Mapping):
            self._failure_rates = {k: float(failure_rate.get(k, 0.0)) for k in KINDS}
        else:
            self._failure_rates = {
                "character_swap": failure_rate,
                "head_swap": failure_rate,
                "analysis": 0.0,
            }
        plan = profile(faults, seed=seed) if isinstance(faults, str) else faults
        self._faults = FaultInjector(plan or FaultPlan(seed=seed))
        self._rate_limit = rate_limit
        if latency is None:
            self._latency: dict[str, float] = {}
        elif isinstance(latency, Mapping):
            self._latency = dict(latency)
        else:
            self._latency = dict.fromkeys(ENDPOINTS, float(latency))
        self._webhook_on_processing = webhook_on_processing
        self._webhook_attempts = webhook_attempts
        self._webhook_backoff = webhook_backoff
        self._host = host
        self._port = port
        self._accounts: dict[str, _AccountState] = {}
        self._by_client_id: dict[str, _AccountState] = {}
        self._tokens: dict[str, _AccountState] = {}
        self._tasks: dict[str, _Task] = {}
        self._analyses: dict[tuple[str, str], list[_Task]] = {}
        self._requests: Counter[str] = Counter()
        self._creates: Counter[str] = Counter()
        self._polls: Counter[str] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._rate_limited = 0
        self._in_flight_creates = 0
        self._max_in_flight_creates = 0
        self._log: deque[tuple[str, URL, str, int, int | None, float]] = deque(maxlen=log_size)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._dispatcher: WebhookDispatcher | None = None
        self._primary = self.add_account(
            api_key=api_key,
            client_id=client_id,
            client_secret=client_secret,
            credit=credit,
        )

    # ------------------------------------------------------------------ public API

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not running; use `async with AkoolSimulator()`")
        return self._base_url

    @property
    def api_key(self) -> str:
        """The first account's API key (send it as ``x-api-key``)."""
        return self._primary.api_key

    @property
    def client_id(self) -> str:
        """The first account's client id (getToken; webhook IV and signature)."""
        return self._primary.client_id

    @property
    def client_secret(self) -> str:
        """The first account's client secret (getToken; webhook AES key)."""
        return self._primary.client_secret

    @property
    def account(self) -> Account:
        """The first account."""
        return self._primary

    @property
    def time_scale(self) -> float:
        """Real seconds per simulated second."""
        return self._clock.time_scale

    @property
    def fault_plan(self) -> FaultPlan:
        """The fault plan in use."""
        return self._faults.plan

    def add_account(
        self,
        *,
        api_key: str,
        client_id: str,
        client_secret: str | None = None,
        credit: int = DEFAULT_CREDIT,
    ) -> Account:
        """Add a team; its tasks are invisible to other teams. ``client_secret`` defaults to
        ``api_key`` and must be 16, 24 or 32 characters (it is the webhook AES key)."""
        secret = api_key if client_secret is None else client_secret
        if len(secret.encode()) not in (16, 24, 32):
            raise ValueError("client_secret (default: api_key) must be 16, 24 or 32 characters")
        if not api_key or api_key in self._accounts:
            raise ValueError("api_key must be non-empty and unique")
        if not client_id or client_id in self._by_client_id:
            raise ValueError("client_id must be non-empty and unique")
        account = Account(
            api_key=api_key,
            client_id=client_id,
            client_secret=secret,
            team_id=self._new_id(),
            uid=101400 + len(self._accounts),
        )
        state = _AccountState(account, credit)
        state.bucket = self._rate_limit or 0.0
        self._accounts[api_key] = state
        self._by_client_id[client_id] = state
        return account

    def balance(self, api_key: str | None = None) -> int:
        """Current credit balance of an account (default: the first one)."""
        state = self._accounts[api_key or self._primary.api_key]
        self._settle(state)
        return state.balance

    def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds`` (works with either clock)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._clock.advance(seconds)
        if self._dispatcher is not None:
            self._dispatcher.wake()

    def now(self) -> float:
        """Simulated seconds since the simulator was constructed."""
        return self._clock.now()

    def inject(self, endpoint: str, *steps: FaultSpec) -> None:
        """Make the next calls of ``endpoint`` take these fault steps (None = no fault) first."""
        self._faults.inject(endpoint, steps)

    def fingerprint(self, body: Mapping[str, Any], api_key: str | None = None) -> str:
        """The ``stats.creates`` key of a create body sent with ``api_key`` (default: first)."""
        state = self._accounts[api_key or self._primary.api_key]
        return self._fingerprint(body, state)

    def task(self, task_id: str) -> TaskInfo:
        """A snapshot of a task or analysis by id (any team); KeyError when unknown."""
        task = self._tasks[task_id]
        return TaskInfo(
            id=task.id,
            kind=task.kind,
            status=task.status(self._clock.now()),
            team_id=task.owner.account.team_id,
            create_time=self._clock.epoch(task.create_s),
            processing_at=self._clock.epoch(task.t_proc),
            finished_at=self._clock.epoch(task.t_done),
            will_fail=task.will_fail,
            price=task.price,
            webhook_url=task.webhook_url,
        )

    @property
    def stats(self) -> SimulatorStats:
        """A frozen snapshot of every counter."""
        now = self._clock.now()
        tasks: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
        for task in self._tasks.values():
            tasks[task.kind][STATUS_NAMES[task.status(now)]] += 1
        dispatcher = self._dispatcher
        return SimulatorStats(
            requests=dict(self._requests),
            creates=dict(self._creates),
            polls=dict(self._polls),
            tasks={k: dict(v) for k, v in tasks.items()},
            faults=dict(self._fault_counts),
            webhooks_delivered=dispatcher.delivered if dispatcher else 0,
            webhooks_failed=dispatcher.failed if dispatcher else 0,
            webhooks_skipped=dispatcher.skipped if dispatcher else 0,
            webhook_attempts=dispatcher.attempts_made if dispatcher else 0,
            max_concurrent_creates=self._max_in_flight_creates,
            in_flight_creates=self._in_flight_creates,
            rate_limited=self._rate_limited,
        )

    @property
    def request_log(self) -> tuple[RequestLogEntry, ...]:
        """The most recent requests (bounded by ``log_size``), oldest first."""
        return tuple(
            RequestLogEntry(
                method=method, path=str(url), endpoint=endpoint, status=status, code=code, time=t
            )
            for method, url, endpoint, status, code, t in self._log
        )

    @property
    def webhook_deliveries(self) -> tuple[WebhookDelivery, ...]:
        """Finished webhook events (delivered, failed or skipped), in order."""
        return tuple(self._dispatcher.deliveries) if self._dispatcher else ()

    async def wait_webhooks(self) -> None:
        """Wait until every webhook event due now has been delivered, failed or rescheduled.

        With the manual clock call this before ``advance()`` past a retry: a retry is
        scheduled relative to the simulated time at which the failed answer was processed.
        """
        if self._dispatcher is not None:
            await self._dispatcher.wait_idle()

    async def start(self) -> None:
        """Start serving (``async with`` does this)."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        app = web.Application(client_max_size=4 * 1024 * 1024)
        routes: list[tuple[str, str, str, Handler | None]] = [
            ("POST", "/api/open/v3/getToken", "get_token", None),
            ("POST", "/api/open/v4/characterSwap/create", "character_swap.create", self._cs_create),
            (
                "GET",
                "/api/open/v3/content/video/infobymodelid",
                "character_swap.result",
                self._cs_result,
            ),
            ("POST", "/api/open/v4/headswap/analyze", "head_swap.analyze", self._hs_analyze),
            (
                "GET",
                "/api/open/v4/headswap/analyze/detail",
                "head_swap.analysis_detail",
                self._hs_analysis_detail,
            ),
            ("POST", "/api/open/v4/headswap/task/create", "head_swap.create", self._hs_create),
            ("GET", "/api/open/v4/headswap/task/detail", "head_swap.detail", self._hs_detail),
            ("GET", "/api/open/v3/faceswap/quota/info", "credit", self._credit),
        ]
        for method, path, endpoint, impl in routes:
            app.router.add_route(method, path, self._handler(endpoint, impl))
        app.router.add_get("/files/{name}", self._files)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"
        self._dispatcher = WebhookDispatcher(
            now=self._clock.now,
            epoch=self._clock.epoch,
            to_real=self._clock.to_real,
            payload=self._webhook_payload,
            seed=self._seed,
            attempts=self._webhook_attempts,
            backoff=self._webhook_backoff,
        )
        self._dispatcher.start()

    async def stop(self) -> None:
        """Stop the webhook loop and the server (``async with`` does this)."""
        if self._dispatcher is not None:
            await self._dispatcher.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> AkoolSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ plumbing

    def _new_id(self) -> str:
        self._id_counter += 1
        stamp = int(self._clock.epoch()) & 0xFFFFFFFF
        return f"{stamp:08x}{self._id_salt:06x}{self._id_counter:010x}"

    def _fingerprint(self, body: Mapping[str, Any], state: _AccountState) -> str:
        canonical = _canonical_json(body)
        digest = hashlib.sha256(f"{state.account.team_id}\n{canonical}".encode())
        return digest.hexdigest()[:32]

    def _settle(self, state: _AccountState) -> None:
        now = self._clock.now()
        while state.refunds and state.refunds[0][0] <= now:
            _, amount = heapq.heappop(state.refunds)
            state.balance += amount

    def _charge(self, state: _AccountState, price: int) -> None:
        self._settle(state)
        if state.balance < price:
            raise _ApiError(1104, "Insufficient credit balance")
        state.balance -= price

    def _times(self, kind: str, seconds: float, resolution: str) -> tuple[float, float]:
        spec = self._durations[kind]
        queue = spec.queue
        process = (spec.process + spec.per_video_second * seconds) * spec.resolution_factor.get(
            resolution, 1.0
        )
        if spec.sigma > 0:
            queue *= self._rng.lognormvariate(0.0, spec.sigma)
            process *= self._rng.lognormvariate(0.0, spec.sigma)
        return queue, process

    def _new_task(
        self,
        *,
        kind: str,
        owner: _AccountState,
        video_url: str,
        seconds: float,
        resolution: str,
        price: int,
        webhook_url: str | None,
        fields: dict[str, Any],
        force_fail: bool = False,
    ) -> _Task:
        queue, process = self._times(kind, seconds, resolution)
        fails = self._rng.random() < self._failure_rates.get(kind, 0.0)
        now = self._clock.now()
        task = _Task(
            id=self._new_id(),
            internal_id=self._new_id(),
            kind=kind,
            owner=owner,
            create_s=now,
            create_ms=self._clock.epoch_ms(now),
            t_proc=now + queue,
            t_done=now + queue + process,
            will_fail=fails or force_fail or (kind != "analysis" and forced_failure(video_url)),
            price=price,
            video_duration=seconds,
            resolution=resolution,
            video_url=video_url,
            webhook_url=webhook_url,
            # Only analyses detect people (and hashing the URL is not free).
            people=people_in(video_url) if kind == "analysis" else 0,
            fields=fields,
        )
        if kind == "analysis" and task.people == 0:
            task.will_fail = True
        self._tasks[task.id] = task
        if task.will_fail and price:
            heapq.heappush(owner.refunds, (task.t_done, price))
        if webhook_url is not None and self._dispatcher is not None:
            self._dispatcher.schedule(task.t_done, task.id, 4 if task.will_fail else 3)
            if self._webhook_on_processing:
                self._dispatcher.schedule(task.t_proc, task.id, 2)
        return task

    def _output_url(self, task: _Task) -> str:
        return f"{self.base_url}/files/{task.id}.mp4"

    def _webhook_payload(self, task_id: str, status: int) -> tuple[str, str, str, str] | None:
        task = self._tasks.get(task_id)
        if task is None or task.webhook_url is None:
            return None
        account = task.owner.account
        url = self._output_url(task) if status == 3 else ""
        plaintext = plaintext_json(task.id, status, WEBHOOK_TYPES[task.kind], url)
        return task.webhook_url, account.client_id, account.client_secret, plaintext

    def _authenticate(self, request: web.Request) -> _AccountState:
        auth = request.headers.get("Authorization", "").strip()
        if auth:
            scheme, _, token = auth.partition(" ")
            state = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if state is None:
                raise _ApiError(1101, "Invalid authorization or token expired")
            return state
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            raise _ApiError(1102, "Authorization cannot be empty")
        state = self._accounts.get(key)
        if state is None:
            raise _ApiError(1101, "Invalid authorization or token expired")
        return state

    def _check_rate(self, state: _AccountState) -> None:
        rate = self._rate_limit
        if rate is None:
            return
        now = self._clock.now()
        burst = max(1.0, rate)
        state.bucket = min(burst, state.bucket + (now - state.bucket_at) * rate)
        state.bucket_at = now
        if state.bucket < 1.0:
            self._rate_limited += 1
            raise _ApiError(1005, "Operation is too frequent")
        state.bucket -= 1.0

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _ApiError(1003, "request body must be a JSON object")
        return body

    def _handler(
        self, endpoint: str, impl: Handler | None
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self._requests[endpoint] += 1
            is_create = endpoint in CREATE_ENDPOINTS
            if is_create:
                self._in_flight_creates += 1
                self._max_in_flight_creates = max(
                    self._max_in_flight_creates, self._in_flight_creates
                )
            try:
                return await self._serve(request, endpoint, impl)
            finally:
                if is_create:
                    self._in_flight_creates -= 1

        return handle

    def _record(self, request: web.Request, endpoint: str, status: int, code: int | None) -> None:
        # Entries are built when read: the URL's text and the attrs object cost a share of
        # every request, and most are pushed out of the bounded log unread.
        self._log.append(
            (request.method, request.rel_url, endpoint, status, code, self._clock.epoch())
        )

    def _drop(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        self._record(request, endpoint, 0, None)
        return web.Response(status=500)

    def _json(
        self,
        request: web.Request,
        endpoint: str,
        payload: Mapping[str, Any],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        code = payload.get("code")
        self._record(request, endpoint, status, code if isinstance(code, int) else None)
        return web.Response(
            status=status,
            body=_compact_json(payload).encode(),
            content_type="application/json",
            headers=headers,
        )

    def _gateway_error(self, request: web.Request, endpoint: str, status: int) -> web.Response:
        reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        text = f"<html><body><h1>{status} {reason[status]}</h1></body></html>"
        self._record(request, endpoint, status, None)
        return web.Response(status=status, text=text, content_type="text/html")

    def _before_fault(
        self, request: web.Request, endpoint: str, fault: Fault
    ) -> web.StreamResponse:
        kind = fault.kind
        if kind == "drop_before":
            return self._drop(request, endpoint)
        if kind in ("http_500", "http_502", "http_503"):
            return self._gateway_error(request, endpoint, int(kind[5:]))
        if kind in ("http_500_envelope", "http_503_envelope"):
            payload = {"code": 2001, "msg": "Server error, please try again later"}
            return self._json(request, endpoint, payload, int(kind[5:8]))
        if kind == "http_429":
            retry_after = f"{fault.retry_after * self._clock.time_scale:g}"
            payload = {"code": 1005, "msg": "Operation is too frequent"}
            return self._json(request, endpoint, payload, 429, {"Retry-After": retry_after})
        if kind == "code":
            payload = {"code": fault.code, "msg": f"Simulated error {fault.code}"}
            return self._json(request, endpoint, payload)
        messages = {
            "code_1005": (1005, "Operation is too frequent"),
            "code_1015": (1015, "Create video error, please try again later"),
            "code_2001": (2001, "Server error"),
        }
        code, msg = messages[kind]
        return self._json(request, endpoint, {"code": code, "msg": msg})

    async def _serve(
        self, request: web.Request, endpoint: str, impl: Handler | None
    ) -> web.StreamResponse:
        latency = self._latency.get(endpoint, 0.0)
        if latency > 0:
            await asyncio.sleep(latency)
        fault = self._faults.draw(endpoint)
        if fault is not None:
            self._fault_counts[fault.kind] += 1
            if fault.kind not in AFTER_KINDS:
                return self._before_fault(request, endpoint, fault)
        payload: dict[str, Any]
        try:
            if impl is None:
                payload = await self._get_token(request)
            else:
                state = self._authenticate(request)
                self._check_rate(state)
                payload = await impl(request, state)
        except _ApiError as error:
            payload = {"code": error.code, "msg": error.msg}
        if fault is not None:
            if fault.kind == "drop_after":
                return self._drop(request, endpoint)
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "malformed_json":
                text = _compact_json(payload)
                self._record(request, endpoint, 200, None)
                return web.Response(
                    body=text[: max(1, len(text) // 2)].encode(), content_type="application/json"
                )
            elif fault.kind == "extra_fields":
                payload = {**payload, "x_sim_extra": {"note": "unknown field"}}
                if isinstance(payload.get("data"), dict):
                    payload["data"] = {**payload["data"], "x_sim_future_field": 42}
        return self._json(request, endpoint, payload)

    # ------------------------------------------------------------------ endpoints

    async def _get_token(self, request: web.Request) -> dict[str, Any]:
        body = await self._json_body(request)
        client_id = body.get("clientId")
        client_secret = body.get("clientSecret")
        if not client_id or not client_secret:
            raise _ApiError(1102, "clientId and clientSecret cannot be empty")
        state = self._by_client_id.get(client_id) if isinstance(client_id, str) else None
        if state is None or state.account.client_secret != client_secret:
            raise _ApiError(1101, "Invalid authorization or token expired")
        self._check_rate(state)
        digest = hashlib.sha256(f"{self._seed}/{client_id}/{self._new_id()}".encode())
        token = f"sim.{digest.hexdigest()}"
        self._tokens[token] = state
        return {"code": 1000, "token": token}

    async def _cs_create(self, request: web.Request, state: _AccountState) -> dict[str, Any]:
        body = await self._json_body(request)
        image = _url_field(body, "image")
        video = _url_field(body, "video")
        duration = _opt(body, "duration")
        if duration is not None:
            if not _is_number(duration) or not math.isfinite(duration):
                raise _ApiError(1003, "duration must be a number of seconds")
            if not 1 <= duration <= 120:
                raise _ApiError(1003, "duration must be between 1 and 120 seconds")
        resolution = _opt(body, "resolution") or "720p"
        if resolution not in CHARACTER_SWAP_RATES:
            raise _ApiError(1003, "resolution must be one of 480p, 720p, 1080p")
        mode = _opt(body, "mode") or "animate"
        if mode not in ("animate", "replace"):
            raise _ApiError(1003, "mode must be 'animate' or 'replace'")
        prompt = _opt(body, "prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise _ApiError(1003, "prompt must be a string")
        if prompt is not None and len(prompt) > 500:
            raise _ApiError(1003, "prompt must be at most 500 characters")
        model_name = _opt(body, "model_name") or CHARACTER_SWAP_MODEL
        if not isinstance(model_name, str):
            raise _ApiError(1003, "model_name must be a string")
        webhook = _webhook_field(body)
        if duration is None:
            seconds = video_seconds(video)
            if seconds > 120:
                raise _ApiError(1003, "video duration must be at most 120 seconds")
        else:
            seconds = duration
        price = math.ceil(seconds / 5) * CHARACTER_SWAP_RATES[resolution]
        self._charge(state, price)
        fields = {
            "image_url": image,
            "prompt": prompt or "",
            "mode": mode,
            "model_name": model_name,
        }
        task = self._new_task(
            kind="character_swap",
            owner=state,
            video_url=video,
            seconds=seconds,
            resolution=resolution,
            price=price,
            webhook_url=webhook,
            fields=fields,
        )
        self._creates[self._fingerprint(body, state)] += 1
        account = state.account
        data = {
            "_id": task.id,
            "create_time": task.create_ms,
            "uid": account.uid,
            "team_id": account.team_id,
            "status": 1,
            "video_duration": seconds,
            "deduction_credit": price,
            "resolution": resolution,
            "file_name": f"CharacterSwap_{task.create_ms}.mp4",
            "image_url": image,
            "video_url": video,
            "prompt": prompt or "",
            "mode": mode,
            "model_name": model_name,
            "webhookUrl": webhook or "",
        }
        return {"code": 1000, "msg": "OK", "data": data}

    def _find(self, state: _AccountState, task_id: object, kind: str) -> _Task | None:
        task = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or task.kind != kind or task.owner is not state:
            # Another team's task is invisible: the same answer as an unknown id.
            return None
        self._polls[task.id] += 1
        return task

    async def _cs_result(self, request: web.Request, state: _AccountState) -> dict[str, Any]:
        task_id = request.query.get("video_model_id", "")
        if not task_id:
            raise _ApiError(1003, "video_model_id cannot be empty")
        task = self._find(state, task_id, "character_swap")
        if task is None:
            raise _ApiError(1008, "Content does not exist")
        now = self._clock.now()
        status = task.status(now)
        account = state.account
        data: dict[str, Any] = {
            "_id": task.id,
            "create_time": task.create_ms,
            "uid": account.uid,
            "team_id": account.team_id,
        }
        if status >= 3:
            data["update_time"] = self._clock.epoch_ms(task.t_done)
        # Completed results report a fractional measured duration, like the documented example.
        data["video_duration"] = task.video_duration + 0.5 if status == 3 else task.video_duration
        data["webhookUrl"] = task.webhook_url or ""
        data["file_name"] = f"CharacterSwap_{task.create_ms}.mp4"
        data["image_url"] = task.fields["image_url"]
        if status == 3:
            data["video"] = self._output_url(task)
        data["video_url"] = task.video_url
        data["prompt"] = task.fields["prompt"]
        data["resolution"] = task.resolution
        data["deduction_credit"] = 0 if status == 4 else task.price
        data["video_status"] = status
        if status == 4:
            data["faceswap_fail_reason"] = CHARACTER_SWAP_FAIL_REASON
        return {"code": 1000, "msg": "OK", "data": data}

    def _analysis_data(self, task: _Task, *, detail: bool) -> dict[str, Any]:
        now = self._clock.now()
        status = task.status(now)
        account = task.owner.account
        data: dict[str, Any] = {
            "_id": task.id,
            "create_time": task.create_ms,
            "uid": account.uid,
            "team_id": account.team_id,
            "video_url": task.video_url,
            "type": "head",
            "status": status,
            "task_id": task.internal_id,
        }
        if status == 3:
            data["analysis_result"] = {
                "detected_objects": task.people,
                "media": [
                    {
                        "media_type": "images",
                        "obj_id": i,
                        "img_url": f"{self.base_url}/files/{task.id}_{i}.png",
                    }
                    for i in range(task.people)
                ],
                "video_info": {
                    "width": 1920,
                    "height": 1080,
                    "fps": 30,
                    "frame_count": round(task.video_duration * 30),
                },
            }
        elif detail:
            data["analysis_result"] = None
        data["progress"] = task.progress(now)
        if status == 3:
            data["error_reason"] = "success"
            data["error_code"] = 0
        elif status == 4:
            data["error_reason"] = ANALYSIS_FAIL_REASON
            data["error_code"] = 1015
        elif detail:
            data["error_reason"] = ""
            data["error_code"] = 0
        return data

    async def _hs_analyze(self, request: web.Request, state: _AccountState) -> dict[str, Any]:
        body = await self._json_body(request)
        video_url = _url_field(body, "video_url")
        kind = body.get("type")
        if kind is None or kind == "":
            raise _ApiError(1003, "type cannot be empty")
        if kind != "head":
            raise _ApiError(1003, "type must be 'head'")
        seconds = video_seconds(video_url)
        task = self._new_task(
            kind="analysis",
            owner=state,
            video_url=video_url,
            seconds=seconds,
            resolution="",
            price=0,
            webhook_url=None,
            fields={},
        )
        self._analyses.setdefault((state.account.team_id, video_url), []).append(task)
        self._creates[self._fingerprint(body, state)] += 1
        data = self._analysis_data(task, detail=False)
        return {"code": 1000, "msg": "Analyze success", "data": data}

    async def _hs_analysis_detail(
        self, request: web.Request, state: _AccountState
    ) -> dict[str, Any]:
        task_id = request.query.get("_id", "")
        if not task_id:
            raise _ApiError(1003, "_id cannot be empty")
        task = self._find(state, task_id, "analysis")
        if task is None:
            raise _ApiError(1014, "Resource not found")
        return {"code": 1000, "msg": "OK", "data": self._analysis_data(task, detail=True)}

    def _detected_ids(self, state: _AccountState, video_url: str) -> set[int] | None:
        now = self._clock.now()
        completed = [
            t
            for t in self._analyses.get((state.account.team_id, video_url), ())
            if t.status(now) == 3
        ]
        if not completed:
            return None
        return {i for t in completed for i in range(t.people)}

    async def _hs_create(self, request: web.Request, state: _AccountState) -> dict[str, Any]:
        body = await self._json_body(request)
        video_url = _url_field(body, "video_url")
        mappings = body.get("mappings")
        if mappings is None or mappings == []:
            raise _ApiError(1003, "mappings cannot be empty")
        if not isinstance(mappings, list):
            raise _ApiError(1003, "mappings must be an array")
        if len(mappings) > 5:
            raise _ApiError(1003, "mappings: Up to 5 characters can be replaced at one time.")
        seen: set[int] = set()
        for i, mapping in enumerate(mappings):
            if not isinstance(mapping, dict):
                raise _ApiError(1003, f"mappings[{i}] must be an object")
            obj_id = mapping.get("obj_id")
            if not isinstance(obj_id, int) or isinstance(obj_id, bool) or obj_id < 0:
                raise _ApiError(1003, f"mappings[{i}].obj_id must be a non-negative integer")
            _url_field(mapping, "img_url", label=f"mappings[{i}].img_url")
            if obj_id in seen:
                raise _ApiError(1003, f"mappings[{i}].obj_id {obj_id} is duplicated")
            seen.add(obj_id)
        model_name = body.get("model_name")
        if model_name is None or model_name == "":
            raise _ApiError(1003, "model_name cannot be empty")
        if model_name not in HEAD_SWAP_MODELS:
            raise _ApiError(1003, "model_name: Your current account does not support this feature.")
        resolution = body.get("resolution")
        if resolution is None or resolution == "":
            raise _ApiError(1003, "resolution cannot be empty")
        if resolution not in HEAD_SWAP_RATES:
            raise _ApiError(1003, "resolution must be one of 480p, 720p")
        template_id = body.get("template_id")
        if template_id is not None and not isinstance(template_id, str):
            raise _ApiError(1003, "template_id must be a string")
        keep_sound = body.get("keep_original_sound")
        if keep_sound is not None and not isinstance(keep_sound, bool):
            raise _ApiError(1003, "keep_original_sound must be a boolean")
        webhook = _webhook_field(body)
        detected = self._detected_ids(state, video_url)
        if detected is None:
            raise _ApiError(
                1003, "video_url has no completed analysis; analyze this exact URL first"
            )
        for i, mapping in enumerate(mappings):
            if mapping["obj_id"] not in detected:
                raise _ApiError(
                    1003,
                    f"mappings[{i}].obj_id {mapping['obj_id']} was not detected in the "
                    "analysis of video_url",
                )
        seconds = video_seconds(video_url)
        price = math.ceil(seconds / 5) * HEAD_SWAP_RATES[resolution]
        self._charge(state, price)
        task = self._new_task(
            kind="head_swap",
            owner=state,
            video_url=video_url,
            seconds=seconds,
            resolution=resolution,
            price=price,
            webhook_url=webhook,
            fields={"model_name": model_name},
        )
        self._creates[self._fingerprint(body, state)] += 1
        account = state.account
        data = {
            "_id": task.id,
            "create_time": task.create_ms,
            "uid": account.uid,
            "team_id": account.team_id,
            "video_duration": seconds,
            "task_id": task.internal_id,
            "resolution": resolution,
            "status": 1,
            "deduction_lock_duration": price,
            "model_name": model_name,
            "file_name": f"Headswap_{task.create_ms}.mp4",
            "video_url": None,
        }
        return {"code": 1000, "msg": "OK", "data": data}

    async def _hs_detail(self, request: web.Request, state: _AccountState) -> dict[str, Any]:
        task_id = request.query.get("_id", "")
        if not task_id:
            raise _ApiError(1003, "_id cannot be empty")
        task = self._find(state, task_id, "head_swap")
        if task is None:
            raise _ApiError(1014, "Resource not found")
        now = self._clock.now()
        status = task.status(now)
        account = state.account
        data: dict[str, Any] = {
            "_id": task.id,
            "uid": account.uid,
            "team_id": account.team_id,
            "source_video_url": task.video_url,
            "create_time": task.create_ms,
            "status": status,
            "video_duration": task.video_duration,
            "resolution": task.resolution,
            "deduction_duration": 0 if status == 4 else task.price,
            "video_url": self._output_url(task) if status == 3 else None,
            "progress": task.progress(now),
            "priority": 9,
            "task_id": task.internal_id,
            "file_name": f"Headswap_{task.create_ms}.mp4",
            "model_name": task.fields["model_name"],
        }
        if status == 4:
            data["error_reason"] = HEAD_SWAP_FAIL_REASON
            data["error_code"] = 1015
        return {"code": 1000, "msg": "OK", "data": data}

    async def _credit(self, request: web.Request, state: _AccountState) -> dict[str, Any]:
        self._settle(state)
        return {"code": 1000, "msg": "OK", "data": {"credit": state.balance}}

    # ------------------------------------------------------------------ output files

    def _file_bytes(self, name: str) -> tuple[bytes, str] | None:
        now = self._clock.now()
        if name.endswith(".mp4"):
            task = self._tasks.get(name[:-4])
            if task is None or task.kind == "analysis" or task.status(now) != 3:
                return None
            return fake_mp4(task.id), "video/mp4"
        if name.endswith(".png"):
            task_id, _, index = name[:-4].rpartition("_")
            task = self._tasks.get(task_id)
            if (
                task is None
                or task.kind != "analysis"
                or task.status(now) != 3
                or not index.isdigit()
                or int(index) >= task.people
            ):
                return None
            return fake_png(name), "image/png"
        return None

    async def _files(self, request: web.Request) -> web.StreamResponse:
        endpoint = "files"
        self._requests[endpoint] += 1
        latency = self._latency.get(endpoint, 0.0)
        if latency > 0:
            await asyncio.sleep(latency)
        fault = self._faults.draw(endpoint)
        if fault is not None and fault.kind not in FILE_KINDS:
            fault = None
        if fault is not None:
            self._fault_counts[fault.kind] += 1
            if fault.kind == "drop_before":
                return self._drop(request, endpoint)
            if fault.kind.startswith("http_"):
                return self._gateway_error(request, endpoint, int(fault.kind[5:]))
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
        found = self._file_bytes(request.match_info["name"])
        if found is None:
            self._record(request, endpoint, 404, None)
            return web.Response(status=404, text="Not Found")
        content, content_type = found
        size = len(content)
        status = 200
        headers = {"Accept-Ranges": "bytes", "Content-Type": content_type}
        span = _parse_range(request.headers.get("Range"), size)
        if span == "invalid":
            self._record(request, endpoint, 416, None)
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if isinstance(span, tuple):
            start, end = span
            content = content[start : end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if fault is not None and fault.kind == "truncate":
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = len(content)
            await response.prepare(request)
            await response.write(content[: len(content) // 2])
            return self._drop(request, endpoint)
        self._record(request, endpoint, status, None)
        return web.Response(status=status, body=content, headers=headers)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range as (start, end inclusive); None = whole file; "invalid" = 416."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # unsupported units or multiple ranges: serve the whole file (RFC 9110)
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return "invalid"
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "invalid"
            return max(0, size - suffix), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return "invalid"
    if start >= size or end < start:
        return "invalid"
    return start, min(end, size - 1)
