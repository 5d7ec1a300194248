"""Shared plumbing: the simulator in a child process, result rows, small statistics.

The simulator always runs in a separate process (``SimProcess``) so that what a benchmark
times is the SDK's own cost, not the server's. The child speaks a line protocol on its
stdin/stdout: it prints one JSON line when ready (``url``, ``api_key``, and its clock origin
``mono0``/``epoch0``: ``time.monotonic()`` is system-wide on Linux, so the parent can map
its own instants onto the simulator's clock), then answers ``stats``, ``tasks``, ``log`` and
``quit`` with one JSON line each.

On a machine with two or more CPUs the child is pinned to one CPU and this process to the
others for the life of the ``with`` block (``os.sched_setaffinity``). Unpinned, the kernel
lets the two processes share a CPU or swap between CPUs, so a 100 ms answer costs the client
105-110 ms of wall time whatever the client is: on the two-vCPU machine of RESULTS.md the
hand-written aiohttp floor of B2 measured 1.09x ideal unpinned and 1.03-1.07x pinned.
Pinning applies to the baselines and the SDK alike, so the ratios compare like with like.
``AKOOL_BENCH_PIN=0`` in the environment turns it off, to compare.

Run a child by hand: ``python -m benchmarks._common '{"time_scale": 0.01}'``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

#: The command printed with every figure.
PYTHON = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
#: Credits for the simulated account: benchmarks create tens of thousands of tasks.
BENCH_CREDIT = 10**12


def command(name: str) -> str:
    """The exact command that reproduces one benchmark."""
    return f"{PYTHON} -m benchmarks {name}"


# --------------------------------------------------------------------------- simulator child


class SimProcess:
    """An ``AkoolSimulator`` in a child process. Keyword arguments are its options (JSON-able;
    ``durations`` maps a kind to a dict of ``Duration`` fields). Use as ``with``."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.api_key = ""
        self.client_id = ""
        self.client_secret = ""
        self.mono0 = 0.0
        self.epoch0 = 0.0
        self.time_scale = float(config.get("time_scale", 1.0))
        self._affinity: set[int] | None = None

    def __enter__(self) -> SimProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._common", json.dumps(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._pin(self._proc.pid)
        ready = self._read()
        self.url = ready["url"]
        self.api_key = ready["api_key"]
        self.client_id = ready["client_id"]
        self.client_secret = ready["client_secret"]
        self.mono0 = ready["mono0"]
        self.epoch0 = ready["epoch0"]
        return self

    def _pin(self, child: int) -> None:
        """The child on the last CPU we may use, this process on the rest (see the module
        docstring); nothing on a single CPU or where affinity is not supported."""
        if os.environ.get("AKOOL_BENCH_PIN", "1") == "0":
            return
        getaffinity = getattr(os, "sched_getaffinity", None)
        setaffinity = getattr(os, "sched_setaffinity", None)
        if getaffinity is None or setaffinity is None:
            return
        cpus = sorted(getaffinity(0))
        if len(cpus) < 2:
            return
        try:
            setaffinity(child, {cpus[-1]})
            setaffinity(0, set(cpus[:-1]))
        except OSError:  # the child is gone (its first read says so) or pinning is refused
            return
        self._affinity = set(cpus)

    def __exit__(self, *exc: object) -> None:
        if self._affinity is not None:
            os.sched_setaffinity(0, self._affinity)
            self._affinity = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def _read(self) -> Any:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process exited")
        return json.loads(line)

    def query(self, what: str) -> Any:
        """Ask the child for ``stats``, ``tasks`` or ``log`` (blocking: call between phases)."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(what + "\n")
        self._proc.stdin.flush()
        return self._read()

    def stats(self) -> dict[str, Any]:
        """Counters: ``requests`` per endpoint, ``polls`` per id, ``total``, ``rate_limited``,
        ``max_concurrent_creates``."""
        result: dict[str, Any] = self.query("stats")
        return result

    def counters(self) -> tuple[int, int]:
        """``(total requests, rate-limited requests)``: a cheap query to sample often."""
        total, limited = self.query("counters")
        return int(total), int(limited)

    def tasks(self) -> dict[str, tuple[float, float]]:
        """Task id -> (created, finished) in simulated seconds since the simulator started."""
        return {k: (v[0], v[1]) for k, v in self.query("tasks").items()}

    def log(self) -> list[tuple[float, str, int | None]]:
        """Recent requests as (real monotonic time, endpoint, business code)."""
        return [(t, e, c) for t, e, c in self.query("log")]

    def sim_to_mono(self, sim_seconds: float) -> float:
        """The parent's ``time.monotonic()`` at a simulated instant (seconds since start)."""
        return self.mono0 + sim_seconds * self.time_scale


def _child_main(config: dict[str, Any]) -> None:
    asyncio.run(_child(config))


async def _child(config: dict[str, Any]) -> None:
    from akool_async.testing import AkoolSimulator, Duration  # noqa: PLC0415

    durations = {k: Duration(**v) for k, v in config.pop("durations", {}).items()}
    config.setdefault("credit", BENCH_CREDIT)
    sim = AkoolSimulator(durations=durations, **config)
    async with sim:
        clock = sim._clock
        ready = {
            "url": sim.base_url,
            "api_key": sim.api_key,
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "mono0": clock._mono0,
            "epoch0": clock._epoch0,
        }
        print(json.dumps(ready), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = (await reader.readline()).decode().strip()
            if not line or line == "quit":
                break
            print(json.dumps(_answer(sim, line)), flush=True)


def _answer(sim: Any, what: str) -> Any:
    if what == "stats":
        s = sim.stats
        return {
            "requests": dict(s.requests),
            "polls": dict(s.polls),
            "total": s.total_requests,
            "rate_limited": s.rate_limited,
            "duplicate_creates": s.duplicate_creates,
            "max_concurrent_creates": s.max_concurrent_creates,
            "tasks": {k: dict(v) for k, v in s.tasks.items()},
        }
    if what == "counters":  # without building the whole snapshot (it walks every task)
        return [sum(sim._requests.values()), sim._accounts.rate_limited]
    if what == "tasks":
        return {t.id: [t.create_s, t.t_done] for t in sim._tasks.values()}
    if what == "log":
        clock = sim._clock
        # Entry times are simulated epochs: map them back to real monotonic time.
        return [
            [clock._mono0 + (e.time - clock._epoch0) * clock.time_scale, e.endpoint, e.code]
            for e in sim.request_log
        ]
    return {"error": f"unknown command {what!r}"}


# --------------------------------------------------------------------------- results


def row(
    bench: str,
    metric: str,
    measured: float,
    target: str,
    ok: bool | None,
    *,
    unit: str = "",
    note: str = "",
) -> dict[str, Any]:
    """One line of the summary table (``ok`` None: reported, no target)."""
    return {
        "bench": bench,
        "metric": metric,
        "measured": measured,
        "unit": unit,
        "target": target,
        "ok": ok,
        "note": note,
        "command": command(bench.lower()),
    }


def emit(rows: Sequence[dict[str, Any]]) -> None:
    """Print the rows for humans, then one machine-readable line for ``python -m benchmarks``."""
    print()
    for r in rows:
        print(f"  {format_row(r)}")
    print("RESULT " + json.dumps(list(rows)), flush=True)


def format_row(r: dict[str, Any]) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "info"}[r["ok"]]
    value = f"{r['measured']:.3g}{r['unit']}"
    return f"{r['bench']:<3} {r['metric']:<44} {value:>10}  target {r['target']:<12} {verdict}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB."""
    fields: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def reset_hwm() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = math.nan
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
