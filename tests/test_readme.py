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
  runs: the aiohttp and FastAPI apps are served (aiohttp's ``TestServer``; FastAPI through
  ``httpx.ASGITransport`` inside its lifespan) and used end to end, the SDK inside them
  talking to the simulator; the webhook examples must accept simulator-signed webhooks;
  ``prints TEXT`` checks the block's output; ``downloads N`` checks that N files landed
  with exactly the bytes their output URL serves to a plain GET. FastAPI and httpx are in
  the ``test`` extra, so nothing is skipped.
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
import json
import re
import shlex
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import httpx
import pytest
from aiohttp.test_utils import TestServer
from threaded_sim import ThreadedSimulator

import akool_async as akool
from akool_async._cli import build_parser, main
from akool_async._errors import CODE_TO_ERROR
from akool_async.testing import AkoolSimulator, webhook_body

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SCALE = 0.001
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
        monkeypatch.setitem(defaults, "limits", akool.Limits().scaled(SCALE))
        monkeypatch.chdir(tmp_path)
        yield sim


@pytest.fixture
def unused_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- checks


SWAP = {"image": "https://example.com/c.png", "video": "https://example.com/m.mp4"}


async def _use_aiohttp_app(make_app: Callable[[], Any]) -> None:
    async with TestServer(make_app()) as server, aiohttp.ClientSession() as http:
        bad = await http.post(server.make_url("/swaps"), json={"image": "x", "video": "y"})
        assert bad.status == 400
        assert "CharacterSwap.image" in (await bad.json())["error"]
        created = await http.post(server.make_url("/swaps"), json=SWAP)
        assert created.status == 202
        key = (await created.json())["key"]
        answer = await (await http.get(server.make_url(f"/swaps/{key}?wait=1"))).json()
        assert answer["status"] == "completed", answer
        assert answer["output_url"].startswith("http")
        missing = await http.get(server.make_url("/swaps/nope"))
        assert missing.status == 404


@contextlib.asynccontextmanager
async def _asgi_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling ``app`` in process, inside the app's lifespan.

    ``httpx.ASGITransport`` rather than Starlette's ``TestClient``, which deprecates httpx
    (a warning, hence an error here); the lifespan is entered explicitly because the
    transport does not send lifespan events.
    """
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
            yield http


async def _use_fastapi_app(app: Any) -> None:
    async with _asgi_client(app) as http:  # the lifespan starts and stops the SwapService
        bad = await http.post("/swaps", json={"image": "x", "video": "y"})
        assert bad.status_code == 400
        assert "CharacterSwap.image" in bad.json()["detail"]
        created = await http.post("/swaps", json={**SWAP, "image": "https://example.com/f.png"})
        assert created.status_code == 202
        key = created.json()["key"]
        answer = (await http.get(f"/swaps/{key}", params={"wait": "true"})).json()
        assert answer["status"] == "completed", answer
        assert answer["output_url"].startswith("http")
        assert (await http.get("/swaps/nope")).status_code == 404


def _signed_webhook(sim: AkoolSimulator, task_id: str) -> bytes:
    """A completion webhook body signed and encrypted as the simulator (and Akool) does."""
    plaintext = json.dumps(
        {"_id": task_id, "status": 3, "type": "character swap", "url": "https://cdn.example/v"}
    )
    body = webhook_body(
        plaintext=plaintext,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        timestamp=round(time.time() * 1000),
        nonce="4217",
    )
    return json.dumps(body).encode()


async def _use_fastapi_webhook(hooks: Any, receiver: Any, sim: AkoolSimulator) -> None:
    body = _signed_webhook(sim, "0123456789abcdef01234567")
    forged = body.replace(b'"nonce": "4217"', b'"nonce": "1"')  # the signature no longer fits
    async with _asgi_client(hooks) as http:
        first = await http.post("/akool/webhook", content=body)
        assert (first.status_code, first.json()) == (200, {"ok": True, "duplicate": False})
        again = await http.post("/akool/webhook", content=body)
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        assert (await http.post("/akool/webhook", content=forged)).status_code == 400
    assert (receiver.accepted, receiver.duplicates, receiver.rejected) == (1, 1, 1)


async def _plain_get(url: str) -> bytes:
    """What the output URL serves to a plain GET, independent of the SDK."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return await resp.read()


def _check(marker: str, namespace: dict[str, Any], output: str, sim: AkoolSimulator) -> None:
    name, _, arg = marker.partition(" ")
    if marker == "check: aiohttp-app":
        asyncio.run(_use_aiohttp_app(namespace["make_app"]))
    elif marker == "check: fastapi-app":
        asyncio.run(_use_fastapi_app(namespace["app"]))
    elif marker == "check: fastapi-webhook":
        asyncio.run(_use_fastapi_webhook(namespace["hooks"], namespace["receiver"], sim))
    elif marker == "check: webhooks":
        accepted = re.search(r"webhooks accepted: (\d+)", output)
        assert accepted is not None, output
        assert int(accepted.group(1)) > 0, "the webhook example received no webhook"
    elif name == "check:" and arg.startswith("prints "):
        assert arg.removeprefix("prints ") in output, output
    elif name == "check:" and arg.startswith("downloads "):
        # The block printed "<output_url> -> <path>" per saved file.
        saved = re.findall(r"^(?:\S+ )?(https?://\S+) -> (\S+)$", output, re.MULTILINE)
        assert len({path for _, path in saved}) == int(arg.removeprefix("downloads ")), output
        for url, path in saved:
            assert Path(path).read_bytes() == asyncio.run(_plain_get(url)), path
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
    readme_env: AkoolSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every Python block runs in order against the simulator, and its check passes."""
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    checked: list[str] = []
    for block in readme_blocks():
        if block.lang != "python":
            continue
        capsys.readouterr()
        try:
            exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
            _check(block.marker, namespace, capsys.readouterr().out, readme_env)
        except BaseException as exc:
            raise AssertionError(f"README.md line {block.line} failed: {exc!r}") from exc
        checked.append(block.marker)
    assert len(checked) >= 12
    for marker in ("aiohttp-app", "fastapi-app", "webhooks", "fastapi-webhook", "downloads 1"):
        assert f"check: {marker}" in checked, marker
    assert readme_env.stats.duplicate_creates == 0


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
    results = [json.loads(line) for line in Path("results.jsonl").read_text().splitlines()]
    assert results
    assert all(r["ok"] and Path(r["path"]).is_file() for r in results)  # --download-dir


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
