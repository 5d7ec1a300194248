"""``python -m benchmarks [b1 ... b5 | b1i]``: run benchmarks one at a time, then a table.

Each benchmark runs in its own interpreter (memory figures of B4 must not include what
earlier benchmarks allocated); its output streams through, and its last ``RESULT`` line
feeds the summary table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from ._common import command, format_row

BENCHMARKS = {
    "b1": "benchmarks.b1_overhead",
    "b2": "benchmarks.b2_latency",
    "b3": "benchmarks.b3_polling",
    "b4": "benchmarks.b4_scale",
    "b5": "benchmarks.b5_rate_limit",
    "b6": "benchmarks.b6_fleet",
    # B1 by instruction count (needs valgrind, ~90 s): only when asked for by name.
    "b1i": "benchmarks.b1_instructions",
}
DEFAULT = ["b1", "b2", "b3", "b4", "b5"]


def run_one(name: str) -> list[dict[str, Any]]:
    print(f"=== {name.upper()}: {command(name)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", BENCHMARKS[name]], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    rows: list[dict[str, Any]] = []
    for line in proc.stdout:
        if line.startswith("RESULT "):
            rows = json.loads(line[len("RESULT ") :])
        else:
            print(line, end="", flush=True)
    code = proc.wait()
    print(f"=== {name.upper()} took {time.perf_counter() - started:.1f} s (exit {code})\n")
    if code != 0 and not rows:
        rows = [
            {
                "bench": name.upper(),
                "metric": "benchmark crashed",
                "measured": float(code),
                "unit": "",
                "target": "exit 0",
                "ok": False,
                "note": "",
                "command": command(name),
            }
        ]
    return rows


def main(argv: list[str]) -> int:
    names = [a.lower() for a in argv] or DEFAULT
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
        return 2
    rows: list[dict[str, Any]] = []
    for name in names:
        rows += run_one(name)
    print("Summary (measured here; targets from issues 4 and 14):")
    for r in rows:
        print(f"  {format_row(r)}")
    print("Commands:")
    for name in names:
        print(f"  {name.upper()}: {command(name)}")
    failed = [r for r in rows if r["ok"] is False]
    print(f"{len(failed)} target(s) missed" if failed else "all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
