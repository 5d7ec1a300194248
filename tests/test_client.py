"""AkoolClient against the simulator: config, lifecycle, auth, codes, retries, no double pay."""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import attrs
import pytest
from conftest import ManualClock

from akool_async._api import Credentials
from akool_async._client import AkoolClient
from akool_async._config import Limits, PollPolicy, RetryPolicy, Timeouts
from akool_async._converters import character_swap_to_wire
from akool_async._errors import (
    CODE_TO_ERROR,
    AkoolError,
    AuthenticationError,
    ClientStateError,
    ConfigurationError,
    ConnectError,
    ConnectionLostError,
    InsufficientCreditError,
    InvalidParameterError,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ResponseError,
    RetryLaterError,
    ServerError,
    SubmissionUncertainError,
    ValidationError,
)
from akool_async._models import CharacterSwap, HeadSwap
from akool_async._retry import create_may_retry, create_outcome_uncertain
from akool_async.testing import AkoolSimulator, Fault, profile

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(
    attempts=4, timeout=1e6, initial=0.01, max_delay=0.05, max_retry_after=30.0
)
FAST_POLL = PollPolicy(initial=1.0, factor=2.0, max_interval=16.0, jitter=0.1)
ENV_VARS = ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET", "AKOOL_BASE_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's real Akool environment variables."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def make_client(sim: AkoolSimulator, **kw: Any) -> AkoolClient:
    """A client for ``sim`` with instant time and fast policies (overridable)."""
    kw.setdefault("base_url", sim.base_url)
    kw.setdefault("clock", ManualClock(sim))
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("poll", FAST_POLL)
    if "client_id" not in kw and "api_key" not in kw:
        kw["api_key"] = sim.api_key
    return AkoolClient(**kw)


@asynccontextmanager
async def sim_and_client(
    sim_kw: dict[str, Any] | None = None, **client_kw: Any
) -> AsyncIterator[tuple[AkoolSimulator, AkoolClient]]:
    """A manual-clock simulator and an open client for it."""
    async with (
        AkoolSimulator(manual_clock=True, **(sim_kw or {})) as sim,
        make_client(sim, **client_kw) as client,
    ):
        yield sim, client


def char_req(n: int = 0, **kw: Any) -> CharacterSwap:
    """A valid, distinct character swap request."""
    return CharacterSwap(
        f"https://img.example/{n}.png", f"https://vid.example/{n}.mp4?duration=10", **kw
    )


# --------------------------------------------------------------------------- configuration


def test_no_credentials_is_configuration_error() -> None:
    """Without any credential the error says how to pass one and mentions the simulator."""
    with pytest.raises(ConfigurationError) as info:
        AkoolClient()
    assert "AKOOL_API_KEY" in str(info.value)
    assert "python -m akool_async.testing" in str(info.value)


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """$AKOOL_API_KEY and $AKOOL_BASE_URL are used when no argument is given."""
    monkeypatch.setenv("AKOOL_API_KEY", "env-key")
    monkeypatch.setenv("AKOOL_BASE_URL", "https://api.example.com/")
    client = AkoolClient()
    assert client.auth == "api_key"
    assert client.base_url == "https://api.example.com"
    assert AkoolClient(base_url="http://127.0.0.1:9").base_url == "http://127.0.0.1:9"


def test_default_base_url() -> None:
    """The base URL defaults to Akool's production host."""
    assert AkoolClient("k").base_url == "https://openapi.akool.com"


