"""One fleet member for the fleet benchmark: ``python -m benchmarks._fleet_member CONFIG``.

CONFIG is JSON: ``url``, ``api_key``, ``store``, ``jobs``, ``lease_ttl``, ``out``, ``logs``,
``run`` (the run's name, part of its job URLs). Runs the whole jobs list against the
shared store, writes one JSON line per outcome to ``out`` and the SDK's INFO log
(wall-clock stamped) to ``logs/member-PID.log``. Its own budget (creates and polls) is
above the account's limit: the fleet's shared bucket, not the member, keeps the fleet at
the limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

import akool_async as akool
from akool_async._store import PostgresStore

POLL = akool.PollPolicy(max_polls_per_second=150.0)
LIMITS = akool.Limits(max_creates_per_second=250.0)


def job(run: str, i: int) -> akool.Job:
    """Job ``i`` of fleet run ``run`` (each run's requests are its own: the simulator counts
    a request created again in a later run as a duplicate)."""
    return akool.Job(
        akool.CharacterSwap(
            f"https://example.com/{run}/img/{i}.png",
            f"https://example.com/{run}/video/{i}.mp4?duration=8",
        ),
        key=f"job-{i}",
    )


async def main(config: dict[str, Any]) -> None:
    log = logging.FileHandler(os.path.join(config["logs"], f"member-{os.getpid()}.log"))
    log.setFormatter(logging.Formatter("%(created).3f %(message)s"))
    logging.getLogger("akool_async").addHandler(log)
    logging.getLogger("akool_async").setLevel(logging.INFO)
    store = await PostgresStore.open(config["store"], lease_ttl=config["lease_ttl"])
    try:
        async with akool.AkoolClient(
            config["api_key"], base_url=config["url"], poll=POLL, limits=LIMITS
        ) as client:
            jobs = [job(config["run"], i) for i in range(config["jobs"])]
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
    if os.environ.get("AKOOL_B6_PROFILE"):  # a cProfile of each member, for looking into
        import cProfile

        target = os.path.join(os.environ["AKOOL_B6_PROFILE"], f"member-{os.getpid()}.prof")
        cProfile.run("asyncio.run(main(json.loads(sys.argv[1])))", target)
    else:
        asyncio.run(main(json.loads(sys.argv[1])))
