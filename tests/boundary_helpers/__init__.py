"""Helpers of the boundary suite: CLI child processes, job lines, where paid ids ended up."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from akool_async.testing import AkoolSimulator, Duration

#: Real seconds per simulated second, for the simulator and the CLI's --time-scale alike.
SCALE = 0.001
FAST_DURATIONS = {
    "character_swap": Duration(queue=2.0, process=20.0),
    "head_swap": Duration(queue=2.0, process=25.0),
    "analysis": Duration(queue=1.0, process=5.0),
}
#: Head swaps that never finish while a test looks (a run stays busy until stopped).
ENDLESS_HEAD_SWAPS = {**FAST_DURATIONS, "head_swap": Duration.fixed(1e6)}
ENV_NAMES = ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET", "AKOOL_BASE_URL")
#: The longest any single wait of the suite may take (seconds).
WAIT = 30.0
LIMITED = Path(__file__).parent / "limited_cli.py"


def cs(i: int, **extra: Any) -> dict[str, Any]:
    """A character swap job line (8 s video: 20 credits at 720p)."""
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


def write_jobs(path: Path, lines: Iterable[dict[str, Any] | str]) -> Path:
    """Write job lines (dicts as JSON, strings verbatim) to ``path``."""
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    path.write_text(text, encoding="utf-8")
    return path


def cli_env(sim: AkoolSimulator, **overrides: str) -> dict[str, str]:
    """This process's environment pointed at ``sim`` (unbuffered, no Akool leftovers)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(AKOOL_API_KEY=sim.api_key, AKOOL_BASE_URL=sim.base_url, PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


class Child:
    """A CLI child process whose stdout and stderr lines are read by threads into queues."""

    def __init__(self, argv: list[str], env: dict[str, str], *, fsize: int | None = None) -> None:
        prefix = [sys.executable, "-m", "akool_async"]
        if fsize is not None:  # the results file may grow to fsize bytes, then EFBIG
            prefix = [sys.executable, str(LIMITED), str(fsize)]
        self.proc = subprocess.Popen(
            [*prefix, *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=("out", self.proc.stdout), daemon=True),
            threading.Thread(target=self._read, args=("err", self.proc.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put((name, line.rstrip("\n")))
        self._lines.put((name, None))

    def wait_line(self, name: str, matches: Callable[[str], bool], timeout: float = WAIT) -> str:
        """Block (at most ``timeout`` s) until a line of ``name`` (out/err) matches."""
        ended = set()
        while True:
            try:
                stream, line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no matching {name} line within {timeout} s") from None
            if line is None:
                ended.add(stream)
                if stream == name:
                    raise AssertionError(f"{name} ended without a matching line: {self.err}")
                continue
            (self.out if stream == "out" else self.err).append(line)
            if stream == name and matches(line):
                return line

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child."""
        self.proc.send_signal(signum)

    def finish(self, timeout: float = WAIT) -> int:
        """Wait for the child to exit and collect every remaining line; its exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for reader in self._readers:
            reader.join(timeout)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        while not self._lines.empty():
            stream, line = self._lines.get_nowait()
            if line is not None:
                (self.out if stream == "out" else self.err).append(line)
        return code

    def kill(self) -> None:
        """SIGKILL the child (if still running) and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.finish()


def run_cli(argv: list[str], env: dict[str, str], **options: Any) -> tuple[int, Child]:
    """Run the CLI to its end: (exit code, the finished child)."""
    child = Child(argv, env, **options)
    return child.finish(), child


def paid_ids(sim: AkoolSimulator) -> set[str]:
    """Ids of every swap task the simulator created (call once no child is running)."""
    ids = list(sim._tasks)
    return {i for i in ids if sim.task(i).kind in ("character_swap", "head_swap")}


def swap_creates(sim: AkoolSimulator) -> int:
    """Swap create requests the simulator received (analyses are free and not counted)."""
    r = sim.stats.requests
    return r.get("character_swap.create", 0) + r.get("head_swap.create", 0)


def journal_ids(path: Path) -> set[str]:
    """Task ids recorded in a journal (read directly: the journal may be held or broken)."""
    if not path.exists():
        return set()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT task_id FROM jobs WHERE task_id IS NOT NULL").fetchall()
    return {row[0] for row in rows}


def jsonl_records(path: Path) -> list[dict[str, Any]]:
    """The whole JSON lines of a results or recovery file ([] when it does not exist)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    # A line cut by the failure the file shows is not a record: only whole objects count.
    return [json.loads(line) for line in lines if _whole_json(line)]


def _whole_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


def jsonl_ids(*paths: Path) -> set[str]:
    """Task ids in results/recovery files."""
    return {r["task_id"] for p in paths for r in jsonl_records(p) if r.get("task_id")}


def assert_one_line_error(err: list[str], *, starts: str = "akool-async: ") -> str:
    """No traceback on stderr, and its last line is one ``akool-async:`` line; that line."""
    text = "\n".join(err)
    assert "Traceback" not in text, text
    assert err, "nothing on stderr"
    assert err[-1].startswith(starts), text
    return err[-1]
