"""The ``akool-async`` command line (also ``python -m akool_async``).

Subcommands::

    akool-async run JOBS.jsonl [--out results.jsonl] [--concurrency N] [--deadline S]
                               [--max-credits N] [--dry-run] [--time-scale X]
                               [--journal run.db] [--resubmit-uncertain]
                               [--download-dir DIR]
                               [--webhook-url URL --webhook-listen HOST:PORT]
    akool-async status ID [--kind character_swap|head_swap] [--json]
    akool-async credits
    akool-async simulate [--host H] [--port N] [--time-scale X] [--profile P] ...
    akool-async demo [--jobs N] [--time-scale X] [--failure-rate F] [--out PATH]

Exit codes: 0 every job completed (or the command succeeded); 1 some jobs failed, were left
uncertain or (with ``--download-dir``) were not saved, or an API call failed; 2 usage,
configuration or validation error (nothing was sent); 130 interrupted (SIGINT/SIGTERM: the
batch is cancelled cleanly, outcomes so far are written).

Input of ``run``: one JSON object per line with a ``kind`` (``character_swap`` or
``head_swap``), the request fields with their Python names (see ``request_from_dict``) and an
optional ``key`` (default: the line number). Blank lines and lines starting with ``#`` are
skipped. Every line is validated before anything is sent; every bad line is reported.

Output of ``run``: one JSON object per outcome, written and flushed as each job finishes:
``key, line, kind, ok, task_id, status, output_url, credits, failure_reason, error, path,
download_error`` (``error`` is ``{type, message, code, http_status}`` or null; ``path`` is the
saved file with ``--download-dir``, else null; ``download_error`` is ``{type, message}`` when
the job completed but its file could not be saved). Never a secret.

``rich`` (the ``cli`` extra) draws the live progress and the summary table; without it, or
when stderr is not a terminal, progress is printed as plain periodic lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import anyio
import attrs

from ._batch import Batch, BatchStats, Outcome
from ._client import ENV_API_KEY, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, AkoolClient
from ._config import DEFAULT_LIMITS, DEFAULT_POLL_POLICY
from ._converters import (
    CHARACTER_SWAP_KIND,
    HEAD_SWAP_KIND,
    estimate_credits,
    request_from_dict,
    request_kind,
    request_to_dict,
)
from ._errors import (
    AkoolError,
    ConfigurationError,
    NotFoundError,
    SubmissionUncertainError,
    TaskFailedError,
)
from ._models import CharacterSwap, HeadSwap, Job

if TYPE_CHECKING:
    from ._models import Request

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Estimate",
    "LineError",
    "ParsedJob",
    "estimate",
    "main",
    "parse_jobs",
]

#: Every job completed / the command succeeded.
EXIT_OK: Final = 0
#: Some jobs failed (or were left uncertain), or an API call failed.
EXIT_FAILED: Final = 1
#: Usage, configuration or validation error: nothing was sent.
EXIT_USAGE: Final = 2
#: Interrupted by SIGINT or SIGTERM (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED: Final = 130

#: Seconds between plain progress lines when stderr is not a terminal.
DEFAULT_PROGRESS_INTERVAL: Final = 5.0
#: Demo defaults: a few hundred jobs, 100 simulated seconds per real second, 3 % failures.
DEMO_JOBS: Final = 300
DEMO_TIME_SCALE: Final = 0.01
DEMO_FAILURE_RATE: Final = 0.03

_NO_CREDENTIALS_HELP = f"""\
akool-async: no Akool credentials found.

  To use your Akool account, set your API key (never pass it on the command line):
      export {ENV_API_KEY}=<your API key>
  (or the legacy pair {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}).

  To try everything offline instead:
      akool-async demo                      # embedded simulator, a few hundred jobs
      akool-async simulate --time-scale 0.01  # serve the simulator, then in another shell:
      export {ENV_BASE_URL}=http://127.0.0.1:8765 {ENV_API_KEY}=sim-akool-api-key-000001
      akool-async run jobs.jsonl --time-scale 0.01
