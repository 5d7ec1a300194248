"""Child process for the SIGKILL resume test: runs a journaled batch and reports outcomes.

Usage: batch_child.py BASE_URL JOURNAL N_JOBS MIXED [resubmit]
MIXED is 1 for a quarter of head swaps (sharing 50 source videos), else 0.
The API key comes from $AKOOL_API_KEY. Prints ``outcome KEY OK ERRORTYPE`` per outcome
(flushed), then ``done``.
"""

from __future__ import annotations

import sys

import anyio

import akool_async as akool

SCALE = 0.001


def jobs(n: int, mixed: bool) -> list[akool.Job]:
    out = []
    for i in range(n):
        req: akool.CharacterSwap | akool.HeadSwap
        if mixed and i % 4 == 0:
            req = akool.HeadSwap(
                f"https://example.com/source/{i % 50}.mp4?people=2&duration=8",
                {0: f"https://example.com/face/{i}.png"},
            )
        else:
            req = akool.CharacterSwap(
                f"https://example.com/img/{i}.png",
                f"https://example.com/video/{i}.mp4?duration={3 + i % 10}",
            )
        out.append(akool.Job(req, key=f"job-{i}"))
    return out


async def main(base_url: str, journal: str, n: int, mixed: bool, resubmit: bool) -> None:
    async with akool.AkoolClient(
        base_url=base_url,
        retry=akool.RetryPolicy(attempts=4, timeout=10.0, initial=0.001, max_delay=0.01),
        poll=akool.PollPolicy().scaled(SCALE),
        limits=akool.Limits().scaled(SCALE),
    ) as client, client.batch(
        jobs(n, mixed), concurrency=16 if mixed else 8, journal=journal, resubmit_uncertain=resubmit
    ) as outcomes:
        async for o in outcomes:
            kind = "-" if o.error is None else type(o.error).__name__
            print(f"outcome {o.key} {int(o.ok)} {kind}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    anyio.run(
        main, sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", len(sys.argv) > 5
    )
