"""Simulator capacity: drive N character/head swap tasks through their whole lifecycle.

Starts ``python -m akool_async.testing`` in a separate process (compressed clock), then uses
plain aiohttp with bounded concurrency: create, poll until terminal, count any non-1000
answer or transport error as an error (must be 0). Prints wall time and request counts.

    .venv/bin/python benchmarks/sim_capacity.py [--tasks 10000] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp

BASE_CS_CREATE = "/api/open/v4/characterSwap/create"
BASE_CS_RESULT = "/api/open/v3/content/video/infobymodelid"
BASE_ANALYZE = "/api/open/v4/headswap/analyze"
BASE_ADETAIL = "/api/open/v4/headswap/analyze/detail"
BASE_HS_CREATE = "/api/open/v4/headswap/task/create"
BASE_HS_DETAIL = "/api/open/v4/headswap/task/detail"


class Driver:
    def __init__(self, http: aiohttp.ClientSession, base: str, key: str, poll: float) -> None:
        self.http = http
        self.base = base
        self.headers = {"x-api-key": key}
        self.poll = poll
        self.requests = 0
        self.errors = 0
        self.completed = 0

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.requests += 1
        async with self.http.request(
            method, self.base + path, headers=self.headers, **kwargs
        ) as resp:
            answer: dict[str, Any] = await resp.json()
        if answer.get("code") != 1000:
            raise RuntimeError(f"{path}: {answer}")
        return answer

    async def until_done(self, path: str, params: dict[str, str], field: str) -> dict[str, Any]:
        while True:
            data = (await self.call("GET", path, params=params))["data"]
            if data[field] in (3, 4):
                return data
            await asyncio.sleep(self.poll)

    async def character_swap(self, i: int) -> None:
        body = {
            "image": f"https://cdn.example.com/img{i}.png",
            "video": f"https://cdn.example.com/v{i % 97}.mp4",
            "resolution": ("480p", "720p", "1080p")[i % 3],
        }
        task = (await self.call("POST", BASE_CS_CREATE, json=body))["data"]
        await self.until_done(BASE_CS_RESULT, {"video_model_id": task["_id"]}, "video_status")

    async def analyze(self, url: str) -> None:
        body = {"video_url": url, "type": "head"}
        analysis = (await self.call("POST", BASE_ANALYZE, json=body))["data"]
        await self.until_done(BASE_ADETAIL, {"_id": analysis["_id"]}, "status")

    async def head_swap(self, i: int, url: str) -> None:
        body = {
            "video_url": url,
            "mappings": [{"obj_id": 0, "img_url": f"https://cdn.example.com/face{i}.png"}],
            "model_name": "akool-premium",
            "resolution": ("480p", "720p")[i % 2],
        }
        task = (await self.call("POST", BASE_HS_CREATE, json=body))["data"]
        await self.until_done(BASE_HS_DETAIL, {"_id": task["_id"]}, "status")


async def start_server(time_scale: float) -> tuple[asyncio.subprocess.Process, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akool_async.testing",
        "--time-scale",
        str(time_scale),
        "--exit-after",
        "600",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    values: dict[str, str] = {}
    while "AKOOL_API_KEY" not in values:
        line = (await proc.stdout.readline()).decode().strip()
        if not line:
            raise RuntimeError("simulator exited before printing its URL")
        name, _, value = line.partition("=")
        values[name] = value
    return proc, values["AKOOL_BASE_URL"], values["AKOOL_API_KEY"]


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=0.001)
    parser.add_argument("--poll", type=float, default=0.05, help="real seconds between polls")
    args = parser.parse_args()

    proc, base, key = await start_server(args.time_scale)
    try:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            driver = Driver(http, base, key, args.poll)
            limiter = asyncio.Semaphore(args.concurrency)
            urls = [f"https://cdn.example.com/heads{n}.mp4?people=1" for n in range(20)]
            started = time.perf_counter()
            await asyncio.gather(*(driver.analyze(u) for u in urls))

            async def job(i: int) -> None:
                async with limiter:
                    try:
                        if i % 2:
                            await driver.head_swap(i, urls[i % len(urls)])
                        else:
                            await driver.character_swap(i)
                        driver.completed += 1
                    except (aiohttp.ClientError, RuntimeError, asyncio.TimeoutError) as error:
                        driver.errors += 1
                        if driver.errors <= 5:
                            print("error:", error, file=sys.stderr)

            await asyncio.gather(*(job(i) for i in range(args.tasks)))
            wall = time.perf_counter() - started
    finally:
        proc.terminate()
        await proc.wait()
    print(
        f"tasks={args.tasks} completed={driver.completed} errors={driver.errors} "
        f"requests={driver.requests} wall={wall:.1f}s "
        f"rate={driver.requests / wall:.0f} req/s concurrency={args.concurrency} "
        f"time_scale={args.time_scale}"
    )
    return 0 if driver.errors == 0 and driver.completed == args.tasks else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
