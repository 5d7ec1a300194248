"""The akool-async command line against the simulator: run, dry-run, exit codes, demo."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from threaded_sim import ThreadedSimulator

import akool_async as akool
from akool_async._cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Estimate, main
from akool_async._cli._jobs import content_key
from akool_async._converters import request_from_dict
from akool_async.testing import AkoolSimulator, Duration

#: Real seconds per simulated second, for the simulator and the CLI's --time-scale alike.
SCALE = 0.001
FAST_DURATIONS = {
    "character_swap": Duration(queue=2.0, process=20.0),
    "head_swap": Duration(queue=2.0, process=25.0),
    "analysis": Duration(queue=1.0, process=5.0),
}
ENV_NAMES = ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET", "AKOOL_BASE_URL")


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Akool credentials or base URL in the environment."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, no_env: None) -> Iterator[AkoolSimulator]:
    """A fast simulator in a thread, with AKOOL_API_KEY/AKOOL_BASE_URL pointing at it."""
    with ThreadedSimulator(time_scale=SCALE, durations=FAST_DURATIONS) as simulator:
        monkeypatch.setenv("AKOOL_API_KEY", simulator.api_key)
        monkeypatch.setenv("AKOOL_BASE_URL", simulator.base_url)
        yield simulator


def cs(i: int, **extra: Any) -> dict[str, Any]:
    """A character swap job line."""
    return {
        "kind": "character_swap",
        "image": f"https://example.com/img/{i}.png",
        "video": f"https://example.com/video/{i}.mp4?duration=8",
        "duration": 8,
        **extra,
    }


def hs(i: int, **extra: Any) -> dict[str, Any]:
    """A head swap job line (two people in the source video, face 0 mapped)."""
    return {
        "kind": "head_swap",
        "video_url": f"https://example.com/source/{i}.mp4?people=2&duration=8",
        "faces": [{"obj_id": 0, "img_url": f"https://example.com/face/{i}.png"}],
        **extra,
    }


def write_jobs(path: Path, *lines: dict[str, Any] | str) -> Path:
    """Write job lines (dicts as JSON, strings verbatim) to ``path``."""
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    path.write_text(text, encoding="utf-8")
    return path


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """The results JSONL keyed by job key."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {r["key"]: r for r in records}


def creates(sim: AkoolSimulator) -> int:
    """Create and analyze requests the simulator received."""
    r = sim.stats.requests
    names = ("character_swap.create", "head_swap.create", "head_swap.analyze")
    return sum(r.get(name, 0) for name in names)


# ---------------------------------------------------------------------------- dry run


def test_dry_run_validates_and_estimates_without_credentials_or_requests(
    tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid file dry-runs with exit 0, an estimate from the price table and no key at all."""
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        "# a comment",
        cs(1, resolution="1080p", duration=12),  # 3 blocks x 15
        "",
        cs(2, resolution="480p", duration=5),  # 1 block x 5
        cs(3, duration=None),
        hs(4),
    )
    assert main(["run", str(jobs), "--dry-run"]) == EXIT_OK
    out = capsys.readouterr()
    assert "4 valid job(s): 3 character swap(s), 1 head swap(s)" in out.err
    assert "estimated credits: 50 for 2 character swap(s)" in out.err
    assert "1 character swap(s) without a duration" in out.err
    assert "1 head swap(s) (no public price)" in out.err
    assert "nothing was sent" in out.err


def test_dry_run_reports_every_bad_line_with_its_number_and_field(
    tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every problem of every bad line is listed (not only the first) and the exit code is 2."""
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        cs(1, key="a"),
        '{"kind": "character_swap", "image": ',
        {"kind": "face_swap"},
        "# fine",
        cs(5, duration=500, resolution="4k"),
        cs(6, key="a"),
        hs(7, faces=[{"obj_id": -1, "img_url": "ftp://x"}]),
        "[1, 2]",
        cs(9, colour="red"),
        cs(10, key=""),
    )
    assert main(["run", str(jobs), "--dry-run"]) == EXIT_USAGE
    err = capsys.readouterr().err
    expected = [
        "line 2: json:",
        "line 3: request.kind: must be 'character_swap' or 'head_swap'",
        "line 5: CharacterSwap.duration: must be between 1 and 120 seconds",
        "line 5: CharacterSwap.resolution: must be one of",
        "line 6: key: 'a' is already used by line 1",
        "line 7: HeadSwap.faces[0].obj_id: must be an integer >= 0",
        "line 7: HeadSwap.faces[0].img_url: must be an http or https URL",
        "line 8: line: must be a JSON object",
        "line 9: CharacterSwap.colour: unknown field",
        "line 10: key: must be a non-empty string",
    ]
    for text in expected:
        assert text in err, text
    assert "line 1:" not in err
    assert "8 invalid line(s), 10 problem(s); nothing was sent" in err