"""

T = TypeVar("T")


class UsageError(Exception):
    """A problem with the command line or the environment; printed and exit code 2."""


# --------------------------------------------------------------------------- JSONL input


@attrs.frozen
class ParsedJob:
    """One valid input line: its 1-based ``line`` number, ``key`` and request."""

    line: int
    key: str
    request: CharacterSwap | HeadSwap


@attrs.frozen
class LineError:
    """One problem of one input line: ``field`` names what is wrong, ``rule`` says why."""

    line: int
    field: str
    rule: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.rule}"


def parse_jobs(data: bytes) -> tuple[list[ParsedJob], list[LineError]]:
    """Every valid job and EVERY problem of a JSONL file (not only the first).

    Blank lines and lines starting with ``#`` are skipped. ``key`` is optional (default:
    the line number) and must be unique; the rest of the object goes to
    ``request_from_dict``, whose every ``(field, rule)`` becomes one :class:`LineError`.
    """
    jobs: list[ParsedJob] = []
    errors: list[LineError] = []
    keys: dict[str, int] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            errors.append(LineError(number, "line", f"is not valid UTF-8 ({exc.reason})"))
            continue
        text = text.removeprefix("\ufeff") if number == 1 else text
        if not text or text.startswith("#"):
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.append(LineError(number, "json", f"{exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(obj, dict):
            errors.append(
                LineError(number, "line", f"must be a JSON object (got {type(obj).__name__})")
            )
            continue
        key: object = obj.pop("key", None)
        if key is None:
            key = str(number)
        elif not isinstance(key, str) or not key.strip():
            errors.append(LineError(number, "key", "must be a non-empty string"))
            key = None
        if isinstance(key, str):
            if key in keys:
                errors.append(
                    LineError(number, "key", f"{key!r} is already used by line {keys[key]}")
                )
            else:
                keys[key] = number
        try:
            request = request_from_dict(obj)
        except AkoolError as exc:
            errors.extend(LineError(number, f, r) for f, r in getattr(exc, "errors", ()))
            if not getattr(exc, "errors", ()):
                errors.append(LineError(number, "request", exc.message))
            continue
        except (TypeError, ValueError) as exc:  # defensive: a model check we did not expect
            errors.append(LineError(number, "request", str(exc)))
            continue
        if isinstance(key, str):
            jobs.append(ParsedJob(number, key, request))
    return jobs, errors


@attrs.frozen
class Estimate:
    """Credits estimated from the pricing table (akool-api.md §3.2), without any request.

    ``credits`` covers the ``estimated`` character swaps that state a ``duration``;
    ``no_duration`` character swaps (Akool detects the length) and ``head_swaps`` (no public
    price) are not estimated, so the real cost can be higher.
    """

    credits: int
    estimated: int
    no_duration: int
    head_swaps: int

    @property
    def complete(self) -> bool:
        """True when every job was estimated."""
        return self.no_duration == 0 and self.head_swaps == 0

    def summary(self) -> str:
        """One short line: the estimate and, if partial, which jobs it covers."""
        if self.complete:
            return f"{self.credits:,}"
        left = [
            f"{n} {what}"
            for n, what in (
                (self.no_duration, "without a duration"),
                (self.head_swaps, "head swap(s)"),
            )
            if n
        ]
        return (
            f"{self.credits:,} for the {self.estimated} character swap(s) with a duration "
            f"(not estimated: {', '.join(left)})"
        )

    def describe(self) -> str:
        """One or two lines for humans."""
        text = f"estimated credits: {self.credits:,} for {self.estimated} character swap(s)"
        gaps = []
        if self.no_duration:
            gaps.append(
                f"{self.no_duration} character swap(s) without a duration "
                '(Akool detects it; add "duration" to estimate them)'
            )
        if self.head_swaps:
            gaps.append(f"{self.head_swaps} head swap(s) (no public price)")
        if gaps:
            text += "\n  not estimated: " + "; ".join(gaps) + " - the real cost can be higher"
        return text


def estimate(requests: Sequence[Request]) -> Estimate:
    """Sum :func:`estimate_credits` over ``requests``."""
    credits = estimated = no_duration = head_swaps = 0
    for req in requests:
        value = estimate_credits(req)
        if value is not None:
            credits += value
            estimated += 1
        elif isinstance(req, HeadSwap):
            head_swaps += 1
        else:
            no_duration += 1
    return Estimate(credits, estimated, no_duration, head_swaps)


# --------------------------------------------------------------------------- output


def outcome_record(outcome: Outcome, line: int | None) -> dict[str, Any]:
    """The JSON line written for one outcome (no secrets: errors are scrubbed by the client)."""
    job: object = outcome.job
    kind = request_kind(job) if isinstance(job, (CharacterSwap, HeadSwap)) else None
    result: Any = outcome.result
    err = outcome.error
    if result is None and isinstance(err, TaskFailedError):
        result = err.result
    status = getattr(result, "status", None)
    record: dict[str, Any] = {
        "key": outcome.key,
        "line": line,
        "kind": kind,
        "ok": outcome.ok,
        "task_id": outcome.task_id,
        "status": status.name.lower() if status is not None else None,
        "output_url": getattr(result, "output_url", None),
        "credits": getattr(result, "credits", None),
        "failure_reason": getattr(result, "failure_reason", None),
        "error": None,
        "path": str(outcome.path) if outcome.path is not None else None,
        "download_error": None,
    }
    if err is not None:
        record["error"] = {
            "type": type(err).__name__,
            "message": str(err),
            "code": err.code,
            "http_status": err.http_status,
        }
    if outcome.download_error is not None:
        record["download_error"] = {
            "type": type(outcome.download_error).__name__,
            "message": str(outcome.download_error),
        }
    return record


# --------------------------------------------------------------------------- progress


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401, PLC0415 - optional dependency, imported lazily
    except ImportError:
        return False
    return True


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@attrs.frozen
class Snapshot:
    """Progress numbers derived from a :class:`BatchStats` at one instant."""

    total: int
    stats: BatchStats
    elapsed: float

    @property
    def waiting(self) -> int:
        """Jobs not yet submitting or running (queued in the batch or not yet read)."""
        s = self.stats
        return max(0, self.total - s.done - s.running - s.submitting)

    @property
    def rate(self) -> float:
        """Outcomes per second so far."""
        return self.stats.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds until every job has an outcome at the current rate (inf if unknown)."""
        remaining = self.total - self.stats.done
        if remaining <= 0:
            return 0.0
        return remaining / self.rate if self.rate > 0 else math.inf

    def line(self) -> str:
        """The plain progress line."""
        s = self.stats
        return (
            f"[{_duration(self.elapsed):>6}] {s.done}/{self.total} done: "
            f"{s.completed} completed, {s.failed} failed, {s.uncertain} uncertain | "
            f"{s.running} running, {s.submitting} submitting, {self.waiting} waiting | "
            f"{s.credits:,.0f} credits | {self.rate:.1f} jobs/s | ETA {_duration(self.eta)}"
        )


