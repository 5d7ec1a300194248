"""Exit codes, the usage error and the text helpers every command shares."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import IO, Final

from akool_async import BatchAbortedError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "BatchAbortedError",
    "CommandError",
    "Ui",
    "UsageError",
    "format_duration",
    "rich_available",
]

#: Every job completed / the command succeeded.
EXIT_OK: Final = 0
#: Some jobs failed (or were left uncertain), or an API call failed.
EXIT_FAILED: Final = 1
#: Usage, configuration or validation error: nothing was sent.
EXIT_USAGE: Final = 2
#: Interrupted by SIGINT or SIGTERM (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED: Final = 130


class UsageError(Exception):
    """A problem with the command line or the environment; printed and exit code 2.

    Raised only before anything is sent, so exit code 2 always means "nothing was sent".
    """


class CommandError(Exception):
    """A command that ran but failed in a way the user can act on: one line, exit code 1."""


def rich_available() -> bool:
    """True when the optional ``rich`` package (the ``cli`` extra) can be imported."""
    try:
        import rich  # noqa: F401, PLC0415 - optional dependency, imported lazily
    except ImportError:
        return False
    return True


def format_duration(seconds: float) -> str:
    """``12.3s``, ``4m05s`` or ``2h03m``; ``?`` for an unknown (infinite) duration."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Ui:
    """Where human-readable text goes (stderr by default), with or without rich.

    ``mode``: ``auto`` (rich on a terminal when installed, else plain), ``rich``, ``plain``
    or ``off`` (no live progress; messages and the summary are still printed).
    """

    def __init__(self, stream: IO[str], *, mode: str = "auto") -> None:
        self.stream = stream
        self.is_tty = bool(getattr(stream, "isatty", lambda: False)())
        if mode == "auto":
            mode = "rich" if self.is_tty and rich_available() else "plain"
        elif mode == "rich" and not rich_available():
            mode = "plain"
        self.mode = mode

    def print(self, text: str = "") -> None:
        """One line of text."""
        self.stream.write(text + "\n")
        self.stream.flush()

    def table(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        """A box table on a terminal (with rich); plain ``name: value`` lines otherwise."""
        if self.is_tty and self.mode != "plain" and rich_available():
            from rich.console import Console  # noqa: PLC0415 - optional, lazy
            from rich.table import Table  # noqa: PLC0415

            table = Table(title=title, show_header=False, title_justify="left")
            table.add_column(style="bold")
            table.add_column()
            for name, value in rows:
                table.add_row(name, value)
            Console(file=self.stream, highlight=False, soft_wrap=True).print(table)
            self.stream.flush()
            return
        self.print(title)
        for name, value in rows:
            self.print(f"{name}: {value}")
