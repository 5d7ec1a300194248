"""The README runs: its Python blocks against the simulator, its CLI lines, its tables.

How blocks are executed:

- ```python blocks run in order in ONE namespace (later blocks may use earlier names, as a
  reader would), in a temporary working directory, with ``__name__ == "__readme__"`` (so an
  ``if __name__ == "__main__":`` server start is skipped), against an ``AkoolSimulator``
  served from a thread with ``AKOOL_API_KEY``/``AKOOL_BASE_URL``/``AKOOL_CLIENT_ID`` set.
  The simulator's clock is compressed by ``SCALE``, and so is the default ``PollPolicy`` of
  ``AkoolClient()`` (its keyword default is patched for the test only), exactly as the
  README's simulator section tells users to do in their own tests.
- An HTML comment ``<!-- check: NAME -->`` before a block adds a behaviour check after it
  runs (the aiohttp app is served and used; the webhook example must accept webhooks). The
  FastAPI block runs only when FastAPI is installed (it is not a dependency).
- ```jsonl blocks are written to ``jobs.jsonl``; ```bash blocks after the two commands run
  each ``akool-async`` line through ``main()`` (``run`` lines get ``--time-scale SCALE``).
  Blocks marked ``<!-- illustrative ... -->`` (a server that runs until Ctrl-C) only have
  their ``akool-async`` lines parsed, so their flags stay real.
- The two commands at the top are checked verbatim (the lead verifies them in a fresh venv),
  and the test command must be the one ``.ci/run`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import shlex
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp.test_utils import TestServer

import akool_async as akool
from akool_async._cli import build_parser, main
from akool_async._errors import CODE_TO_ERROR
from akool_async.testing import AkoolSimulator

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SCALE = 0.001
#: The webhook example's simulator: 300 simulated seconds (the receiver's max_age) = 3 s.
WEBHOOK_SCALE = 0.01
DEMO_COMMAND = (
    "python -m venv .venv && . .venv/bin/activate && "
    "python -m pip install -e '.[cli]' && akool-async demo"
)
TEST_COMMAND = "python -m pip install -e '.[dev]' && python -m pytest -q"
ENV_NAMES = ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET", "AKOOL_BASE_URL")

_FENCE = re.compile(
    r"^(?:<!--\s*(?P<marker>.*?)\s*-->\n)?```(?P<lang>\w*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@attrs.frozen
class Block:
    """One fenced code block of the README."""

    lang: str
    code: str
    marker: str
    line: int


def readme_blocks() -> list[Block]:
    """Every fenced block, in order, with the HTML comment right before it (if any)."""
    text = README.read_text(encoding="utf-8")
    return [
        Block(
            m["lang"],
            m["code"],
            m["marker"] or "",
            text.count("\n", 0, m.start("code")) + 1,
        )
        for m in _FENCE.finditer(text)
    ]


class ThreadedSimulator:
    """An AkoolSimulator served from its own thread, so README code can `asyncio.run` here."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.sim: AkoolSimulator | None = None

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with AkoolSimulator(**self.options) as sim:
            self.sim = sim
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> AkoolSimulator:
        self._thread.start()
        assert self._ready.wait(30), "the simulator did not start"
        assert self.sim is not None
        return self.sim

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def readme_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int
) -> Iterator[AkoolSimulator]:
    """A compressed-time simulator, the environment pointing at it, and a scratch cwd."""
    with ThreadedSimulator(time_scale=SCALE) as sim:
        for name in ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AKOOL_API_KEY", sim.api_key)
        monkeypatch.setenv("AKOOL_BASE_URL", sim.base_url)
        monkeypatch.setenv("AKOOL_CLIENT_ID", sim.client_id)
        monkeypatch.setenv("PORT", str(unused_tcp_port))
        defaults = akool.AkoolClient.__init__.__kwdefaults__
        assert defaults is not None
        monkeypatch.setitem(defaults, "poll", akool.PollPolicy().scaled(SCALE))
        monkeypatch.chdir(tmp_path)
        yield sim


