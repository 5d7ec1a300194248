"""What the CLI shows: the demo's own title, help on every flag, plain or boxed summaries,
credits explained, head swaps without a price, and the log level switch."""

from __future__ import annotations

# The `sim` and `no_env` fixtures are imported from test_cli and named again as arguments.
# ruff: noqa: F811
import argparse
import io
import json
import logging
from pathlib import Path

import pytest
from test_cli import SCALE, cs, hs, no_env, read_results, sim, write_jobs  # noqa: F401

from akool_async._cli import EXIT_OK, build_parser, main
from akool_async._cli._common import Ui, rich_available
from akool_async._cli._env import log_level
from akool_async._cli._jobs import Estimate
from akool_async._cli._results import Tally
from akool_async._cli._summary import credits_note
from akool_async.testing import AkoolSimulator

BOX_CHARACTERS = set("┃│┏┓┗┛━─┡┩╇╈")


def test_every_flag_of_every_command_has_help_text() -> None:
    """No option or argument of any subcommand (demo's --concurrency and --seed too) lacks help."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert missing == []
    assert {"run", "status", "credits", "simulate", "demo"} <= set(commands.choices)
    demo_help = commands.choices["demo"].format_help()
    assert "random seed" in demo_help
    assert "creates in flight" in demo_help


def test_demo_summary_is_titled_for_the_demo(
    tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's summary says "akool-async demo", never "akool-async run"."""
    argv = ["demo", "--jobs", "6", "--time-scale", "0.002", "--failure-rate", "0"]
    assert main([*argv, "--out", str(tmp_path / "demo.jsonl"), "--progress", "off"]) == EXIT_OK
    stdout = capsys.readouterr().out
    assert "akool-async demo: summary" in stdout
    assert "akool-async run:" not in stdout


def test_summary_is_plain_name_value_lines_when_not_a_terminal(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Written to a pipe or a log, the summary is `name: value` lines without box drawing."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cs(1), cs(2))
    out = tmp_path / "results.jsonl"
    argv = ["run", str(jobs), "--time-scale", str(SCALE), "--out", str(out)]
    assert main([*argv, "--progress", "off"]) == EXIT_OK
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "akool-async run: summary" in lines
    assert "jobs: 2" in lines
    assert "completed: 2" in lines
    assert f"results: {out}" in lines
    assert not BOX_CHARACTERS & set(err)


class TerminalText(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Pretend to be a terminal."""
        return True


@pytest.mark.skipif(not rich_available(), reason="the box table needs the cli extra (rich)")
def test_summary_is_a_box_table_on_a_terminal() -> None:
    """On a terminal (with rich installed) the same rows are drawn as a box table."""
    stream = TerminalText()
    Ui(stream).table("akool-async run: summary", [("jobs", "2"), ("completed", "2")])
    text = stream.getvalue()
    assert BOX_CHARACTERS & set(text)
    assert "completed" in text
    assert "completed: 2" not in text


def test_credits_say_why_charged_and_estimated_differ_and_head_swaps_have_no_price(
    tmp_path: Path, sim: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job without a duration makes the two totals differ, and the summary says why."""
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", cs(1), cs(2, duration=None), hs(3, key="team")
    )
    out = tmp_path / "results.jsonl"
    argv = ["run", str(jobs), "--time-scale", str(SCALE), "--out", str(out)]
    assert main([*argv, "--progress", "off"]) == EXIT_OK
    lines = capsys.readouterr().err.splitlines()
    note = next(line for line in lines if line.startswith("credits note: "))
    assert "they differ" in note
    assert "1 character swap(s) without a duration are charged, not estimated" in note
    charged = next(line for line in lines if line.startswith("credits charged: "))
    assert "head swaps: n/a" in charged
    results = read_results(out)
    assert results["team"]["credits"] == "n/a"
    by_line = {r["line"]: r for r in results.values()}
    assert isinstance(by_line[1]["credits"], int)
    assert main(["status", results["team"]["task_id"], "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["credits"] == "n/a"


def test_credits_note_is_empty_when_charged_equals_estimated() -> None:
    """No note when the credits charged are exactly the estimate."""
    tally = Tally(2)
    tally.credits = 40.0
    assert credits_note(tally, Estimate(40, 2, 0, 0)) == ""
    assert credits_note(tally, Estimate(35, 2, 0, 0)).startswith("they differ: ")


def test_log_level_flag_wins_over_akool_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """--log-level beats $AKOOL_LOG; $AKOOL_LOG applies alone; neither means no logging."""
    monkeypatch.delenv("AKOOL_LOG", raising=False)
    assert log_level(None) is None
    monkeypatch.setenv("AKOOL_LOG", "DEBUG")
    assert log_level(None) == "debug"
    assert log_level("error") == "error"


def test_log_level_sends_the_sdk_logger_to_stderr(
    sim: AkoolSimulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Debug logging shows the SDK's requests on stderr; the flag overrides the variable."""
    logger = logging.getLogger("akool_async")
    handlers = list(logger.handlers)
    assert main(["credits", "--log-level", "debug"]) == EXIT_OK
    assert "akool-async DEBUG akool_async" in capsys.readouterr().err
    assert logger.handlers == handlers  # the handler is removed again
    monkeypatch.setenv("AKOOL_LOG", "debug")
    assert main(["--log-level", "error", "credits"]) == EXIT_OK
    assert "DEBUG" not in capsys.readouterr().err
    monkeypatch.setenv("AKOOL_LOG", "debug")
    assert main(["credits"]) == EXIT_OK
    assert "akool-async DEBUG" in capsys.readouterr().err
