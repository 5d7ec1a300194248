"""``akool-async report``: one self-contained HTML page, checked as a browser builds it.

The DOM tests parse the written file with html5lib, which implements the WHATWG parsing
algorithm every browser follows (the page has no script, so that parse is the whole DOM).
Tests marked ``browser`` also open it in Debian's headless Chromium: .ci/run installs it
and runs them with ``pytest -m browser``; the default run deselects them.
"""

from __future__ import annotations

import html.parser
import json
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import anyio
import html5lib
import pytest

from akool_async._cli import main
from akool_async._cli._report import render_report
from akool_async._store import Journal
from akool_async.testing._media import fake_mp4

CHROMIUM = Path("/usr/bin/chromium")
NOW = 1_800_000_000.0
HOUR = 3600.0
EVIL = '<img src=x onerror="alert(1)">'


def _row(key: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": key,
        "line": None,
        "kind": "character_swap",
        "ok": False,
        "task_id": None,
        "status": None,
        "output_url": None,
        "credits": None,
        "failure_reason": None,
        "error": None,
        "path": None,
        "download_error": None,
    }
    return {**base, **fields}


def run_rows(video_dir: Path) -> list[dict[str, Any]]:
    """results.jsonl lines of a small run: downloads, links, failures, an uncertain job."""
    rows = []
    for i in range(3):
        path = video_dir / f"clip-{i}.mp4"
        path.write_bytes(fake_mp4(f"clip-{i}"))
        rows.append(
            _row(
                f"video-{i}",
                ok=True,
                task_id=f"task-v{i}",
                status="completed",
                output_url=f"https://cdn.test/out/{i}.mp4",
                credits=10 * (i + 1),
                path=str(path),
                submitted_at=NOW - 2 * HOUR + 60 * i,
                finished_at=NOW - 2 * HOUR + 300 + 90 * i,
                attempts=1,
                replayed=i == 0,
            )
        )
    rows += [
        _row(
            "linked",
            ok=True,
            task_id="task-link",
            status="completed",
            output_url="https://cdn.test/out/linked.mp4",
            credits=5,
            submitted_at="2027-01-15T05:00:00Z",
            finished_at=NOW - HOUR,
        ),
        _row(
            "old",
            ok=True,
            task_id="task-old",
            status="completed",
            output_url="https://cdn.test/out/old.mp4",
            credits=5,
            finished_at=NOW - 10 * 86400,
        ),
        _row("sneaky", ok=True, task_id="task-js", output_url="javascript:alert(1)", credits=1),
        _row(
            f"failed-{EVIL}",
            task_id="task-bad",
            status="failed",
            failure_reason=f"no face found {EVIL}",
            error={"type": "TaskFailedError", "message": "task failed", "code": None},
            submitted_at=NOW - 2 * HOUR,
            finished_at=NOW - 2 * HOUR + 200,
        ),
        _row(
            "rejected",
            error={"type": "ValidationError", "message": "image URL refused", "code": 1003},
        ),
        _row(
            "lost",
            error={
                "type": "SubmissionUncertainError",
                "message": "the create's answer was lost (read timed out)",
                "code": None,
            },
            attempts=1,
        ),
    ]
    return rows


class _Elements(html.parser.HTMLParser):
    """Every start tag of a page with its attributes, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def elements(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) "
            "to run the report's rendering tests"
        )
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    (root / "videos").mkdir()
    rows = run_rows(root / "videos")
    page = render_report(rows, title="run <of> tests", html_dir=root, now=NOW)
    (root / "report.html").write_text(page, encoding="utf-8")
    return root


def parse_like_a_browser(page: bytes) -> str:
    """The page's DOM as the WHATWG algorithm builds it, serialised with quoted attributes."""
    tree = html5lib.parse(page, treebuilder="dom")
    return str(
        html5lib.serialize(
            tree,
            tree="dom",
            quote_attr_values="always",
            omit_optional_tags=False,
            minimize_boolean_attributes=False,
        )
    )


@pytest.fixture(scope="module")
def dom(run_dir: Path) -> str:
    return parse_like_a_browser((run_dir / "report.html").read_bytes())


