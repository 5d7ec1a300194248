"""``akool-async report PATH --html FILE``: one self-contained HTML page of a run.

The page needs no network: CSS and the timeline (SVG) are inline, there is no script, and
videos are played from files next to it (``src`` relative to the page's directory). Output
URLs of jobs that were not downloaded are links while Akool keeps them (7 days). Every
string from the run (keys, messages, URLs, paths) is escaped.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import html
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import attrs

from akool_async._store import JournalError

from ._journal import ReadOnlyJournal, record_to_json
from ._report_rows import OUTCOMES, ReportRow, report_row

__all__ = [
    "ReportInputError",
    "configure_report_parser",
    "load_rows",
    "render_report",
    "report_main",
]

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
#: Akool deletes outputs this many seconds after a task completes.
OUTPUT_LIFETIME: Final = 7 * 86400
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_COLOURS: Final = {
    "completed": "#2b8a3e",
    "failed": "#c92a2a",
    "uncertain": "#e67700",
    "error": "#862e9c",
    "unfinished": "#868e96",
}
_CSS: Final = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2328;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:26px;margin:0 0 2px}
h2{font-size:18px;margin:32px 0 12px}
.sub{color:#59636e;margin:0 0 20px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px #0000001f;
border-top:4px solid #adb5bd}
.card .n{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums}
.card .l{color:#59636e;font-size:13px;text-transform:uppercase;letter-spacing:.04em}
.panel{background:#fff;border-radius:10px;padding:16px;box-shadow:0 1px 3px #0000001f}
.legend{display:flex;gap:16px;flex-wrap:wrap;font-size:13px;color:#59636e;margin-top:8px}
.dot{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:14px}
figure{margin:0;background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 1px 3px #0000001f}
video{display:block;width:100%;aspect-ratio:16/9;background:#1f2328}
figcaption{padding:8px 12px 10px;font-size:13px}
figcaption b{display:block;font-size:14px;overflow-wrap:anywhere}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;
color:#59636e;overflow-wrap:anywhere}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:10px;overflow:hidden;
box-shadow:0 1px 3px #0000001f;font-size:14px}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#59636e}
td.reason{overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;color:#fff}
.note{color:#59636e;font-size:13px}
.more{color:#59636e;font-size:13px;margin-top:8px}
a{color:#0b63c5}
"""
# Seconds between the timeline's grid lines: the first giving at most 8 of them.
_TICK_STEPS: Final = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
#: At most this many entries per list section (the counts above still cover every job).
MAX_LISTED: Final = 500


@attrs.frozen
class _Page:
    rows: tuple[ReportRow, ...]
    html_dir: str | None
    now: float


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _badge(outcome: str) -> str:
    colour = _COLOURS.get(outcome, "#868e96")
    return f'<span class="badge" style="background:{colour}">{_e(OUTCOMES[outcome])}</span>'


def _video_src(path: str, html_dir: str | None) -> str:
    """``path`` as a URL relative to the page's directory (or as given without one)."""
    target = path
    if html_dir is not None:
        try:
            target = os.path.relpath(os.path.abspath(path), html_dir)
        except ValueError:  # another drive (Windows): an absolute file URL still plays
            return Path(os.path.abspath(path)).as_uri()
    return urllib.request.pathname2url(target)


def _is_web_url(url: str) -> bool:
    # Only http(s) links: a "javascript:" URL in a results file must never become a link.
    return urllib.parse.urlsplit(url).scheme.lower() in ("http", "https")


# --------------------------------------------------------------------------- sections


def _cards(rows: Sequence[ReportRow]) -> str:
    counts = collections.Counter(row.outcome for row in rows)
    cards = [("jobs", f"{len(rows):,}", "#1f2328")]
    for outcome, label in OUTCOMES.items():
        if counts[outcome] or outcome in ("completed", "failed", "uncertain"):
            cards.append((label, f"{counts[outcome]:,}", _COLOURS[outcome]))
    credits = sum(row.credits or 0 for row in rows if row.outcome == "completed")
    cards.append(("credits charged", f"{credits:,}", "#0b63c5"))
    videos = sum(1 for row in rows if row.path is not None and row.outcome == "completed")
    cards.append(("videos downloaded", f"{videos:,}", "#0b63c5"))
    replayed = sum(1 for row in rows if row.replayed)
    if replayed:
        cards.append(("replayed from journal", f"{replayed:,}", "#868e96"))
    return (
        '<section class="cards">'
        + "".join(
            f'<div class="card" style="border-top-color:{colour}" data-count="{_e(label)}">'
            f'<div class="n">{value}</div><div class="l">{_e(label)}</div></div>'
            for label, value, colour in cards
        )
        + "</section>"
    )


