"""The ``akool-async`` argument parser: every flag has help text."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Protocol

from akool_async._client import ENV_API_KEY, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET
from akool_async._converters import CHARACTER_SWAP_KIND, HEAD_SWAP_KIND

from ._demo import DEMO_FAILURE_RATE, DEMO_JOBS, DEMO_TIME_SCALE
from ._env import ENV_LOG, LOG_LEVELS
from ._journal import configure_journal_parser
from ._report import configure_report_parser
from ._run import DEFAULT_PROGRESS_INTERVAL, RunOptions

__all__ = ["build_parser", "run_options"]


class SubParsers(Protocol):
    """What this module uses of ``ArgumentParser.add_subparsers()``'s return value."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def _number(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise argparse.ArgumentTypeError(
            f"must be a number {'>=' if allow_zero else '>'} 0 (got {text})"
        )
    return value


def _positive_float(text: str) -> float:
    return _number(text, allow_zero=False)


def _non_negative_float(text: str) -> float:
    return _number(text, allow_zero=True)


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


def _log_flag(p: argparse.ArgumentParser, *, default: object) -> None:
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=default,
        help=f"log the SDK (logger akool_async) to stderr at this level; overrides ${ENV_LOG}",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``akool-async``."""
    from akool_async import __version__  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="akool-async",
        description="Bulk Akool Character Swap and Head Swap jobs from the command line. "
        f"Credentials come from ${ENV_API_KEY} (or ${ENV_CLIENT_ID} + ${ENV_CLIENT_SECRET}); "
        f"${ENV_BASE_URL} points at another server such as the simulator; "
        f"${ENV_LOG}=debug|info logs the SDK to stderr.",
        epilog="Try it offline: akool-async demo",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _log_flag(parser, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(sub)
    _add_status(sub)
    _log_flag(
        sub.add_parser("credits", help="show the account's credit balance"),
        default=argparse.SUPPRESS,
    )
    _add_simulate(sub)
    _add_demo(sub)
    journal = sub.add_parser(
        "journal",
        help="show what a journal holds: counts per state, credits, uncertain jobs (read-only)",
    )
    configure_journal_parser(journal)
    _log_flag(journal, default=argparse.SUPPRESS)
    report = sub.add_parser(
        "report", help="write one self-contained HTML page of a run (results file or journal)"
    )
    configure_report_parser(report)
    _log_flag(report, default=argparse.SUPPRESS)
    return parser


def _add_run(sub: SubParsers) -> None:
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
        help="refuse to start when the credit estimate exceeds N, or when some jobs "
        "cannot be estimated (head swaps, character swaps without a duration) unless "
        "--allow-unpriced",
    )
    run.add_argument(
        "--allow-unpriced",
        action="store_true",
        help="with --max-credits: start even though some jobs have no estimate",
    )
    run.add_argument(
        "--no-balance-check",
        action="store_true",
        help="skip reading the balance before the first create (by default a run whose "
        "estimate exceeds the balance is refused)",
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
        "--journal",
        metavar="PATH_OR_URL",
        help="job store: a SQLite file path, or a postgresql:// URL shared by a fleet of "
        "processes; never lose an id, re-running resumes",
    )
    run.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="with --journal: resubmit jobs whose create answer was lost (may pay twice)",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --journal: create again the jobs whose task FAILED in an earlier run "
        "(Akool refunds those); never uncertain ones",
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
    _log_flag(run, default=argparse.SUPPRESS)


def _add_status(sub: SubParsers) -> None:
    status = sub.add_parser("status", help="show one task's status")
    status.add_argument("id", metavar="ID", help="task id returned by a create")
    status.add_argument(
        "--kind",
        choices=[CHARACTER_SWAP_KIND, HEAD_SWAP_KIND],
        help="task kind (default: try character_swap, then head_swap)",
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    _log_flag(status, default=argparse.SUPPRESS)


def _add_simulate(sub: SubParsers) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="serve the offline Akool simulator",
        description="Serve akool_async.testing.AkoolSimulator on 127.0.0.1 until Ctrl-C; "
        f"prints the ${ENV_BASE_URL}, ${ENV_API_KEY}, ${ENV_CLIENT_ID} and "
        f"${ENV_CLIENT_SECRET} to use, and the time scale.",
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
    _log_flag(simulate, default=argparse.SUPPRESS)


def _add_demo(sub: SubParsers) -> None:
    demo = sub.add_parser(
        "demo",
        help="run a few hundred jobs against the embedded simulator (offline, < 1 minute)",
        description="Run mixed character and head swap jobs through `run` against the "
        "embedded simulator: no account, no network. Exit 0 when the run finished.",
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
    demo.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        metavar="N",
        help="creates in flight, as for `run` (default 16)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of the generated jobs and of the simulator (default 0)",
    )
    demo.add_argument(
        "--out", metavar="PATH", help="keep the results JSONL here (default: a temporary file)"
    )
    _progress_flags(demo, interval=1.0)
    _log_flag(demo, default=argparse.SUPPRESS)


def run_options(args: argparse.Namespace) -> RunOptions:
    """The :class:`RunOptions` of parsed ``run`` arguments."""
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
        retry_failed=args.retry_failed,
        allow_unpriced=args.allow_unpriced,
        balance_check=not args.no_balance_check,
        download_dir=args.download_dir,
        webhook_url=args.webhook_url,
        webhook_listen=args.webhook_listen,
        progress=args.progress,
        progress_interval=args.progress_interval,
    )