def test_rendered_dom_has_counts_credits_and_sections(dom: str) -> None:
    """Chromium renders the counts per outcome, the credits and the failure reasons."""
    cards = {
        attrs["data-count"]: None for tag, attrs in elements(dom).tags if "data-count" in attrs
    }
    assert set(cards) >= {"jobs", "completed", "failed", "uncertain", "credits charged"}
    text = " ".join(elements(dom).text)
    assert "run <of> tests" in text
    assert "9 job(s)" in text
    assert "71" in text  # credits: 10 + 20 + 30 + 5 + 5 + 1
    assert f"no face found {EVIL}" in text  # shown as text...
    assert "image URL refused" in text
    assert "the create's answer was lost (read timed out)" in text
    assert "replayed from journal" in text


def test_rendered_dom_escapes_user_data(dom: str) -> None:
    """Keys and messages are text, never markup: no injected img or script element exists."""
    tags = elements(dom).tags
    assert not any(tag == "img" for tag, _ in tags)
    assert not any(tag == "script" for tag, _ in tags)
    hrefs = [attrs.get("href") or "" for tag, attrs in tags if tag == "a"]
    assert not any(href.startswith("javascript:") for href in hrefs)


def test_rendered_dom_has_videos_with_keys_and_task_ids(dom: str, run_dir: Path) -> None:
    """Each downloaded video is a playable element with a relative src, its key and task id."""
    tags = elements(dom).tags
    videos = [attrs for tag, attrs in tags if tag == "video"]
    assert [v["src"] for v in videos] == [f"videos/clip-{i}.mp4" for i in range(3)]
    assert all("controls" in v for v in videos)
    assert all((run_dir / str(v["src"])).is_file() for v in videos)
    keys = [attrs["data-key"] for tag, attrs in tags if tag == "figure"]
    assert keys == ["video-0", "video-1", "video-2"]
    text = " ".join(elements(dom).text)
    assert all(f"task task-v{i}" in text for i in range(3))


def test_rendered_dom_links_valid_urls_and_marks_expired(dom: str) -> None:
    """A recent output URL is a link; one older than 7 days is marked expired, not linked."""
    hrefs = [attrs.get("href") for tag, attrs in elements(dom).tags if tag == "a"]
    assert "https://cdn.test/out/linked.mp4" in hrefs
    assert "https://cdn.test/out/old.mp4" not in hrefs
    (old,) = re.findall(r'<tr data-key="old">.*?</tr>', dom)
    assert "https://cdn.test/out/old.mp4" in old
    assert "(expired)" in old


def test_rendered_dom_has_the_timeline_plot(dom: str) -> None:
    """The timeline is an inline SVG with one bar per job that has both times."""
    tags = elements(dom).tags
    assert ("svg", {"id": "timeline"}) in [(t, {"id": a.get("id")}) for t, a in tags]
    bars = [attrs for tag, attrs in tags if tag == "rect" and attrs.get("class") == "job"]
    assert len(bars) == 5  # three videos, "linked" (ISO start) and the failed job
    assert all(float(str(bar["width"])) > 0 for bar in bars)


def test_page_references_no_network_resource(run_dir: Path) -> None:
    """Nothing is loaded from the network: no scripts, styles, fonts or images by URL."""
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    for tag, attrs in elements(page).tags:
        for name in ("src", "href", "srcset", "poster", "data"):
            value = attrs.get(name) or ""
            if "://" not in value or (tag == "svg" and name == "xmlns"):
                continue
            assert tag == "a", (tag, name, value)
            assert attrs.get("class") == "output", (tag, name, value)
            assert value.startswith("https://cdn.test/out/")
    assert "<script" not in page
    assert "@import" not in page
    assert "url(" not in page
    assert "<link" not in page


@pytest.mark.browser
def test_chromium_builds_the_same_elements(run_dir: Path, dom: str, tmp_path: Path) -> None:
    """Headless Chromium's DOM has the very elements and text the html5lib parse has."""
    dumped = _chromium(tmp_path / "profile", "--dump-dom", (run_dir / "report.html").as_uri())
    chromium, parsed = elements(dumped.stdout), elements(dom)
    assert chromium.tags == parsed.tags
    assert "".join(chromium.text).split() == "".join(parsed.text).split()