class Ui:
    """Where human-readable text goes (stderr by default), with or without rich."""

    def __init__(self, stream: IO[str], *, mode: str = "auto") -> None:
        self.stream = stream
        is_tty = bool(getattr(stream, "isatty", lambda: False)())
        if mode == "auto":
            mode = "rich" if is_tty and _rich_available() else "plain"
        elif mode == "rich" and not _rich_available():
            mode = "plain"
        self.mode = mode

    def print(self, text: str = "") -> None:
        """One line of text."""
        self.stream.write(text + "\n")
        self.stream.flush()

    def table(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        """A two-column table: rich if available, aligned plain text otherwise."""
        if _rich_available():
            from rich.console import Console  # noqa: PLC0415 - optional, lazy
            from rich.table import Table  # noqa: PLC0415

            table = Table(title=title, show_header=False, title_justify="left")
            table.add_column(style="bold")
            table.add_column()
            for name, value in rows:
                table.add_row(name, value)
            Console(file=self.stream, highlight=False, soft_wrap=True).print(table)
            self.stream.flush()
            return
        width = max(len(name) for name, _ in rows)
        self.print(title)
        for name, value in rows:
            self.print(f"  {name:<{width}}  {value}")


class Progress:
    """Live progress of one batch: a rich display, plain periodic lines, or nothing."""

    def __init__(self, ui: Ui, total: int, *, interval: float) -> None:
        self.ui = ui
        self.total = total
        self.interval = interval
        self.started = time.monotonic()
        self.batch: Batch | None = None

    def snapshot(self) -> Snapshot:
        """Now's numbers."""
        stats = self.batch.stats if self.batch is not None else BatchStats()
        return Snapshot(self.total, stats, time.monotonic() - self.started)

    async def run(self) -> None:
        """Draw until cancelled (run it in the batch's task group)."""
        if self.ui.mode == "rich":
            await self._run_rich()
        elif self.ui.mode == "plain":
            while True:
                await anyio.sleep(self.interval)
                self.ui.print(self.snapshot().line())
        else:
            await anyio.sleep_forever()

    async def _run_rich(self) -> None:
        from rich.console import Console  # noqa: PLC0415 - optional, lazy
        from rich.live import Live  # noqa: PLC0415

        console = Console(file=self.ui.stream)
        with Live(self._render(), console=console, auto_refresh=False, transient=False) as live:
            try:
                while True:
                    await anyio.sleep(0.2)
                    live.update(self._render(), refresh=True)
            finally:
                live.update(self._render(), refresh=True)

    def _render(self) -> Any:
        from rich.console import Group  # noqa: PLC0415 - optional, lazy
        from rich.progress_bar import ProgressBar  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        snap = self.snapshot()
        s = snap.stats
        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        grid.add_row(
            f"[green]completed {s.completed}[/]",
            f"[red]failed {s.failed}[/]",
            f"[yellow]uncertain {s.uncertain}[/]",
            f"credits {s.credits:,.0f}",
        )
        grid.add_row(
            f"[cyan]running {s.running}[/]",
            f"submitting {s.submitting}",
            f"waiting {snap.waiting}",
            f"{snap.rate:.1f} jobs/s  ETA {_duration(snap.eta)}",
        )
        header = Table.grid(padding=(0, 2))
        header.add_row(
            ProgressBar(total=max(1, self.total), completed=s.done, width=40),
            f"{s.done}/{self.total} done  [{_duration(snap.elapsed)}]",
        )
        return Group(header, grid)


# --------------------------------------------------------------------------- run


@attrs.frozen(kw_only=True)
class RunOptions:
    """Everything ``run`` needs besides the client."""

    jobs_path: Path
    out: str | None = None
    concurrency: int = 16
    deadline: float | None = None
    max_credits: float | None = None
    dry_run: bool = False
    time_scale: float = 1.0
    journal: str | None = None
    resubmit_uncertain: bool = False
    download_dir: str | None = None
    webhook_url: str | None = None
    webhook_listen: str | None = None
    progress: str = "auto"
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL


class Tally:
    """Outcomes of one run as they arrive; complete so far even when the run is cancelled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.completed = 0
        self.failed = 0
        self.uncertain = 0
        self.credits = 0.0
        self.downloaded = 0
        self.download_errors: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.started = time.monotonic()
        self.elapsed = 0.0
        self.interrupted = False

    @property
    def done(self) -> int:
        """Jobs with an outcome."""
        return self.completed + self.failed + self.uncertain

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        if outcome.path is not None:
            self.downloaded += 1
        if outcome.download_error is not None:
            self.download_errors[type(outcome.download_error).__name__] += 1
        if outcome.ok:
            self.completed += 1
            value = getattr(outcome.result, "credits", None)
            if isinstance(value, (int, float)):
                self.credits += value
            return
        name = type(outcome.error).__name__
        self.errors[name] += 1
        if isinstance(outcome.error, SubmissionUncertainError):
            self.uncertain += 1
        else:
            self.failed += 1

    @property
    def exit_code(self) -> int:
        """0 all completed (and saved), 1 some failed, uncertain or not saved, 130 interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        bad = self.failed or self.uncertain or sum(self.download_errors.values())
        return EXIT_FAILED if bad else EXIT_OK


def _check_options(opts: RunOptions) -> None:
    if opts.concurrency < 1:
        raise UsageError("--concurrency must be an integer >= 1")
    if opts.deadline is not None and not opts.deadline > 0:
        raise UsageError("--deadline must be a number of seconds > 0")
    if not (math.isfinite(opts.time_scale) and opts.time_scale > 0):
        raise UsageError("--time-scale must be a number > 0")
    if opts.max_credits is not None and not opts.max_credits >= 0:
        raise UsageError("--max-credits must be a number >= 0")
    if opts.resubmit_uncertain and opts.journal is None:
        raise UsageError(
            "--resubmit-uncertain needs --journal: only a journal knows which creates were "
            "sent without an answer"
        )
    if (opts.webhook_url is None) != (opts.webhook_listen is None):
        raise UsageError(
            "--webhook-url and --webhook-listen go together: Akool posts to the public URL, "
            "and this process listens on HOST:PORT behind it"
        )


def _has_credentials() -> bool:
    env = os.environ
    return bool(env.get(ENV_API_KEY) or (env.get(ENV_CLIENT_ID) and env.get(ENV_CLIENT_SECRET)))


def _client_from_env(time_scale: float) -> AkoolClient:
    """A client configured by the environment; UsageError with guidance if it cannot be."""
    if not _has_credentials():
        raise UsageError(_NO_CREDENTIALS_HELP.rstrip())
    poll = DEFAULT_POLL_POLICY if time_scale == 1.0 else DEFAULT_POLL_POLICY.scaled(time_scale)
    limits = DEFAULT_LIMITS if time_scale == 1.0 else DEFAULT_LIMITS.scaled(time_scale)
    try:
        return AkoolClient(poll=poll, limits=limits)
    except ConfigurationError as exc:
        raise UsageError(f"akool-async: {exc.message}") from None


def _load(opts: RunOptions, ui: Ui) -> list[ParsedJob]:
    """Read and validate the jobs file; UsageError listing every bad line."""
    try:
        data = opts.jobs_path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {opts.jobs_path}: {exc.strerror or exc}") from None
    jobs, errors = parse_jobs(data)
    for error in errors:
        ui.print(f"{opts.jobs_path}:{error}")
    if errors:
        bad = len({e.line for e in errors})
        raise UsageError(
            f"{opts.jobs_path}: {bad} invalid line(s), {len(errors)} problem(s); nothing was sent"
        )
    if not jobs:
        raise UsageError(f"{opts.jobs_path}: no jobs (only blank or # comment lines)")
    return jobs


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        return
    try:
        stream = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    with stream:
        yield stream


async def _serve_webhooks(listen: str, url: str) -> tuple[Any, Any]:
    """Serve a webhook receiver on HOST:PORT at ``url``'s path; (receiver, runner)."""
    from aiohttp import web  # noqa: PLC0415 - only with --webhook-listen

    from .webhooks import WebhookReceiver, make_aiohttp_app  # noqa: PLC0415

    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise UsageError(f"--webhook-listen must be HOST:PORT (got {listen!r})")
    client_id = os.environ.get(ENV_CLIENT_ID)
    secret = os.environ.get(ENV_CLIENT_SECRET) or os.environ.get(ENV_API_KEY)
    if not client_id or not secret:
        raise UsageError(
            f"webhooks need ${ENV_CLIENT_ID} (Akool signs webhooks with it) and "
            f"${ENV_CLIENT_SECRET} (defaults to ${ENV_API_KEY}) to verify and decrypt them"
        )
    try:
        receiver = WebhookReceiver(client_id=client_id, client_secret=secret)
    except ConfigurationError as exc:
        raise UsageError(f"akool-async: {exc.message}") from None
    except ImportError:
        raise UsageError(
            "webhooks need the `cryptography` package: pip install 'akool-async[webhooks]'"
        ) from None
    path = urlsplit(url).path or "/"
    runner = web.AppRunner(make_aiohttp_app(receiver, path=path), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port_text)).start()
    return receiver, runner


