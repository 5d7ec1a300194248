"""Rebuild docs/report.png: a small batch against the simulator, its report, a screenshot.

Run from the repository root: ``python docs/make_report_png.py`` (needs /usr/bin/chromium).
The batch keeps a journal and downloads the videos into a temporary directory; the report
is rendered from the journal (which holds every job's task times) and photographed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio

import akool_async as akool
from akool_async._cli._demo import demo_jobs
from akool_async._cli._report import report_command
from akool_async._cli._results import outcome_record
from akool_async._converters import request_from_dict
from akool_async.testing import AkoolSimulator, FaultPlan

SCALE = 0.01


async def run_batch(work: Path) -> None:
    jobs = demo_jobs(36, seed=7)
    plan = FaultPlan(scripts={"character_swap.create": [None] * 9 + ["drop_after"]})
    async with AkoolSimulator(time_scale=SCALE, failure_rate=0.12, seed=7, faults=plan) as sim:
        client = akool.AkoolClient(
            sim.api_key,
            base_url=sim.base_url,
            poll=akool.DEFAULT_POLL_POLICY.scaled(SCALE),
            limits=akool.DEFAULT_LIMITS.scaled(SCALE),
        )
        requests = [
            akool.Job(
                request_from_dict({k: v for k, v in job.items() if k != "key"}), key=job["key"]
            )
            for job in jobs
        ]
        with (work / "results.jsonl").open("w") as out:
            async with (
                client,
                client.batch(
                    requests, concurrency=12, journal=work / "run.db", download_dir=work / "videos"
                ) as batch,
            ):
                async for outcome in batch:
                    out.write(json.dumps(outcome_record(outcome, None)) + "\n")


def main() -> int:
    target = Path(__file__).resolve().parent / "report.png"
    with tempfile.TemporaryDirectory(prefix="akool-report-") as tmp:
        work = Path(tmp)
        anyio.run(run_batch, work)
        page = work / "report.html"
        code = report_command(
            [str(work / "run.db"), "--html", str(page), "--title", "akool-async run: 36 demo swaps"]
        )
        if code:
            return code
        subprocess.run(  # noqa: S603 (a fixed command line)
            [
                "/usr/bin/chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={work / 'profile'}",
                f"--screenshot={target}",
                "--window-size=1200,1500",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
