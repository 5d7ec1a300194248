"""``akool-async demo``: a few hundred mixed jobs through ``run`` on the embedded simulator."""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from akool_async import DEFAULT_LIMITS, DEFAULT_POLL_POLICY, AkoolClient, CharacterSwap, HeadSwap
from akool_async._converters import request_to_dict

from ._common import EXIT_FAILED, EXIT_OK, Ui, UsageError
from ._run import RunOptions, run_command

if TYPE_CHECKING:
    from akool_async._models import Request

__all__ = ["DEMO_FAILURE_RATE", "DEMO_JOBS", "DEMO_TIME_SCALE", "demo_command", "demo_jobs"]

#: Demo defaults: a few hundred jobs, 100 simulated seconds per real second, 3 % failures.
DEMO_JOBS: Final = 300
DEMO_TIME_SCALE: Final = 0.01
DEMO_FAILURE_RATE: Final = 0.03


def demo_jobs(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` mixed, realistic job dicts (about 70 % character swap, 30 % head swap).

    Character swaps vary resolution, mode and length (some leave ``duration`` to Akool);
    head swaps reuse twenty source videos (one analysis each) with one to three faces. The
    URLs carry the simulator's test hooks (``duration=``, ``people=``).
    """
    rng = random.Random(seed)
    jobs: list[dict[str, Any]] = []
    for i in range(count):
        req = _character_swap(rng, i) if rng.random() < 0.7 else _head_swap(rng, i)
        fields = {k: v for k, v in request_to_dict(req).items() if v is not None}
        jobs.append({"key": f"demo-{i:04d}", **fields})
    return jobs


def _character_swap(rng: random.Random, i: int) -> Request:
    seconds = rng.randint(3, 20)
    return CharacterSwap(
        f"https://cdn.example.com/demo/characters/{i:04d}.png",
        f"https://cdn.example.com/demo/motion/{rng.randrange(40):02d}.mp4?duration={seconds}",
        duration=seconds if rng.random() < 0.8 else None,
        resolution=rng.choices(["480p", "720p", "1080p"], weights=[2, 5, 2])[0],
        mode=rng.choice(["animate", "animate", "replace"]),
    )


def _head_swap(rng: random.Random, i: int) -> Request:
    scene = rng.randrange(20)
    people = 1 + scene % 3
    chosen = rng.sample(range(people), rng.randint(1, people))
    return HeadSwap(
        f"https://cdn.example.com/demo/scenes/{scene:02d}.mp4"
        f"?people={people}&duration={6 + scene % 10}",
        {obj: f"https://cdn.example.com/demo/faces/{i:04d}-{obj}.png" for obj in chosen},
        resolution=rng.choice(["480p", "720p"]),
    )


async def demo_command(args: argparse.Namespace, ui: Ui) -> int:
    """Run the demo; exit 0 when the run finished (its failures are deliberate)."""
    from akool_async.testing import AkoolSimulator  # noqa: PLC0415 - keep the server code off `run`

    if args.jobs < 1:
        raise UsageError("--jobs must be >= 1")
    if not args.time_scale > 0:
        raise UsageError("--time-scale must be > 0")
    with tempfile.TemporaryDirectory(prefix="akool-demo-") as tmp:
        jobs_path = Path(tmp) / "jobs.jsonl"
        with jobs_path.open("w", encoding="utf-8") as f:
            f.write("# akool-async demo jobs: one JSON object per line\n")
            for job in demo_jobs(args.jobs, seed=args.seed):
                f.write(json.dumps(job) + "\n")
        sim = AkoolSimulator(
            time_scale=args.time_scale, failure_rate=args.failure_rate, seed=args.seed
        )
        async with sim:
            ui.print(
                f"akool-async demo: {args.jobs} character and head swap jobs against the "
                f"embedded Akool simulator at {sim.base_url}"
            )
            ui.print(
                f"  swaps take minutes of simulated time, compressed {1 / args.time_scale:g}x; "
                f"about {args.failure_rate:.0%} of tasks fail on purpose"
            )
            opts = RunOptions(
                jobs_path=jobs_path,
                out=args.out or str(Path(tmp) / "results.jsonl"),
                concurrency=args.concurrency,
                time_scale=args.time_scale,
                progress=ui.mode,
                progress_interval=args.progress_interval,
                title="akool-async demo",
            )

            def make_client() -> AkoolClient:
                return AkoolClient(
                    sim.api_key,
                    base_url=sim.base_url,
                    poll=DEFAULT_POLL_POLICY.scaled(args.time_scale),
                    limits=DEFAULT_LIMITS.scaled(args.time_scale),
                )

            code = await run_command(opts, ui, make_client)
        if not args.out:
            ui.print("(the results file was temporary; pass --out PATH to keep it)")
    if code not in (EXIT_OK, EXIT_FAILED):
        return code
    ui.print(
        "demo finished: the failed jobs are the simulator's deliberate failures. Next: "
        "`akool-async simulate` to serve the simulator, or set AKOOL_API_KEY and "
        "`akool-async run jobs.jsonl`"
    )
    return EXIT_OK
