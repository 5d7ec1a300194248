"""One fleet member for the fleet benchmark: ``python -m benchmarks._fleet_member CONFIG``.

CONFIG is JSON: ``url``, ``api_key``, ``store``, ``jobs``, ``lease_ttl``, ``out``. Runs the
whole jobs list against the shared store and writes one JSON line per outcome to ``out``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import akool_async as akool
from akool_async._store import PostgresStore

POLL = akool.PollPolicy(max_polls_per_second=150.0)
LIMITS = akool.Limits(max_creates_per_second=100.0)


def job(i: int) -> akool.Job:
    return akool.Job(
        akool.CharacterSwap(
            f"https://example.com/img/{i}.png", f"https://example.com/video/{i}.mp4?duration=8"
        ),
        key=f"job-{i}",
    )


async def main(config: dict[str, Any]) -> None:
    store = await PostgresStore.open(config["store"], lease_ttl=config["lease_ttl"])
    try:
        async with akool.AkoolClient(
            config["api_key"], base_url=config["url"], poll=POLL, limits=LIMITS
        ) as client:
            jobs = [job(i) for i in range(config["jobs"])]
            with open(config["out"], "a", encoding="utf-8") as out:  # noqa: ASYNC230 - a benchmark log, line-buffered
                async with client.batch(jobs, journal=store, concurrency=16) as outcomes:
                    async for o in outcomes:
                        line = {"key": o.key, "ok": o.ok, "t": time.monotonic(),
                                "error": type(o.error).__name__ if o.error else None}
                        out.write(json.dumps(line) + "\n")
                        out.flush()
    finally:
        await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
