"""Akool webhook cryptography: the signature and the AES-CBC envelope.

The one implementation behind :mod:`akool_async.webhooks` (the receiving side) and the
simulator in :mod:`akool_async.testing` (the sending side, :func:`seal`); pinned by vectors
made with Node's crypto (``tests/data/webhook_vectors.json``). The contract is
``akool-api.md`` §5.4-5.5:

- ``signature = sha1_hex("".join(sorted([client_id, str(timestamp), str(nonce),
  dataEncrypt])))`` -- plain string sort, no separator, UTF-8, lowercase hex. There is no
  secret in it: ``client_id`` is the only "key".
- ``dataEncrypt = base64(AES-CBC(key=client_secret UTF-8 (16/24/32 bytes -> AES-128/192/256),
  iv=first 16 bytes of client_id UTF-8, zero-padded if shorter, PKCS#7 over 16-byte blocks))``.

``cryptography`` is imported lazily so that ``import akool_async.webhooks`` works without the
``webhooks`` extra; only the AES functions need it.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

__all__ = [
    "AES_BLOCK_SIZE",
    "AES_KEY_SIZES",
    "INSTALL_HINT",
    "aes_key",
    "cbc_iv",
    "credentials",
    "decrypt",
    "encrypt",
    "encrypt_data",
    "require_cryptography",
    "seal",
    "signature",
]

INSTALL_HINT = "pip install 'akool-async[webhooks]'"
AES_BLOCK_SIZE = 16
AES_KEY_SIZES = (16, 24, 32)


def _utf8(text: str) -> bytes:
    # surrogatepass: a JSON body may carry lone surrogates ("\ud800"); hashing them must
    # fail the comparison, never crash the receiver.
    return text.encode("utf-8", "surrogatepass")


def signature(client_id: str, timestamp: str, nonce: str, data_encrypt: str) -> str:
    """The lowercase hex SHA-1 Akool puts in ``signature`` (all four values as strings)."""
    joined = "".join(sorted([client_id, timestamp, nonce, data_encrypt]))
    # SHA-1 is what Akool uses; this is interoperability, not our choice of hash.
    return hashlib.sha1(_utf8(joined), usedforsecurity=False).hexdigest()


def aes_key(client_secret: str) -> bytes:
    """The AES key: ``client_secret`` as UTF-8; raises ValueError unless 16, 24 or 32 bytes.

    The message gives the length, never the secret.
    """
    key = _utf8(client_secret)
    if len(key) not in AES_KEY_SIZES:
        raise ValueError(
            f"client_secret must be 16, 24 or 32 bytes in UTF-8 (AES-128/192/256); "
            f"got {len(key)} bytes"
        )
    return key


def cbc_iv(client_id: str) -> bytes:
    """The IV: the first 16 bytes of ``client_id`` as UTF-8, zero-padded if shorter.

    Zero padding follows Akool's Python sample and crypto-js; the official demo pads with
    spaces instead (akool-api.md §5.5). Real clientIds are 22-24 characters, so no padding
    happens in practice.
    """
    return _utf8(client_id)[:AES_BLOCK_SIZE].ljust(AES_BLOCK_SIZE, b"\0")


def credentials(client_id: str, client_secret: str) -> tuple[bytes, bytes]:
    """(AES key, IV) of a receiver's credentials, or ValueError/ImportError free of secrets."""
    if not isinstance(client_id, str) or not client_id:
        raise ValueError("client_id must be a non-empty string")
    if not isinstance(client_secret, str):
        raise ValueError("client_secret must be a string")  # noqa: TRY004 - reported as a value error
    key = aes_key(client_secret)
    require_cryptography()
    return key, cbc_iv(client_id)


def require_cryptography() -> None:
    """Raise ImportError with the install hint if ``cryptography`` is missing."""
    try:
        from cryptography.hazmat.primitives import padding  # noqa: F401, PLC0415
        from cryptography.hazmat.primitives.ciphers import (  # noqa: F401, PLC0415
            Cipher,
            algorithms,
            modes,
        )
    except ImportError as exc:
        raise ImportError(
            f"akool_async.webhooks needs the 'cryptography' package to decrypt Akool "
            f"webhooks: {INSTALL_HINT}"
        ) from exc


def decrypt(ciphertext: bytes, key: bytes, iv: bytes) -> bytes:
    """AES-CBC decrypt and strip PKCS#7 (16-byte blocks).

    Raises ValueError (with a reason) for a length that is not a whole number of blocks or
    for bad padding -- which is also what a wrong key almost always looks like.
    """
    require_cryptography()
    from cryptography.hazmat.primitives import padding  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

    if not ciphertext or len(ciphertext) % AES_BLOCK_SIZE:
        raise ValueError(
            f"ciphertext is {len(ciphertext)} bytes, not a positive multiple of the "
            f"{AES_BLOCK_SIZE}-byte AES block"
        )
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(AES_BLOCK_SIZE * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ValueError("bad PKCS#7 padding (wrong client_secret or tampered data)") from None


def encrypt(plaintext: bytes, key: bytes, iv: bytes) -> bytes:
    """PKCS#7-pad to 16-byte blocks and AES-CBC encrypt (the sender's side)."""
    require_cryptography()
    from cryptography.hazmat.primitives import padding  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

    padder = padding.PKCS7(AES_BLOCK_SIZE * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def encrypt_data(plaintext: str | bytes, *, client_id: str, client_secret: str) -> str:
    """The ``dataEncrypt`` text: Base64 of :func:`encrypt` with the key and IV of these
    credentials (ValueError for a ``client_secret`` that is not 16, 24 or 32 bytes)."""
    data = _utf8(plaintext) if isinstance(plaintext, str) else plaintext
    ciphertext = encrypt(data, aes_key(client_secret), cbc_iv(client_id))
    return base64.b64encode(ciphertext).decode("ascii")


def seal(
    plaintext: str | bytes,
    *,
    client_id: str,
    client_secret: str,
    timestamp_ms: int,
    nonce: str | int,
) -> dict[str, Any]:
    """The outer webhook payload Akool would POST for the decrypted JSON ``plaintext``.

    ``json.dumps(seal(...))`` is a body that :func:`akool_async.webhooks.verify_and_decrypt`
    accepts with the same credentials; ``timestamp`` and ``nonce`` keep their JSON types.
    """
    data_encrypt = encrypt_data(plaintext, client_id=client_id, client_secret=client_secret)
    return {
        "signature": signature(client_id, str(timestamp_ms), str(nonce), data_encrypt),
        "dataEncrypt": data_encrypt,
        "timestamp": timestamp_ms,
        "nonce": nonce,
    }
