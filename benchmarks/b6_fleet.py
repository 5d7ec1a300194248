"""B6 fleet: N processes run the same jobs file against one Postgres store.

A throwaway PostgreSQL cluster (``tests/pg_cluster.py``) and the simulator with a per-account
limit of 20 requests per simulated second, time-scaled by ``TIME_SCALE`` (so 200 real
requests/s); jobs take 10 + 60 simulated seconds (7 s real). Each member's client budget is
above the limit (150 polls/s + 250 creates/s), so the shared bucket's AIMD finds the limit.
For 1, 2, 4 and 8 processes (``python -m benchmarks._fleet_member``) on a fresh database:
duplicate creates (the simulator's count), keys without an outcome, keys with more than
one, accepted requests/s against the limit from the first create to the last (member
start-up is shown apart as members' CPU), throttled share, polls per job. Then 4 processes
with one SIGKILLed after ``KILL_AFTER`` s: its jobs must be finished by the others with 0
re-creates; the time until they were taken over is printed.
``AKOOL_B6_JOBS`` sets the number of jobs (default 2000), ``AKOOL_B6_MEMBERS`` the fleet sizes
(default ``1,2,4,8``). Webhook latency: two members with receivers, each naming its own
receiver or the other one's in its creates, 3 alternated rounds of 300 jobs each.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from ._common import SimProcess, emit, row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_cluster import postgres_cluster

LIMIT = 20.0
TIME_SCALE = 0.1
REAL_LIMIT = LIMIT / TIME_SCALE
N_JOBS = int(os.environ.get("AKOOL_B6_JOBS", "2000"))
LEASE_TTL = 3.0
KILL_AFTER = 4.0
SAMPLE_EVERY = 0.1  # seconds between samples of the simulator's request counters
WEBHOOK_JOBS = 300
WEBHOOK_ROUNDS = 3  # right and wrong replica runs, alternated
MEMBERS = [int(n) for n in os.environ.get("AKOOL_B6_MEMBERS", "1,2,4,8").split(",")]
DURATIONS = {"character_swap": {"queue": 10.0, "process": 60.0, "per_video_second": 0.0}}


async def fresh_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def run_fleet(
    sim: SimProcess,
    store: str,
    name: str,
    members: int,
    kill_after: float | None,
    *,
    jobs: int = N_JOBS,
    extra: Callable[[int], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run ``members`` member processes to the end; ``extra(i)`` adds to member i's config."""
    out = Path(tempfile.mkdtemp(prefix="b6-")) / "outcomes.jsonl"
    logs = out.parent
    config = {"url": sim.url, "api_key": sim.api_key, "store": store, "jobs": jobs,
              "lease_ttl": LEASE_TTL, "out": str(out), "logs": str(logs),
              "run": name}  # fmt: skip
    before = sim.stats()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    member = [sys.executable, "-m", "benchmarks._fleet_member"]
    procs = [
        subprocess.Popen([*member, json.dumps({**config, **(extra(i) if extra else {})})])
        for i in range(members)
    ]
    killed_at = None
    samples: list[tuple[float, int]] = []  # (monotonic time, accepted requests so far)
    while any(p.poll() is None for p in procs):
        now = time.monotonic()
        if kill_after is not None and killed_at is None and now - start >= kill_after:
            procs[0].send_signal(signal.SIGKILL)
            killed_at = now
        total, limited = sim.counters()
        samples.append((time.monotonic(), total - limited))
        time.sleep(SAMPLE_EVERY)
    elapsed = time.monotonic() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    after = sim.stats()
    samples.append((time.monotonic(), after["total"] - after["rate_limited"]))
    lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    created = sorted(
        sim.sim_to_mono(c) for c, _ in sim.tasks().values() if sim.sim_to_mono(c) >= start
    )
    takeovers = sorted(
        float(line.split()[0])
        for log in logs.glob("member-*.log")
        for line in log.read_text().splitlines()
        if "took over" in line
    )
    return {"lines": lines, "elapsed": elapsed, "before": before, "after": after,
            "killed_at": killed_at, "start": start, "samples": samples,
            "created": created, "takeovers": takeovers, "cpu": cpu}  # fmt: skip


def accepted_at(samples: list[tuple[float, int]], when: float) -> float:
    """Accepted requests so far at ``when`` (linear between the two samples around it)."""
    earlier = [(t, n) for t, n in samples if t <= when] or [samples[0]]
    later = [(t, n) for t, n in samples if t >= when] or [samples[-1]]
    (t0, n0), (t1, n1) = earlier[-1], later[0]
    return n0 if t1 == t0 else n0 + (n1 - n0) * (when - t0) / (t1 - t0)