async def run_batch(
    opts: RunOptions,
    jobs: Sequence[ParsedJob],
    client: AkoolClient,
    ui: Ui,
    tally: Tally,
) -> None:
    """Run ``jobs`` through ``client.batch``, writing one JSON line per outcome to ``--out``.

    Cancelling it (SIGINT in :func:`main`) cancels the batch cleanly; ``tally`` then holds
    the outcomes received (and written) so far.
    """
    lines = {job.key: job.line for job in jobs}
    extra: dict[str, Any] = {}
    if opts.journal is not None:
        extra["journal"] = opts.journal
    if opts.resubmit_uncertain:
        extra["resubmit_uncertain"] = True
    if opts.download_dir is not None:
        extra["download_dir"] = opts.download_dir
    progress = Progress(ui, len(jobs), interval=opts.progress_interval)
    progress.started = tally.started
    runner: Any = None
    with _output(opts.out) as out:
        try:
            if opts.webhook_url is not None and opts.webhook_listen is not None:
                receiver, runner = await _serve_webhooks(opts.webhook_listen, opts.webhook_url)
                extra["webhook_url"] = opts.webhook_url
                extra["webhooks"] = receiver
            async with client:
                batch = client.batch(
                    (Job(job.request, key=job.key) for job in jobs),
                    concurrency=opts.concurrency,
                    deadline=opts.deadline,
                    **extra,
                )
                progress.batch = batch
                async with batch, anyio.create_task_group() as tg:
                    tg.start_soon(progress.run)
                    async for outcome in batch:
                        record = outcome_record(outcome, lines.get(outcome.key))
                        out.write(json.dumps(record) + "\n")
                        out.flush()
                        tally.add(outcome)
                    tg.cancel_scope.cancel()
        finally:
            tally.elapsed = time.monotonic() - tally.started
            if runner is not None:
                with anyio.CancelScope(shield=True):
                    await runner.cleanup()