def test_credential_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit arguments beat the environment; an env API key beats env client id/secret."""
    monkeypatch.setenv("AKOOL_CLIENT_ID", "cid")
    monkeypatch.setenv("AKOOL_CLIENT_SECRET", "secret")
    assert AkoolClient().auth == "token"
    monkeypatch.setenv("AKOOL_API_KEY", "env-key")
    assert AkoolClient().auth == "api_key"
    assert AkoolClient(client_id="a", client_secret="b").auth == "token"
    assert AkoolClient("explicit").auth == "api_key"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api_key": "k", "client_id": "c", "client_secret": "s"}, "not both"),
        ({"client_id": "c"}, "client_secret is missing"),
        ({"client_secret": "s"}, "client_id is missing"),
        ({"api_key": ""}, "empty"),
        ({"api_key": "k", "timeouts": 5}, "Timeouts"),
    ],
)
def test_bad_credentials_or_options(kwargs: dict[str, Any], match: str) -> None:
    """Conflicting, partial or empty credentials and wrong option types are refused."""
    with pytest.raises(ConfigurationError, match=match):
        AkoolClient(**kwargs)


@pytest.mark.parametrize(
    "url",
    [
        "https://openapi.akool.com",
        "https://proxy.example:8443/akool/",
        "http://127.0.0.1:8080",
        "http://127.9.9.9",
        "http://localhost:1234",
        "http://[::1]:80",
    ],
)
def test_base_url_accepted(url: str) -> None:
    """https anywhere, and plain http to loopback hosts, are accepted."""
    assert AkoolClient("k", base_url=url).base_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://openapi.akool.com",
        "http://10.0.0.1",
        "http://128.0.0.1",
        "ftp://127.0.0.1",
        "openapi.akool.com",
        "https://user:pw@openapi.akool.com",
        "https://openapi.akool.com?x=1",
        "https://host:notaport",
        "",
    ],
)
def test_base_url_rejected(url: str) -> None:
    """Insecure or malformed base URLs raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        AkoolClient("k", base_url=url)


def test_repr_hides_secrets() -> None:
    """repr shows base URL and auth kind, never the key or client secret."""
    client = AkoolClient("super-secret-key-123")
    assert repr(client) == "AkoolClient(base_url='https://openapi.akool.com', auth='api_key')"
    token_client = AkoolClient(client_id="cid-1", client_secret="hidden-secret-456")
    text = repr(token_client) + repr(token_client.character_swap) + repr(token_client.head_swap)
    assert "hidden-secret-456" not in text
    assert "auth='token'" in text
    credentials = Credentials("api_key", api_key="super-secret-key-123")
    assert "super-secret-key-123" not in repr(credentials)


def test_policies_exposed() -> None:
    """poll_policy, retry_policy and clock are available to the batch engine."""
    clock = ManualClock()
    client = AkoolClient("k", poll=FAST_POLL, retry=FAST_RETRY, clock=clock)
    assert client.poll_policy is FAST_POLL
    assert client.retry_policy is FAST_RETRY
    assert client.clock is clock


# --------------------------------------------------------------------------- lifecycle


async def test_lifecycle_errors(simulator: AkoolSimulator) -> None:
    """Use before open, a second enter, use after close and reopening all raise."""
    client = make_client(simulator)
    with pytest.raises(ClientStateError, match="not open"):
        await client.get_credits()
    async with client:
        with pytest.raises(ClientStateError, match="already open"):
            await client.__aenter__()
        assert await client.get_credits() > 0
    with pytest.raises(ClientStateError, match="closed"):
        await client.get_credits()
    with pytest.raises(ClientStateError, match="closed"):
        async with client:
            pass


# --------------------------------------------------------------------------- auth


async def test_api_key_auth_and_credits(simulator: AkoolSimulator) -> None:
    """An API key client reads the balance with one request."""
    async with make_client(simulator) as client:
        assert await client.get_credits() == simulator.balance()
    assert simulator.stats.requests == {"credit": 1}


async def test_wrong_api_key_is_1101_not_retried(simulator: AkoolSimulator) -> None:
    """A rejected API key raises AuthenticationError 1101 after a single request."""
    async with make_client(simulator, api_key="wrong-key") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_credits()
    assert info.value.code == 1101
    assert info.value.path == "/api/open/v3/faceswap/quota/info"
    assert simulator.stats.requests == {"credit": 1}


