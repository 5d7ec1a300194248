"""The webhook receiver answers every malformed delivery with 400, never 5xx or a traceback.

Cases named in issue #15 item 10 first (huge timestamps, long digit strings, deep nesting,
wrong types, non-UTF-8), each over real HTTP; then a Hypothesis fuzz over bodies and headers
against a receiver served by aiohttp on 127.0.0.1 from its own thread.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akool_async import _webhook_crypto as webhook_crypto
from akool_async.testing import webhook_body
from akool_async.webhooks import MAX_BODY_BYTES, WebhookReceiver, make_aiohttp_app

CLIENT_ID = "AKclientIdForTests0042=="
SECRET = "S3cr3t-Key-For-Tests-24b"
TASK_ID = "68a0c0ffee0000000000abcd"


def sealed(plaintext: str, **outer: Any) -> dict[str, Any]:
    """A correctly signed and encrypted body of ``plaintext``, fresh, with ``outer`` overrides."""
    body = webhook_body(
        plaintext=plaintext,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        timestamp=round(time.time() * 1000),
        nonce="1529",
    )
    return {**body, **outer}


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


MALFORMED: dict[str, bytes] = {
    "timestamp 10**400": json.dumps(sealed("{}", timestamp=10**400)).encode(),
    "timestamp -1": json.dumps(sealed("{}", timestamp=-1)).encode(),
    "timestamp of 5,000 digits as a string": json.dumps(
        sealed("{}", timestamp="9" * 5000)
    ).encode(),
    "timestamp of 4,000 digits as a number": b'{"signature": "a", "dataEncrypt": "b", '
    b'"nonce": "1", "timestamp": ' + b"9" * 4000 + b"}",
    "timestamp of 5,000 digits as a number": b'{"timestamp": ' + b"9" * 5000 + b"}",
    "timestamp a float": json.dumps(sealed("{}", timestamp=1.5e300)).encode(),
    "timestamp a list": json.dumps(sealed("{}", timestamp=[1])).encode(),
    "nonce 10**400": json.dumps(sealed("{}", nonce=10**400)).encode(),
    "nonce of 5,000 characters": json.dumps(sealed("{}", nonce="7" * 5000)).encode(),
    "nonce null": json.dumps(sealed("{}", nonce=None)).encode(),
    "signature a number": json.dumps(sealed("{}", signature=10**400)).encode(),
    "dataEncrypt an object": json.dumps(sealed("{}", dataEncrypt={"a": 1})).encode(),
    "missing fields": b"{}",
    "a JSON array": b"[1, 2, 3]",
    "a JSON string": b'"hello"',
    "deep nesting inside the limit": _deep(30_000),
    "deep nesting in an object": b'{"a": ' + _deep(20_000) + b"}",
    "non-UTF-8 bytes": b'{"signature": "\xff\xfe"}',
    "lone surrogate": b'{"signature": "\\ud800", "dataEncrypt": "\\udfff", '
    b'"timestamp": 1, "nonce": "\\ud800"}',
    "empty body": b"",
    "NaN": b'{"timestamp": NaN}',
    "decrypted status 10**400": json.dumps(
        sealed(json.dumps({"_id": TASK_ID, "status": 10**400}))
    ).encode(),
    "decrypted status of 5,000 digits": json.dumps(
        sealed(json.dumps({"_id": TASK_ID, "status": "9" * 5000}))
    ).encode(),
    "decrypted deep nesting": json.dumps(sealed("[" * 3000 + "]" * 3000)).encode(),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_malformed_delivery_gets_400_over_http(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each malformed body of issue #15 item 10 is answered 400 with no traceback logged."""
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET)
    async with TestClient(TestServer(make_aiohttp_app(receiver))) as client:
        response = await client.post("/akool/webhook", data=MALFORMED[name])
        answer = await response.json()
    assert response.status == 400, answer
    assert answer["ok"] is False
    assert receiver.stats.rejected == 1
    assert all(record.exc_info is None for record in caplog.records)
    assert all(record.levelno < logging.ERROR for record in caplog.records)


@pytest.mark.anyio
async def test_undecodable_plaintext_with_a_valid_signature_gets_400() -> None:
    """Decrypted bytes that are not UTF-8 are a rejection (400), not a crash."""
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET, max_age=None)
    body = webhook_crypto.seal(
        b"\xff\xfe{", client_id=CLIENT_ID, client_secret=SECRET, timestamp_ms=1, nonce="1"
    )
    answer = await receiver.handle(json.dumps(body))
    assert answer.status == 400
    assert receiver.stats.rejected_decrypt == 1


# --------------------------------------------------------------------------- the fuzz


class _ErrorRecords(logging.Handler):
    """Collects records at ERROR or above, and any record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info is not None:
            self.records.append(record)


class _ThreadedReceiver:
    """Two receivers (fresh-only and any timestamp) served by aiohttp from their own thread."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        fresh = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET)
        lenient = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET, max_age=None)
        app.router.add_post("/fresh", fresh.aiohttp_handler)
        app.router.add_post("/any", lenient.aiohttp_handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> _ThreadedReceiver:
        self._thread.start()
        assert self._ready.wait(30), "the receiver did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[int, _ErrorRecords]]:
    """A threaded receiver's port, and the error records logged while it served."""
    handler = _ErrorRecords()
    logging.getLogger().addHandler(handler)
    try:
        with _ThreadedReceiver() as server:
            yield server.port, handler
    finally:
        logging.getLogger().removeHandler(handler)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.text(alphabet="0123456789", min_size=1, max_size=5000),
)
_json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
#: Values that once crashed a receiver (huge numbers, long digit strings), or any other.
_hostile = st.one_of(
    st.sampled_from([10**16, 10**400, -1]),
    st.sampled_from([17, 400, 4301, 5000]).map(lambda n: "9" * n),
    _json_values,
)
_field_names = st.sampled_from(["signature", "dataEncrypt", "timestamp", "nonce", "x"])


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Raw bytes, odd JSON, deep nesting, or a sealed body with odd fields or content."""
    choice = draw(st.sampled_from(["bytes", "fields", "nesting", "content", *["replaced"] * 4]))
    if choice == "bytes":
        return draw(st.binary(max_size=200))
    if choice == "fields":
        return json.dumps(draw(st.dictionaries(_field_names, _json_values, max_size=5))).encode()
    if choice == "nesting":
        return _deep(draw(st.integers(1, 40_000)))
    inner: Any = {"_id": TASK_ID, "status": 3}
    if choice == "content":
        inner = draw(
            st.dictionaries(st.sampled_from(["_id", "status", "url", "type"]), _json_values)
            | _json_values
        )
    outer = sealed(json.dumps(inner))
    if choice == "replaced":
        outer[draw(_field_names)] = draw(_hostile)
    return json.dumps(outer).encode()


_header_names = st.sampled_from(
    ["Content-Type", "Content-Encoding", "X-Akool-Signature", "Accept", "Transfer-Encoding-X"]
)
_header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=_bodies(),
    headers=st.dictionaries(_header_names, _header_values, max_size=3),
    path=st.sampled_from(["/fresh", "/any"]),
)
def test_fuzzed_deliveries_are_answered_200_or_400(
    served: tuple[int, _ErrorRecords], body: bytes, headers: dict[str, str], path: str
) -> None:
    """Whatever the body and headers, the answer is 200 or 400 (413 when oversized), and
    nothing is logged as an error."""
    port, errors = served
    headers = {k: v.strip() for k, v in headers.items()}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if len(body) > MAX_BODY_BYTES:
        assert response.status == 413
    else:
        assert response.status in (200, 400), response.status
    assert errors.records == []
