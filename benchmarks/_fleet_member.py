"""One fleet member for the fleet benchmark: ``python -m benchmarks._fleet_member CONFIG``.

CONFIG is JSON: ``url``, ``api_key``, ``store``, ``jobs``, ``lease_ttl``, ``out``, ``logs``,
``run`` (the run's name, part of its job URLs). Runs the whole jobs list against the
shared store, writes one JSON line per outcome to ``out`` and the SDK's INFO log
(wall-clock stamped) to ``logs/member-PID.log``. Its own budget (creates and polls) is
above the account's limit: the fleet's shared bucket, not the member, keeps the fleet at
the limit. With ``webhook`` (``{"port", "url", "client_id", "client_secret"}``) it serves a
webhook receiver (``store=``) on ``127.0.0.1:port`` and gives its creates ``url``: its own
receiver's, or another member's (webhooks landing on the wrong replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

import akool_async as akool
from akool_async._store import PostgresStore
from akool_async.webhooks import WebhookReceiver

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


@contextlib.asynccontextmanager
async def receiver_served(
    hook: dict[str, Any] | None, store: PostgresStore
) -> AsyncIterator[WebhookReceiver | None]:
    """A receiver writing verified events to ``store``, served on ``hook["port"]``."""
    if hook is None:
        yield None
        return
    receiver = WebhookReceiver(
        client_id=hook["client_id"], client_secret=hook["client_secret"], store=store
    )
    app = web.Application()
    app.router.add_post("/hook", receiver.aiohttp_handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook["port"]).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


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
            hook = config.get("webhook")
            with open(config["out"], "a", encoding="utf-8") as out:  # noqa: ASYNC230 - a benchmark log, line-buffered
                async with (
                    receiver_served(hook, store) as receiver,
                    client.batch(
                        jobs, journal=store, concurrency=16, webhooks=receiver,
                        webhook_url=None if hook is None else hook["url"],
                    ) as outcomes,
                ):  # fmt: skip
                    async for o in outcomes:
                        line = {"key": o.key, "ok": o.ok, "t": time.monotonic(),
                                "task_id": o.task_id,
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