def test_run_refuses_invalid_input_before_sending_anything(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real run with one bad line exits 2 and the simulator sees no create at all."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1), cs(2, mode="dance"))
    assert main(["run", str(jobs), "--time-scale", str(SCALE)]) == EXIT_USAGE
    assert "line 2: CharacterSwap.mode" in capsys.readouterr().err
    assert creates(sim) == 0


def test_max_credits_refuses_to_start_when_the_estimate_is_above_it(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """An estimate above --max-credits exits 2 with the numbers and sends nothing."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1, duration=20), cs(2, duration=20))  # 80
    assert main(["run", str(jobs), "--max-credits", "79"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "refusing to start: the estimate (80 credits) exceeds --max-credits 79" in err
    assert creates(sim) == 0
    assert main(["run", str(jobs), "--dry-run", "--max-credits", "79"]) == EXIT_USAGE


# ---------------------------------------------------------------------------- run


def test_run_writes_one_json_line_per_outcome_and_exits_1_on_a_failure(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Completed and failed jobs each get one record with key, ids, status, URL and error."""
    failing = cs(3, key="bad", video="https://example.com/v.mp4?fail=1&duration=5", duration=5)
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1, key="first"), cs(2), failing, hs(4))
    out = tmp_path / "results.jsonl"
    code = main(["run", str(jobs), "--out", str(out), "--time-scale", str(SCALE)])
    assert code == EXIT_FAILED
    results = read_results(out)
    # A keyless line's key comes from its content, never its line number.
    by_line = {r["line"]: key for key, r in results.items()}
    assert set(results) == {"first", "bad", by_line[2], by_line[4]}
    assert by_line[2] == content_key(request_from_dict(cs(2)), 1)
    ok = results["first"]
    assert ok["ok"] is True
    assert ok["line"] == 1
    assert ok["kind"] == "character_swap"
    assert ok["status"] == "completed"
    assert ok["output_url"].startswith("http")
    assert ok["credits"] == 20
    assert ok["error"] is None
    assert ok["task_id"]
    assert (ok["path"], ok["download_error"]) == (None, None)  # no --download-dir
    head = results[by_line[4]]
    assert (head["ok"], head["kind"], head["status"]) == (True, "head_swap", "completed")
    bad = results["bad"]
    assert bad["ok"] is False
    assert bad["status"] == "failed"
    assert bad["failure_reason"]
    assert bad["error"]["type"] == "TaskFailedError"
    assert bad["task_id"]
    captured = capsys.readouterr()
    assert "akool-async run: summary" in captured.err
    assert "1 TaskFailedError" in captured.err
    assert sim.api_key not in captured.err + captured.out + out.read_text(encoding="utf-8")