@pytest.mark.browser
def test_screenshot_is_a_sane_png(run_dir: Path, tmp_path: Path) -> None:
    """Chromium's screenshot of the page is a PNG of the requested size."""
    shot = tmp_path / "shot.png"
    _chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1200,1600",
        (run_dir / "report.html").as_uri(),
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600)
    assert len(data) > 20_000  # a drawn page, not a blank one


def test_report_without_times_omits_the_plot_with_a_note() -> None:
    """Rows without submission and finish times give a note instead of a plot."""
    page = render_report([_row("a", ok=True, credits=3)], title="t", now=NOW)
    assert 'id="no-timeline"' in page
    assert "<svg" not in page


async def _journal_with_download(path: Path, video: Path) -> None:
    async with Journal(path) as journal:
        await journal.begin("j1", kind="character_swap", fingerprint="f1", request={"a": 1})
        await journal.mark_sending("j1")
        await journal.mark_created("j1", "task-j1")
        raw = {
            "_id": "task-j1",
            "video_status": 3,
            "video": "https://cdn.test/j1.mp4",
            "deduction_credit": 20,
        }
        await journal.mark_completed("j1", raw)
        await journal.set_local_path("j1", video)
        await journal.begin("j2", kind="head_swap", fingerprint="f2", request={"b": 2})
        await journal.mark_sending("j2")
        await journal.mark_uncertain("j2", TimeoutError("read timed out"))


def test_command_reads_a_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``report JOURNAL --html FILE`` renders the journal's jobs, videos relative to the page."""
    video = tmp_path / "videos" / "j1.mp4"
    video.parent.mkdir()
    video.write_bytes(fake_mp4("j1"))
    anyio.run(_journal_with_download, tmp_path / "run.db", video, backend="asyncio")
    out = tmp_path / "site" / "report.html"
    out.parent.mkdir()
    assert main(["report", str(tmp_path / "run.db"), "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert 'src="../videos/j1.mp4"' in page
    assert "read timed out" in page
    assert "wrote the report of 2 job(s)" in capsys.readouterr().err


def test_command_reads_results_jsonl(tmp_path: Path) -> None:
    """``report results.jsonl --html FILE`` finds relative video paths next to the results."""
    (tmp_path / "videos").mkdir()
    rows = run_rows(tmp_path / "videos")
    rows[0]["path"] = "videos/clip-0.mp4"  # relative to the results file's directory
    rows[1]["path"] = "videos/gone.mp4"  # missing: its URL is linked instead
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "report.html"
    assert main(["report", str(results), "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert 'src="videos/clip-0.mp4"' in page
    assert 'href="https://cdn.test/out/1.mp4"' in page


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, list[str]]:
    big = tmp_path / "big.jsonl"
    big.write_text('{"key": "a", "credits": ' + "9" * 5000 + "}\n")
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    text = tmp_path / "text.jsonl"
    text.write_text("hello\n")
    out = str(tmp_path / "r.html")
    return {
        "missing": [str(tmp_path / "nope.jsonl"), "--html", out],
        "directory": [str(tmp_path), "--html", out],
        "huge int": [str(big), "--html", out],
        "deep nesting": [str(deep), "--html", out],
        "not json": [str(text), "--html", out],
        "no --html": [str(text)],
        "unwritable": [str(big.with_name("ok.jsonl")), "--html", str(tmp_path / "no" / "r.html")],
    }


def test_command_bad_input_is_one_line_exit_2(
    bad_inputs: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Unreadable input or output gives exit 2 and one line on stderr, never a traceback."""
    Path(bad_inputs["unwritable"][0]).write_text('{"key": "k", "ok": true}\n')
    for case, argv in bad_inputs.items():
        assert main(["report", *argv]) == 2, case
        err = capsys.readouterr().err
        assert "Traceback" not in err, case
        if case != "no --html":  # argparse prints its usage line too
            assert len(err.strip().splitlines()) == 1, (case, err)
