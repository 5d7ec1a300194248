"""OpenTelemetry spans: one per API call attempt and one per batch job, recorded with the SDK's
in-memory exporter against the simulator, and never carrying a secret."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import akool_async as akool
from akool_async._resources.character_swap import CREATE_PATH, RESULT_PATH
from akool_async.testing import AkoolSimulator, Duration

pytestmark = pytest.mark.anyio

SCALE = 0.001
FAST_RETRY = akool.RetryPolicy(attempts=6, timeout=30.0, initial=0.001, max_delay=0.01)
DURATIONS = {"character_swap": Duration(queue=2.0, process=20.0)}
JOB_ATTRIBUTES = {"akool.job.key", "akool.job.kind", "akool.job.state", "akool.job.attempts",
                  "akool.job.replayed", "akool.task_id"}


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """An SDK tracer provider recording into memory, as the application's global provider.

    The global provider can be set only once per process, so the test puts its own in place
    of ``trace.get_tracer_provider`` (which ``trace.get_tracer`` consults) and restores it.
    """
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    yield spans
    provider.shutdown()


def job(i: int, *, fail: bool = False) -> akool.Job:
    """A keyed character swap (``fail``: the simulator fails its task)."""
    video = f"https://example.com/video/{i}.mp4?duration=5" + ("&fail=1" if fail else "")
    return akool.Job(akool.CharacterSwap(f"https://example.com/img/{i}.png", video), key=f"k{i}")


def strings_of(span: ReadableSpan) -> list[str]:
    """Every text a span exports: name, attribute keys and values, events and links."""
    texts = [span.name]
    for key, value in (span.attributes or {}).items():
        texts += [key, str(value)]
    for event in span.events:
        texts.append(event.name)
        for key, value in (event.attributes or {}).items():
            texts += [key, str(value)]
    if span.status.description:
        texts.append(span.status.description)
    return texts


async def test_a_batch_records_a_span_per_job_and_per_api_call_without_secrets(
    exporter: InMemorySpanExporter,
) -> None:
    """Job spans parent their create and poll spans; attributes as documented; no API key."""
    async with AkoolSimulator(time_scale=SCALE, durations=DURATIONS) as sim:
        sim.inject("character_swap.create", "code_1005")  # the first create is refused once
        client = akool.AkoolClient(
            sim.api_key, base_url=sim.base_url, retry=FAST_RETRY,
            poll=akool.PollPolicy().scaled(SCALE), limits=akool.Limits().scaled(SCALE),
        )
        async with client, client.batch([job(0), job(1), job(2, fail=True)],
                                        concurrency=1) as outcomes:
            got = {o.key: o async for o in outcomes}
        api_key = sim.api_key
    spans = exporter.get_finished_spans()
    jobs = {s.attributes["akool.job.key"]: s for s in spans if s.name == "akool.job"}
    assert set(jobs) == {"k0", "k1", "k2"}
    for key, span in jobs.items():
        attrs = span.attributes
        assert set(attrs) >= JOB_ATTRIBUTES
        assert attrs["akool.job.kind"] == "character_swap"
        assert attrs["akool.task_id"] == got[key].task_id
        assert attrs["akool.job.attempts"] == got[key].attempts
        assert attrs["akool.job.replayed"] is False
    assert jobs["k0"].attributes["akool.job.state"] == "completed"
    assert jobs["k0"].attributes["akool.job.credits"] == got["k0"].result.credits  # type: ignore[union-attr]
    assert jobs["k0"].attributes["akool.job.attempts"] == 2
    assert jobs["k2"].attributes["akool.job.state"] == "failed"
    assert jobs["k2"].attributes["error.type"] == "TaskFailedError"
    assert jobs["k2"].status.status_code is StatusCode.ERROR

    calls = [s for s in spans if s.name != "akool.job"]
    by_job = {key: [s for s in calls if s.parent is not None
                    and s.parent.span_id == span.context.span_id]
              for key, span in jobs.items()}
    creates = [s for s in by_job["k0"] if s.name == f"akool.POST {CREATE_PATH}"]
    assert [s.attributes["akool.attempt"] for s in creates] == [1, 2]
    refused, created = creates
    assert refused.attributes["akool.code"] == 1005
    assert refused.attributes["error.type"] == "RateLimitError"
    assert refused.status.status_code is StatusCode.ERROR
    assert created.attributes["akool.code"] == 1000
    assert created.attributes["http.response.status_code"] == 200
    assert created.attributes["akool.task_id"] == got["k0"].task_id
    for key in jobs:
        polls = [s for s in by_job[key] if s.name == f"akool.GET {RESULT_PATH}"]
        assert polls, key
        for poll in polls:
            assert poll.kind is SpanKind.CLIENT
            assert poll.attributes["http.request.method"] == "GET"
            assert poll.attributes["url.path"] == RESULT_PATH  # the template, no query string
            assert poll.attributes["akool.task_id"] == got[key].task_id
            assert poll.attributes["akool.attempt"] == 1
    # Every API call of the batch belongs to one of its jobs.
    assert sum(len(children) for children in by_job.values()) == len(calls)
    for span in spans:
        texts = strings_of(span)
        assert not any(api_key in text for text in texts), span.name
        assert not any("?" in text for text in texts if text.startswith("/")), span.name


async def test_calls_outside_a_batch_are_root_spans_and_failures_keep_only_the_error_type(
    exporter: InMemorySpanExporter, simulator: AkoolSimulator
) -> None:
    """A lone get_credits is one span; an unknown task id records its code and type only."""
    async with akool.AkoolClient(simulator.api_key, base_url=simulator.base_url,
                                 retry=akool.RetryPolicy(attempts=1)) as client:
        await client.get_credits()
        with pytest.raises(akool.AkoolError) as caught:
            await client.character_swap.get("0" * 24)
    credit, missing = exporter.get_finished_spans()
    assert credit.parent is None
    assert credit.attributes["akool.code"] == 1000
    assert "akool.task_id" not in credit.attributes
    assert missing.attributes["akool.task_id"] == "0" * 24
    assert missing.attributes["error.type"] == type(caught.value).__name__
    assert missing.status.status_code is StatusCode.ERROR
    assert missing.events == ()  # no exception event: its message is not exported
    assert str(caught.value) not in strings_of(missing)


async def test_without_a_tracer_provider_nothing_is_recorded() -> None:
    """Until the application sets a provider, the SDK records nowhere (not even in one made)."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    unused = InMemorySpanExporter()
    TracerProvider().add_span_processor(SimpleSpanProcessor(unused))  # made, never installed
    async with AkoolSimulator(time_scale=SCALE, durations=DURATIONS) as sim:
        client = akool.AkoolClient(
            sim.api_key, base_url=sim.base_url, poll=akool.PollPolicy().scaled(SCALE)
        )
        async with client, client.batch([job(0)]) as outcomes:
            [outcome] = [o async for o in outcomes]
    assert outcome.attempts == 1
    assert outcome.submitted_at is not None
    assert unused.get_finished_spans() == ()


def test_the_sdk_works_without_opentelemetry_installed() -> None:
    """Tracing is optional: with the package unimportable, the SDK imports and traces nothing."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import akool_async, akool_async._tracing as t\n"
        "assert t.trace is None\n"
        "with t.api_call_span('GET', '/x', attempt=1, task_id='t') as span:\n"
        "    span.response(200)\n"
        "a = t.JobActivity('k')\n"
        "with a.current('character_swap'):\n"
        "    t.note_create_sent(5.0)\n"
        "assert (a.attempts, a.submitted_at, a.span) == (1, 5.0, None)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
