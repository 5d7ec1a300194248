"""The ``akool-async`` command line (also ``python -m akool_async``).

Subcommands::

    akool-async run JOBS.jsonl [--out results.jsonl] [--concurrency N] [--deadline S]
                               [--max-credits N] [--dry-run] [--time-scale X]
                               [--allow-unpriced] [--no-balance-check]
                               [--journal run.db] [--resubmit-uncertain] [--retry-failed]
                               [--download-dir DIR]
                               [--webhook-url URL --webhook-listen HOST:PORT]
    akool-async status ID [--kind character_swap|head_swap] [--json]
    akool-async credits
    akool-async simulate [--host H] [--port N] [--time-scale X] [--profile P] ...
    akool-async demo [--jobs N] [--time-scale X] [--failure-rate F] [--out PATH]

Every command takes ``--log-level {debug,info,warning,error}`` (default: ``$AKOOL_LOG``).

Exit codes: 0 every job completed (or the command succeeded); 1 some jobs failed, were left
uncertain or (with ``--download-dir``) were not saved, or an API call failed; 2 usage,
configuration or validation error (nothing was sent); 130 interrupted (SIGINT/SIGTERM: the
batch is cancelled cleanly, outcomes so far are written). Every failure is one line on
stderr; an unexpected one says "internal error" (its traceback only with debug logging).

Input of ``run``: one JSON object per line with a ``kind`` (``character_swap`` or
``head_swap``), the request fields with their Python names (see ``request_from_dict``) and an
optional ``key`` (default: derived from the request's content, never the line number).
Blank lines and lines starting with ``#`` are skipped. Every line is validated before
anything is sent; every bad line is reported.

Output of ``run``: one JSON object per outcome, written and flushed as each job finishes:
``key, line, kind, ok, task_id, status, output_url, credits, failure_reason, error, path,
download_error, state`` (``state``: completed, failed, uncertain, not_sent, or interrupted
for a created job still running at Ctrl-C; ``credits`` is ``"n/a"`` for head swaps, which
have no public price; ``error`` is ``{type, message, code, http_status}`` or null;
``path`` is the saved file with ``--download-dir``, else null; ``download_error`` is
``{type, message}`` when the job completed but its file could not be saved). Never a
secret.

``rich`` (the ``cli`` extra) draws the live progress and the summary table on a terminal;
without it, or when the stream is not a terminal, progress is printed as plain periodic
lines and the summary as ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Iterator, Sequence

import anyio

from akool_async import AkoolError, ConfigurationError

from ._args import build_parser, run_options
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Ui,
    UsageError,
)
from ._demo import demo_command
from ._env import client_from_env, log_level, logging_to_stderr
from ._jobs import Estimate, LineError, ParsedJob, estimate, parse_jobs
from ._journal import journal_main
from ._report import report_main
from ._run import run_command
from ._simulate import simulate_command
from ._status import credits_command, status_command

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Estimate",
    "LineError",
    "ParsedJob",
    "build_parser",
    "estimate",
    "main",
    "parse_jobs",
]


async def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "run":
        opts = run_options(args)
        ui = Ui(sys.stderr, mode=opts.progress)
        return await run_command(opts, ui, lambda: client_from_env(opts.time_scale))
    if command == "status":
        return await status_command(args.id, args.kind, args.json)
    if command == "credits":
        return await credits_command()
    if command == "simulate":
        return await simulate_command(args)
    if command == "journal":
        return await journal_main(args)
    if command == "report":
        return await report_main(args)
    assert command == "demo"
    return await demo_command(args, Ui(sys.stdout, mode=args.progress))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``akool-async`` and ``python -m akool_async``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error (argparse exits 2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        level = log_level(args.log_level)
    except UsageError as exc:
        return _report(exc, debug=False)
    with logging_to_stderr(level):
        try:
            return anyio.run(_dispatch, args, backend="asyncio")
        except KeyboardInterrupt:  # a SIGINT outside the batch's own handler
            sys.stderr.write("akool-async: interrupted\n")
            return EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            return _report(exc, debug=level == "debug")


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple):
        for child in inner:
            yield from _leaves(child)
    else:
        yield exc


def _report(exc: Exception, *, debug: bool) -> int:
    """Write one line for ``exc`` (a traceback first when debugging); the exit code."""
    leaves = list(_leaves(exc))
    line, code = _describe(leaves)
    if debug and code != EXIT_USAGE:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    return code


def _describe(leaves: list[BaseException]) -> tuple[str, int]:
    for leaf in leaves:
        if isinstance(leaf, UsageError):
            return str(leaf), EXIT_USAGE
    for leaf in leaves:
        if isinstance(leaf, ConfigurationError):
            return f"akool-async: {leaf.message}", EXIT_USAGE
    for leaf in leaves:
        if isinstance(leaf, CommandError):
            return f"akool-async: {leaf}", EXIT_FAILED
    unexpected = [leaf for leaf in leaves if not isinstance(leaf, AkoolError)]
    if not unexpected:
        first = leaves[0]
        return f"akool-async: {type(first).__name__}: {_one_line(first)}", EXIT_FAILED
    bug = unexpected[0]
    return (
        f"akool-async: internal error: {type(bug).__name__}: {_one_line(bug)}; please report "
        "it (AKOOL_LOG=debug shows the traceback)",
        EXIT_FAILED,
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or "(no message)"