async def test_missing_auth_header_is_1102(simulator: AkoolSimulator) -> None:
    """A request without credentials is answered 1102 (AuthenticationError)."""
    client = make_client(simulator)
    client._api._api_key_headers = {}  # white-box: send no auth header
    async with client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_credits()
    assert info.value.code == 1102


async def test_token_flow_shares_one_fetch(simulator: AkoolSimulator) -> None:
    """Concurrent first calls with client id/secret share one getToken request."""
    client = make_client(
        simulator, client_id=simulator.client_id, client_secret=simulator.client_secret
    )
    async with client, anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(client.get_credits)
    assert simulator.stats.requests == {"get_token": 1, "credit": 20}


async def test_wrong_client_secret_is_authentication_error(simulator: AkoolSimulator) -> None:
    """getToken rejecting the pair raises AuthenticationError 1101 without leaking it."""
    secret = "Wrong-Secret-Value-0000"
    async with make_client(
        simulator, client_id=simulator.client_id, client_secret=secret
    ) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_credits()
    assert info.value.code == 1101
    assert info.value.path == "/api/open/v3/getToken"
    assert secret not in str(info.value) + repr(info.value)
    assert simulator.stats.requests == {"get_token": 1}


async def test_token_failure_is_not_a_lost_create(simulator: AkoolSimulator) -> None:
    """A create whose getToken fails raises the getToken error; the create was never sent."""
    simulator.inject("get_token", *["http_502"] * FAST_RETRY.attempts)
    async with make_client(
        simulator, client_id=simulator.client_id, client_secret=simulator.client_secret
    ) as client:
        with pytest.raises(ServerError) as info:
            await client.character_swap.create(char_req())
    assert info.value.path == "/api/open/v3/getToken"
    assert simulator.stats.requests == {"get_token": FAST_RETRY.attempts}


async def test_token_refreshed_once_on_1101(simulator: AkoolSimulator) -> None:
    """A stale token is refreshed once and the call repeated, a create included."""
    async with make_client(
        simulator, client_id=simulator.client_id, client_secret=simulator.client_secret
    ) as client:
        await client.get_credits()
        client._api._bearer = {"Authorization": "Bearer sim.expired"}
        await client.get_credits()
        client._api._bearer = {"Authorization": "Bearer sim.expired-again"}
        task = await client.character_swap.create(char_req())
    stats = simulator.stats
    assert stats.requests == {"get_token": 3, "credit": 3, "character_swap.create": 2}
    assert simulator.task(task.id).status == 1
    assert sum(stats.creates.values()) == 1


async def test_token_refresh_happens_only_once(simulator: AkoolSimulator) -> None:
    """If the fresh token is rejected too, the 1101 is raised (no refresh loop)."""
    async with make_client(
        simulator, client_id=simulator.client_id, client_secret=simulator.client_secret
    ) as client:
        await client.get_credits()
        client._api._bearer = {"Authorization": "Bearer sim.expired"}
        simulator.add_account(api_key="other-account-key-000001", client_id="other-client")
        real_fetch = client._api._fetch_token

        async def bad_fetch() -> str:
            await real_fetch()
            return "sim.still-bad"

        client._api._fetch_token = bad_fetch  # type: ignore[method-assign]
        with pytest.raises(AuthenticationError):
            await client.get_credits()
    assert simulator.stats.requests["credit"] == 3
    assert simulator.stats.requests["get_token"] == 2


# --------------------------------------------------------------------------- business codes


