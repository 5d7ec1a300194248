"""B1 by instruction count: the client's CPU instructions per job, SDK against the script.

B1's wall-time rounds swing +-30 % on a shared machine; instructions do not. Each side (the
hand-written aiohttp and httpx scripts and ``client.batch``, exactly as in ``b1_overhead``)
runs as a client process under ``valgrind --tool=callgrind`` against one simulator
process; a run of ``N_JOBS`` jobs minus a run of none (both after the same warm-up) leaves
the instructions per job. Under callgrind the client runs ~50x slower than the simulator,
so every socket is ready when the client looks: per-iteration event-loop costs weigh less
than in real time.
Diagnostic, not a target of issue 4 (B1's target is on wall time). Needs valgrind.

Run: ``python -m benchmarks b1i`` (about 90 s; not part of the default run).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from ._common import SimProcess, emit, row
from .b1_overhead import DURATIONS, SIDES

N_JOBS = 1_000
WARMUP_JOBS = 200


def _child(side: str, url: str, key: str, run: int, n: int) -> None:
    """The client under measurement: a warm-up, then ``n`` jobs (0: the warm-up alone)."""
    fn = SIDES[side]
    asyncio.run(fn(url, key, run, WARMUP_JOBS))
    if n:
        asyncio.run(fn(url, key, run + 1, n))


def _instructions(side: str, url: str, key: str, run: int, n: int) -> int:
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.b1_instructions",
            "--child",
            side,
            url,
            key,
            str(run),
            str(n),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def per_job(side: str, url: str, key: str, run: int) -> float:
    """Instructions per job of ``side``: a run with N_JOBS minus one without (in parallel)."""
    with ThreadPoolExecutor(2) as pool:
        full = pool.submit(_instructions, side, url, key, run, N_JOBS)
        empty = pool.submit(_instructions, side, url, key, run + 10_000_000, 0)
        return (full.result() - empty.result()) / N_JOBS


def main() -> None:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: B1 by instruction count skipped")
        emit([])
        return
    with SimProcess(durations=DURATIONS, seed=1, log_size=100) as sim:
        counts = {
            side: per_job(side, sim.url, sim.api_key, 100_000_000 * (i + 1))
            for i, side in enumerate(SIDES)
        }
    for side, count in counts.items():
        print(f"{side}: {count / 1000:.1f} thousand instructions per job (client process)")
    ratio = counts["sdk"] / counts["script"]
    emit(
        [
            row(
                "B1i",
                "SDK / script client instructions per job (callgrind)",
                ratio,
                "(diagnostic)",
                None,
                unit="x",
                note=f"script {counts['script'] / 1000:.0f}k, sdk {counts['sdk'] / 1000:.0f}k",
            )
        ]
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        side, url, key, run, n = sys.argv[2:7]
        _child(side, url, key, int(run), int(n))
    else:
        main()