def diff(after: dict[str, Any], before: dict[str, Any], endpoint: str) -> int:
    return int(after["requests"].get(endpoint, 0) - before["requests"].get(endpoint, 0))


def summarise(members: int, r: dict[str, Any], store_done: int) -> dict[str, Any]:
    keys = [x["key"] for x in r["lines"]]
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    polls = diff(r["after"], r["before"], "character_swap.result")
    total = r["after"]["total"] - r["before"]["total"]
    throttled = r["after"]["rate_limited"] - r["before"]["rate_limited"]
    # Throughput while the fleet had creates to send, from the first task created to the
    # last: before it the member processes start (imports, pools: CPU, not the fleet's
    # pace), after it only the jobs' own duration is left, which no request rate shortens.
    busy_from = r["created"][0] if r["created"] else r["start"]
    busy_until = r["created"][-1] if r["created"] else r["start"] + r["elapsed"]
    busy = accepted_at(r["samples"], busy_until) - accepted_at(r["samples"], busy_from)
    return {
        "members": members,
        "outcomes": len(keys),
        "twice": sum(1 for n in counts.values() if n > 1),
        "missing": N_JOBS - len(counts),
        "store_done": store_done,
        "tasks": len(r["created"]),
        "dup_creates": r["after"]["duplicate_creates"] - r["before"]["duplicate_creates"],
        "rate": busy / max(1e-9, busy_until - busy_from),
        "busy": busy_until - busy_from,
        "throttled": throttled / max(1, total),
        "polls_per_job": polls / N_JOBS,
        "elapsed": r["elapsed"],
        "cpu": r["cpu"],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def webhook_latency(sim: SimProcess, dsn: str, name: str, *, wrong: bool) -> dict[str, Any]:
    """Two members with receivers; each member's creates name its own receiver (``wrong``
    False) or the other member's. Seconds from each task's end to its outcome."""
    ports = [free_port(), free_port()]

    def hook(i: int) -> dict[str, Any]:
        target = ports[1 - i] if wrong else ports[i]
        url = f"http://127.0.0.1:{target}/hook"
        secrets = {"client_id": sim.client_id, "client_secret": sim.client_secret}
        return {"webhook": {"port": ports[i], "url": url, **secrets}}

    r = run_fleet(sim, dsn, name, 2, None, jobs=WEBHOOK_JOBS, extra=hook)
    done = {task: sim.sim_to_mono(end) for task, (_, end) in sim.tasks().items()}
    latencies = [x["t"] - done[x["task_id"]] for x in r["lines"] if x.get("task_id")]
    polls = diff(r["after"], r["before"], "character_swap.result")
    return {"latencies": latencies, "polls": polls}


def merge_latencies(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and p90 over every outcome of the runs of one case, and polls per job."""
    latencies = sorted(x for r in runs for x in r["latencies"])
    return {
        "n": len(latencies),
        "median": statistics.median(latencies),
        "p90": latencies[int(0.9 * (len(latencies) - 1))],
        "polls_per_job": sum(r["polls"] for r in runs) / (WEBHOOK_JOBS * len(runs)),
    }


async def store_terminal(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM akool_jobs WHERE state IN ('completed','failed','uncertain')"
        ))
    finally:
        await conn.close()


def main() -> None:
    results = []
    kill: dict[str, Any] | None = None
    with postgres_cluster() as cluster, SimProcess(
        rate_limit=LIMIT, time_scale=TIME_SCALE, durations=DURATIONS, seed=6,
        log_size=10,
    ) as sim:  # fmt: skip
        for members in MEMBERS:
            name = f"b6_{members}"
            asyncio.run(fresh_database(cluster.admin_dsn(), name))
            dsn = cluster.dsn.replace("/akool?", f"/{name}?")
            r = run_fleet(sim, dsn, name, members, None)
            results.append(summarise(members, r, asyncio.run(store_terminal(dsn))))
        asyncio.run(fresh_database(cluster.admin_dsn(), "b6_kill"))
        dsn = cluster.dsn.replace("/akool?", "/b6_kill?")
        r = run_fleet(sim, dsn, "b6_kill", 4, KILL_AFTER)
        kill = summarise(4, r, asyncio.run(store_terminal(dsn)))
        after_kill = [x["t"] for x in r["lines"] if x["t"] > r["killed_at"]]
        kill["finish_after_kill"] = (max(after_kill) - r["killed_at"]) if after_kill else 0.0
        # Wall-clock stamps of the members' "took over" log lines, as seconds after the kill.
        offset = time.time() - time.monotonic()
        resumed = [t - offset - r["killed_at"] for t in r["takeovers"]]
        kill["resumed_after_kill"] = min(resumed) if resumed else float("nan")
        runs: dict[str, list[dict[str, Any]]] = {"right": [], "wrong": []}
        for n, case in enumerate(("right", "wrong") * WEBHOOK_ROUNDS):  # alternated
            db = f"b6_hooks_{case}_{n}"
            asyncio.run(fresh_database(cluster.admin_dsn(), db))
            runs[case].append(webhook_latency(
                sim, cluster.dsn.replace("/akool?", f"/{db}?"), db, wrong=case == "wrong"
            ))  # fmt: skip
        hooks = {case: merge_latencies(r) for case, r in runs.items()}
    print(f"limit {LIMIT:.0f}/s simulated = {REAL_LIMIT:.0f}/s real, {N_JOBS} jobs, "
          f"lease {LEASE_TTL:.0f} s")
    print("members outcomes twice missing tasks dup_creates  busy_s  accepted/s  of-limit "
          "throttled polls/job  elapsed  members_cpu_s")
    for s in [*results, kill]:
        print(f"{s['members']:>7} {s['outcomes']:>8} {s['twice']:>5} {s['missing']:>7} "
              f"{s['tasks']:>5} {s['dup_creates']:>11} {s['busy']:>7.1f} {s['rate']:>11.1f} "
              f"{s['rate'] / REAL_LIMIT:>9.0%} {s['throttled']:>9.1%} "
              f"{s['polls_per_job']:>9.2f} {s['elapsed']:>8.1f} {s['cpu']:>14.1f}")
    assert kill is not None
    print(f"kill case: member SIGKILLed at {KILL_AFTER:.0f} s; the others took its jobs over "
          f"{kill['resumed_after_kill']:.1f} s after the kill (lease {LEASE_TTL:.0f} s); last "
          f"outcome {kill['finish_after_kill']:.1f} s after the kill; store terminal "
          f"{kill['store_done']} of {N_JOBS}")
    for case, h in hooks.items():
        print(f"webhooks to the {case} replica: {h['n']} outcomes, latency from the task's end "
              f"median {h['median'] * 1000:.0f} ms, p90 {h['p90'] * 1000:.0f} ms; "
              f"{h['polls_per_job']:.2f} polls/job")
    base = results[0]["polls_per_job"]
    rows = []
    for s in results:
        n = s["members"]
        rows += [
            row("B6", f"{n} proc: duplicate creates", s["dup_creates"], "0", s["dup_creates"] == 0),
            row("B6", f"{n} proc: keys without/with 2 outcomes", s["missing"] + s["twice"], "0",
                s["missing"] + s["twice"] == 0),
            row("B6", f"{n} proc: throughput while creating, of the limit",
                s["rate"] / REAL_LIMIT * 100, ">= 85 %", s["rate"] >= 0.85 * REAL_LIMIT,
                unit=" %"),
            row("B6", f"{n} proc: throttled answers", s["throttled"] * 100, "< 5 %",
                s["throttled"] < 0.05, unit=" %"),
            row("B6", f"{n} proc: polls per job vs 1 proc", s["polls_per_job"] / base * 100,
                "within 10 %", abs(s["polls_per_job"] / base - 1) <= 0.10, unit=" %"),
        ]
    rows.append(row("B6", "kill: duplicate creates", kill["dup_creates"], "0",
                    kill["dup_creates"] == 0, note="one of 4 members SIGKILLed"))
    rows.append(row("B6", "kill: jobs with no outcome anywhere", N_JOBS - kill["store_done"],
                    "0", kill["store_done"] == N_JOBS))
    ratio = hooks["wrong"]["median"] / hooks["right"]["median"]
    rows.append(row("B6", "webhooks to the wrong replica: median latency vs right", ratio * 100,
                    "within 10 %", ratio <= 1.10, unit=" %",
                    note=f"right {hooks['right']['median'] * 1000:.0f} ms, wrong "
                         f"{hooks['wrong']['median'] * 1000:.0f} ms"))  # fmt: skip
    rows.append(row("B6", "kill: seconds until its jobs were taken over",
                    kill["resumed_after_kill"], "printed", True,
                    note=f"lease {LEASE_TTL:.0f} s"))
    emit(rows)


if __name__ == "__main__":
    main()