async def test_real_conditions_raise_their_classes() -> None:
    """1003, 1008, 1014 and 1104 from real server conditions raise their table classes."""
    async with sim_and_client({"credit": 5}) as (sim, client):
        with pytest.raises(NotFoundError) as info:
            await client.character_swap.get("0" * 24)
        assert (info.value.code, info.value.task_id) == (1008, "0" * 24)
        with pytest.raises(NotFoundError) as info:
            await client.head_swap.get("1" * 24)
        assert info.value.code == 1014
        with pytest.raises(NotFoundError):
            await client.head_swap.get_analysis("2" * 24)
        with pytest.raises(InvalidParameterError) as exc:
            await client.head_swap.create(HeadSwap("https://v.example/x.mp4", {0: "https://f/p"}))
        assert exc.value.code == 1003
        with pytest.raises(InsufficientCreditError) as credit:
            await client.character_swap.create(char_req())
        assert credit.value.code == 1104
        assert type(credit.value) is CODE_TO_ERROR[1104]
    assert sim.stats.requests["character_swap.create"] == 1  # definite rejection: not resent
    assert sim.stats.creates == {}


@pytest.mark.parametrize(
    ("kind", "cls", "code"),
    [
        ("code_1005", RateLimitError, 1005),
        ("code_1015", RetryLaterError, 1015),
        ("code_2001", ServerError, 2001),
    ],
)
async def test_injected_codes_raise_their_classes(
    kind: str, cls: type[AkoolError], code: int
) -> None:
    """Codes 1005, 1015 and 2001 raise their classes once retries are exhausted."""
    async with sim_and_client() as (sim, client):
        sim.inject("credit", *[kind] * FAST_RETRY.attempts)
        with pytest.raises(cls) as info:
            await client.get_credits()
    assert type(info.value) is cls
    assert info.value.code == code
    assert sim.stats.requests["credit"] == FAST_RETRY.attempts


async def test_rate_limit_from_token_bucket() -> None:
    """The simulator's rate limiter (1005) is retried until a token is available."""
    retry = RetryPolicy(attempts=10, timeout=1e6, initial=1.0, max_delay=4.0)
    async with sim_and_client({"rate_limit": 1.0}, retry=retry) as (sim, client):
        client._api.rng = random.Random(0)
        for _ in range(3):
            await client.get_credits()
    assert sim.stats.rate_limited >= 1


# --------------------------------------------------------------------------- faults: GET vs create

GET_RETRIED = [
    "http_500",
    "http_502",
    "http_503",
    "http_500_envelope",
    "http_503_envelope",
    "http_429",
    "code_1005",
    "code_1015",
    "code_2001",
    "drop_before",
    "drop_after",
    "malformed_json",
]


@pytest.mark.parametrize("kind", GET_RETRIED)
async def test_get_retries_every_transient_fault(kind: str) -> None:
    """A GET is retried after each transient fault kind and then succeeds."""
    async with sim_and_client() as (sim, client):
        sim.inject("credit", kind)
        assert await client.get_credits() == sim.balance()
    assert sim.stats.requests["credit"] >= 2
    assert sim.stats.faults == {kind: 1}


async def test_get_honours_retry_after() -> None:
    """A 429's Retry-After is slept (on the client clock) before the retry."""
    async with sim_and_client() as (sim, client):
        sim.inject("credit", Fault(kind="http_429", retry_after=7.0))
        await client.get_credits()
        assert isinstance(client.clock, ManualClock)
        assert client.clock.slept >= 7.0


async def test_retry_after_above_cap_fails_fast() -> None:
    """A Retry-After above max_retry_after fails at once with RateLimitError."""
    async with sim_and_client() as (sim, client):
        sim.inject("credit", Fault(kind="http_429", retry_after=300.0))
        with pytest.raises(RateLimitError) as info:
            await client.get_credits()
    assert info.value.retry_after == 300.0
    assert info.value.http_status == 429
    assert sim.stats.requests["credit"] == 1


async def test_get_gives_up_after_attempts() -> None:
    """Persistent 5xx ends with ServerError after exactly `attempts` tries."""
    async with sim_and_client() as (sim, client):
        sim.inject("credit", *["http_502"] * 10)
        with pytest.raises(ServerError) as info:
            await client.get_credits()
    assert info.value.http_status == 502
    assert info.value.code is None
    assert sim.stats.requests["credit"] == FAST_RETRY.attempts


