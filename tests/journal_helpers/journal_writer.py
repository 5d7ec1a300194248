"""Child process for the SIGKILL test: drives a journal and reports each committed write.

Usage: ``python journal_writer.py DB START COUNT``. Prints ``ready`` once the journal is
open, then one ``<key> <state>`` line after each write has returned (so it is committed).
On start it first finishes the jobs an earlier, killed run left open (as a resuming batch
would), then records COUNT new jobs from index START on. Outcomes depend on the index only,
so the parent can predict them.
"""

from __future__ import annotations

import sys

import anyio

import akool_async as akool
from akool_async._converters import request_fingerprint, request_to_dict
from akool_async._errors import ConnectionLostError, TaskFailedError
from akool_async._store import JobState, Journal


def report(key: str, state: JobState) -> None:
    """Tell the parent that ``key`` is committed in ``state``."""
    print(f"{key} {state.value}", flush=True)


async def finish(journal: Journal, key: str, index: int) -> None:
    """Drive a created job to its terminal state."""
    if index % 5 == 0:
        err = TaskFailedError("task failed", task_id=f"task-{index}")
        await journal.mark_failed(key, {"_id": f"task-{index}", "status": 4}, err)
        report(key, JobState.FAILED)
    else:
        await journal.mark_completed(key, {"_id": f"task-{index}", "status": 3, "url": "u"})
        report(key, JobState.COMPLETED)


async def send(journal: Journal, key: str, index: int) -> None:
    """Mark the create as sending, then record its (simulated) answer."""
    await journal.mark_sending(key)
    report(key, JobState.SENDING)
    if index % 7 == 3:
        await journal.mark_uncertain(key, ConnectionLostError("lost after send"))
        report(key, JobState.UNCERTAIN)
        return
    await journal.mark_created(key, f"task-{index}")
    report(key, JobState.CREATED)
    await finish(journal, key, index)


async def main(db: str, start: int, count: int) -> None:
    """Resume what an earlier run left open, then journal ``count`` new jobs."""
    async with Journal(db) as journal:
        print("ready", flush=True)
        for rec in await journal.records([JobState.PENDING, JobState.SENDING, JobState.CREATED]):
            index = int(rec.key.rsplit("-", 1)[1])
            if rec.state is JobState.PENDING:
                await send(journal, rec.key, index)
            elif rec.state is JobState.SENDING:
                # Killed between send and answer: the create may exist, never resend it.
                await journal.mark_uncertain(rec.key, ConnectionLostError("process killed"))
                report(rec.key, JobState.UNCERTAIN)
            else:
                await finish(journal, rec.key, index)
        for index in range(start, start + count):
            key = f"job-{index}"
            swap = akool.CharacterSwap(f"https://x.test/{index}.png", "https://x.test/v.mp4")
            await journal.begin(
                key,
                kind="character_swap",
                fingerprint=request_fingerprint(swap),
                request=request_to_dict(swap),
            )
            report(key, JobState.PENDING)
            await send(journal, key, index)
        print("done", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
