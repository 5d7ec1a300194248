"""Child process for the ownership tests: opens a journal and holds it until killed.

Usage: ``python journal_holder.py DB``. Prints ``ready`` once the journal is open (its
lock taken), then waits for stdin to close; the parent kills it with SIGKILL instead.
"""

from __future__ import annotations

import sys

import anyio
import anyio.to_thread

from akool_async._store import Journal


async def main(db: str) -> None:
    """Hold the journal at ``db`` open until stdin closes."""
    async with Journal(db):
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
