"""Simulator fault injection: every fault kind observable, plans reproducible, rate limit 1005."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from akool_async.testing import (
    ENDPOINTS,
    FAULT_KINDS,
    PROFILES,
    AkoolSimulator,
    Fault,
    FaultPlan,
    profile,
)

pytestmark = pytest.mark.anyio

CS_CREATE = "/api/open/v4/characterSwap/create"
CREDIT = "/api/open/v3/faceswap/quota/info"
BODY = {"image": "https://cdn.example.com/a.png", "video": "https://cdn.example.com/v.mp4"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session (not the SDK)."""
    async with aiohttp.ClientSession() as session:
        yield session


async def create(
    http: aiohttp.ClientSession, sim: AkoolSimulator
) -> tuple[int, str, dict[str, str]]:
    """POST a character swap create; return (HTTP status, raw body text, headers)."""
    async with http.post(
        sim.base_url + CS_CREATE, json=BODY, headers={"x-api-key": sim.api_key}
    ) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("http_500", 500, None),
        ("http_502", 502, None),
        ("http_503", 503, None),
        ("http_500_envelope", 500, 2001),
        ("http_503_envelope", 503, 2001),
        ("http_429", 429, 1005),
        ("code_1005", 200, 1005),
        ("code_1015", 200, 1015),
        ("code_2001", 200, 2001),
    ],
)
async def test_rejection_faults_create_nothing(
    simulator: AkoolSimulator,
    http: aiohttp.ClientSession,
    kind: str,
    status: int,
    code: int | None,
) -> None:
    """Rejection faults answer their status/code (envelope or gateway HTML) and create nothing."""
    before = simulator.balance()
    simulator.inject("character_swap.create", kind)
    got_status, text, _ = await create(http, simulator)
    assert got_status == status
    if code is None:
        assert "<html>" in text
    else:
        assert set(json.loads(text)) == {"code", "msg"}
        assert json.loads(text)["code"] == code
    stats = simulator.stats
    assert stats.creates == {}
    assert stats.faults == {kind: 1}
    assert simulator.balance() == before
    # The next call is answered normally.
    ok_status, ok_text, _ = await create(http, simulator)
    assert (ok_status, json.loads(ok_text)["code"]) == (200, 1000)


async def test_429_retry_after_is_scaled(http: aiohttp.ClientSession) -> None:
    """HTTP 429 carries Retry-After = fault.retry_after x time_scale (fractional allowed)."""
    async with AkoolSimulator(time_scale=0.01) as sim:
        sim.inject("character_swap.create", Fault(kind="http_429", retry_after=3.0))
        status, _, headers = await create(http, sim)
        assert status == 429
        assert float(headers["Retry-After"]) == pytest.approx(0.03)


