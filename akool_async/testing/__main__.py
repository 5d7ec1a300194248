"""Serve the Akool simulator standalone: ``python -m akool_async.testing --help``.

Prints the base URL, API key and client id (one ``KEY=value`` per line, flushed) once
listening; stops cleanly on Ctrl-C, SIGTERM or after ``--exit-after`` real seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ._faults import PROFILES
from ._server import AkoolSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m akool_async.testing", description="Serve the Akool API simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default 0 = ephemeral)")
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), default="none", help="fault profile (default none)"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="real seconds per simulated second (default 1.0; 0.01 = 100x faster)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--failure-rate", type=float, default=0.0, help="swap task failure rate (default 0)"
    )
    parser.add_argument(
        "--exit-after", type=float, default=None, help="stop after this many real seconds"
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Windows event loops have no add_signal_handler: Ctrl-C then raises KeyboardInterrupt.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with AkoolSimulator(
        host=args.host,
        port=args.port,
        faults=args.profile,
        time_scale=args.time_scale,
        seed=args.seed,
        failure_rate=args.failure_rate,
        log_size=1000,
    ) as sim:
        print(f"AKOOL_BASE_URL={sim.base_url}", flush=True)
        print(f"AKOOL_API_KEY={sim.api_key}", flush=True)
        print(f"AKOOL_CLIENT_ID={sim.client_id}", flush=True)
        print(f"AKOOL_CLIENT_SECRET={sim.client_secret}", flush=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), args.exit_after)
        stats = sim.stats
        print(
            f"stopping: {stats.total_requests} requests, {sum(stats.creates.values())} creates",
            file=sys.stderr,
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until stopped; returns the exit status."""
    args = _parser().parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