async def test_extra_fields_are_tolerated() -> None:
    """Unknown envelope and data keys do not break decoding and are kept in raw."""
    async with sim_and_client() as (sim, client):
        sim.inject("character_swap.create", "extra_fields")
        task = await client.character_swap.create(char_req())
    assert task.raw["x_sim_future_field"] == 42


CREATE_RETRIED = [
    "http_500_envelope",
    "http_503_envelope",
    "http_429",
    "code_1005",
    "code_1015",
    "code_2001",
]


@pytest.mark.parametrize("kind", CREATE_RETRIED)
async def test_create_retried_on_definite_rejection(kind: str) -> None:
    """A create refused with proof of no task is resent, and exactly one task results."""
    async with sim_and_client() as (sim, client):
        sim.inject("character_swap.create", kind)
        task = await client.character_swap.create(char_req())
    stats = sim.stats
    assert stats.requests["character_swap.create"] == 2
    assert list(stats.creates.values()) == [1]
    assert sim.task(task.id).kind == "character_swap"


CREATE_UNCERTAIN = [
    ("http_500", ServerError, 0),
    ("http_502", ServerError, 0),
    ("http_503", ServerError, 0),
    ("drop_before", ConnectionLostError, 0),
    ("drop_after", ConnectionLostError, 1),
    ("malformed_json", ResponseError, 1),
]


@pytest.mark.parametrize(("kind", "cause", "created"), CREATE_UNCERTAIN)
async def test_create_ambiguous_is_submission_uncertain(
    kind: str, cause: type[Exception], created: int
) -> None:
    """An ambiguous create failure raises SubmissionUncertainError and is never resent."""
    req = char_req()
    async with sim_and_client() as (sim, client):
        sim.inject("character_swap.create", kind)
        with pytest.raises(SubmissionUncertainError) as info:
            await client.character_swap.create(req)
    assert info.value.request is req
    assert isinstance(info.value.__cause__, cause)
    assert info.value.path == "/api/open/v4/characterSwap/create"
    assert sim.stats.requests["character_swap.create"] == 1
    assert sum(sim.stats.creates.values()) == created


async def test_timeouts_get_retried_create_uncertain() -> None:
    """A read timeout retries a GET but makes a create SubmissionUncertainError."""
    slow = Fault(kind="slow", delay=2.0)
    # An API call must end within connect + read = 1 s: the slow answer takes 2 s, a normal
    # one fits even on a loaded machine.
    timeouts = Timeouts(connect=0.5, read=0.5, total=30.0)
    async with sim_and_client(timeouts=timeouts) as (sim, client):
        sim.inject("credit", slow)
        await client.get_credits()
        sim.inject("character_swap.create", slow)
        with pytest.raises(SubmissionUncertainError) as info:
            await client.character_swap.create(char_req())
    assert isinstance(info.value.__cause__, RequestTimeoutError)
    assert sim.stats.requests["character_swap.create"] == 1


async def test_connect_error_retried_then_raised() -> None:
    """A refused connection is retried even for a create (nothing was sent), then raised."""
    async with AkoolSimulator(manual_clock=True) as sim:
        base_url = sim.base_url
    # Unbounded create pacing, so the only sleeps counted are the retry loop's.
    unpaced = Limits(max_creates_per_second=1e12)
    client = AkoolClient(
        "k", base_url=base_url, retry=FAST_RETRY, clock=ManualClock(), limits=unpaced
    )
    async with client:
        with pytest.raises(ConnectError) as info:
            await client.character_swap.create(char_req())
    assert info.value.method == "POST"
    assert len(client.clock.sleeps) == FAST_RETRY.attempts - 1  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- chaos


