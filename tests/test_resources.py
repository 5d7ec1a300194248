"""Resources against the simulator: every endpoint, its quirks, wait/run, and local checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from conftest import ManualClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akool_async._client import AkoolClient
from akool_async._config import PollPolicy, RetryPolicy
from akool_async._errors import (
    FaceMappingError,
    InvalidParameterError,
    NotFoundError,
    SubmissionUncertainError,
    TaskFailedError,
    ValidationError,
    WaitTimeoutError,
)
from akool_async._models import (
    CharacterSwap,
    CharacterSwapResult,
    CharacterSwapTask,
    FaceMapping,
    HeadSwap,
    HeadSwapAnalysis,
    HeadSwapResult,
    HeadSwapTask,
    TaskStatus,
)
from akool_async._resources._base import structure_created
from akool_async.testing import CHARACTER_SWAP_RATES, AkoolSimulator

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(attempts=4, timeout=1e6, initial=0.01, max_delay=0.05)
FAST_POLL = PollPolicy(initial=1.0, factor=2.0, max_interval=16.0, jitter=0.1)
IMG = "https://img.example/face.png"


@asynccontextmanager
async def sim_and_client(**sim_kw: Any) -> AsyncIterator[tuple[AkoolSimulator, AkoolClient]]:
    """A manual-clock simulator and an open fast client for it."""
    async with AkoolSimulator(manual_clock=True, **sim_kw) as sim:
        client = AkoolClient(
            sim.api_key,
            base_url=sim.base_url,
            clock=ManualClock(sim),
            retry=FAST_RETRY,
            poll=FAST_POLL,
        )
        async with client:
            yield sim, client


def video(name: str = "v", **hooks: object) -> str:
    """A source video URL with simulator hooks (duration=, people=, fail=)."""
    query = "&".join(f"{k}={v}" for k, v in hooks.items())
    return f"https://vid.example/{name}.mp4" + (f"?{query}" if query else "")


# --------------------------------------------------------------------------- character swap


async def test_character_swap_create_get_wait() -> None:
    """create -> get -> wait follows the v4/v3 quirks and ends with the output URL."""
    async with sim_and_client() as (sim, client):
        req = CharacterSwap(
            IMG,
            video(duration=10),
            resolution="480p",
            prompt="smile",
            webhook_url="http://127.0.0.1:1/hook",
        )
        before = await client.get_credits()
        task = await client.character_swap.create(req)
        assert isinstance(task, CharacterSwapTask)
        assert task.status is TaskStatus.QUEUEING
        assert task.raw["webhookUrl"] == "http://127.0.0.1:1/hook"
        assert sim.task(task.id).webhook_url == "http://127.0.0.1:1/hook"  # sent as webhookurl
        assert await client.get_credits() == before - 2 * CHARACTER_SWAP_RATES["480p"]
        first = await client.character_swap.get(task.id)
        assert isinstance(first, CharacterSwapResult)
        assert first.status in (TaskStatus.QUEUEING, TaskStatus.PROCESSING)
        assert first.output_url is None
        assert "video_status" in first.raw
        done = await client.character_swap.wait(task.id)
        assert done.status is TaskStatus.COMPLETED
        assert done.output_url == f"{sim.base_url}/files/{task.id}.mp4"
        assert done.input_video_url == req.video
        polls = sim.stats.polls[task.id]
    assert 2 <= polls <= 12  # exponential backoff, not a tight loop


async def test_create_awaits_before_send_before_each_attempt() -> None:
    """create(before_send=...) runs the hook before every attempt, nothing sent before it."""
    async with sim_and_client() as (sim, client):
        sim.inject("character_swap.create", "http_429")
        seen: list[int] = []

        async def before_send() -> None:
            seen.append(sim.stats.requests.get("character_swap.create", 0))

        task = await client.character_swap.create(
            CharacterSwap(IMG, video()), before_send=before_send
        )
        assert sim.task(task.id).status == TaskStatus.QUEUEING
    assert seen == [0, 1]  # the 429 proved no task: a second attempt, a second hook


async def test_character_swap_run_and_failure() -> None:
    """run returns the completed result; a failing task raises TaskFailedError with it."""
    async with sim_and_client() as (_sim, client):
        result = await client.character_swap.run(CharacterSwap(IMG, video("ok")))
        assert result.status is TaskStatus.COMPLETED
        with pytest.raises(TaskFailedError) as info:
            await client.character_swap.run(CharacterSwap(IMG, video("bad", fail=1)))
    failed = info.value.result
    assert isinstance(failed, CharacterSwapResult)
    assert failed.status is TaskStatus.FAILED
    assert failed.failure_reason
    assert info.value.task_id == failed.id
    assert failed.credits == 0


async def test_character_swap_wait_deadline() -> None:
    """wait past its deadline raises WaitTimeoutError carrying the id; polls stop there."""
    async with sim_and_client(durations={"character_swap": 1000.0}) as (sim, client):
        task = await client.character_swap.create(CharacterSwap(IMG, video()))
        start = sim.now()
        with pytest.raises(WaitTimeoutError) as info:
            await client.character_swap.wait(task.id, deadline=50)
        assert 50 <= sim.now() - start <= 51
    assert info.value.task_id == task.id
    assert info.value.deadline == 50
    assert isinstance(info.value, TimeoutError)


async def test_character_swap_run_deadline() -> None:
    """run's deadline covers create and wait."""
    async with sim_and_client(durations={"character_swap": 1000.0}) as (_sim, client):
        with pytest.raises(WaitTimeoutError):
            await client.character_swap.run(CharacterSwap(IMG, video()), deadline=30)


