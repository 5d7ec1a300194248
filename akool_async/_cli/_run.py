"""``akool-async run``: validate, preflight, run the batch, write results, summarise.

Money rules at the boundaries (issue #15): everything that would fail after paying is
checked before the first create (exit 2, nothing sent); a results file that fails mid-run
stops intake and sends every paid id to ``<results>.recovery.jsonl`` and stderr; Ctrl-C
stops intake, lets creates in flight return, then writes every created-but-unfinished
job to the results before exiting 130.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs

from akool_async import AkoolClient, AkoolError, Batch, BatchStats, Job
from akool_async._converters import CHARACTER_SWAP_KIND, HEAD_SWAP_KIND, request_kind

from ._common import EXIT_FAILED, EXIT_OK, CommandError, Ui, UsageError
from ._jobs import Estimate, ParsedJob, estimate, parse_jobs
from ._preflight import (
    check_download_dir,
    check_journal_path,
    check_output,
    enter_batch,
    journal_states,
    open_output,
    serve_webhooks,
    split_listen,
    webhook_receiver,
)
from ._progress import Progress
from ._results import (
    RECOVERY_SUFFIX,
    ResultsWriter,
    Tally,
    job_state,
    outcome_record,
    read_balance,
)
from ._summary import print_summary

if TYPE_CHECKING:
    from akool_async.webhooks import WebhookReceiver

__all__ = [
    "DEFAULT_PROGRESS_INTERVAL",
    "STOP_GRACE",
    "RunOptions",
    "interruptible",
    "run_command",
]

#: Seconds between plain progress lines when stderr is not a terminal.
DEFAULT_PROGRESS_INTERVAL: Final = 5.0
#: Seconds an interrupted run waits for creates already in flight to answer (their ids
#: are paid for) before it cancels them; a second Ctrl-C cancels at once.
STOP_GRACE: Final = 30.0
#: Journal states whose job is not created again by a rerun (so not charged again).
ALREADY_SENT: Final = frozenset({"sending", "created", "completed", "failed", "uncertain"})


@attrs.frozen(kw_only=True)
class RunOptions:
    """Everything ``run`` needs besides the client; ``title`` heads the summary."""

    jobs_path: Path
    out: str | None = None
    concurrency: int = 16
    deadline: float | None = None
    max_credits: float | None = None
    allow_unpriced: bool = False
    balance_check: bool = True
    dry_run: bool = False
    time_scale: float = 1.0
    journal: str | None = None
    resubmit_uncertain: bool = False
    retry_failed: bool = False
    download_dir: str | None = None
    webhook_url: str | None = None
    webhook_listen: str | None = None
    progress: str = "auto"
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    title: str = "akool-async run"


def check_options(opts: RunOptions) -> None:
    """Refuse numbers and flag combinations that cannot work (UsageError, exit 2)."""
    numbers = [
        (opts.concurrency >= 1, "--concurrency must be an integer >= 1"),
        (opts.deadline is None or opts.deadline > 0, "--deadline must be a number of seconds > 0"),
        (
            math.isfinite(opts.time_scale) and opts.time_scale > 0,
            "--time-scale must be a number > 0",
        ),
        (opts.max_credits is None or opts.max_credits >= 0, "--max-credits must be a number >= 0"),
    ]
    for ok, message in numbers:
        if not ok:
            raise UsageError(message)
    if opts.resubmit_uncertain and opts.journal is None:
        raise UsageError(
            "--resubmit-uncertain needs --journal: only a journal knows which creates were "
            "sent without an answer"
        )
    if opts.retry_failed and opts.journal is None:
        raise UsageError(
            "--retry-failed needs --journal: only a journal knows which tasks failed in an "
            "earlier run"
        )
    if (opts.webhook_url is None) != (opts.webhook_listen is None):
        raise UsageError(
            "--webhook-url and --webhook-listen go together: Akool posts to the public URL, "
            "and this process listens on HOST:PORT behind it"
        )
    if opts.webhook_listen is not None:
        split_listen(opts.webhook_listen)


def load_jobs(opts: RunOptions, ui: Ui) -> list[ParsedJob]:
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


def check_budget(opts: RunOptions, est: Estimate, ui: Ui | None = None) -> None:
    """``--max-credits``: refuse an estimate above it, or jobs without an estimate unless
    ``--allow-unpriced`` (UsageError, exit 2, nothing sent). With ``ui`` (a dry run) the
    unpriced jobs are only a note saying that ``run`` would refuse them."""
    if opts.max_credits is None:
        return
    if est.credits > opts.max_credits:
        raise UsageError(
            f"refusing to start: the estimate ({est.credits:,} credits) exceeds "
            f"--max-credits {opts.max_credits:,.0f}; nothing was sent"
        )
    unpriced = est.no_duration + est.head_swaps
    if not unpriced or opts.allow_unpriced:
        return
    problem = (
        f"--max-credits {opts.max_credits:,.0f} cannot be checked for {unpriced} job(s) "
        f"without an estimate ({_unpriced(est)}); add --allow-unpriced to run them anyway"
    )
    if ui is not None:
        ui.print(f"note: a run would be refused: {problem}")
        return
    raise UsageError(f"refusing to start: {problem}; nothing was sent")


def _unpriced(est: Estimate) -> str:
    parts = []
    if est.head_swaps:
        parts.append(f"{est.head_swaps} head swap(s): no public price")
    if est.no_duration:
        parts.append(f"{est.no_duration} character swap(s) without a duration")
    return ", ".join(parts)


def _dry_run(opts: RunOptions, jobs: Sequence[ParsedJob], est: Estimate, ui: Ui) -> int:
    kinds = Counter(request_kind(job.request) for job in jobs)
    ui.print(
        f"{opts.jobs_path}: {len(jobs)} valid job(s): "
        f"{kinds[CHARACTER_SWAP_KIND]} character swap(s), {kinds[HEAD_SWAP_KIND]} head swap(s)"
    )
    ui.print(est.describe())
    check_budget(opts, est, ui)
    ui.print("dry run: nothing was sent")
    return EXIT_OK


async def run_command(opts: RunOptions, ui: Ui, make_client: Callable[[], AkoolClient]) -> int:
    """Validate and preflight everything, then run; the exit code.

    Every check that can fail before the first create raises UsageError (exit 2).
    """
    check_options(opts)
    jobs = load_jobs(opts, ui)
    est = estimate([job.request for job in jobs])
    if opts.dry_run:
        return _dry_run(opts, jobs, est, ui)
    check_budget(opts, est)
    client = make_client()
    check_output(opts.out)
    check_download_dir(opts.download_dir)
    check_journal_path(opts.journal)
    stored = await journal_states(opts.journal)
    receiver = None if opts.webhook_url is None else webhook_receiver()
    run = Run(opts, jobs, client, ui, receiver=receiver, stored=stored)
    recovery_before = _size(_journal_recovery(opts.journal))
    run.tally.interrupted = await interruptible(run.run, stop=run.stop_and_settle)
    print_summary(
        ui,
        run.tally,
        est,
        title=opts.title,
        out=opts.out,
        download_dir=opts.download_dir,
        journal=opts.journal,
    )
    return run.finish(recovery_grew=_size(_journal_recovery(opts.journal)) > recovery_before)


def _journal_recovery(journal: str | None) -> str | None:
    """The library's append-only file of ids its journal could not take."""
    return None if journal is None or "://" in journal else journal + RECOVERY_SUFFIX