@pytest.fixture
def unused_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fresh_simulator(monkeypatch: pytest.MonkeyPatch, scale: float) -> Iterator[AkoolSimulator]:
    """A new simulator (and matching poll default) for one block, then the old settings back.

    The webhook example gets its own: the simulator stamps webhooks with its *simulated*
    epoch, which runs ahead of the wall clock when time is compressed, and the receiver
    rejects timestamps more than ``max_age`` (300 s) away. A fresh, less compressed simulator
    keeps the whole example inside that window.
    """
    defaults = akool.AkoolClient.__init__.__kwdefaults__
    assert defaults is not None
    with ThreadedSimulator(time_scale=scale) as sim, monkeypatch.context() as patch:
        patch.setenv("AKOOL_API_KEY", sim.api_key)
        patch.setenv("AKOOL_BASE_URL", sim.base_url)
        patch.setenv("AKOOL_CLIENT_ID", sim.client_id)
        patch.setitem(defaults, "poll", akool.PollPolicy().scaled(scale))
        yield sim


# ---------------------------------------------------------------------------- checks


async def _use_aiohttp_app(make_app: Callable[[], Any]) -> None:
    async with TestServer(make_app()) as server, aiohttp.ClientSession() as http:
        bad = await http.post(server.make_url("/swaps"), json={"image": "x", "video": "y"})
        assert bad.status == 400
        assert "CharacterSwap.image" in (await bad.json())["error"]
        created = await http.post(
            server.make_url("/swaps"),
            json={"image": "https://example.com/c.png", "video": "https://example.com/m.mp4"},
        )
        assert created.status == 202
        key = (await created.json())["key"]
        with anyio_deadline(30):
            while True:
                answer = await (await http.get(server.make_url(f"/swaps/{key}"))).json()
                if answer["status"] != "running":
                    break
                await asyncio.sleep(0.01)  # a client polling the app's own status endpoint
        assert answer["status"] == "completed", answer
        assert answer["output_url"].startswith("http")
        missing = await http.get(server.make_url("/swaps/nope"))
        assert missing.status == 404


def anyio_deadline(seconds: float) -> Any:
    """A timeout context for the app check (asyncio.timeout needs Python 3.11)."""
    import anyio  # noqa: PLC0415

    return anyio.fail_after(seconds)


def _check(marker: str, namespace: dict[str, Any], output: str) -> None:
    if marker == "check: aiohttp-app":
        asyncio.run(_use_aiohttp_app(namespace["make_app"]))
    elif marker == "check: webhooks":
        accepted = re.search(r"webhooks accepted: (\d+)", output)
        assert accepted is not None, output
        assert int(accepted.group(1)) > 0, "the webhook example received no webhook"
    elif marker.startswith("check:"):
        raise AssertionError(f"unknown README check {marker!r}")


# ---------------------------------------------------------------------------- tests


def test_two_commands_open_the_readme_and_match_ci() -> None:
    """The first section is the two commands, verbatim, and CI runs the same test command."""
    text = README.read_text(encoding="utf-8")
    first_section = re.search(r"^## (.+)$", text, re.MULTILINE)
    assert first_section is not None
    assert first_section.group(1) == "Two commands"
    bash = [b for b in readme_blocks() if b.lang == "bash"]
    assert [b.code.strip() for b in bash[:2]] == [DEMO_COMMAND, TEST_COMMAND]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines()


