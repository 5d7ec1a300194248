"""B1 client CPU only: the aiohttp script and the SDK, 3 rounds of 3,000 jobs, best of each.

``python -m benchmarks.b1_cpu`` from a checkout: quicker than ``b1`` and steadier (process
CPU time, not wall time), for comparing commits (run it in a worktree of each).
"""

from __future__ import annotations

import asyncio
import time

from . import b1_overhead as b
from ._common import SimProcess

ROUNDS = 3
JOBS = 3_000


def main() -> None:
    with SimProcess(durations=b.DURATIONS, seed=1, log_size=100) as sim:
        asyncio.run(b.sdk(sim.url, sim.api_key, 0, 300))  # warm up imports and the pool
        best = {"script": float("inf"), "sdk": float("inf")}
        for r in range(ROUNDS):
            for name, fn in (("script", b.script), ("sdk", b.sdk)):
                start = time.process_time()
                asyncio.run(fn(sim.url, sim.api_key, r + 1, JOBS))
                best[name] = min(best[name], time.process_time() - start)
    print(
        f"client CPU for {JOBS} jobs: script {best['script']:.3f} s, sdk {best['sdk']:.3f} s; "
        f"sdk / script {best['sdk'] / best['script']:.2f}x"
    )


if __name__ == "__main__":
    main()