@pytest.mark.parametrize("seed", [1234, 7, 99])
async def test_chaos_never_duplicates_a_create(seed: int) -> None:
    """Under the chaos profile 200 creates never create twice; ambiguity is always surfaced."""
    plan = attrs.evolve(profile("chaos", seed=seed), slow_delay=0.01)
    async with sim_and_client({"faults": plan}) as (sim, client):
        reqs = [char_req(i) for i in range(200)]
        outcomes: dict[int, object] = {}

        async def submit(i: int) -> None:
            try:
                outcomes[i] = await client.character_swap.create(reqs[i])
            except AkoolError as err:
                outcomes[i] = err

        async with anyio.create_task_group() as tg:
            for i in range(len(reqs)):
                tg.start_soon(submit, i)
        stats = sim.stats
        fingerprints = [sim.fingerprint(character_swap_to_wire(r)) for r in reqs]
    assert stats.duplicate_creates == 0
    assert all(n <= 1 for n in stats.creates.values())
    uncertain = 0
    for i, outcome in outcomes.items():
        created = stats.creates.get(fingerprints[i], 0)
        if isinstance(outcome, SubmissionUncertainError):
            uncertain += 1
            assert outcome.request is reqs[i]
            assert outcome.__cause__ is not None
            assert create_outcome_uncertain(outcome.__cause__)
        elif isinstance(outcome, AkoolError):
            # A definite failure (retries exhausted on proof of no task): nothing created.
            assert create_may_retry(outcome) or not create_outcome_uncertain(outcome)
            assert created == 0
        else:
            assert created == 1
    assert len(outcomes) == 200
    assert uncertain > 0  # the chaos profile did produce ambiguous answers
    assert stats.faults  # and faults were injected


# --------------------------------------------------------------------------- redaction


async def error_texts(call: Awaitable[object]) -> list[str]:
    """The str/repr/attributes/cause texts of the AkoolError ``call`` raises."""
    with pytest.raises(AkoolError) as info:
        await call
    err = info.value
    return [str(err), repr(err), repr(err.__dict__), repr(err.__cause__)]


async def test_secrets_never_logged_or_in_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Key, client secret and token appear in no DEBUG log line, repr or exception text."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with AkoolSimulator(manual_clock=True) as sim:
        secret = sim.client_secret
        async with make_client(sim, client_id=sim.client_id, client_secret=secret) as client:
            await client.get_credits()
            token = client._api._bearer["Authorization"].split()[1] if client._api._bearer else ""
            assert token
            sim.inject("character_swap.create", "http_429", "drop_after")
            texts += await error_texts(client.character_swap.create(char_req()))
            texts += await error_texts(client.character_swap.get("f" * 24))
            client._api._bearer = {"Authorization": "Bearer sim.stale"}
            await client.get_credits()
            token2 = client._api._bearer["Authorization"].split()[1]
            texts.append(repr(client))
        async with make_client(sim, api_key=sim.api_key) as client:
            sim.inject("credit", "http_503", "malformed_json")
            await client.get_credits()
            texts.append(repr(client))
    texts.append(caplog.text)
    texts += [r.getMessage() for r in caplog.records]
    blob = "\n".join(texts)
    assert "akool_async" in {r.name for r in caplog.records}
    for value in (secret, sim.api_key, token, token2):
        assert value not in blob


# --------------------------------------------------------------------------- session, keys, Api