def _summary(ui: Ui, result: Tally, opts: RunOptions, est: Estimate) -> None:
    done = result.done
    rows = [
        ("jobs", f"{result.total}"),
        ("completed", f"{result.completed}"),
        ("failed", f"{result.failed}"),
        (
            "uncertain",
            f"{result.uncertain}" + (" (check before resubmitting)" if result.uncertain else ""),
        ),
    ]
    if result.interrupted:
        rows.append(("no outcome yet", f"{result.total - done} (interrupted)"))
    if result.errors:
        rows.append(("errors", ", ".join(f"{n} {k}" for k, n in result.errors.most_common())))
    if opts.download_dir is not None:
        saved = f"{result.downloaded} file(s) in {opts.download_dir}"
        failures = sum(result.download_errors.values())
        if failures:
            saved += f"; {failures} not saved" + (
                " (re-run the same command to fetch only those)"
                if opts.journal
                else " (their output_url is in the results)"
            )
        rows.append(("downloaded", saved))
    rows.append(("credits charged", f"{result.credits:,.0f} (character swaps)"))
    rows.append(("credits estimated", est.summary()))
    rows.append(("elapsed", _duration(result.elapsed)))
    rate = done / result.elapsed if result.elapsed > 0 else 0.0
    rows.append(("rate", f"{rate:.1f} jobs/s"))
    rows.append(("results", opts.out if opts.out not in (None, "-") else "stdout"))
    title = "akool-async run: interrupted" if result.interrupted else "akool-async run: summary"
    ui.table(title, rows)