def _tick_step(span: float) -> float:
    for step in _TICK_STEPS:
        if span / step <= 8:
            return step
    return 3600.0 * max(1, round(span / 3600 / 8))


_PLOT_WIDTH: Final = 1000.0
_PLOT_LEFT: Final = 8.0
_PLOT_RIGHT: Final = 44.0
_PLOT_TOP: Final = 8.0


def _tick_label(seconds: float) -> str:
    if seconds and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s" if seconds else "0"


def _grid(span: float, scale: float, plot_height: float) -> str:
    """Vertical grid lines with their time labels, every :func:`_tick_step` seconds."""
    parts = []
    step = _tick_step(span)
    ticks = int(span / step) + 1
    for n in range(ticks):
        tick = n * step
        x = _PLOT_LEFT + tick * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="{_PLOT_TOP}" x2="{x:.1f}" '
            f'y2="{_PLOT_TOP + plot_height:.1f}" stroke="#eaeef2"/>'
            f'<text x="{x:.1f}" y="{_PLOT_TOP + plot_height + 18:.1f}" font-size="12" '
            f'fill="#59636e" text-anchor="middle">{_e(_tick_label(tick))}</text>'
        )
    return "".join(parts)


def _bars(timed: Sequence[ReportRow], start: float, scale: float, bar: float) -> str:
    """One rectangle per job from its start to its end, with a tooltip naming it."""
    pitch = bar + (2.0 if bar >= 4 else 0.5)
    parts = []
    for i, row in enumerate(timed):
        x = _PLOT_LEFT + ((row.started or start) - start) * scale
        w = max(1.5, (row.duration or 0.0) * scale)
        y = _PLOT_TOP + i * pitch
        label = f"{row.key}: {OUTCOMES[row.outcome]}, {_duration(row.duration or 0.0)}"
        parts.append(
            f'<rect class="job" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{bar:.1f}" '
            f'rx="{min(bar / 3, 3):.1f}" fill="{_COLOURS[row.outcome]}"><title>{_e(label)}'
            "</title></rect>"
        )
    return "".join(parts)


