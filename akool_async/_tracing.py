"""What a job did in this run (create attempts, times), and optional OpenTelemetry spans.

:class:`JobActivity` is kept for every job of a batch: the request path counts the creates
sent while the job is current (a context variable), and the outcome stream stamps its times
on the :class:`~akool_async.Outcome`. With ``opentelemetry-api`` installed (the ``otel``
extra) and a tracer provider set by the application, the SDK also records, through
``opentelemetry.trace.get_tracer("akool_async")``:

- ``akool.<METHOD> <path>``: one CLIENT span per HTTP attempt of an API call, with
  ``http.request.method``, ``url.path`` (a template: ids travel in the query, which is never
  recorded), ``http.response.status_code``, ``akool.code``, ``akool.attempt`` and
  ``akool.task_id`` when known;
- ``akool.job``: one span per batch job, parent of its API calls, with ``akool.job.key``,
  ``akool.job.kind``, ``akool.job.state``, ``akool.job.credits``, ``akool.job.attempts``,
  ``akool.job.replayed`` and ``akool.task_id``.

Never recorded: headers, bodies, URLs with a query, error messages (only the error's type).
Without the package or without a provider, nothing is recorded and nothing is allocated.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import attrs

from ._errors import AkoolError, SubmissionUncertainError

trace: Any  # the opentelemetry.trace module, or None without the `otel` extra
try:
    from opentelemetry import trace
except ImportError:  # the `otel` extra is optional: tracing is then a no-op
    trace = None

if TYPE_CHECKING:
    from ._journal import JobRecord

__all__ = [
    "TRACER_NAME",
    "ApiCallSpan",
    "JobActivity",
    "api_call_span",
    "note_create_sent",
    "utc",
]

#: The instrumentation name the SDK asks the tracer provider for.
TRACER_NAME: Final = "akool_async"
#: Akool's business code of a successful answer (an answer that decoded is one).
_SUCCESS_CODE: Final = 1000

T = TypeVar("T")
OutcomeT = TypeVar("OutcomeT")

_current_job: ContextVar[JobActivity | None] = ContextVar("akool_async_current_job", default=None)


def _tracer() -> Any:
    """The SDK's tracer, or None when OpenTelemetry is absent or no provider is set."""
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return trace.get_tracer(TRACER_NAME)


def utc(seconds: float | None) -> datetime.datetime | None:
    """Wall seconds since the epoch as an aware UTC datetime (None stays None)."""
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def note_create_sent(wall: float) -> None:
    """A create is going out now (``wall``: the client clock): count it for the current job."""
    job = _current_job.get()
    if job is not None:
        job.attempts += 1
        job.submitted_at = wall


@attrs.define(eq=False)
class JobActivity:
    """One job in this run: its create attempts and times, and its span when tracing.

    ``submitted_at`` is when the latest create was sent (wall seconds); ``attempts`` counts
    creates sent, re-sends after throttling included. A job resumed or replayed from a
    journal starts from the journal's record (its first write and its attempts).
    """

    key: str
    submitted_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    replayed: bool = False
    span: Any = None

    def from_journal(self, record: JobRecord, *, replayed: bool) -> None:
        """Start from what an earlier run stored; ``replayed``: its outcome is final."""
        self.submitted_at = record.created_at
        self.attempts = record.attempts
        if replayed:
            self.replayed = True
            self.finished_at = record.updated_at

    @contextmanager
    def current(self, kind: str | None = None) -> Iterator[None]:
        """Within the block this job is current: creates count as its attempts and API spans
        are children of its span (started here, with ``kind``, if not yet)."""
        tracer = _tracer()
        if tracer is not None and self.span is None and kind is not None:
            self.span = tracer.start_span(
                "akool.job", attributes={"akool.job.key": self.key, "akool.job.kind": kind}
            )
        token = _current_job.set(self)
        try:
            if self.span is None or trace is None:
                yield
            else:
                with trace.use_span(self.span, record_exception=False,
                                    set_status_on_exception=False):
                    yield
        finally:
            _current_job.reset(token)

    def bind(self, call: Callable[[str], Awaitable[T]]) -> Callable[[str], Awaitable[T]]:
        """``call`` run with this job current (its polls become children of its span)."""

        async def with_job(task_id: str) -> T:
            with self.current():
                return await call(task_id)

        return with_job

    def stamp(self, outcome: OutcomeT, wall: float) -> OutcomeT:
        """``outcome`` with this run's times and attempts; ends the job's span."""
        finished = self.finished_at if self.replayed else wall
        stamped: Any = attrs.evolve(
            cast("Any", outcome),
            submitted_at=utc(self.submitted_at),
            finished_at=utc(finished),
            attempts=self.attempts,
            replayed=self.replayed,
        )
        if self.span is not None:
            _end_job_span(self.span, stamped)
            self.span = None
        return cast("OutcomeT", stamped)


def _end_job_span(span: Any, outcome: Any) -> None:
    error = outcome.error
    if error is None:
        state = "completed"
    elif isinstance(error, SubmissionUncertainError):
        state = "uncertain"
    else:
        state = "failed"
    attributes: dict[str, Any] = {
        "akool.job.state": state,
        "akool.job.attempts": outcome.attempts,
        "akool.job.replayed": outcome.replayed,
    }
    if outcome.task_id is not None:
        attributes["akool.task_id"] = outcome.task_id
    credits = getattr(outcome.result, "credits", None)
    if isinstance(credits, (int, float)) and not isinstance(credits, bool):
        attributes["akool.job.credits"] = credits
    if error is not None:
        attributes["error.type"] = type(error).__name__
    span.set_attributes(attributes)
    if error is not None and trace is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
    span.end()


class ApiCallSpan:
    """The span of one HTTP attempt (no-op without a tracer): fed what the answer said."""

    __slots__ = ("span",)

    def __init__(self, span: Any) -> None:
        self.span = span

    def response(self, http_status: int) -> None:
        """The HTTP status of the answer."""
        if self.span is not None:
            self.span.set_attribute("http.response.status_code", http_status)

    def answered(self, data: Mapping[str, Any]) -> None:
        """The decoded (successful) ``data``: its code, and the task id it names."""
        if self.span is None:
            return
        self.span.set_attribute("akool.code", _SUCCESS_CODE)
        task_id = data.get("_id")  # Akool names the created task (or analysis) `_id`
        if isinstance(task_id, str) and task_id:
            self.span.set_attribute("akool.task_id", task_id)

    def failed(self, err: AkoolError) -> None:
        """The error the attempt ended with (its type and codes, never its message)."""
        if self.span is None or trace is None:
            return
        if err.http_status is not None:
            self.span.set_attribute("http.response.status_code", err.http_status)
        if err.code is not None:
            self.span.set_attribute("akool.code", err.code)
        self.span.set_attribute("error.type", type(err).__name__)
        self.span.set_status(trace.Status(trace.StatusCode.ERROR, type(err).__name__))


@contextmanager
def api_call_span(
    method: str, path: str, *, attempt: int, task_id: str | None
) -> Iterator[ApiCallSpan]:
    """A span around one HTTP attempt of ``method path`` (``path`` without a query)."""
    tracer = _tracer()
    if tracer is None:
        yield ApiCallSpan(None)
        return
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "akool.attempt": attempt,
    }
    if task_id is not None:
        attributes["akool.task_id"] = task_id
    with tracer.start_as_current_span(
        f"akool.{method} {path}",
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,  # an exception's text is not ours to export
        set_status_on_exception=False,
    ) as span:
        call = ApiCallSpan(span)
        try:
            yield call
        except AkoolError as err:
            call.failed(err)
            raise
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
