"""akool_async.webhooks: signature, decryption, freshness, dedupe, dispatch, aiohttp endpoint.

The sender side is re-implemented here from akool-api.md §5.4-5.5 with ``cryptography``
directly (own PKCS#7, own signature); nothing from ``akool_async._webhook_crypto`` is reused,
so a shared mistake cannot make both sides agree.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import ManualClock
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akool_async import AkoolError, ConfigurationError
from akool_async._models import TaskStatus
from akool_async.webhooks import (
    MAX_BODY_BYTES,
    WebhookEvent,
    WebhookReceiver,
    WebhookVerificationError,
    make_aiohttp_app,
    verify_and_decrypt,
)

pytestmark = pytest.mark.anyio

# akool-api.md §5.6 (made-up credentials, cross-checked against crypto-js).
VEC_CLIENT_ID = "0123456789abcdef01234567"
VEC_SECRET = "abcdefghijklmnopqrstuvwx"
VEC_PLAINTEXT = (
    '{"_id":"689174694b4dbdd4ab3d28c9","status":3,"type":"video",'
    '"url":"https://example.com/out.mp4"}'
)
VEC_PAYLOAD: dict[str, Any] = {
    "signature": "346a0f62300af519e882b8c53a17b6e27f3d60e4",
    "dataEncrypt": (
        "d2old9DAwQr0qQK1JqkGb9gSmIcpXDFSuDwWk4lc+jyswBwDdyQIcXuFd744TCZRUlNAFuhAsBAylSYQ/"
        "AZZOFvG1t15Py0XnYZMaVS/jPDj+ov7rh62ieOH9/KQ3NAtIgAcOVl/HpyuAEM1i6uq8w=="
    ),
    "timestamp": 1710757981609,
    "nonce": "1529",
}
VEC_NOW = 1710757981609 / 1000

CLIENT_ID = "AKclientIdForTests0042=="
SECRET = "S3cr3t-Key-For-Tests-24b"  # 24 bytes -> AES-192
NOW = 1_750_000_000.0
NOW_MS = int(NOW * 1000)
TASK_ID = "68a0c0ffee0000000000abcd"


# --------------------------------------------------------------------- independent sender


def ind_sign(client_id: str, timestamp: object, nonce: object, data_encrypt: str) -> str:
    """Akool's signature, written out independently of the module."""
    parts = sorted([client_id, str(timestamp), str(nonce), data_encrypt])
    return hashlib.sha1("".join(parts).encode()).hexdigest()


def ind_pad(data: bytes) -> bytes:
    """PKCS#7 to the 16-byte AES block."""
    n = 16 - len(data) % 16
    return data + bytes([n]) * n


def ind_encrypt(padded: bytes, secret: str, client_id: str) -> str:
    """AES-CBC over already padded bytes; key = secret, iv = client_id[:16] zero-filled."""
    iv = client_id.encode()[:16].ljust(16, b"\0")
    enc = Cipher(algorithms.AES(secret.encode()), modes.CBC(iv)).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize()).decode()


def ind_seal(
    data: Any,
    *,
    client_id: str = CLIENT_ID,
    secret: str = SECRET,
    timestamp: Any = NOW_MS,
    nonce: Any = "1529",
    plaintext: bytes | None = None,
    padded: bytes | None = None,
) -> dict[str, Any]:
    """The outer payload Akool would POST (JSON-encodes ``data`` unless bytes are given)."""
    if plaintext is None:
        plaintext = json.dumps(data, separators=(",", ":")).encode()
    if padded is None:
        padded = ind_pad(plaintext)
    data_encrypt = ind_encrypt(padded, secret, client_id)
    return {
        "signature": ind_sign(client_id, timestamp, nonce, data_encrypt),
        "dataEncrypt": data_encrypt,
        "timestamp": timestamp,
        "nonce": nonce,
    }


def resign(payload: dict[str, Any], client_id: str = CLIENT_ID) -> dict[str, Any]:
    """The payload with its signature recomputed over its (possibly altered) fields."""
    sig = ind_sign(client_id, payload["timestamp"], payload["nonce"], payload["dataEncrypt"])
    return {**payload, "signature": sig}


def event_data(status: int = 3, task_id: str = TASK_ID, **extra: Any) -> dict[str, Any]:
    """A decrypted webhook object."""
    data: dict[str, Any] = {"_id": task_id, "status": status, "type": "faceswap"}
    if status == 3:
        data["url"] = f"https://cdn.example.com/{task_id}.mp4"
    data.update(extra)
    return data