async def test_character_swap_unknown_id() -> None:
    """An unknown id is NotFoundError 1008 carrying the id."""
    async with sim_and_client() as (_sim, client):
        with pytest.raises(NotFoundError) as info:
            await client.character_swap.get("a" * 24)
    assert info.value.code == 1008
    assert info.value.task_id == "a" * 24
    assert info.value.method == "GET"


# --------------------------------------------------------------------------- head swap


async def test_head_swap_analysis_cycle() -> None:
    """analyze -> get_analysis -> wait_analysis yields the detected obj_ids."""
    async with sim_and_client() as (sim, client):
        url = video("two", people=2)
        analysis = await client.head_swap.analyze(url)
        assert isinstance(analysis, HeadSwapAnalysis)
        assert analysis.status is TaskStatus.QUEUEING
        assert analysis.video_url == url
        again = await client.head_swap.get_analysis(analysis.id)
        assert again.id == analysis.id
        done = await client.head_swap.wait_analysis(analysis.id)
        assert done.status is TaskStatus.COMPLETED
        assert done.obj_ids == (0, 1)
        assert done.output_url is None
        assert sim.stats.requests["head_swap.analyze"] == 1


async def test_head_swap_analysis_failure() -> None:
    """An analysis that finds nobody fails with TaskFailedError carrying the analysis."""
    async with sim_and_client() as (_sim, client):
        analysis = await client.head_swap.analyze(video("empty", people=0))
        with pytest.raises(TaskFailedError) as info:
            await client.head_swap.wait_analysis(analysis.id)
    assert isinstance(info.value.result, HeadSwapAnalysis)
    assert info.value.task_id == analysis.id


async def test_head_swap_create_get_wait() -> None:
    """create after a completed analysis, then get and wait, follow the v4 quirks."""
    async with sim_and_client() as (sim, client):
        url = video("h", people=2, duration=8)
        analysis = await client.head_swap.analyze(url)
        await client.head_swap.wait_analysis(analysis.id)
        req = HeadSwap(url, [FaceMapping(1, IMG)], webhook_url="http://127.0.0.1:1/h")
        task = await client.head_swap.create(req)
        assert isinstance(task, HeadSwapTask)
        assert task.output_url is None  # the wire's video_url is the (not yet) output
        assert sim.task(task.id).webhook_url == "http://127.0.0.1:1/h"
        result = await client.head_swap.get(task.id)
        assert isinstance(result, HeadSwapResult)
        assert result.source_video_url == url
        done = await client.head_swap.wait(task.id)
    assert done.status is TaskStatus.COMPLETED
    assert done.output_url
    assert done.source_video_url == url


async def test_head_swap_run_and_failures() -> None:
    """run goes analyze -> create -> done; a failing task raises TaskFailedError."""
    async with sim_and_client() as (sim, client):
        result = await client.head_swap.run(HeadSwap(video("r", people=1), {0: IMG}))
        assert result.status is TaskStatus.COMPLETED
        with pytest.raises(TaskFailedError) as info:
            await client.head_swap.run(HeadSwap(video("f", people=1, fail=1), {0: IMG}))
        assert isinstance(info.value.result, HeadSwapResult)
        assert info.value.result.failure_reason
        assert sim.stats.requests["head_swap.create"] == 2


