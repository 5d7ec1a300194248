"""``akool-async run``: validate, preflight, run the batch, write results, summarise."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import anyio
import attrs

from akool_async import AkoolClient, Job
from akool_async._converters import CHARACTER_SWAP_KIND, HEAD_SWAP_KIND, request_kind

from ._common import EXIT_OK, Ui, UsageError
from ._jobs import Estimate, ParsedJob, estimate, parse_jobs
from ._preflight import (
    check_download_dir,
    check_journal_path,
    enter_batch,
    open_output,
    serve_webhooks,
    split_listen,
    webhook_receiver,
)
from ._progress import Progress
from ._results import Tally, outcome_record, read_balance
from ._summary import print_summary

if TYPE_CHECKING:
    from akool_async.webhooks import WebhookReceiver

__all__ = ["DEFAULT_PROGRESS_INTERVAL", "RunOptions", "interruptible", "run_batch", "run_command"]

#: Seconds between plain progress lines when stderr is not a terminal.
DEFAULT_PROGRESS_INTERVAL: Final = 5.0


@attrs.frozen(kw_only=True)
class RunOptions:
    """Everything ``run`` needs besides the client; ``title`` heads the summary."""

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


def _check_budget(opts: RunOptions, est: Estimate, ui: Ui) -> None:
    if opts.max_credits is None:
        return
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


def _dry_run(opts: RunOptions, jobs: Sequence[ParsedJob], est: Estimate, ui: Ui) -> int:
    kinds = Counter(request_kind(job.request) for job in jobs)
    ui.print(
        f"{opts.jobs_path}: {len(jobs)} valid job(s): "
        f"{kinds[CHARACTER_SWAP_KIND]} character swap(s), {kinds[HEAD_SWAP_KIND]} head swap(s)"
    )
    ui.print(est.describe())
    if opts.max_credits is not None and est.credits > opts.max_credits:
        raise UsageError(
            f"the estimate ({est.credits:,} credits) exceeds --max-credits {opts.max_credits:,.0f}"
        )
    ui.print("dry run: nothing was sent")
    return EXIT_OK


async def run_command(opts: RunOptions, ui: Ui, make_client: Callable[[], AkoolClient]) -> int:
    """Validate everything, then run; the exit code (UsageError before anything is sent)."""
    check_options(opts)
    jobs = load_jobs(opts, ui)
    est = estimate([job.request for job in jobs])
    if opts.dry_run:
        return _dry_run(opts, jobs, est, ui)
    _check_budget(opts, est, ui)
    client = make_client()
    check_download_dir(opts.download_dir)
    check_journal_path(opts.journal)
    receiver = None if opts.webhook_url is None else webhook_receiver()
    tally = Tally(len(jobs))
    with open_output(opts.out) as out:
        tally.interrupted = await interruptible(
            lambda: run_batch(opts, jobs, client, ui, tally, out=out, receiver=receiver)
        )
    print_summary(
        ui,
        tally,
        est,
        title=opts.title,
        out=opts.out,
        download_dir=opts.download_dir,
        journal=opts.journal,
    )
    if tally.interrupted:
        ui.print(
            "interrupted: tasks already created keep running on Akool's side"
            + (
                f"; re-run with --journal {opts.journal} to resume them"
                if opts.journal
                else "; their ids are in the output lines written so far"
            )
        )
    return tally.exit_code


def _batch_options(opts: RunOptions, receiver: WebhookReceiver | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"concurrency": opts.concurrency, "deadline": opts.deadline}
    if opts.journal is not None:
        extra["journal"] = opts.journal
    if opts.resubmit_uncertain:
        extra["resubmit_uncertain"] = True
    if opts.download_dir is not None:
        extra["download_dir"] = opts.download_dir
    if receiver is not None:
        extra["webhook_url"] = opts.webhook_url
        extra["webhooks"] = receiver
    return extra


async def run_batch(
    opts: RunOptions,
    jobs: Sequence[ParsedJob],
    client: AkoolClient,
    ui: Ui,
    tally: Tally,
    *,
    out: IO[str],
    receiver: WebhookReceiver | None = None,
) -> None:
    """Run ``jobs`` through ``client.batch``, writing one JSON line per outcome to ``out``.

    The webhook port and the journal are opened before "running N job(s)" is printed; a
    problem with either is a UsageError and nothing is sent. Cancelling it (SIGINT in
    :func:`interruptible`) cancels the batch cleanly; ``tally`` then holds the outcomes
    received (and written) so far.
    """
    lines = {job.key: job.line for job in jobs}
    progress = Progress(ui, len(jobs), interval=opts.progress_interval, started=tally.started)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if receiver is not None:
                assert opts.webhook_listen is not None
                assert opts.webhook_url is not None
                listening = serve_webhooks(receiver, opts.webhook_listen, opts.webhook_url)
                await stack.enter_async_context(listening)
            await stack.enter_async_context(client)
            tally.balance_before = await read_balance(client)
            batch = client.batch(
                (Job(job.request, key=job.key) for job in jobs), **_batch_options(opts, receiver)
            )
            await enter_batch(stack, batch)
            _announce(ui, jobs, client, opts)
            progress.batch = batch
            async with anyio.create_task_group() as tg:
                tg.start_soon(progress.run)
                async for outcome in batch:
                    out.write(json.dumps(outcome_record(outcome, lines.get(outcome.key))) + "\n")
                    out.flush()
                    tally.add(outcome)
                tg.cancel_scope.cancel()
            tally.balance_after = await read_balance(client)
    finally:
        tally.elapsed = time.monotonic() - tally.started
        tally.webhooks = None if receiver is None else receiver.stats


def _announce(ui: Ui, jobs: Sequence[ParsedJob], client: AkoolClient, opts: RunOptions) -> None:
    kinds = Counter(request_kind(job.request) for job in jobs)
    ui.print(
        f"running {len(jobs)} job(s) ({kinds[CHARACTER_SWAP_KIND]} character swap, "
        f"{kinds[HEAD_SWAP_KIND]} head swap) against {client.base_url}, "
        f"concurrency {opts.concurrency}"
    )


async def interruptible(fn: Callable[[], Awaitable[object]]) -> bool:
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
