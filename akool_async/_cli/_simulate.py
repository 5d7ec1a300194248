"""``akool-async simulate``: serve the offline simulator and say how to point things at it."""

from __future__ import annotations

import argparse

import anyio

from akool_async._client import ENV_API_KEY, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET

from ._common import EXIT_OK, UsageError
from ._run import interruptible

__all__ = ["simulate_command"]


async def simulate_command(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print every environment line a user needs first.

    The credentials printed are the simulator's own fake ones, never a real account's.
    """
    from akool_async.testing import AkoolSimulator  # noqa: PLC0415 - keep the server code off `run`

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
        scale = args.time_scale
        print(f"Akool simulator serving at {sim.base_url}, faults: {args.profile}")
        print(
            f"time scale {scale:g}: one simulated second takes {scale:g} real second(s)"
            + ("" if scale == 1 else f" ({1 / scale:g}x faster than Akool)")
        )
        print("Point the SDK or the CLI at it (fake credentials of the simulator):")
        print(f"  export {ENV_BASE_URL}={sim.base_url}")
        print(f"  export {ENV_API_KEY}={sim.api_key}")
        print(f"  export {ENV_CLIENT_ID}={sim.client_id}")
        print(f"  export {ENV_CLIENT_SECRET}={sim.client_secret}")
        print(f"  akool-async run jobs.jsonl --time-scale {scale:g}")
        print("Press Ctrl-C to stop.", flush=True)
        await interruptible(anyio.sleep_forever)
    print("simulator stopped", flush=True)
    return EXIT_OK