def _legend(timed: Sequence[ReportRow], span: float) -> str:
    durations = sorted(row.duration or 0.0 for row in timed)
    median = durations[len(durations) // 2]
    keys = "".join(
        f'<span><span class="dot" style="background:{_COLOURS[o]}"></span>{_e(label)}</span>'
        for o, label in OUTCOMES.items()
        if any(row.outcome == o for row in timed)
    )
    return (
        f'<div class="legend">{keys}<span>{len(timed):,} job(s), median '
        f"{_e(_duration(median))}, longest {_e(_duration(durations[-1]))}, whole run "
        f"{_e(_duration(span))}</span></div>"
    )


def _timeline(rows: Sequence[ReportRow]) -> str:
    """An inline SVG of every timed job's start and end, in order of start."""
    timed = sorted(
        (row for row in rows if row.duration is not None),
        key=lambda row: (row.started or 0.0, row.key),
    )
    if not timed:
        return (
            '<p class="note" id="no-timeline">No timeline: the rows carry no submission and '
            "finish times (results.jsonl gains submitted_at/finished_at in newer versions).</p>"
        )
    start = min(row.started or 0.0 for row in timed)
    span = max(max(row.finished or 0.0 for row in timed) - start, 1.0)
    bar = max(1.0, min(12.0, 480.0 / len(timed)))
    plot_height = (bar + (2.0 if bar >= 4 else 0.5)) * len(timed)
    height = _PLOT_TOP + plot_height + 30
    scale = (_PLOT_WIDTH - _PLOT_LEFT - _PLOT_RIGHT) / span
    return (
        '<div class="panel"><svg id="timeline" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {_PLOT_WIDTH:.0f} {height:.0f}" width="100%" role="img" '
        'aria-label="job durations">'
        + _grid(span, scale, plot_height)
        + _bars(timed, start, scale, bar)
        + "</svg>"
        + _legend(timed, span)
        + "</div>"
    )


def _more(total: int) -> str:
    if total <= MAX_LISTED:
        return ""
    return f'<p class="more">{total - MAX_LISTED:,} more not shown.</p>'


def _gallery(page: _Page) -> str:
    videos = [row for row in page.rows if row.outcome == "completed" and row.path is not None]
    if not videos:
        return '<p class="note">No downloaded videos (run with --download-dir to keep them).</p>'
    figures = []
    for row in videos[:MAX_LISTED]:
        src = _video_src(row.path or "", page.html_dir)
        facts = [f"task {row.task_id}" if row.task_id else "no task id"]
        if row.duration is not None:
            facts.append(_duration(row.duration))
        if row.credits is not None:
            facts.append(f"{row.credits:,} credits")
        figures.append(
            f'<figure data-key="{_e(row.key)}"><video controls preload="metadata" '
            f'src="{_e(src)}"></video><figcaption><b>{_e(row.key)}</b>'
            f'<span class="mono">{_e(" · ".join(facts))}</span></figcaption></figure>'
        )
    return '<section class="gallery">' + "".join(figures) + "</section>" + _more(len(videos))


def _output_link(row: ReportRow, now: float) -> str:
    url = row.output_url or ""
    if row.finished is not None and now - row.finished > OUTPUT_LIFETIME:
        return f'<span class="mono">{_e(url)}</span> <span class="note">(expired)</span>'
    if not _is_web_url(url):
        return f'<span class="mono">{_e(url)}</span>'
    return f'<a class="output" href="{_e(url)}">{_e(url)}</a>'


def _not_downloaded(page: _Page) -> str:
    rows = [
        row
        for row in page.rows
        if row.outcome == "completed" and row.path is None and row.output_url is not None
    ]
    if not rows:
        return ""
    body = "".join(
        f'<tr data-key="{_e(row.key)}"><td>{_e(row.key)}</td>'
        f'<td class="mono">{_e(row.task_id or "")}</td>'
        f'<td class="reason">{_output_link(row, page.now)}'
        + (
            f'<div class="note">download failed: {_e(row.download_error)}</div>'
            if row.download_error
            else ""
        )
        + "</td></tr>"
        for row in rows[:MAX_LISTED]
    )
    return (
        "<h2>Outputs not downloaded</h2>"
        '<p class="note">Akool keeps an output for 7 days after the task completes.</p>'
        "<table><tr><th>key</th><th>task id</th><th>output</th></tr>"
        + body
        + "</table>"
        + _more(len(rows))
    )


def _failures(page: _Page) -> str:
    rows = [row for row in page.rows if row.outcome in ("failed", "error")]
    if not rows:
        return '<h2>Failures</h2><p class="note">None.</p>'
    body = "".join(
        f'<tr class="failure" data-key="{_e(row.key)}"><td>{_e(row.key)}</td>'
        f"<td>{_badge(row.outcome)}</td>"
        f'<td class="mono">{_e(row.task_id or "")}</td>'
        f'<td class="reason"><b>{_e(row.error_type or "")}</b> {_e(row.reason or "")}</td></tr>'
        for row in rows[:MAX_LISTED]
    )
    return (
        f"<h2>Failures ({len(rows):,})</h2>"
        "<table><tr><th>key</th><th>outcome</th><th>task id</th><th>reason</th></tr>"
        + body
        + "</table>"
        + _more(len(rows))
    )


def _uncertain(page: _Page) -> str:
    rows = [row for row in page.rows if row.outcome == "uncertain"]
    if not rows:
        return ""
    body = "".join(
        f'<tr class="uncertain" data-key="{_e(row.key)}"><td>{_e(row.key)}</td>'
        f"<td>{_e(row.attempts if row.attempts is not None else '')}</td>"
        f'<td class="reason">{_e(row.reason or "")}</td></tr>'
        for row in rows[:MAX_LISTED]
    )
    return (
        f"<h2>Uncertain ({len(rows):,})</h2>"
        '<p class="note">The create was sent and its answer lost: a task may exist and be '
        "charged. Check the Akool dashboard before resubmitting (--resubmit-uncertain).</p>"
        "<table><tr><th>key</th><th>attempts</th><th>reason</th></tr>"
        + body
        + "</table>"
        + _more(len(rows))
    )


def render_report(
    rows: Iterable[Mapping[str, Any]],
    *,
    title: str,
    html_dir: str | os.PathLike[str] | None = None,
    now: float | None = None,
) -> str:
    """One self-contained HTML page of a run from ``results.jsonl`` lines or journal records.

    ``html_dir`` is the directory the page will be saved in (video ``src`` are made relative
    to it; paths are used as given without it). ``now`` (seconds since the epoch, default
    the current time) decides which output URLs are past Akool's 7 days.
    """
    page = _Page(
        rows=tuple(report_row(row) for row in rows),
        html_dir=None if html_dir is None else os.path.abspath(html_dir),
        now=time.time() if now is None else now,
    )
    generated = datetime.datetime.fromtimestamp(page.now, tz=datetime.timezone.utc)
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width,initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="sub">{len(page.rows):,} job(s) · report generated '
            f"{generated:%Y-%m-%d %H:%M} UTC by akool-async</p>",
            _cards(page.rows),
            "<h2>Timeline</h2>",
            _timeline(page.rows),
            "<h2>Videos</h2>",
            _gallery(page),
            _not_downloaded(page),
            _failures(page),
            _uncertain(page),
            "</main></body></html>\n",
        ]
    )