async def _run_command(opts: RunOptions, ui: Ui, make_client: Callable[[], AkoolClient]) -> int:
    _check_options(opts)
    jobs = _load(opts, ui)
    est = estimate([job.request for job in jobs])
    kinds = Counter(request_kind(job.request) for job in jobs)
    if opts.dry_run:
        ui.print(
            f"{opts.jobs_path}: {len(jobs)} valid job(s): "
            f"{kinds[CHARACTER_SWAP_KIND]} character swap(s), {kinds[HEAD_SWAP_KIND]} head swap(s)"
        )
        ui.print(est.describe())
        if opts.max_credits is not None and est.credits > opts.max_credits:
            raise UsageError(
                f"the estimate ({est.credits:,} credits) exceeds --max-credits "
                f"{opts.max_credits:,.0f}"
            )
        ui.print("dry run: nothing was sent")
        return EXIT_OK
    if opts.max_credits is not None:
        if est.credits > opts.max_credits:
            raise UsageError(
                f"refusing to start: the estimate ({est.credits:,} credits) exceeds "
                f"--max-credits {opts.max_credits:,.0f}; nothing was sent"
            )
        if not est.complete:
            ui.print(
                "warning: --max-credits checks only the estimated jobs; "
                + est.describe().split("not estimated: ", 1)[-1]
            )
    client = make_client()
    ui.print(
        f"running {len(jobs)} job(s) ({kinds[CHARACTER_SWAP_KIND]} character swap, "
        f"{kinds[HEAD_SWAP_KIND]} head swap) against {client.base_url}, "
        f"concurrency {opts.concurrency}"
    )
    result = Tally(len(jobs))
    result.interrupted = await _interruptible(lambda: run_batch(opts, jobs, client, ui, result))
    _summary(ui, result, opts, est)
    if result.interrupted:
        ui.print(
            "interrupted: tasks already created keep running on Akool's side"
            + (
                f"; re-run with --journal {opts.journal} to resume them"
                if opts.journal
                else "; their ids are in the output lines written so far"
            )
        )
    return result.exit_code


async def _interruptible(fn: Callable[[], Awaitable[object]]) -> bool:
    """Run ``fn``; on SIGINT/SIGTERM cancel it cleanly. True if it was interrupted."""
    interrupted = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal interrupted
            try:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        interrupted = True
                        tg.cancel_scope.cancel()
                        return
            except NotImplementedError:  # no signal handlers on this platform (Windows)
                await anyio.sleep_forever()

        tg.start_soon(watch)
        await fn()
        tg.cancel_scope.cancel()
    return interrupted


# --------------------------------------------------------------------------- status, credits


async def _status_command(task_id: str, kind: str | None, as_json: bool) -> int:
    client = _client_from_env(1.0)
    kinds = [kind] if kind else [CHARACTER_SWAP_KIND, HEAD_SWAP_KIND]
    async with client:
        result: Any = None
        last: NotFoundError | None = None
        found_kind = ""
        for candidate in kinds:
            resource: Any = (
                client.character_swap if candidate == CHARACTER_SWAP_KIND else client.head_swap
            )
            try:
                result = await resource.get(task_id)
            except NotFoundError as exc:
                last = exc
                continue
            found_kind = candidate
            break
        if result is None:
            assert last is not None
            raise last
    record = {
        "id": result.id,
        "kind": found_kind,
        "status": result.status.name.lower(),
        "output_url": result.output_url,
        "failure_reason": result.failure_reason,
        "credits": getattr(result, "credits", None),
        "progress": getattr(result, "progress", None),
    }
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
    else:
        for name, value in record.items():
            if value is not None:
                sys.stdout.write(f"{name:<15} {value}\n")
    sys.stdout.flush()
    return EXIT_OK


async def _credits_command() -> int:
    client = _client_from_env(1.0)
    async with client:
        balance = await client.get_credits()
    sys.stdout.write(f"{balance:,.0f} credits\n")
    sys.stdout.flush()
    return EXIT_OK


# --------------------------------------------------------------------------- simulate, demo


async def _simulate_command(args: argparse.Namespace) -> int:
    from .testing import AkoolSimulator  # noqa: PLC0415 - keep the server code off `run`

    try:
        sim = AkoolSimulator(
            host=args.host,
            port=args.port,
            time_scale=args.time_scale,
            faults=args.profile,
            failure_rate=args.failure_rate,
            seed=args.seed,
            credit=args.credit,
            rate_limit=args.rate_limit,
        )
    except ValueError as exc:
        raise UsageError(f"akool-async simulate: {exc}") from None
    async with sim:
        scale = "" if args.time_scale == 1 else f" (time scale {args.time_scale:g})"
        print(f"Akool simulator serving at {sim.base_url}{scale}, faults: {args.profile}")
        print("Point the SDK or the CLI at it:")
        print(f"  export {ENV_BASE_URL}={sim.base_url}")
        print(f"  export {ENV_API_KEY}={sim.api_key}")
        hint = "" if args.time_scale == 1 else f" --time-scale {args.time_scale:g}"
        print(f"  akool-async run jobs.jsonl{hint}")
        print("Press Ctrl-C to stop.", flush=True)
        await _interruptible(anyio.sleep_forever)
    print("simulator stopped", flush=True)
    return EXIT_OK


