"""The one webhook crypto implementation against vectors made by Node's built-in crypto.

``tests/data/webhook_vectors.json`` is the output of ``node tests/data/make_webhook_vectors.js``
(committed, so this test needs no node): another implementation of akool-api.md §5.4-5.5.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from akool_async import _webhook_crypto as crypto
from akool_async.testing import encrypt_webhook_data, sign_webhook, webhook_body
from akool_async.webhooks import verify_and_decrypt

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "webhook_vectors.json").read_text(encoding="utf-8")
)["vectors"]


def _ids(vector: dict[str, Any]) -> str:
    return str(vector["name"])


def test_the_vectors_cover_every_key_size_and_a_short_client_id() -> None:
    """The committed vectors exercise AES-128/192/256 and a zero-padded IV."""
    sizes = {len(v["clientSecret"].encode()) for v in VECTORS}
    assert sizes == {16, 24, 32}
    assert any(len(v["clientId"].encode()) < 16 for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_iv_matches(vector: dict[str, Any]) -> None:
    """The IV is the first 16 bytes of the client id, zero-padded, as Node computed it."""
    assert crypto.cbc_iv(vector["clientId"]).hex() == vector["iv"]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_encrypt_matches(vector: dict[str, Any]) -> None:
    """Encrypting the plaintext gives Node's dataEncrypt byte for byte."""
    assert (
        crypto.encrypt_data(
            vector["plaintext"], client_id=vector["clientId"], client_secret=vector["clientSecret"]
        )
        == vector["dataEncrypt"]
    )
    key = crypto.aes_key(vector["clientSecret"])
    raw = crypto.encrypt(vector["plaintext"].encode(), key, bytes.fromhex(vector["iv"]))
    assert base64.b64encode(raw).decode() == vector["dataEncrypt"]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_decrypt_matches(vector: dict[str, Any]) -> None:
    """Decrypting Node's dataEncrypt gives back the plaintext."""
    key = crypto.aes_key(vector["clientSecret"])
    plain = crypto.decrypt(
        base64.b64decode(vector["dataEncrypt"]), key, crypto.cbc_iv(vector["clientId"])
    )
    assert plain.decode() == vector["plaintext"]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_signature_matches(vector: dict[str, Any]) -> None:
    """The signature over the four sorted strings equals Node's."""
    assert (
        crypto.signature(
            vector["clientId"],
            str(vector["timestamp"]),
            str(vector["nonce"]),
            vector["dataEncrypt"],
        )
        == vector["signature"]
    )


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_simulator_sender_matches(vector: dict[str, Any]) -> None:
    """The simulator's public sealing helpers produce Node's payload."""
    body = webhook_body(
        plaintext=vector["plaintext"],
        client_id=vector["clientId"],
        client_secret=vector["clientSecret"],
        timestamp=vector["timestamp"],
        nonce=vector["nonce"],
    )
    assert body == {
        "signature": vector["signature"],
        "dataEncrypt": vector["dataEncrypt"],
        "timestamp": vector["timestamp"],
        "nonce": vector["nonce"],
    }
    assert (
        encrypt_webhook_data(
            vector["plaintext"], client_id=vector["clientId"], client_secret=vector["clientSecret"]
        )
        == vector["dataEncrypt"]
    )
    assert (
        sign_webhook(
            client_id=vector["clientId"],
            timestamp=vector["timestamp"],
            nonce=vector["nonce"],
            data_encrypt=vector["dataEncrypt"],
        )
        == vector["signature"]
    )


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_receiver_accepts_node_payload(vector: dict[str, Any]) -> None:
    """The SDK's receiver verifies and decrypts Node's payload to the plaintext."""
    payload = {k: vector[k] for k in ("signature", "dataEncrypt", "timestamp", "nonce")}
    event = verify_and_decrypt(
        json.dumps(payload),
        client_id=vector["clientId"],
        client_secret=vector["clientSecret"],
        max_age=None,
    )
    assert dict(event.raw) == json.loads(vector["plaintext"])
    assert event.signature == vector["signature"]