def verify(payload: Any, **kw: Any) -> WebhookEvent:
    """verify_and_decrypt with the test credentials at NOW."""
    kw.setdefault("client_id", CLIENT_ID)
    kw.setdefault("client_secret", SECRET)
    kw.setdefault("now", NOW)
    return verify_and_decrypt(payload, **kw)


def reject(payload: Any, stage: str, **kw: Any) -> WebhookVerificationError:
    """Assert the payload is rejected at ``stage`` without leaking credentials."""
    with pytest.raises(WebhookVerificationError) as info:
        verify(payload, **kw)
    err = info.value
    assert err.stage == stage, str(err)
    for text in (str(err), repr(err), err.message):
        for secret in (SECRET, CLIENT_ID, kw.get("client_secret", SECRET)):
            assert not secret or secret not in text
    return err


def flip_b64(data_encrypt: str, byte_index: int) -> str:
    """Flip one bit of the decoded ciphertext byte at ``byte_index`` and re-encode."""
    raw = bytearray(base64.b64decode(data_encrypt))
    raw[byte_index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def make_receiver(**kw: Any) -> WebhookReceiver:
    """A receiver with the test credentials on a clock frozen at NOW."""
    kw.setdefault("client_id", CLIENT_ID)
    kw.setdefault("client_secret", SECRET)
    kw.setdefault("clock", ManualClock(start_wall=NOW, frozen=True))
    return WebhookReceiver(**kw)


def dumps(payload: dict[str, Any]) -> bytes:
    """The body bytes of a payload."""
    return json.dumps(payload).encode()


# --------------------------------------------------------------------- the §5.6 vector


def test_doc_vector_decrypts_to_documented_plaintext() -> None:
    """The §5.6 payload verifies and decrypts to exactly the documented plaintext."""
    event = verify_and_decrypt(
        json.dumps(VEC_PAYLOAD), client_id=VEC_CLIENT_ID, client_secret=VEC_SECRET, max_age=None
    )
    assert dict(event.raw) == json.loads(VEC_PLAINTEXT)
    assert event.id == "689174694b4dbdd4ab3d28c9"
    assert event.status is TaskStatus.COMPLETED
    assert event.is_terminal
    assert event.output_url == "https://example.com/out.mp4"
    assert event.type == "video"
    assert event.nonce == "1529"
    assert event.signature == VEC_PAYLOAD["signature"]
    assert event.timestamp == dt.datetime(2024, 3, 18, 10, 33, 1, 609000, tzinfo=dt.timezone.utc)


def test_doc_vector_with_now_passes_default_max_age() -> None:
    """With ``now`` near the vector's timestamp, the default max_age accepts it."""
    for now in (VEC_NOW + 1, dt.datetime.fromtimestamp(VEC_NOW - 1, tz=dt.timezone.utc)):
        event = verify_and_decrypt(
            VEC_PAYLOAD, client_id=VEC_CLIENT_ID, client_secret=VEC_SECRET, now=now
        )
        assert event.id == "689174694b4dbdd4ab3d28c9"


def test_doc_vector_is_stale_against_the_real_clock() -> None:
    """The 2024 vector is rejected as stale when checked against today's clock."""
    with pytest.raises(WebhookVerificationError) as info:
        verify_and_decrypt(VEC_PAYLOAD, client_id=VEC_CLIENT_ID, client_secret=VEC_SECRET)
    assert info.value.stage == "timestamp"


def test_independent_sender_reproduces_doc_vector() -> None:
    """The test's own encrypt+sign yields the §5.6 ciphertext and signature byte for byte."""
    sealed = ind_seal(
        None,
        client_id=VEC_CLIENT_ID,
        secret=VEC_SECRET,
        timestamp=1710757981609,
        nonce="1529",
        plaintext=VEC_PLAINTEXT.encode(),
    )
    assert sealed == VEC_PAYLOAD


def test_private_seal_helper_reproduces_doc_vector() -> None:
    """The sender-side helper kept for the simulator produces the §5.6 payload exactly."""
    from akool_async._webhook_crypto import seal  # noqa: PLC0415 - only this test uses it

    sealed = seal(
        VEC_PLAINTEXT,
        client_id=VEC_CLIENT_ID,
        client_secret=VEC_SECRET,
        timestamp_ms=1710757981609,
        nonce="1529",
    )
    assert sealed == VEC_PAYLOAD


# --------------------------------------------------------------------- accepted shapes


def test_body_may_be_bytes_str_bytearray_or_mapping() -> None:
    """Raw bytes, str, bytearray and an already-parsed mapping all verify the same."""
    payload = ind_seal(event_data())
    events = {
        verify(dumps(payload)),
        verify(json.dumps(payload)),
        verify(bytearray(dumps(payload))),
        verify(payload),
    }
    assert len(events) == 1


def test_numeric_and_string_nonce_both_accepted() -> None:
    """A numeric nonce is signed as its decimal string, exactly like the string form."""
    as_int = ind_seal(event_data(), nonce=1529)
    as_str = {**as_int, "nonce": "1529"}
    assert as_int["signature"] == as_str["signature"]
    assert verify(as_int).nonce == "1529"
    assert verify(as_str).nonce == "1529"


def test_timestamp_as_digit_string_accepted() -> None:
    """A timestamp sent as a string of digits is signed and checked as that string."""
    payload = ind_seal(event_data(), timestamp=str(NOW_MS))
    assert verify(payload).timestamp == dt.datetime.fromtimestamp(NOW, tz=dt.timezone.utc)


@pytest.mark.parametrize("secret", ["k" * 16, "k" * 24, "k" * 32])
def test_aes_128_192_256_chosen_by_secret_length(secret: str) -> None:
    """16, 24 and 32-byte secrets select AES-128/192/256 and round-trip."""
    payload = ind_seal(event_data(), secret=secret)
    assert verify(payload, client_secret=secret).id == TASK_ID


def test_short_client_id_iv_is_zero_padded() -> None:
    """A client_id shorter than 16 bytes gives a zero-padded IV (the documented choice)."""
    payload = ind_seal(event_data(), client_id="short-id")
    assert verify(payload, client_id="short-id").id == TASK_ID


def test_non_terminal_event_and_missing_url() -> None:
    """A processing event has no output_url and is not terminal; extra keys stay in raw."""
    payload = ind_seal({"_id": TASK_ID, "status": 2, "extra": [1, 2]})
    event = verify(payload)
    assert event.status is TaskStatus.PROCESSING
    assert not event.is_terminal
    assert event.output_url is None
    assert event.type is None
    assert event.raw["extra"] == [1, 2]


def test_raw_is_read_only() -> None:
    """A listener cannot mutate the event's raw mapping under other listeners."""
    event = verify(ind_seal(event_data()))
    with pytest.raises(TypeError):
        event.raw["status"] = 4  # type: ignore[index]


# --------------------------------------------------------------------- rejections


def test_forged_signature_rejected() -> None:
    """A signature that is not Akool's formula over the fields is rejected."""
    payload = {**ind_seal(event_data()), "signature": "0" * 40}
    reject(payload, "signature")


def test_signature_made_with_other_client_id_rejected() -> None:
    """A payload signed for another client_id fails the signature check."""
    payload = ind_seal(event_data(), client_id="AKsomebodyElseEntirely==")
    reject(payload, "signature")


def test_uppercase_signature_rejected() -> None:
    """The signature must be the documented lowercase hex."""
    payload = ind_seal(event_data())
    reject({**payload, "signature": payload["signature"].upper()}, "signature")


def test_tampered_ciphertext_with_original_signature_rejected() -> None:
    """Flipping a ciphertext byte while keeping the signature fails the signature check."""
    payload = ind_seal(event_data())
    tampered = {**payload, "dataEncrypt": flip_b64(payload["dataEncrypt"], 5)}
    reject(tampered, "signature")


@pytest.mark.parametrize("byte_index", [0, 20, -17, -1])
def test_tampered_ciphertext_with_recomputed_signature_rejected(byte_index: int) -> None:
    """With a re-computed signature, a flipped ciphertext byte still fails decryption."""
    payload = ind_seal(event_data())
    tampered = resign({**payload, "dataEncrypt": flip_b64(payload["dataEncrypt"], byte_index)})
    err = reject(tampered, "decrypt")
    assert "signature valid" in str(err)


@pytest.mark.parametrize("field", ["timestamp", "nonce"])
def test_changed_timestamp_or_nonce_rejected(field: str) -> None:
    """Changing a signed outer field without re-signing is rejected."""
    payload = ind_seal(event_data(), nonce="1529")
    changed = {**payload, field: NOW_MS + 1 if field == "timestamp" else "1530"}
    reject(changed, "signature")


def test_stale_timestamp_rejected() -> None:
    """A timestamp older than max_age is rejected before the signature is even checked."""
    payload = ind_seal(event_data(), timestamp=NOW_MS - 301_000)
    err = reject(payload, "timestamp")
    assert "old" in str(err)


def test_future_timestamp_rejected() -> None:
    """A timestamp more than max_age in the future is rejected."""
    payload = ind_seal(event_data(), timestamp=NOW_MS + 301_000)
    err = reject(payload, "timestamp")
    assert "future" in str(err)


def test_timestamp_at_max_age_edges_accepted() -> None:
    """Exactly max_age old or ahead is still fresh; a custom max_age is honoured."""
    assert verify(ind_seal(event_data(), timestamp=NOW_MS - 300_000)).id == TASK_ID
    assert verify(ind_seal(event_data(), timestamp=NOW_MS + 300_000)).id == TASK_ID
    reject(ind_seal(event_data(), timestamp=NOW_MS - 11_000), "timestamp", max_age=10)


def test_max_age_none_disables_freshness() -> None:
    """max_age=None accepts a years-old timestamp."""
    payload = ind_seal(event_data(), timestamp=1_000)
    assert verify(payload, max_age=None).timestamp.year == 1970


def test_bad_padding_rejected() -> None:
    """Correctly encrypted and signed data with invalid PKCS#7 padding is rejected."""
    plaintext = json.dumps(event_data()).encode()
    bad = plaintext + b"\0" * (16 - len(plaintext) % 16)  # zero padding, not PKCS#7
    err = reject(ind_seal(None, padded=bad), "decrypt")
    assert "padding" in str(err)


def test_padding_to_24_bytes_rejected() -> None:
    """Padding to the doc's wrong 24-byte 'K' instead of the AES block is rejected."""
    plaintext = b'{"_id":"x","status":3}'  # 22 bytes: pad 2 -> 24 -> not a block multiple
    padded = plaintext + bytes([2]) * 2 + b"\x10" * 8  # 32 bytes, last byte claims 16
    reject(ind_seal(None, padded=padded), "decrypt")


def test_wrong_secret_rejected() -> None:
    """Data encrypted with another secret of valid length fails decryption."""
    other = "another-24-byte-secret!!"
    payload = ind_seal(event_data(), secret=other)
    err = reject(payload, "decrypt", client_secret=SECRET)
    assert other not in str(err)
    assert "client_secret" in str(err)


@pytest.mark.parametrize("secret", ["", "x" * 15, "x" * 20, "x" * 33, "é" * 10])
def test_wrong_key_length_rejected(secret: str) -> None:
    """A secret that is not 16/24/32 UTF-8 bytes is a clear config-stage error."""
    err = reject(ind_seal(event_data()), "config", client_secret=secret)
    assert "16, 24 or 32 bytes" in str(err)
    with pytest.raises(ConfigurationError, match="16, 24 or 32 bytes"):
        make_receiver(client_secret=secret)


def test_empty_client_id_rejected() -> None:
    """An empty client_id is a config-stage error (and a ConfigurationError for receivers)."""
    reject(ind_seal(event_data()), "config", client_id="")
    with pytest.raises(ConfigurationError):
        make_receiver(client_id="")


def _valid() -> dict[str, Any]:
    return ind_seal(event_data())


MALFORMED: list[tuple[str, Callable[[], Any], str]] = [
    ("not json", lambda: b"{not json", "payload"),
    ("int body", lambda: 1529, "payload"),
    ("not utf-8", lambda: b"\xff\xfe\xfa", "payload"),
    ("empty body", lambda: b"", "payload"),
    ("json array", lambda: b"[1, 2]", "payload"),
    ("json string", lambda: b'"hello"', "payload"),
    ("deep nesting", lambda: b"[" * 50_000 + b"]" * 50_000, "payload"),
    ("oversized", lambda: b" " * (MAX_BODY_BYTES + 1), "payload"),
    ("no signature", lambda: {k: v for k, v in _valid().items() if k != "signature"}, "payload"),
    ("no data", lambda: {k: v for k, v in _valid().items() if k != "dataEncrypt"}, "payload"),
    ("no timestamp", lambda: {k: v for k, v in _valid().items() if k != "timestamp"}, "payload"),
    ("no nonce", lambda: {k: v for k, v in _valid().items() if k != "nonce"}, "payload"),
    ("numeric signature", lambda: {**_valid(), "signature": 123}, "payload"),
    ("empty data", lambda: resign({**_valid(), "dataEncrypt": ""}), "payload"),
    ("float timestamp", lambda: {**_valid(), "timestamp": NOW_MS + 0.5}, "payload"),
    ("bool timestamp", lambda: {**_valid(), "timestamp": True}, "payload"),
    ("text timestamp", lambda: {**_valid(), "timestamp": "soon"}, "payload"),
    ("null nonce", lambda: {**_valid(), "nonce": None}, "payload"),
    ("float nonce", lambda: {**_valid(), "nonce": 1529.5}, "payload"),
    ("bool nonce", lambda: {**_valid(), "nonce": False}, "payload"),
    ("non-ascii signature", lambda: {**_valid(), "signature": "é" * 40}, "signature"),
    ("lone surrogate", lambda: {**_valid(), "signature": "\ud800" * 40}, "signature"),
    ("bad base64", lambda: resign({**_valid(), "dataEncrypt": "!!!not base64!!!"}), "decrypt"),
    (
        "hex ciphertext",
        lambda: resign(
            {**_valid(), "dataEncrypt": base64.b64decode(_valid()["dataEncrypt"]).hex()}
        ),
        "decrypt",
    ),
    (
        "ciphertext not block multiple",
        lambda: resign({**_valid(), "dataEncrypt": base64.b64encode(b"x" * 20).decode()}),
        "decrypt",
    ),
    ("plaintext not json", lambda: ind_seal(None, plaintext=b"<html>"), "decrypt"),
    ("plaintext not utf-8", lambda: ind_seal(None, plaintext=b"\xff" * 5), "decrypt"),
    ("plaintext array", lambda: ind_seal([1, 2, 3]), "event"),
    ("plaintext null", lambda: ind_seal(None), "event"),
    ("no _id", lambda: ind_seal({"status": 3}), "event"),
    ("numeric _id", lambda: ind_seal({"_id": 5, "status": 3}), "event"),
    ("unknown status", lambda: ind_seal(event_data(status=7)), "event"),
    ("status zero", lambda: ind_seal(event_data(status=0)), "event"),
    ("bool status", lambda: ind_seal({"_id": TASK_ID, "status": True}), "event"),
    ("missing status", lambda: ind_seal({"_id": TASK_ID}), "event"),
    ("huge timestamp", lambda: ind_seal(event_data(), timestamp=10**20), "payload"),
]


@pytest.mark.parametrize(
    ("make", "stage"), [(m, s) for _, m, s in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_bodies_rejected(make: Callable[[], Any], stage: str) -> None:
    """Each malformed body raises WebhookVerificationError at the right stage."""
    payload = make()
    reject(payload, stage, max_age=None)


def test_unknown_status_error_names_task() -> None:
    """An unknown decrypted status is rejected with the task id and the value in the message."""
    err = reject(ind_seal(event_data(status=9)), "event")
    assert err.task_id == TASK_ID
    assert "9" in err.message


def test_error_is_an_akool_error() -> None:
    """WebhookVerificationError derives from AkoolError."""
    assert issubclass(WebhookVerificationError, AkoolError)


def test_bad_configuration_values() -> None:
    """A negative max_age, a naive now or a zero dedupe_size are ConfigurationErrors."""
    payload = ind_seal(event_data())
    with pytest.raises(ConfigurationError):
        verify(payload, max_age=-1)
    with pytest.raises(ConfigurationError):
        verify(payload, now=dt.datetime(2025, 1, 1))  # naive on purpose
    with pytest.raises(ConfigurationError):
        make_receiver(dedupe_size=0)
    with pytest.raises(ConfigurationError):
        make_receiver(max_age=float("nan"))


def test_missing_cryptography_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without cryptography, verification and receivers raise ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    with pytest.raises(ImportError, match=r"pip install 'akool-async\[webhooks\]'"):
        verify(ind_seal(event_data()))
    with pytest.raises(ImportError, match=r"akool-async\[webhooks\]"):
        make_receiver()


def test_secrets_never_in_errors_or_repr() -> None:
    """No rejection message, error repr or receiver repr contains client_id or client_secret."""
    texts: list[str] = []
    for _, make, _stage in MALFORMED:
        with pytest.raises(WebhookVerificationError) as info:
            verify(make(), max_age=None)
        texts += [str(info.value), repr(info.value)]
    receiver = make_receiver()
    texts.append(repr(receiver))
    texts.append(str(receiver))
    for text in texts:
        assert SECRET not in text
        assert CLIENT_ID not in text
    with pytest.raises(ConfigurationError) as info2:
        make_receiver(client_secret="too-short-" + SECRET[:5])
    assert SECRET[:5] not in str(info2.value)


# --------------------------------------------------------------------- receiver


async def test_receiver_accepts_and_dispatches_once() -> None:
    """A valid delivery is answered 200 and reaches each listener exactly once."""
    receiver = make_receiver()
    seen: list[WebhookEvent] = []
    receiver.add_listener(seen.append)
    answer = await receiver.handle(dumps(ind_seal(event_data())))
    assert answer.status == 200
    assert answer.ok
    assert not answer.duplicate
    assert json.loads(answer.body) == {"ok": True, "duplicate": False}
    assert answer.content_type == "application/json"
    assert [e.id for e in seen] == [TASK_ID]
    assert answer.event == seen[0]
    assert (receiver.accepted, receiver.duplicates, receiver.rejected) == (1, 0, 0)


async def test_replayed_delivery_answered_200_not_dispatched_again() -> None:
    """Re-posting the identical body is a duplicate: 200, counted, not dispatched."""
    receiver = make_receiver()
    seen: list[WebhookEvent] = []
    receiver.add_listener(seen.append)
    body = dumps(ind_seal(event_data()))
    first = await receiver.handle(body)
    second = await receiver.handle(body)
    assert (first.status, second.status) == (200, 200)
    assert second.duplicate
    assert json.loads(second.body)["duplicate"] is True
    assert len(seen) == 1
    assert (receiver.accepted, receiver.duplicates) == (1, 1)


async def test_resigned_repeat_of_same_transition_is_duplicate() -> None:
    """A re-sent event with a new nonce (new signature) but same id and status is a duplicate."""
    receiver = make_receiver()
    seen: list[WebhookEvent] = []
    receiver.add_listener(seen.append)
    await receiver.handle(dumps(ind_seal(event_data(), nonce="1")))
    again = await receiver.handle(dumps(ind_seal(event_data(), nonce=2)))
    assert again.status == 200
    assert again.duplicate
    assert len(seen) == 1


async def test_new_status_for_same_task_is_dispatched() -> None:
    """PROCESSING then COMPLETED for one task are two events, both dispatched."""
    receiver = make_receiver()
    seen: list[TaskStatus] = []
    receiver.add_listener(lambda e: seen.append(e.status))
    await receiver.handle(dumps(ind_seal(event_data(status=2), nonce="1")))
    await receiver.handle(dumps(ind_seal(event_data(status=3), nonce="2")))
    assert seen == [TaskStatus.PROCESSING, TaskStatus.COMPLETED]


async def test_receiver_rejects_forgery_with_reason_and_400() -> None:
    """A forged delivery is answered 400 with the reason, not dispatched, counted as rejected."""
    receiver = make_receiver()
    seen: list[WebhookEvent] = []
    receiver.add_listener(seen.append)
    answer = await receiver.handle(dumps({**ind_seal(event_data()), "signature": "f" * 40}))
    assert answer.status == 400
    assert not answer.ok
    assert "signature does not match" in json.loads(answer.body)["error"]
    assert answer.error is not None
    assert answer.error.stage == "signature"
    assert seen == []
    assert receiver.rejected == 1
    assert SECRET.encode() not in answer.body
    assert CLIENT_ID.encode() not in answer.body


async def test_receiver_hides_decrypt_detail_from_sender() -> None:
    """Padding and JSON failures after a valid signature get one opaque answer (no oracle)."""
    receiver = make_receiver()
    plaintext = json.dumps(event_data()).encode()
    bad_pad = ind_seal(None, padded=plaintext + b"\0" * (16 - len(plaintext) % 16))
    bad_json = ind_seal(None, plaintext=b"<html>")
    bad_status = ind_seal(event_data(status=8))
    answers = [await receiver.handle(dumps(p)) for p in (bad_pad, bad_json, bad_status)]
    assert {a.status for a in answers} == {400}
    assert len({a.body for a in answers}) == 1
    assert [a.error.stage for a in answers if a.error] == ["decrypt", "decrypt", "event"]
    assert "padding" in str(answers[0].error)


async def test_receiver_stale_and_future_rejected_with_its_clock() -> None:
    """The receiver checks freshness against its clock; moving the clock changes the verdict."""
    clock = ManualClock(start_wall=NOW, frozen=True)
    receiver = make_receiver(clock=clock)
    body = dumps(ind_seal(event_data()))
    clock.start_wall = NOW + 301
    assert (await receiver.handle(body)).status == 400
    clock.start_wall = NOW - 301
    assert (await receiver.handle(body)).status == 400
    clock.start_wall = NOW
    assert (await receiver.handle(body)).status == 200
    assert (receiver.rejected, receiver.accepted) == (2, 1)


async def test_receiver_oversized_body_gets_413() -> None:
    """A body larger than MAX_BODY_BYTES is refused with 413 without parsing."""
    receiver = make_receiver()
    answer = await receiver.handle(b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert answer.status == 413
    assert receiver.rejected == 1


async def test_unsubscribe_stops_delivery() -> None:
    """After unsubscribe (twice is harmless) a listener receives nothing more."""
    receiver = make_receiver()
    first: list[WebhookEvent] = []
    second: list[WebhookEvent] = []
    unsubscribe = receiver.add_listener(first.append)
    receiver.add_listener(second.append)
    await receiver.handle(dumps(ind_seal(event_data(task_id="a" * 24))))
    unsubscribe()
    unsubscribe()
    await receiver.handle(dumps(ind_seal(event_data(task_id="b" * 24))))
    assert [e.id for e in first] == ["a" * 24]
    assert [e.id for e in second] == ["a" * 24, "b" * 24]


async def test_listener_error_answers_500_and_retry_redispatches() -> None:
    """If a listener raises, others still run, Akool gets 500, and its retry is dispatched."""
    receiver = make_receiver()
    calls: list[str] = []
    fail = [True]

    def flaky(event: WebhookEvent) -> None:
        calls.append("flaky")
        if fail[0]:
            raise RuntimeError("listener bug")

    receiver.add_listener(flaky)
    receiver.add_listener(lambda e: calls.append("steady"))
    body = dumps(ind_seal(event_data()))
    first = await receiver.handle(body)
    assert first.status == 500
    assert calls == ["flaky", "steady"]
    assert receiver.recent(TASK_ID) is None
    fail[0] = False
    second = await receiver.handle(body)
    assert second.status == 200
    assert not second.duplicate
    assert calls == ["flaky", "steady", "flaky", "steady"]
    assert (receiver.listener_errors, receiver.accepted) == (1, 1)


async def test_listener_may_unsubscribe_during_dispatch() -> None:
    """A listener that unsubscribes itself while being called does not break dispatch."""
    receiver = make_receiver()
    seen: list[str] = []
    unsubscribe: Callable[[], None] = lambda: None  # noqa: E731 - replaced just below

    def once(event: WebhookEvent) -> None:
        seen.append(event.id)
        unsubscribe()

    unsubscribe = receiver.add_listener(once)
    await receiver.handle(dumps(ind_seal(event_data(task_id="a" * 24))))
    await receiver.handle(dumps(ind_seal(event_data(task_id="b" * 24))))
    assert seen == ["a" * 24]


async def test_recent_remembers_events_for_late_watchers() -> None:
    """recent() returns an event accepted before anyone watched its id; unknown ids give None."""
    receiver = make_receiver()
    await receiver.handle(dumps(ind_seal(event_data())))
    event = receiver.recent(TASK_ID)
    assert event is not None
    assert event.status is TaskStatus.COMPLETED
    assert receiver.recent("nope") is None


async def test_recent_prefers_terminal_over_late_nonterminal() -> None:
    """An out-of-order PROCESSING after COMPLETED does not hide the terminal event."""
    receiver = make_receiver()
    await receiver.handle(dumps(ind_seal(event_data(status=3), nonce="1")))
    await receiver.handle(dumps(ind_seal(event_data(status=2), nonce="2")))
    event = receiver.recent(TASK_ID)
    assert event is not None
    assert event.status is TaskStatus.COMPLETED


async def test_dedupe_and_recent_are_bounded() -> None:
    """Beyond dedupe_size the oldest ids are forgotten, so memory stays bounded."""
    receiver = make_receiver(dedupe_size=2)
    bodies = [dumps(ind_seal(event_data(task_id=f"{i:024d}"), nonce=i)) for i in range(3)]
    for body in bodies:
        assert (await receiver.handle(body)).status == 200
    assert receiver.recent(f"{0:024d}") is None
    assert receiver.recent(f"{2:024d}") is not None
    again = await receiver.handle(bodies[0])  # forgotten: accepted again
    assert not again.duplicate
    assert receiver.accepted == 4


async def test_receiver_verify_is_pure() -> None:
    """receiver.verify() decrypts with the receiver's credentials without touching counters."""
    receiver = make_receiver()
    event = receiver.verify(dumps(ind_seal(event_data())))
    assert event.id == TASK_ID
    assert (receiver.accepted, receiver.duplicates, receiver.rejected) == (0, 0, 0)
    assert receiver.max_age == 300.0


# --------------------------------------------------------------------- aiohttp over loopback


async def test_aiohttp_app_over_loopback() -> None:
    """The aiohttp app answers real HTTP: 200 accept, 200 duplicate, 400 forgery, 405, 413."""
    receiver = make_receiver()
    seen: list[WebhookEvent] = []
    receiver.add_listener(seen.append)
    app = make_aiohttp_app(receiver)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert client.host == "127.0.0.1"
        body = dumps(ind_seal(event_data()))
        headers = {"Content-Type": "application/json"}
        resp = await client.post("/akool/webhook", data=body, headers=headers)
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == {"ok": True, "duplicate": False}

        resp = await client.post("/akool/webhook", data=body, headers=headers)
        assert resp.status == 200
        assert (await resp.json())["duplicate"] is True

        forged = dumps({**ind_seal(event_data(status=4)), "signature": "a" * 40})
        resp = await client.post("/akool/webhook", data=forged, headers=headers)
        assert resp.status == 400
        assert "signature" in (await resp.json())["error"]

        resp = await client.get("/akool/webhook")
        assert resp.status == 405

        resp = await client.post("/akool/webhook", data=b"x" * (MAX_BODY_BYTES * 2))
        assert resp.status == 413

    assert [e.id for e in seen] == [TASK_ID]
    assert (receiver.accepted, receiver.duplicates, receiver.rejected) == (1, 1, 2)


async def test_aiohttp_handler_on_custom_path() -> None:
    """make_aiohttp_app honours a custom path, and posted events reach the listener."""
    receiver = make_receiver()
    seen: list[WebhookEvent] = []
    receiver.add_listener(seen.append)
    async with TestClient(
        TestServer(make_aiohttp_app(receiver, path="/hooks/akool"), host="127.0.0.1")
    ) as client:
        resp = await client.post("/hooks/akool", data=dumps(ind_seal(event_data(status=4))))
        assert resp.status == 200
        resp = await client.post("/akool/webhook", data=b"{}")
        assert resp.status == 404
    assert [e.status for e in seen] == [TaskStatus.FAILED]


# --------------------------------------------------------------------- hypothesis

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
events = st.fixed_dictionaries(
    {"_id": st.text(min_size=1, max_size=40), "status": st.integers(1, 4)},
    optional={
        "type": st.text(max_size=20),
        "url": st.text(max_size=60),
    },
).flatmap(
    lambda base: st.dictionaries(
        # Unknown keys only: never a documented field, present in base or not.
        st.text(max_size=10).filter(lambda k: k not in {"_id", "status", "type", "url"}),
        json_values,
        max_size=4,
    ).map(lambda extra: {**base, **extra})
)
nonces = st.text(max_size=12) | st.integers(0, 10**12)
HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPO
@given(data=events, nonce=nonces, skew_ms=st.integers(-300_000, 300_000))
def test_random_events_round_trip(data: dict[str, Any], nonce: str | int, skew_ms: int) -> None:
    """Any event object, independently encrypted and signed, decrypts back to itself."""
    payload = ind_seal(data, timestamp=NOW_MS + skew_ms, nonce=nonce)
    event = verify(json.dumps(payload))
    assert dict(event.raw) == data
    assert event.id == data["_id"]
    assert event.status == data["status"]
    assert event.nonce == str(nonce)
    assert event.output_url == (data.get("url") or None)
    assert event.type == data.get("type")


@HYPO
@given(
    data=events,
    field=st.sampled_from(["signature", "dataEncrypt"]),
    position=st.integers(min_value=0),
    replacement=st.characters(codec="utf-8"),
)
def test_any_single_character_mutation_rejected(
    data: dict[str, Any], field: str, position: int, replacement: str
) -> None:
    """Changing any one character of signature or dataEncrypt makes verification fail."""
    payload = ind_seal(data)
    value: str = payload[field]
    i = position % len(value)
    if value[i] == replacement:
        replacement = "0" if value[i] != "0" else "1"
    mutated = {**payload, field: value[:i] + replacement + value[i + 1 :]}
    with pytest.raises(WebhookVerificationError) as info:
        verify(mutated)
    assert info.value.stage == "signature"


@HYPO
@given(data=events, byte_index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_ciphertext_bit_flip_rejected(data: dict[str, Any], byte_index: int, bit: int) -> None:
    """Any single flipped bit of the decoded ciphertext fails the signature check."""
    payload = ind_seal(data)
    raw = bytearray(base64.b64decode(payload["dataEncrypt"]))
    raw[byte_index % len(raw)] ^= 1 << bit
    tampered = {**payload, "dataEncrypt": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(WebhookVerificationError) as info:
        verify(tampered)
    assert info.value.stage == "signature"