def demo_jobs(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` mixed, realistic job dicts (about 70 % character swap, 30 % head swap).

    Character swaps vary resolution, mode and length (some leave ``duration`` to Akool);
    head swaps reuse twenty source videos (one analysis each) with one to three faces. The
    URLs carry the simulator's test hooks (``duration=``, ``people=``).
    """
    rng = random.Random(seed)
    jobs: list[dict[str, Any]] = []
    for i in range(count):
        if rng.random() < 0.7:
            seconds = rng.randint(3, 20)
            req: Request = CharacterSwap(
                f"https://cdn.example.com/demo/characters/{i:04d}.png",
                f"https://cdn.example.com/demo/motion/{rng.randrange(40):02d}.mp4"
                f"?duration={seconds}",
                duration=seconds if rng.random() < 0.8 else None,
                resolution=rng.choices(["480p", "720p", "1080p"], weights=[2, 5, 2])[0],
                mode=rng.choice(["animate", "animate", "replace"]),
            )
        else:
            scene = rng.randrange(20)
            people = 1 + scene % 3
            chosen = rng.sample(range(people), rng.randint(1, people))
            req = HeadSwap(
                f"https://cdn.example.com/demo/scenes/{scene:02d}.mp4"
                f"?people={people}&duration={6 + scene % 10}",
                {obj: f"https://cdn.example.com/demo/faces/{i:04d}-{obj}.png" for obj in chosen},
                resolution=rng.choice(["480p", "720p"]),
            )
        jobs.append({"key": f"demo-{i:04d}", **_compact(request_to_dict(req))})
    return jobs


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


async def _demo_command(args: argparse.Namespace, ui: Ui) -> int:
    from .testing import AkoolSimulator  # noqa: PLC0415

    if args.jobs < 1:
        raise UsageError("--jobs must be >= 1")
    if not args.time_scale > 0:
        raise UsageError("--time-scale must be > 0")
    with tempfile.TemporaryDirectory(prefix="akool-demo-") as tmp:
        jobs_path = Path(tmp) / "jobs.jsonl"
        with jobs_path.open("w", encoding="utf-8") as f:
            f.write("# akool-async demo jobs: one JSON object per line\n")
            for job in demo_jobs(args.jobs, seed=args.seed):
                f.write(json.dumps(job) + "\n")
        out = args.out or str(Path(tmp) / "results.jsonl")
        sim = AkoolSimulator(
            time_scale=args.time_scale, failure_rate=args.failure_rate, seed=args.seed
        )
        async with sim:
            ui.print(
                f"akool-async demo: {args.jobs} character and head swap jobs against the "
                f"embedded Akool simulator at {sim.base_url}"
            )
            ui.print(
                f"  swaps take minutes of simulated time, compressed {1 / args.time_scale:g}x; "
                f"about {args.failure_rate:.0%} of tasks fail on purpose"
            )
            opts = RunOptions(
                jobs_path=jobs_path,
                out=out,
                concurrency=args.concurrency,
                time_scale=args.time_scale,
                progress=ui.mode,
                progress_interval=args.progress_interval,
            )

            def make_client() -> AkoolClient:
                return AkoolClient(
                    sim.api_key,
                    base_url=sim.base_url,
                    poll=DEFAULT_POLL_POLICY.scaled(args.time_scale),
                    limits=DEFAULT_LIMITS.scaled(args.time_scale),
                )

            code = await _run_command(opts, ui, make_client)
        if not args.out:
            ui.print("(the results file was temporary; pass --out PATH to keep it)")
    if code in (EXIT_OK, EXIT_FAILED):
        ui.print(
            "demo finished: the failed jobs are the simulator's deliberate failures. Next: "
            "`akool-async simulate` to serve the simulator, or set AKOOL_API_KEY and "
            "`akool-async run jobs.jsonl`"
        )
        return EXIT_OK
    return code


# --------------------------------------------------------------------------- argparse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text})")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0 (got {text})")
    return value


def _progress_flags(
    p: argparse.ArgumentParser, *, interval: float = DEFAULT_PROGRESS_INTERVAL
) -> None:
    p.add_argument(
        "--progress",
        choices=["auto", "rich", "plain", "off"],
        default="auto",
        help="progress display (default auto: rich on a terminal, plain lines otherwise)",
    )
    p.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=interval,
        metavar="S",
        help=f"seconds between plain progress lines (default {interval:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``akool-async``."""
    from . import __version__  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="akool-async",
        description="Bulk Akool Character Swap and Head Swap jobs from the command line. "
        f"Credentials come from ${ENV_API_KEY} (or ${ENV_CLIENT_ID} + ${ENV_CLIENT_SECRET}); "
        f"${ENV_BASE_URL} points at another server such as the simulator.",
        epilog="Try it offline: akool-async demo",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run the jobs of a JSONL file",
        description="Run one job per JSONL line; write one JSON line per outcome as it "
        "completes. Exit 0 all completed, 1 some failed, 2 invalid input, 130 interrupted.",
    )
    run.add_argument("jobs", type=Path, metavar="JOBS.jsonl", help="one JSON job per line")
    run.add_argument("--out", metavar="PATH", help="results JSONL (default: stdout)")
    run.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        metavar="N",
        help="creates in flight (default 16)",
    )
    run.add_argument(
        "--deadline",
        type=_positive_float,
        metavar="S",
        help="give up on a job still running after S seconds (default: none)",
    )
    run.add_argument(
        "--max-credits",
        type=_non_negative_float,
        metavar="N",
        help="refuse to start when the credit estimate exceeds N",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="validate every line and estimate credits; send nothing",
    )
    run.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        metavar="X",
        help="scale poll intervals by X, matching a simulator started with "
        "--time-scale X (default 1)",
    )
    run.add_argument(
        "--journal", metavar="PATH", help="SQLite journal: never lose an id; re-running resumes"
    )
    run.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="with --journal: resubmit jobs whose create answer was lost (may pay twice)",
    )
    run.add_argument(
        "--download-dir",
        metavar="DIR",
        help="save every completed output as DIR/<key>.mp4 (a safe file name); "
        "with --journal a re-run fetches only the files still missing",
    )
    run.add_argument(
        "--webhook-url",
        metavar="URL",
        help="public URL Akool posts results to (with --webhook-listen)",
    )
    run.add_argument(
        "--webhook-listen",
        metavar="HOST:PORT",
        help="where this process receives the webhooks of --webhook-url",
    )
    _progress_flags(run)

    status = sub.add_parser("status", help="show one task's status")
    status.add_argument("id", metavar="ID", help="task id returned by a create")
    status.add_argument(
        "--kind",
        choices=[CHARACTER_SWAP_KIND, HEAD_SWAP_KIND],
        help="task kind (default: try character_swap, then head_swap)",
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")

    sub.add_parser("credits", help="show the account's credit balance")

    simulate = sub.add_parser(
        "simulate",
        help="serve the offline Akool simulator",
        description="Serve akool_async.testing.AkoolSimulator on 127.0.0.1 until Ctrl-C; "
        "prints the AKOOL_BASE_URL and AKOOL_API_KEY to use.",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    simulate.add_argument("--port", type=int, default=8765, help="default 8765 (0: any free port)")
    simulate.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        metavar="X",
        help="real seconds per simulated second (0.01: 100x faster)",
    )
    simulate.add_argument(
        "--profile",
        choices=["none", "flaky", "chaos"],
        default="none",
        help="fault profile (default none)",
    )
    simulate.add_argument(
        "--failure-rate",
        type=_non_negative_float,
        default=0.0,
        metavar="F",
        help="probability a swap task fails (default 0)",
    )
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    simulate.add_argument("--credit", type=int, default=10_000_000, help="initial balance")
    simulate.add_argument(
        "--rate-limit",
        type=_positive_float,
        metavar="R",
        help="requests per simulated second before code 1005 (default: none)",
    )

    demo = sub.add_parser(
        "demo",
        help="run a few hundred jobs against the embedded simulator (offline, < 1 minute)",
    )
    demo.add_argument(
        "--jobs",
        type=_positive_int,
        default=DEMO_JOBS,
        metavar="N",
        help=f"number of jobs (default {DEMO_JOBS})",
    )
    demo.add_argument(
        "--time-scale",
        type=_positive_float,
        default=DEMO_TIME_SCALE,
        metavar="X",
        help=f"real seconds per simulated second (default {DEMO_TIME_SCALE:g})",
    )
    demo.add_argument(
        "--failure-rate",
        type=_non_negative_float,
        default=DEMO_FAILURE_RATE,
        metavar="F",
        help=f"deliberate task failures (default {DEMO_FAILURE_RATE:g})",
    )
    demo.add_argument("--concurrency", type=_positive_int, default=16, metavar="N")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", metavar="PATH", help="keep the results JSONL here")
    _progress_flags(demo, interval=1.0)
    return parser


def _run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        jobs_path=args.jobs,
        out=args.out,
        concurrency=args.concurrency,
        deadline=args.deadline,
        max_credits=args.max_credits,
        dry_run=args.dry_run,
        time_scale=args.time_scale,
        journal=args.journal,
        resubmit_uncertain=args.resubmit_uncertain,
        download_dir=args.download_dir,
        webhook_url=args.webhook_url,
        webhook_listen=args.webhook_listen,
        progress=args.progress,
        progress_interval=args.progress_interval,
    )


async def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "run":
        opts = _run_options(args)
        ui = Ui(sys.stderr, mode=opts.progress)
        return await _run_command(opts, ui, lambda: _client_from_env(opts.time_scale))
    if command == "status":
        return await _status_command(args.id, args.kind, args.json)
    if command == "credits":
        return await _credits_command()
    if command == "simulate":
        return await _simulate_command(args)
    assert command == "demo"
    return await _demo_command(args, Ui(sys.stdout, mode=args.progress))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``akool-async`` and ``python -m akool_async``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error (argparse exits 2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return anyio.run(_dispatch, args, backend="asyncio")
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_USAGE
    except ConfigurationError as exc:
        sys.stderr.write(f"akool-async: {exc.message}\n")
        return EXIT_USAGE
    except AkoolError as exc:
        sys.stderr.write(f"akool-async: {type(exc).__name__}: {exc}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:  # a SIGINT outside the batch's own handler
        sys.stderr.write("akool-async: interrupted\n")
        return EXIT_INTERRUPTED
