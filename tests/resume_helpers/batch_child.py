"""Child process for the SIGKILL resume test: runs a journaled batch and reports outcomes.

Usage: batch_child.py BASE_URL JOURNAL N_JOBS [resubmit]
The API key comes from $AKOOL_API_KEY. Prints ``outcome KEY OK ERRORTYPE`` per outcome
(flushed), then ``done``.
"""

from __future__ import annotations

import sys

import anyio

import akool_async as akool

SCALE = 0.001


def jobs(n: int) -> list[akool.Job]:
    out = []
    for i in range(n):
        req = akool.CharacterSwap(
            f"https://example.com/img/{i}.png",
            f"https://example.com/video/{i}.mp4?duration={3 + i % 10}",
        )
        out.append(akool.Job(req, key=f"job-{i}"))
    return out


async def main(base_url: str, journal: str, n: int, resubmit: bool) -> None:
    async with akool.AkoolClient(
        base_url=base_url,
        retry=akool.RetryPolicy(attempts=4, timeout=10.0, initial=0.001, max_delay=0.01),
        poll=akool.PollPolicy().scaled(SCALE),
        limits=akool.Limits().scaled(SCALE),
    ) as client, client.batch(
        jobs(n), concurrency=8, journal=journal, resubmit_uncertain=resubmit
    ) as outcomes:
        async for o in outcomes:
            kind = "-" if o.error is None else type(o.error).__name__
            print(f"outcome {o.key} {int(o.ok)} {kind}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4)