def _size(path: str | None) -> int:
    try:
        return 0 if path is None else os.stat(path).st_size
    except OSError:
        return 0


def _batch_options(opts: RunOptions, receiver: WebhookReceiver | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"concurrency": opts.concurrency, "deadline": opts.deadline}
    if opts.journal is not None:
        extra["journal"] = opts.journal
    if opts.resubmit_uncertain:
        extra["resubmit_uncertain"] = True
    if opts.retry_failed:
        extra["retry_failed"] = True
    if opts.download_dir is not None:
        extra["download_dir"] = opts.download_dir
    if receiver is not None:
        extra["webhook_url"] = opts.webhook_url
        extra["webhooks"] = receiver
    return extra


class Run:
    """One ``run``: the batch, its results writer, and how it stops (intake first)."""

    def __init__(
        self,
        opts: RunOptions,
        jobs: Sequence[ParsedJob],
        client: AkoolClient,
        ui: Ui,
        *,
        receiver: WebhookReceiver | None = None,
        stored: dict[str, str] | None = None,
    ) -> None:
        self.opts = opts
        self.jobs = jobs
        self.client = client
        self.ui = ui
        self.receiver = receiver
        self.stored = stored or {}
        self.tally = Tally(len(jobs))
        self.lines = {job.key: job.line for job in jobs}
        self.writer: ResultsWriter | None = None
        self.batch: Batch | None = None
        self.stopping = False
        self.settled = anyio.Event()  # stopping, and no create is in flight
        self.interrupted_ids = 0

    # -- the parts that must happen before the first create --------------------------------

    def to_send(self) -> Estimate:
        """The estimate of the jobs a journal has not seen sent (a rerun pays only those)."""
        skip = ALREADY_SENT - ({"failed"} if self.opts.retry_failed else set())
        return estimate([j.request for j in self.jobs if self.stored.get(j.key) not in skip])

    async def check_balance(self) -> None:
        """Refuse (exit 2) a run whose estimate exceeds the account's balance."""
        est = self.to_send()
        if not self.opts.balance_check or est.credits == 0:
            return
        try:
            balance = await self.client.get_credits()
        except AkoolError as exc:
            raise CommandError(
                f"cannot read the balance before the first create ({type(exc).__name__}: "
                f"{exc.message}); nothing was sent (--no-balance-check skips this check)"
            ) from None
        if est.credits > balance:
            raise UsageError(
                f"akool-async: refusing to start: the estimate ({est.credits:,} credits) "
                f"exceeds the balance ({balance:,.0f} credits); nothing was sent "
                "(--no-balance-check skips this check)"
            )

    # -- running -----------------------------------------------------------------------

    def requests(self) -> Iterator[Job]:
        """The jobs, pulled lazily by the batch; none once intake is stopped."""
        for job in self.jobs:
            if self.stopping:
                return
            yield Job(job.request, key=job.key)

    def stop_intake(self) -> None:
        """No new creates; :attr:`settled` is set once no create is in flight."""
        self.stopping = True
        self._on_stats(self.batch.stats if self.batch is not None else BatchStats())

    async def stop_and_settle(self) -> None:
        """Stop intake, then wait (at most :data:`STOP_GRACE` s) for creates in flight.

        Returns only at an instant when no create is in flight (or the grace is over), so
        the caller's cancel, which follows without a checkpoint, cuts no create short.
        """
        self.stop_intake()
        with anyio.move_on_after(STOP_GRACE):
            while True:
                await self.settled.wait()
                if self.batch is None or self.batch.stats.submitting == 0:
                    return
                self.settled = anyio.Event()  # a head swap started its create meanwhile

    def _on_stats(self, stats: BatchStats) -> None:
        if self.stopping and stats.submitting == 0:
            self.settled.set()

    async def run(self) -> None:
        """Run the batch; one result line per outcome (see :func:`run_batch`)."""
        opts = self.opts
        progress = Progress(
            self.ui, len(self.jobs), interval=opts.progress_interval, started=self.tally.started
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.receiver is not None:
                    assert opts.webhook_listen is not None
                    assert opts.webhook_url is not None
                    listening = serve_webhooks(self.receiver, opts.webhook_listen, opts.webhook_url)
                    await stack.enter_async_context(listening)
                await stack.enter_async_context(self.client)
                await self.check_balance()
                self.tally.balance_before = await read_balance(self.client)
                out = stack.enter_context(open_output(opts.out))
                self.writer = ResultsWriter(out, opts.out, self.ui)
                batch = self.client.batch(
                    self.requests(), progress=self._on_stats, **_batch_options(opts, self.receiver)
                )
                await enter_batch(stack, batch)
                self.batch = progress.batch = batch
                _announce(self.ui, self.jobs, self.client, opts)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(progress.run)
                    await self._consume(batch)
                    tg.cancel_scope.cancel()
                self.tally.balance_after = await read_balance(self.client)
        finally:
            self.tally.elapsed = time.monotonic() - self.tally.started
            self.tally.webhooks = None if self.receiver is None else self.receiver.stats

    async def _consume(self, batch: Batch) -> None:
        assert self.writer is not None
        try:
            async for outcome in batch:
                record = outcome_record(outcome, self.lines.get(outcome.key))
                record["state"] = job_state(outcome)
                self.writer.write(record)
                self.tally.add(outcome)
                if self.writer.failure is not None and not self.stopping:
                    self.stop_intake()
        except anyio.get_cancelled_exc_class():
            if self.opts.journal is None:  # with one, the journal holds every created id
                self._write_unfinished(batch)
            raise

    def _write_unfinished(self, batch: Batch) -> None:
        """Interrupted: one line per created-but-unfinished job, so no paid id is lost."""
        assert self.writer is not None
        for key, task_id in batch.unfinished():
            self.interrupted_ids += task_id is not None
            record = {
                "key": key,
                "line": self.lines.get(key),
                "ok": False,
                "task_id": task_id,
                "state": "interrupted" if task_id is not None else "uncertain",
            }
            self.writer.write(record)

    # -- the end ---------------------------------------------------------------------------

    def finish(self, *, recovery_grew: bool) -> int:
        """Say truthfully where the ids are; the exit code."""
        opts, tally, writer = self.opts, self.tally, self.writer
        code = tally.exit_code
        if writer is not None and writer.failure is not None:
            self.ui.print(
                f"akool-async: the results file {opts.out or 'stdout'} failed "
                f"({writer.failure}): intake stopped, {tally.total - tally.done} job(s) not "
                f"sent or not finished; the {writer.recovered_ids} paid task id(s) it missed "
                f"are in {writer.where_ids_are()}"
            )
            code = max(code, EXIT_FAILED)
        if recovery_grew:
            self.ui.print(
                f"akool-async: the journal could not record every paid task; their ids are in "
                f"{_journal_recovery(opts.journal)}"
            )
            code = max(code, EXIT_FAILED)
        if tally.abort is not None and not tally.interrupted:
            self.ui.print(
                f"akool-async: stopped: {tally.abort}; {tally.not_sent} job(s) were not sent "
                "(safe to re-run)"
            )
        if tally.interrupted:
            self.ui.print(self._interrupted_line())
        return code

    def _interrupted_line(self) -> str:
        text = "interrupted: tasks already created keep running on Akool's side"
        if self.opts.journal:
            return text + f"; re-run with --journal {self.opts.journal} to resume them"
        where = self.opts.out if self.opts.out not in (None, "-") else "stdout"
        if self.writer is not None and self.writer.failure is not None:
            where = self.writer.where_ids_are()
        return (
            text + f"; the {self.interrupted_ids} created but unfinished task id(s) are in "
            f'{where} ("state": "interrupted")'
        )


def _announce(ui: Ui, jobs: Sequence[ParsedJob], client: AkoolClient, opts: RunOptions) -> None:
    kinds = Counter(request_kind(job.request) for job in jobs)
    ui.print(
        f"running {len(jobs)} job(s) ({kinds[CHARACTER_SWAP_KIND]} character swap, "
        f"{kinds[HEAD_SWAP_KIND]} head swap) against {client.base_url}, "
        f"concurrency {opts.concurrency}"
    )


async def interruptible(
    fn: Callable[[], Awaitable[object]], *, stop: Callable[[], Awaitable[object]] | None = None
) -> bool:
    """Run ``fn``; on SIGINT/SIGTERM stop it cleanly. True if it was interrupted.

    Without ``stop`` the first signal cancels ``fn``. With it, the first signal awaits
    ``stop()`` (no new work; work in flight answers) before cancelling ``fn``; a second
    signal cancels at once.
    """
    interrupted = False
    async with anyio.create_task_group() as tg:

        async def stop_then_cancel() -> None:
            assert stop is not None
            await stop()
            tg.cancel_scope.cancel()

        async def watch() -> None:
            nonlocal interrupted
            try:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        if interrupted or stop is None:
                            interrupted = True
                            tg.cancel_scope.cancel()
                            return
                        interrupted = True
                        tg.start_soon(stop_then_cancel)
            except NotImplementedError:  # no signal handlers on this platform (Windows)
                await anyio.sleep_forever()

        tg.start_soon(watch)
        await fn()
        tg.cancel_scope.cancel()
    return interrupted