def test_python_blocks_run_against_the_simulator(
    readme_env: AkoolSimulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every Python block runs in order against the simulator, and its check passes."""
    has_fastapi = importlib.util.find_spec("fastapi") is not None
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    ran = 0
    for block in readme_blocks():
        if block.lang != "python":
            continue
        if block.marker == "check: fastapi-app" and not has_fastapi:
            continue  # FastAPI is not a dependency; see the next test
        capsys.readouterr()
        try:
            if block.marker == "check: webhooks":
                with fresh_simulator(monkeypatch, WEBHOOK_SCALE):
                    exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
            else:
                exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
            _check(block.marker, namespace, capsys.readouterr().out)
        except BaseException as exc:
            raise AssertionError(f"README.md line {block.line} failed: {exc!r}") from exc
        ran += 1
    assert ran >= 8
    assert readme_env.stats.duplicate_creates == 0


def test_fastapi_block_runs_when_fastapi_is_installed(readme_env: AkoolSimulator) -> None:
    """With FastAPI (and its TestClient) installed, the FastAPI example serves a swap."""
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient  # noqa: PLC0415

    namespace: dict[str, Any] = {"__name__": "__readme__"}
    blocks = [b for b in readme_blocks() if b.lang == "python"]
    service = next(b for b in blocks if "class SwapService" in b.code)
    fastapi_block = next(b for b in blocks if b.marker == "check: fastapi-app")
    exec(compile(service.code, "README.md:service", "exec"), namespace)
    exec(compile(fastapi_block.code, "README.md:fastapi", "exec"), namespace)
    with TestClient(namespace["app"]) as http:
        created = http.post(
            "/swaps",
            json={"image": "https://example.com/c.png", "video": "https://example.com/m.mp4"},
        )
        assert created.status_code == 202
        assert http.get("/swaps/nope").status_code == 404


def test_cli_blocks_run_and_illustrative_ones_parse(
    readme_env: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The jobs.jsonl example is valid and every akool-async line of the README works."""
    blocks = readme_blocks()
    jsonl = [b for b in blocks if b.lang == "jsonl"]
    assert jsonl, "the README shows a jobs.jsonl example"
    Path("jobs.jsonl").write_text(jsonl[0].code, encoding="utf-8")
    commands = 0
    for block in [b for b in blocks if b.lang == "bash"][2:]:
        for line in block.code.splitlines():
            if not line.startswith("akool-async "):
                continue
            argv = shlex.split(line)[1:]
            if block.marker.startswith("illustrative"):
                build_parser().parse_args(argv)  # flags must exist; SystemExit fails the test
                continue
            if argv[0] == "run" and "--dry-run" not in argv:
                argv += ["--time-scale", str(SCALE)]
            code = main(argv)
            captured = capsys.readouterr()
            assert code == 0, f"{line!r} exited {code}: {captured.err}"
            commands += 1
    assert commands >= 3
    assert os.path.exists("results.jsonl")


def _table(text: str, name: str) -> str:
    found = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.DOTALL)
    assert found is not None, f"README has no {name} table markers"
    return found.group(1)


def test_error_table_is_generated_from_code_to_error() -> None:
    """The README's error table lists exactly CODE_TO_ERROR, with each class's retryable."""
    rows = ["| code | exception | retryable |", "| --- | --- | --- |"]
    for code, cls in sorted(CODE_TO_ERROR.items()):
        rows.append(f"| {code} | `{cls.__name__}` | {'yes' if cls.retryable else 'no'} |")
    expected = "\n".join(rows) + "\n"
    assert _table(README.read_text(encoding="utf-8"), "errors") == expected, expected


def test_configuration_table_is_generated_from_the_defaults() -> None:
    """The README's defaults table lists every field of every DEFAULT_* policy value."""
    rows = ["| setting | default |", "| --- | --- |"]
    for value in (
        akool.DEFAULT_TIMEOUTS,
        akool.DEFAULT_RETRY_POLICY,
        akool.DEFAULT_POLL_POLICY,
        akool.DEFAULT_LIMITS,
    ):
        for field in attrs.fields(type(value)):
            shown = repr(getattr(value, field.name))
            rows.append(f"| `{type(value).__name__}.{field.name}` | `{shown}` |")
    expected = "\n".join(rows) + "\n"
    assert _table(README.read_text(encoding="utf-8"), "config") == expected, expected
