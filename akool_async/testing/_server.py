"""``AkoolSimulator``: a real ``aiohttp.web`` server that behaves like the Akool Open API.

Everything follows ``akool-api.md``; where the contract is silent the choice is named in the
``akool_async.testing`` docstring. This module wires the parts: the routes, the request
pipeline (latency, faults, authentication, rate limit, answer) and the public API; accounts,
tasks, endpoints, files and webhooks live in their own modules.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeAlias

from aiohttp import web

from ._accounts import Accounts, AccountState
from ._answers import Answers
from ._clock import IdMaker, SimClock
from ._endpoints_character import CharacterSwapEndpoints
from ._endpoints_head import HeadSwapEndpoints
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
from ._files import OutputFiles, ranged, write_half
from ._model import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CREDIT,
    DEFAULT_LOG_SIZE,
    WEBHOOK_TYPES,
    Account,
    Duration,
    RequestLogEntry,
    SimulatorStats,
    TaskInfo,
)
from ._tasks import TaskBook
from ._validation import ApiError
from ._webhooks import (
    DEFAULT_WEBHOOK_ATTEMPTS,
    DEFAULT_WEBHOOK_BACKOFF,
    WebhookDelivery,
    WebhookDispatcher,
    plaintext_json,
)

__all__ = ["AkoolSimulator"]

LatencySpec: TypeAlias = float | Mapping[str, float] | None
FaultsSpec: TypeAlias = FaultPlan | str | None
Handler: TypeAlias = Callable[[web.Request, AccountState], Awaitable[dict[str, Any]]]

#: Largest request body the server reads.
_MAX_REQUEST_BYTES = 4 * 1024 * 1024


def _latencies(latency: LatencySpec) -> dict[str, float]:
    if latency is None:
        return {}
    if isinstance(latency, Mapping):
        return dict(latency)
    return dict.fromkeys(ENDPOINTS, float(latency))


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
        self._clock = SimClock(time_scale=time_scale, manual=manual_clock)
        self._ids = IdMaker(self._clock, seed)

        def new_id() -> str:
            # Looked up per call, so a test can replace _new_id (tests/test_batch.py does).
            return self._new_id()

        self._accounts = Accounts(self._clock, new_id, rate_limit=rate_limit, seed=seed)
        self._webhooks = WebhookDispatcher(
            now=self._clock.now,
            epoch=self._clock.epoch,
            to_real=self._clock.to_real,
            payload=self._webhook_payload,
            seed=seed,
            attempts=webhook_attempts,
            backoff=webhook_backoff,
        )
        self._book = TaskBook(
            self._clock,
            new_id,
            seed=seed,
            durations=durations,
            failure_rate=failure_rate,
            webhooks=self._webhooks,
            webhook_on_processing=webhook_on_processing,
        )
        # benchmarks/_common.py reads the tasks' simulated times through this alias.
        self._tasks = self._book.tasks
        self._files = OutputFiles(self._book)
        self._answers = Answers(self._clock, log_size)
        plan = profile(faults, seed=seed) if isinstance(faults, str) else faults
        self._faults = FaultInjector(plan or FaultPlan(seed=seed))
        self._latency = _latencies(latency)
        self._host = host
        self._port = port
        self._requests: Counter[str] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._in_flight_creates = 0
        self._max_in_flight_creates = 0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._primary = self.add_account(
            api_key=api_key, client_id=client_id, client_secret=client_secret, credit=credit
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
        return self._accounts.add(
            api_key=api_key, client_id=client_id, client_secret=client_secret, credit=credit
        )

    def balance(self, api_key: str | None = None) -> int:
        """Current credit balance of an account (default: the first one)."""
        state = self._accounts.get(api_key or self._primary.api_key)
        state.settle(self._clock.now())
        return state.balance

    def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds`` (works with either clock)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._clock.advance(seconds)
        self._webhooks.wake()

    def now(self) -> float:
        """Simulated seconds since the simulator was constructed."""
        return self._clock.now()

    def inject(self, endpoint: str, *steps: FaultSpec) -> None:
        """Make the next calls of ``endpoint`` take these fault steps (None = no fault) first."""
        self._faults.inject(endpoint, steps)

    def fingerprint(self, body: Mapping[str, Any], api_key: str | None = None) -> str:
        """The ``stats.creates`` key of a create body sent with ``api_key`` (default: first)."""
        return self._book.fingerprint(body, self._accounts.get(api_key or self._primary.api_key))

    def task(self, task_id: str) -> TaskInfo:
        """A snapshot of a task or analysis by id (any team); KeyError when unknown."""
        return self._book.info(task_id)

    @property
    def stats(self) -> SimulatorStats:
        """A frozen snapshot of every counter."""
        webhooks = self._webhooks
        return SimulatorStats(
            requests=dict(self._requests),
            creates=dict(self._book.creates),
            polls=dict(self._book.polls),
            tasks=self._book.counts(),
            faults=dict(self._fault_counts),
            webhooks_delivered=webhooks.delivered,
            webhooks_failed=webhooks.failed,
            webhooks_skipped=webhooks.skipped,
            webhook_attempts=webhooks.attempts_made,
            max_concurrent_creates=self._max_in_flight_creates,
            in_flight_creates=self._in_flight_creates,
            rate_limited=self._accounts.rate_limited,
        )

    @property
    def request_log(self) -> tuple[RequestLogEntry, ...]:
        """The most recent requests (bounded by ``log_size``), oldest first."""
        return self._answers.log

    @property
    def webhook_deliveries(self) -> tuple[WebhookDelivery, ...]:
        """Finished webhook events (delivered, failed or skipped), in order."""
        return tuple(self._webhooks.deliveries)

    async def wait_webhooks(self) -> None:
        """Wait until every webhook event due now has been delivered, failed or rescheduled.

        With the manual clock call this before ``advance()`` past a retry: a retry is
        scheduled relative to the simulated time at which the failed answer was processed.
        """
        await self._webhooks.wait_idle()

    async def start(self) -> None:
        """Start serving (``async with`` does this)."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
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
        self._files.base_url = self._base_url
        self._webhooks.start()

    async def stop(self) -> None:
        """Stop the webhook loop and the server (``async with`` does this)."""
        await self._webhooks.stop()
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

    def _new_id(self) -> str:
        """Every id the simulator hands out (teams, tasks, tokens)."""
        return self._ids.new()

    # ------------------------------------------------------------------ routes

    def _app(self) -> web.Application:
        character = CharacterSwapEndpoints(self._clock, self._book, self._files)
        head = HeadSwapEndpoints(self._clock, self._book, self._files)
        routes: list[tuple[str, str, str, Handler | None]] = [
            ("POST", "/api/open/v3/getToken", "get_token", None),
            (
                "POST",
                "/api/open/v4/characterSwap/create",
                "character_swap.create",
                character.create,
            ),
            (
                "GET",
                "/api/open/v3/content/video/infobymodelid",
                "character_swap.result",
                character.result,
            ),
            ("POST", "/api/open/v4/headswap/analyze", "head_swap.analyze", head.analyze),
            (
                "GET",
                "/api/open/v4/headswap/analyze/detail",
                "head_swap.analysis_detail",
                head.analysis_detail,
            ),
            ("POST", "/api/open/v4/headswap/task/create", "head_swap.create", head.create),
            ("GET", "/api/open/v4/headswap/task/detail", "head_swap.detail", head.detail),
            ("GET", "/api/open/v3/faceswap/quota/info", "credit", self._accounts.credit),
        ]
        app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
        for method, path, endpoint, impl in routes:
            app.router.add_route(method, path, self._handler(endpoint, impl))
        app.router.add_get("/files/{name}", self._serve_file)
        return app

    def _webhook_payload(self, task_id: str, status: int) -> tuple[str, str, str, str] | None:
        """(url, client id, client secret, plaintext) of a task's webhook, or None to drop."""
        task = self._book.tasks.get(task_id)
        if task is None or task.webhook_url is None:
            return None
        account = task.owner.account
        url = self._files.video_url(task) if status == 3 else ""
        plaintext = plaintext_json(task.id, status, WEBHOOK_TYPES[task.kind], url)
        return task.webhook_url, account.client_id, account.client_secret, plaintext

    # ------------------------------------------------------------------ request pipeline

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

    async def _draw_fault(self, endpoint: str, kinds: frozenset[str] | None = None) -> Fault | None:
        """Wait the endpoint's latency, then draw (and count) its fault, if any."""
        latency = self._latency.get(endpoint, 0.0)
        if latency > 0:
            await asyncio.sleep(latency)
        fault = self._faults.draw(endpoint)
        if fault is None or (kinds is not None and fault.kind not in kinds):
            return None
        self._fault_counts[fault.kind] += 1
        return fault

    async def _payload(self, request: web.Request, impl: Handler | None) -> dict[str, Any]:
        """The envelope the endpoint answers (business errors included)."""
        try:
            if impl is None:
                return await self._accounts.get_token(request)
            state = self._accounts.authenticate(request)
            self._accounts.check_rate(state)
            return await impl(request, state)
        except ApiError as error:
            return {"code": error.code, "msg": error.msg}

    async def _serve(
        self, request: web.Request, endpoint: str, impl: Handler | None
    ) -> web.StreamResponse:
        fault = await self._draw_fault(endpoint)
        if fault is not None and fault.kind not in AFTER_KINDS:
            return self._answers.before_fault(request, endpoint, fault)
        payload = await self._payload(request, impl)
        if fault is None:
            return self._answers.json(request, endpoint, payload)
        if fault.kind == "drop_after":
            return self._answers.drop(request, endpoint)
        if fault.kind == "malformed_json":
            return self._answers.malformed(request, endpoint, payload)
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        elif fault.kind == "extra_fields":
            payload = {**payload, "x_sim_extra": {"note": "unknown field"}}
            if isinstance(payload.get("data"), dict):
                payload["data"] = {**payload["data"], "x_sim_future_field": 42}
        return self._answers.json(request, endpoint, payload)

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        endpoint = "files"
        self._requests[endpoint] += 1
        fault = await self._draw_fault(endpoint, FILE_KINDS)
        if fault is not None and fault.kind == "drop_before":
            return self._answers.drop(request, endpoint)
        if fault is not None and fault.kind.startswith("http_"):
            return self._answers.gateway_error(request, endpoint, int(fault.kind[5:]))
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        found = self._files.content(request.match_info["name"], self._clock.now())
        if found is None:
            self._answers.record(request, endpoint, 404, None)
            return web.Response(status=404, text="Not Found")
        status, body, headers = ranged(*found, request.headers.get("Range"))
        if fault is not None and fault.kind == "truncate" and status != 416:
            await write_half(request, status, body, headers)
            return self._answers.drop(request, endpoint)
        self._answers.record(request, endpoint, status, None)
        return web.Response(status=status, body=body, headers=headers)