async def test_head_swap_run_checks_mappings_before_create() -> None:
    """A mapping to an undetected obj_id raises FaceMappingError and creates nothing."""
    async with sim_and_client() as (sim, client):
        url = video("one", people=1)
        with pytest.raises(FaceMappingError) as info:
            await client.head_swap.run(HeadSwap(url, {0: IMG, 3: IMG}))
    assert info.value.missing == (3,)
    assert info.value.detected == (0,)
    assert info.value.video_url == url
    assert "head_swap.create" not in sim.stats.requests


async def test_head_swap_create_without_analysis_is_1003() -> None:
    """Creating for a video never analysed is rejected with InvalidParameterError."""
    async with sim_and_client() as (sim, client):
        with pytest.raises(InvalidParameterError) as info:
            await client.head_swap.create(HeadSwap(video("x"), {0: IMG}))
    assert info.value.code == 1003
    assert sim.stats.requests["head_swap.create"] == 1


async def test_head_swap_unknown_ids_are_1014() -> None:
    """Unknown task and analysis ids raise NotFoundError 1014."""
    async with sim_and_client() as (_sim, client):
        for call in (client.head_swap.get, client.head_swap.get_analysis):
            with pytest.raises(NotFoundError) as info:
                await call("b" * 24)
            assert info.value.code == 1014
            assert info.value.task_id == "b" * 24


async def test_head_swap_run_deadline() -> None:
    """run's deadline covers the analysis wait too."""
    async with sim_and_client(durations={"analysis": 1000.0}) as (sim, client):
        with pytest.raises(WaitTimeoutError):
            await client.head_swap.run(HeadSwap(video(people=1), {0: IMG}), deadline=20)
    assert "head_swap.create" not in sim.stats.requests


async def test_analyze_with_a_lost_answer_is_retried() -> None:
    """Analyses are free: a lost analyze answer is sent again and the analysis returned."""
    async with sim_and_client() as (sim, client):
        sim.inject("head_swap.analyze", "drop_after")
        url = video("lost")
        analysis = await client.head_swap.analyze(url)
    assert analysis.video_url == url
    assert sim.stats.requests["head_swap.analyze"] == 2


# --------------------------------------------------------------------------- local checks


async def test_invalid_calls_send_nothing() -> None:
    """Bad arguments raise ValidationError before any request is sent."""
    async with sim_and_client() as (sim, client):
        # Typed as Any on purpose: these calls break the signatures to test the checks.
        cs: Any = client.character_swap
        hs: Any = client.head_swap
        bad_calls: list[Any] = [
            lambda: cs.create("not a request"),
            lambda: cs.get(""),
            lambda: cs.get(None),
            lambda: cs.wait("x" * 24, deadline=-1),
            lambda: cs.wait("x" * 24, deadline=float("nan")),
            lambda: cs.run(CharacterSwap(IMG, video()), deadline=0),
            lambda: hs.analyze("ftp://vid.example/x.mp4"),
            lambda: hs.analyze(""),
            lambda: hs.create(CharacterSwap(IMG, video())),
            lambda: hs.get("  "),
            lambda: hs.get_analysis(""),
            lambda: hs.wait_analysis("id", deadline=True),
            lambda: hs.run("nope"),
        ]
        for call in bad_calls:
            with pytest.raises(ValidationError):
                await call()
        assert sim.stats.total_requests == 0


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    task_id=st.one_of(st.none(), st.just(""), st.text(" \t", max_size=3), st.integers()),
    deadline=st.one_of(
        st.floats(max_value=0), st.just(float("inf")), st.just(float("nan")), st.text()
    ),
)
async def test_random_invalid_arguments_send_nothing(
    simulator: AkoolSimulator, task_id: object, deadline: object
) -> None:
    """Random invalid ids and deadlines raise ValidationError with zero requests sent."""
    client = AkoolClient(simulator.api_key, base_url=simulator.base_url, retry=FAST_RETRY)
    async with client:
        with pytest.raises(ValidationError):
            await client.character_swap.get(task_id)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await client.head_swap.wait("a" * 24, deadline=deadline)  # type: ignore[arg-type]
    assert simulator.stats.total_requests == 0


def test_unreadable_create_answer_is_uncertain_and_keeps_the_id() -> None:
    """A create answer whose model cannot be built is uncertain, carrying the readable id."""
    odd = {"_id": "689174694b4dbdd4ab3d28c9", "status": "not-a-status", "create_time": "?"}
    where = {"request": object(), "method": "POST", "path": "/create"}
    with pytest.raises(SubmissionUncertainError) as full:
        structure_created(CharacterSwapTask, odd, **where)
    assert full.value.task_id == odd["_id"]
    assert full.value.request is where["request"]