async def test_drop_before_creates_nothing(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """drop_before closes the connection without an answer and nothing is created or charged."""
    before = simulator.balance()
    simulator.inject("character_swap.create", "drop_before")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await create(http, simulator)
    assert simulator.stats.creates == {}
    assert simulator.balance() == before
    assert simulator.request_log[-1].status == 0


async def test_drop_after_creates_and_charges(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """drop_after loses the answer but the task exists and is charged."""
    before = simulator.balance()
    simulator.inject("character_swap.create", "drop_after")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await create(http, simulator)
    stats = simulator.stats
    assert stats.creates == {simulator.fingerprint(BODY): 1}
    assert stats.tasks["character_swap"] == {"queueing": 1}
    assert simulator.balance() < before


async def test_malformed_json_after_processing(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """malformed_json answers 200 with a JSON content type whose body does not parse."""
    simulator.inject("character_swap.create", "malformed_json")
    status, text, headers = await create(http, simulator)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert simulator.stats.tasks["character_swap"] == {"queueing": 1}


async def test_extra_fields_are_added(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """extra_fields adds unknown keys to the envelope and to data, keeping the real ones."""
    simulator.inject("character_swap.create", "extra_fields")
    _, text, _ = await create(http, simulator)
    answer = json.loads(text)
    assert answer["code"] == 1000
    assert "x_sim_extra" in answer
    assert "x_sim_future_field" in answer["data"]
    assert "_id" in answer["data"]


async def test_slow_answer_is_processed_first(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """slow answers late but normally; the create was processed (and counted) regardless."""
    simulator.inject("character_swap.create", Fault(kind="slow", delay=0.2))
    status, text, _ = await create(http, simulator)
    assert (status, json.loads(text)["code"]) == (200, 1000)
    assert simulator.stats.faults == {"slow": 1}
    assert simulator.stats.creates == {simulator.fingerprint(BODY): 1}


async def test_truncated_download(simulator: AkoolSimulator, http: aiohttp.ClientSession) -> None:
    """truncate on files promises the whole length and closes the connection half way."""
    _, text, _ = await create(http, simulator)
    task_id = json.loads(text)["data"]["_id"]
    simulator.advance(10_000)
    simulator.inject("files", "truncate")
    url = f"{simulator.base_url}/files/{task_id}.mp4"

    async def download() -> bytes:
        async with http.get(url) as resp:
            assert resp.status == 200
            return await resp.read()

    with pytest.raises(aiohttp.ClientPayloadError):
        await download()
    async with http.get(url) as resp:
        assert len(await resp.read()) == int(resp.headers["Content-Length"])


async def test_script_then_rates(http: aiohttp.ClientSession) -> None:
    """A scripted plan applies its steps in order (None = normal) before the rates."""
    plan = FaultPlan(scripts={"credit": ["code_2001", None, "http_503"]})
    async with AkoolSimulator(manual_clock=True, faults=plan) as sim:
        seen = []
        for _ in range(4):
            async with http.get(sim.base_url + CREDIT, headers={"x-api-key": sim.api_key}) as r:
                seen.append(
                    (r.status, json.loads(await r.text())["code"] if r.status == 200 else None)
                )
        assert seen == [(200, 2001), (200, 1000), (503, None), (200, 1000)]


async def run_sequence(plan: FaultPlan | str, n: int = 60) -> list[tuple[int, int | None]]:
    """Send n credit requests through a fresh simulator and return (status, code) pairs."""
    async with (
        AkoolSimulator(manual_clock=True, faults=plan, seed=7) as sim,
        aiohttp.ClientSession() as http,
    ):

        async def one() -> tuple[int, int | None]:
            try:
                async with http.get(
                    sim.base_url + CREDIT, headers={"x-api-key": sim.api_key}
                ) as resp:
                    text = await resp.text()
                    try:
                        return resp.status, json.loads(text).get("code")
                    except ValueError:
                        return resp.status, -1
            except aiohttp.ClientConnectionError:
                return 0, None

        return [await one() for _ in range(n)]


async def test_seeded_plans_are_reproducible() -> None:
    """The same seeded plan gives the same fault sequence; another seed differs."""
    rates = {"credit": {"code_1005": 0.2, "http_502": 0.2, "malformed_json": 0.1}}
    first = await run_sequence(FaultPlan(seed=3, rates=rates))
    second = await run_sequence(FaultPlan(seed=3, rates=rates))
    third = await run_sequence(FaultPlan(seed=4, rates=rates))
    assert first == second
    assert first != third
    assert {s for s, _ in first} >= {200, 502}


async def test_chaos_profile_injects_faults() -> None:
    """The chaos profile (by name) injects faults reproducibly; none injects nothing."""
    assert set(PROFILES) == {"none", "flaky", "chaos"}
    chaos = await run_sequence("chaos", n=80)
    assert chaos == await run_sequence("chaos", n=80)
    assert any(pair != (200, 1000) for pair in chaos)
    assert all(pair == (200, 1000) for pair in await run_sequence("none", n=20))
    assert profile("flaky").rates_for("files") == {"truncate": 0.02}


def test_plan_validation() -> None:
    """Unknown endpoints or kinds and rates above 1 are rejected at construction."""
    with pytest.raises(ValueError, match="endpoint"):
        FaultPlan(rates={"nope": {"http_500": 0.1}})
    with pytest.raises(ValueError, match="kind"):
        FaultPlan(rates={"credit": {"boom": 0.1}})
    with pytest.raises(ValueError, match="add up"):
        FaultPlan(rates={"credit": {"http_500": 0.6, "http_502": 0.6}})
    assert "truncate" in FAULT_KINDS
    assert "files" in ENDPOINTS


async def test_rate_limit_answers_1005(http: aiohttp.ClientSession) -> None:
    """Beyond rate_limit requests per simulated second per key the answer is 1005."""
    async with AkoolSimulator(manual_clock=True, rate_limit=3) as sim:
        other = sim.add_account(api_key="another-team-key-0000001", client_id="cd" * 12)

        async def code(key: str) -> Any:
            async with http.get(sim.base_url + CREDIT, headers={"x-api-key": key}) as resp:
                return (await resp.json())["code"]

        codes = [await code(sim.api_key) for _ in range(5)]
        assert codes == [1000, 1000, 1000, 1005, 1005]
        assert await code(other.api_key) == 1000  # per key
        sim.advance(1.0)
        assert [await code(sim.api_key) for _ in range(4)] == [1000, 1000, 1000, 1005]
        assert sim.stats.rate_limited == 3


async def test_latency_and_max_concurrent_creates(http: aiohttp.ClientSession) -> None:
    """max_concurrent_creates is measured server side while latency holds requests open."""
    async with AkoolSimulator(manual_clock=True, latency={"character_swap.create": 0.2}) as sim:
        results = await asyncio.gather(*(create(http, sim) for _ in range(4)))
        assert all(status == 200 for status, _, _ in results)
        stats = sim.stats
        assert 1 <= stats.max_concurrent_creates <= 4
        assert stats.in_flight_creates == 0
        assert stats.requests["character_swap.create"] == 4
