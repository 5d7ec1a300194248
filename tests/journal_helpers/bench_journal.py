"""Journal throughput: N begin+sending+created+completed sequences (not a test).

Usage: ``python tests/journal_helpers/bench_journal.py [N] [TASKS] [NORMAL|FULL]``
(defaults 10000, 1, NORMAL). Prints jobs/s and writes/s for a fresh file in a temp dir.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Literal, cast

import anyio

import akool_async as akool
from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._store import Journal


async def main(n: int, tasks: int, synchronous: Literal["NORMAL", "FULL"]) -> None:
    """Run ``n`` job lifecycles from ``tasks`` concurrent tasks and print the rates."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Journal(Path(tmp) / "bench.db", synchronous=synchronous) as journal:

            async def worker(first: int) -> None:
                for i in range(first, n, tasks):
                    key = f"job-{i}"
                    swap = akool.CharacterSwap(f"https://x.test/{i}.png", "https://x.test/v.mp4")
                    await journal.begin(
                        key,
                        kind="character_swap",
                        fingerprint=request_fingerprint(swap),
                        request=request_to_dict(swap),
                    )
                    await journal.mark_sending(key)
                    await journal.mark_created(key, f"task-{i}")
                    await journal.mark_completed(key, {"_id": f"task-{i}", "status": 3})

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for first in range(tasks):
                    tg.start_soon(worker, first)
            elapsed = time.perf_counter() - start
    print(
        f"{n} jobs, {tasks} task(s), synchronous={synchronous}: {elapsed:.2f} s, "
        f"{n / elapsed:.0f} jobs/s, {4 * n / elapsed:.0f} writes/s"
    )


if __name__ == "__main__":
    argv = sys.argv[1:]
    anyio.run(
        main,
        int(argv[0]) if argv else 10_000,
        int(argv[1]) if len(argv) > 1 else 1,
        cast("Literal['NORMAL', 'FULL']", argv[2] if len(argv) > 2 else "NORMAL"),
    )