# --------------------------------------------------------------------------- command


class ReportInputError(Exception):
    """The report's input cannot be read; the message is one line for the user."""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:  # bad JSON, huge ints, deep nesting
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ReportInputError(f"{path} line {number}: not JSON ({message})") from None
        if not isinstance(data, dict) or "key" not in data:
            raise ReportInputError(
                f"{path} line {number}: not a result line (a JSON object with a key)"
            )
        rows.append(data)
    return rows


async def _read_journal(path: Path) -> list[dict[str, Any]]:
    try:
        async with await ReadOnlyJournal.open(path) as journal:
            return [record_to_json(rec) async for rec in journal.iter_records()]
    except JournalError as exc:
        raise ReportInputError(exc.message) from None


def _local_file(value: object, bases: Sequence[Path]) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    given = Path(value)
    candidates = [given] if given.is_absolute() else [base / given for base in bases]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    return None


def _read_source(source: Path) -> list[dict[str, Any]] | None:
    """The rows of a results JSONL file, or None for a journal (an SQLite file)."""
    if not source.exists():
        raise ReportInputError(f"{source} does not exist")
    if source.is_dir():
        raise ReportInputError(f"{source} is a directory; pass a results.jsonl or a journal")
    try:
        with source.open("rb") as f:
            magic = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise ReportInputError(f"cannot read {source}: {exc.strerror or exc}") from None
    return None if magic == _SQLITE_MAGIC else _read_jsonl(source)


def _locate_videos(rows: list[dict[str, Any]], source: Path) -> None:
    bases = [Path.cwd(), source.resolve().parent]
    for row in rows:
        for field in ("path", "local_path"):
            if field in row:
                row[field] = _local_file(row[field], bases)


async def load_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of ``path`` (a results JSONL file or a journal), local paths made absolute.

    A relative video path is looked up from the current directory, then from the input's
    directory; a video file that is not there is dropped (the report links its URL).
    Raises :class:`ReportInputError` with a one-line message for input it cannot read.
    """
    source = Path(path)
    rows = await anyio.to_thread.run_sync(_read_source, source)
    if rows is None:
        rows = await _read_journal(source)
    await anyio.to_thread.run_sync(_locate_videos, rows, source)
    return rows


def _write_page(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    page = render_report(rows, title=title, html_dir=out.resolve().parent)
    out.write_text(page, encoding="utf-8")


def configure_report_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``PATH --html FILE [--title TEXT]`` to ``parser`` (a sub-command's parser)."""
    parser.add_argument("path", metavar="PATH", help="results JSONL of a run, or its journal")
    parser.add_argument("--html", required=True, metavar="FILE", help="write the page here")
    parser.add_argument("--title", help="page title (default: akool-async run: PATH's name)")
    return parser


async def report_main(args: argparse.Namespace) -> int:
    """Run ``akool-async report`` for arguments parsed by :func:`configure_report_parser`."""
    try:
        rows = await load_rows(args.path)
    except ReportInputError as exc:
        sys.stderr.write(f"akool-async report: {exc}\n")
        return EXIT_USAGE
    out = Path(args.html)
    title = args.title or f"akool-async run: {Path(args.path).name}"
    try:
        await anyio.to_thread.run_sync(_write_page, rows, out, title)
    except OSError as exc:
        sys.stderr.write(f"akool-async report: cannot write {out}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    sys.stderr.write(f"akool-async: wrote the report of {len(rows)} job(s) to {out}\n")
    return EXIT_OK
