"""Every CLI failure is one line on stderr with the documented exit code, never a traceback."""

from __future__ import annotations

# The `sim` and `no_env` fixtures are imported from test_cli and named again as arguments.
# ruff: noqa: F811
import json
import random
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import SCALE, creates, cs, hs, no_env, read_results, sim, write_jobs  # noqa: F401

import akool_async._cli._run as cli_run
from akool_async._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from akool_async.testing import AkoolSimulator


def assert_one_line(err: str) -> str:
    """``err`` is exactly one line, no traceback, and nothing was announced as running."""
    assert "Traceback" not in err
    assert "running " not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def run_argv(jobs: Path, *extra: str) -> list[str]:
    """A fast `run` of ``jobs`` with ``extra`` flags."""
    return ["run", str(jobs), "--time-scale", str(SCALE), *extra]


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    """A valid two-job file."""
    return write_jobs(tmp_path / "jobs.jsonl", cs(1), hs(2))


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    """A regular file, to stand where a directory is needed."""
    path = tmp_path / "a-file"
    path.write_text("not a directory\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- webhooks


def test_webhooks_without_a_client_id_exit_2_before_anything_is_sent(
    jobs: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--webhook-url without $AKOOL_CLIENT_ID is one line naming the variable, exit 2."""
    hook = ["--webhook-url", "http://127.0.0.1:9/hook", "--webhook-listen", "127.0.0.1:9"]
    assert main(run_argv(jobs, *hook)) == EXIT_USAGE
    assert "$AKOOL_CLIENT_ID" in assert_one_line(capsys.readouterr().err)
    assert creates(sim) == 0


def test_a_client_secret_of_the_wrong_length_exits_2_without_echoing_it(
    jobs: Path,
    sim: AkoolSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A webhook secret that is not 16/24/32 bytes is one line, exit 2, nothing sent."""
    monkeypatch.setenv("AKOOL_CLIENT_ID", sim.client_id)
    monkeypatch.setenv("AKOOL_CLIENT_SECRET", "short-secret")
    hook = ["--webhook-url", "http://127.0.0.1:9/hook", "--webhook-listen", "127.0.0.1:9"]
    assert main(run_argv(jobs, *hook)) == EXIT_USAGE
    line = assert_one_line(capsys.readouterr().err)
    assert "16, 24 or 32" in line
    assert "short-secret" not in line
    assert creates(sim) == 0


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_busy_webhook_port_exits_2_before_anything_is_sent(
    jobs: Path,
    sim: AkoolSimulator,
    busy_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--webhook-listen on a port in use is one line naming it, exit 2, no create."""
    monkeypatch.setenv("AKOOL_CLIENT_ID", sim.client_id)
    listen = f"127.0.0.1:{busy_port}"
    hook = ["--webhook-url", f"http://{listen}/hook", "--webhook-listen", listen]
    assert main(run_argv(jobs, *hook)) == EXIT_USAGE
    assert f"--webhook-listen {listen}: cannot listen" in assert_one_line(capsys.readouterr().err)
    assert creates(sim) == 0


# ---------------------------------------------------------------------------- files


@pytest.mark.parametrize("where", ["inside a file", "a directory"])
def test_an_unwritable_out_path_exits_2_before_anything_is_sent(
    where: str,
    jobs: Path,
    regular_file: Path,
    sim: AkoolSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--out under a regular file, or naming a directory, is one line, exit 2, no create."""
    out = regular_file / "results.jsonl" if where == "inside a file" else regular_file.parent
    assert main(run_argv(jobs, "--out", str(out))) == EXIT_USAGE
    assert f"--out {out}: cannot write" in assert_one_line(capsys.readouterr().err)
    assert creates(sim) == 0


def test_a_download_dir_that_is_a_file_exits_2_before_anything_is_sent(
    jobs: Path, regular_file: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--download-dir naming a regular file is refused before paying for any video."""
    assert main(run_argv(jobs, "--download-dir", str(regular_file))) == EXIT_USAGE
    assert "not a directory" in assert_one_line(capsys.readouterr().err)
    assert creates(sim) == 0


def test_a_journal_that_cannot_be_opened_exits_2_before_anything_is_sent(
    jobs: Path, regular_file: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --journal path whose parent is a regular file is one line, exit 2, no create."""
    assert main(run_argv(jobs, "--journal", str(regular_file / "run.db"))) == EXIT_USAGE
    assert "is not a directory" in assert_one_line(capsys.readouterr().err)
    assert creates(sim) == 0


def test_a_corrupted_journal_exits_2_before_anything_is_sent(
    jobs: Path, tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal file of random bytes is refused in one line, exit 2, and left untouched."""
    journal = tmp_path / "run.db"
    garbage = random.Random(17).randbytes(8192)
    journal.write_bytes(garbage)
    assert main(run_argv(jobs, "--journal", str(journal))) == EXIT_USAGE
    assert "not an akool-async journal" in assert_one_line(capsys.readouterr().err)
    assert creates(sim) == 0
    assert journal.read_bytes() == garbage


def test_a_journal_of_a_newer_schema_exits_2_before_anything_is_sent(
    jobs: Path, tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal written by a newer version is one line asking for an upgrade, exit 2."""
    journal = tmp_path / "run.db"
    first = write_jobs(tmp_path / "first.jsonl", cs(7))
    assert main(run_argv(first, "--journal", str(journal), "--out", str(tmp_path / "r"))) == 0
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE journal_meta SET value = '99' WHERE name = 'schema_version'")
    conn.close()
    before = creates(sim)
    capsys.readouterr()
    assert main(run_argv(jobs, "--journal", str(journal))) == EXIT_USAGE
    assert "newer akool-async" in assert_one_line(capsys.readouterr().err)
    assert creates(sim) == before


# ---------------------------------------------------------------------------- input, env


def test_hostile_jsonl_lines_are_reported_per_line_without_a_traceback(
    tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 5,000-digit integer and 100k nested arrays each become one error for their line."""
    huge = json.dumps(cs(1)).replace('"duration": 8', '"duration": ' + "9" * 5000)
    deep = '{"kind": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = write_jobs(tmp_path / "jobs.jsonl", cs(0), huge, deep, cs(4))
    assert main(["run", str(path), "--dry-run"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{path}:line 2: ")
    assert lines[1] == f"{path}:line 3: json: is nested too deeply to decode"
    assert lines[2].endswith("2 invalid line(s), 2 problem(s); nothing was sent")
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ({**cs(1), "kind": "charactr_swap"}, "did you mean 'character_swap'?"),
        ({**hs(1), "kind": "headswap"}, "did you mean 'head_swap'?"),
        ({**cs(1), "resolutoin": "720p"}, "did you mean 'resolution'?"),
        ({**hs(1), "faces": [{"obj_id": 0, "img_ur": "https://e.com/f.png"}]}, "'img_url'?"),
    ],
)
def test_unknown_kinds_and_fields_suggest_the_closest_name(
    line: dict[str, object],
    hint: str,
    tmp_path: Path,
    no_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A misspelt kind or field is reported with the closest valid name."""
    path = write_jobs(tmp_path / "jobs.jsonl", line)
    assert main(["run", str(path), "--dry-run"]) == EXIT_USAGE
    assert hint in capsys.readouterr().err


def test_an_api_key_ending_in_crlf_is_stripped(
    tmp_path: Path,
    sim: AkoolSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A key pasted with a trailing CR LF works for `credits` and `run` alike."""
    monkeypatch.setenv("AKOOL_API_KEY", sim.api_key + "\r\n")
    assert main(["credits"]) == EXIT_OK
    out = tmp_path / "results.jsonl"
    path = write_jobs(tmp_path / "jobs.jsonl", cs(1))
    assert main(run_argv(path, "--out", str(out))) == EXIT_OK
    assert all(r["ok"] for r in read_results(out).values())
    assert "Traceback" not in capsys.readouterr().err


def test_a_control_character_inside_the_key_is_one_line_that_hides_the_key(
    sim: AkoolSimulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key with a control character inside is refused in one line that names only the variable."""
    monkeypatch.setenv("AKOOL_API_KEY", "sim-akool\r\n-api-key")
    assert main(["credits"]) == EXIT_USAGE
    line = assert_one_line(capsys.readouterr().err)
    assert "$AKOOL_API_KEY" in line
    assert "sim-akool" not in line


# ---------------------------------------------------------------------------- bugs


def test_an_unexpected_exception_is_one_internal_error_line_and_exit_1(
    jobs: Path,
    sim: AkoolSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bug inside a run ends as one "internal error ...; please report" line, exit 1."""

    def broken(*_args: object) -> dict[str, object]:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(cli_run, "outcome_record", broken)
    assert main(run_argv(jobs, "--progress", "off")) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "akool-async: internal error: RuntimeError: simulated bug; please report"
    )


def test_akool_log_debug_shows_the_traceback_of_an_internal_error(
    jobs: Path,
    sim: AkoolSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With AKOOL_LOG=debug the internal error keeps its traceback, then the one line."""

    def broken(*_args: object) -> dict[str, object]:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(cli_run, "outcome_record", broken)
    monkeypatch.setenv("AKOOL_LOG", "debug")
    assert main(run_argv(jobs, "--progress", "off")) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "internal error: RuntimeError: simulated bug" in err.strip().splitlines()[-1]