def test_run_exits_0_when_every_job_completes_and_prints_results_to_stdout(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --out the JSON lines go to stdout and the human summary to stderr."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", *(cs(i) for i in range(5)), hs(9))
    argv = ["run", str(jobs), "--time-scale", str(SCALE), "--progress", "plain"]
    assert main([*argv, "--progress-interval", "0.01"]) == EXIT_OK
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert sorted(r["line"] for r in records) == [1, 2, 3, 4, 5, 6]
    assert all(r["ok"] for r in records)
    assert "completed" in captured.err
    assert "jobs/s" in captured.err


def test_status_and_credits_read_the_account(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status ID` finds a task of either kind; `credits` prints the balance."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1, key="c"), hs(2, key="h"))
    out = tmp_path / "results.jsonl"
    assert main(["run", str(jobs), "--out", str(out), "--time-scale", str(SCALE)]) == EXIT_OK
    results = read_results(out)
    capsys.readouterr()
    assert main(["status", results["h"]["task_id"], "--json"]) == EXIT_OK
    record = json.loads(capsys.readouterr().out)
    assert record["kind"] == "head_swap"
    assert record["status"] == "completed"
    assert main(["status", results["c"]["task_id"], "--kind", "character_swap"]) == EXIT_OK
    assert "completed" in capsys.readouterr().out
    assert main(["status", "000000000000000000000000"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "NotFoundError" in err
    assert "Traceback" not in err
    # An unknown id names both endpoints it tried, not only the last one.
    assert "character swap: GET /api/open/v3/content/video/infobymodelid" in err
    assert "head swap: GET /api/open/v4/headswap/task/detail" in err
    assert main(["credits"]) == EXIT_OK
    assert f"{sim.balance():,} credits" in capsys.readouterr().out


def plain_get(url: str) -> bytes:
    """The bytes ``url`` serves to a plain aiohttp GET, independent of the SDK."""

    async def get() -> bytes:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
            return await resp.read()

    return asyncio.run(get())


def test_download_dir_saves_every_output_and_a_journal_rerun_downloads_nothing_again(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--download-dir saves each output byte-identical under its safe name; a rerun fetches none."""
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", cs(1, key="clip/1"), cs(2, key="clip 2"), hs(3, key="team")
    )
    videos = tmp_path / "videos"
    argv = ["run", str(jobs), "--journal", str(tmp_path / "run.db"), "--time-scale", str(SCALE)]
    argv += ["--download-dir", str(videos)]
    first_out, second_out = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert main([*argv, "--out", str(first_out)]) == EXIT_OK
    assert "3 file(s) in" in capsys.readouterr().err
    first = read_results(first_out)
    assert sim.stats.requests.get("files", 0) == 3  # one GET per output, no fault injected
    for key, record in first.items():
        assert record["download_error"] is None
        assert Path(record["path"]) == videos / akool.safe_filename(key)
        assert Path(record["path"]).read_bytes() == plain_get(record["output_url"])
    assert sorted(videos.iterdir()) == sorted(Path(r["path"]) for r in first.values())
    before = dict(sim.stats.requests)  # includes the three plain GETs above

    assert main([*argv, "--out", str(second_out)]) == EXIT_OK
    assert "3 file(s) in" in capsys.readouterr().err
    second = read_results(second_out)
    # No create, no poll, no download: only the balance read before and after the run.
    after = dict(sim.stats.requests)
    assert after.pop("credit") == before.pop("credit") + 2
    assert after == before
    assert {k: (r["ok"], r["path"]) for k, r in second.items()} == {
        k: (r["ok"], r["path"]) for k, r in first.items()
    }
    assert sorted(videos.iterdir()) == sorted(Path(r["path"]) for r in first.values())


@pytest.mark.parametrize("argv", [["run", "JOBS"], ["status", "abc"], ["credits"]])
def test_without_an_api_key_the_cli_explains_the_options(
    argv: list[str], tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """No key: exit 2 with how to set AKOOL_API_KEY or use the demo/simulator instead."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1))
    argv = [str(jobs) if a == "JOBS" else a for a in argv]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "export AKOOL_API_KEY=" in err
    assert "akool-async demo" in err
    assert "akool-async simulate" in err
    assert "AKOOL_BASE_URL" in err


def test_usage_errors_exit_2(tmp_path: Path, no_env: None) -> None:
    """Unknown commands, bad numbers, a missing file and half a webhook pair all exit 2."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1))
    assert main([]) == EXIT_USAGE
    assert main(["frobnicate"]) == EXIT_USAGE
    assert main(["run", str(jobs), "--concurrency", "0"]) == EXIT_USAGE
    assert main(["run", str(tmp_path / "missing.jsonl")]) == EXIT_USAGE
    assert main(["run", str(jobs), "--webhook-url", "https://x.example/hook"]) == EXIT_USAGE
    assert main(["run", str(jobs), "--resubmit-uncertain"]) == EXIT_USAGE  # needs --journal
    assert main(["--help"]) == EXIT_OK


# ---------------------------------------------------------------------------- demo, signals


def test_demo_runs_mixed_jobs_on_the_embedded_simulator(
    tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo needs no key, runs character and head swaps through `run`, and summarises."""
    out = tmp_path / "demo.jsonl"
    argv = ["demo", "--jobs", "60", "--time-scale", "0.002", "--out", str(out)]
    assert main([*argv, "--failure-rate", "0.1"]) == EXIT_OK
    stdout = capsys.readouterr().out
    assert "akool-async demo: summary" in stdout
    results = read_results(out)
    assert len(results) == 60
    assert {r["kind"] for r in results.values()} == {"character_swap", "head_swap"}
    failed = [r for r in results.values() if not r["ok"]]
    assert failed, "a 10 % failure rate over 60 jobs should fail some"
    assert all(r["error"]["type"] == "TaskFailedError" for r in failed)


def subprocess_env(sim: AkoolSimulator) -> dict[str, str]:
    """This process's environment pointed at ``sim``."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(AKOOL_API_KEY=sim.api_key, AKOOL_BASE_URL=sim.base_url, PYTHONUNBUFFERED="1")
    return env


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_stops_a_run_cleanly_with_exit_code_130(tmp_path: Path, no_env: None) -> None:
    """SIGINT after the first outcome: written lines stay whole JSON, the exit code is 130."""
    slow = {**FAST_DURATIONS, "head_swap": Duration.fixed(1e6)}  # never finishes
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1, key="quick"), hs(2, key="slow"))
    with ThreadedSimulator(time_scale=SCALE, durations=slow) as simulator:
        proc = subprocess.Popen(
            [sys.executable, "-m", "akool_async", "run", str(jobs), "--time-scale", str(SCALE)],
            env=subprocess_env(simulator),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            first = json.loads(proc.stdout.readline())  # blocks until the first outcome
            assert first["key"] == "quick"
            proc.send_signal(signal.SIGINT)
            rest, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()  # reap it and close its pipes
    assert proc.returncode == EXIT_INTERRUPTED, err
    # The slow job has no outcome, only (with the library's Batch.unfinished) a line that
    # keeps its paid task id; nothing is half-written.
    late = [json.loads(line) for line in rest.splitlines()]
    assert all((r["key"], r["state"]) == ("slow", "interrupted") and r["task_id"] for r in late)
    assert "interrupted" in err
    assert "no outcome yet" in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_simulate_serves_until_interrupted(
    no_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`simulate` prints all four variables to export and the time scale, and stops on SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "akool_async", "simulate", "--port", "0", "--time-scale", "0.01"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        exports: dict[str, str] = {}
        shown: list[str] = []
        while len(exports) < 4:
            line = proc.stdout.readline()
            assert line, "simulate exited early"
            shown.append(line)
            if line.strip().startswith("export "):
                name, _, value = line.strip().removeprefix("export ").partition("=")
                exports[name] = value
        assert set(exports) == {*ENV_NAMES}
        assert any(line.startswith("time scale 0.01:") for line in shown), shown
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        assert main(["credits"]) == EXIT_OK
        assert "credits" in capsys.readouterr().out
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # reap it and close its pipes
    assert proc.returncode == EXIT_OK
    assert "simulator stopped" in out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupted_run_resumes_from_its_journal_without_paying_twice(
    tmp_path: Path, no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT mid-run, then the same command again: it resumes and creates nothing twice."""
    # A manual clock makes the order certain: the character swap and the analysis finish the
    # moment they are created, the head swap only once the test advances the clock.
    instant = Duration(queue=0.0, process=0.0)
    durations = {"character_swap": instant, "analysis": instant, "head_swap": Duration.fixed(10)}
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1, key="quick"), hs(2, key="slow"))
    journal = tmp_path / "run.db"
    argv = ["run", str(jobs), "--journal", str(journal), "--time-scale", str(SCALE)]
    progress = ["--progress", "plain", "--progress-interval", "0.001"]
    threaded = ThreadedSimulator(manual_clock=True, durations=durations)
    with threaded as simulator:
        proc = subprocess.Popen(
            [sys.executable, "-m", "akool_async", *argv, *progress],
            env=subprocess_env(simulator),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            # Wait (blocking on the pipe) for a progress line saying the character swap is
            # done and the head swap is created and being polled.
            for line in proc.stderr:
                if " 1 completed," in line and "| 1 running," in line:
                    break
            else:
                raise AssertionError("the run ended before the head swap was created")
            proc.send_signal(signal.SIGINT)
            out_text, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()  # reap it and close its pipes
        assert proc.returncode == EXIT_INTERRUPTED, err
        # Only the character swap has an outcome: the head swap's clock has not moved.
        assert [json.loads(ln)["key"] for ln in out_text.splitlines()] == ["quick"]
        assert simulator.stats.requests.get("head_swap.create", 0) == 1
        threaded.advance(10)  # the head swap created by the first run finishes now
        for name, value in subprocess_env(simulator).items():
            if name.startswith("AKOOL_"):
                monkeypatch.setenv(name, value)
        out = tmp_path / "results.jsonl"
        assert main([*argv, "--out", str(out)]) == EXIT_OK
        results = read_results(out)
        stats = simulator.stats
    assert set(results) == {"quick", "slow"}
    assert all(r["ok"] for r in results.values())
    assert stats.duplicate_creates == 0
    assert stats.requests.get("character_swap.create", 0) == 1
    assert stats.requests.get("head_swap.create", 0) == 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_options_receive_the_simulators_signed_webhooks(
    tmp_path: Path, sim: AkoolSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--webhook-url/--webhook-listen serve a receiver the simulator posts verified events to."""
    monkeypatch.setenv("AKOOL_CLIENT_ID", sim.client_id)
    port = free_port()
    url = f"http://127.0.0.1:{port}/akool/webhook"
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1), cs(2), hs(3))
    out = tmp_path / "results.jsonl"
    argv = ["run", str(jobs), "--out", str(out), "--time-scale", str(SCALE)]
    argv += ["--webhook-url", url, "--webhook-listen", f"127.0.0.1:{port}"]
    assert main(argv) == EXIT_OK
    assert all(r["ok"] for r in read_results(out).values())
    deliveries = sim.webhook_deliveries
    assert deliveries
    assert {d.url for d in deliveries} == {url}
    assert {d.outcome for d in deliveries} == {"delivered"}


def test_summary_estimate_says_which_jobs_a_partial_estimate_covers() -> None:
    """A partial estimate names the jobs it covers and the ones it leaves out."""
    assert Estimate(120, 3, 0, 0).summary() == "120"
    partial = Estimate(4245, 250, 43, 7).summary()
    assert partial == (
        "4,245 for the 250 character swap(s) with a duration "
        "(not estimated: 43 without a duration, 7 head swap(s))"
    )
    assert Estimate(0, 0, 5, 0).summary().endswith("(not estimated: 5 without a duration)")