async def test_a_session_owned_by_the_caller_is_used_and_left_open(
    simulator: AkoolSimulator,
) -> None:
    """With session=..., requests go through that session, which stays open and keyless."""
    sent: list[str] = []

    async def on_request_start(
        session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        sent.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        async with make_client(simulator, session=session) as client:
            assert await client.get_credits() == simulator.balance()
        assert not session.closed
        assert sent == ["/api/open/v3/faceswap/quota/info"]
        assert all(simulator.api_key not in value for value in session.headers.values())
        async with session.get(f"{simulator.base_url}/api/open/v3/faceswap/quota/info") as r:
            assert (await r.json())["code"] == 1102  # the session itself carries no key
    assert simulator.stats.requests == {"credit": 2}


def test_session_must_be_an_aiohttp_session() -> None:
    """A session that is not an aiohttp.ClientSession is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match=r"aiohttp\.ClientSession"):
        AkoolClient("k", session=object())  # type: ignore[arg-type]


async def test_a_key_read_with_its_newline_works(simulator: AkoolSimulator) -> None:
    """Whitespace around an API key (a line read from a file) is removed before use."""
    async with make_client(simulator, api_key=f"  {simulator.api_key}\r\n") as client:
        assert await client.get_credits() == simulator.balance()


@pytest.mark.parametrize("name", ["api_key", "client_secret", "env"])
def test_control_characters_in_a_secret_are_refused_without_quoting_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret with a control character inside is a ConfigurationError that hides it."""
    secret = "sk-abc\x1bdef\nghi"
    kwargs: dict[str, str] = {}
    if name == "api_key":
        kwargs["api_key"] = secret
    elif name == "client_secret":
        kwargs.update(client_id="cid", client_secret=secret)
    else:
        monkeypatch.setenv("AKOOL_API_KEY", secret)
    with pytest.raises(ConfigurationError, match="control characters") as info:
        AkoolClient(**kwargs)
    assert "abc" not in str(info.value)
    assert "def" not in str(info.value)


def test_account_digest_names_the_account_not_the_key() -> None:
    """The digest is the SHA-256 prefix of the key (or client id), never the secret."""
    key = "sk-digest-test-0123456789"
    digest = AkoolClient(key)._api.account_digest
    assert digest == hashlib.sha256(key.encode()).hexdigest()[:16]
    assert key not in digest
    assert AkoolClient("another-key")._api.account_digest != digest
    token = AkoolClient(client_id="cid-1", client_secret="s1")._api.account_digest
    assert token == AkoolClient(client_id="cid-1", client_secret="s2")._api.account_digest


async def test_before_send_runs_once_per_attempt_right_before_sending() -> None:
    """before_send is awaited before each attempt's request, and only then is it sent."""
    async with sim_and_client() as (sim, client):
        sim.inject("credit", "http_503")
        seen: list[int] = []

        async def before_send() -> None:
            seen.append(sim.stats.total_requests)

        await client._api.call(
            "GET", "/api/open/v3/faceswap/quota/info", idempotent=True, before_send=before_send
        )
    assert seen == [0, 1]  # nothing was sent before the first call, one before the second


async def test_a_failing_before_send_sends_nothing() -> None:
    """If before_send raises, the create is not sent and its error propagates."""

    class JournalDownError(Exception):
        pass

    async def before_send() -> None:
        raise JournalDownError

    async with sim_and_client() as (sim, client):
        with pytest.raises(JournalDownError):
            await client._api.call(
                "POST",
                "/api/open/v4/characterSwap/create",
                json={"image": "https://img.example/1.png"},
                idempotent=False,
                before_send=before_send,
            )
    assert sim.stats.total_requests == 0


async def test_http_session_is_refused_outside_the_block() -> None:
    """The Api lends its session only while the client is open."""
    client = AkoolClient("k", base_url="http://127.0.0.1:9")
    with pytest.raises(ClientStateError, match="not open yet"):
        client._api.http_session()
    async with client:
        assert not client._api.http_session().closed
    with pytest.raises(ClientStateError, match="closed"):
        client._api.http_session()


async def test_an_unencodable_body_is_a_validation_error_before_anything_happens() -> None:
    """A lone surrogate in a body is a ValidationError; before_send never runs, nothing is sent."""
    called: list[bool] = []

    async def before_send() -> None:
        called.append(True)

    async with sim_and_client() as (sim, client):
        with pytest.raises(ValidationError, match="surrogate"):
            await client._api.call(
                "POST",
                "/api/open/v4/characterSwap/create",
                json={"prompt": "\ud800"},
                idempotent=False,
                before_send=before_send,
            )
    assert called == []
    assert sim.stats.total_requests == 0
