"""Reading the fields of an Akool webhook body, each rejection a ``ValueError`` with a reason.

Also the receiver's argument checks (``now``, ``max_age``).

Every function accepts any JSON value and either returns the field or raises ValueError
whose message names the field and never echoes the value; ``akool_async.webhooks`` turns
that into a ``WebhookVerificationError``. Sizes are bounded before any conversion, so a
10**400 timestamp, a 5,000-digit string or deep nesting is a reason, never a crash.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from ._clock import SYSTEM_CLOCK
from ._errors import ConfigurationError

__all__ = [
    "MAX_TIMESTAMP_DIGITS",
    "check_max_age",
    "load_object",
    "nonce_text",
    "now_seconds",
    "require_str",
    "status_number",
    "timestamp_ms",
]

#: Digits an epoch-milliseconds timestamp may have (13 today; 16 reaches the year 2286+).
MAX_TIMESTAMP_DIGITS = 16
#: Digits a status may have (the known ones are 1-4).
_MAX_STATUS_DIGITS = 3
#: Characters of a nonce (Akool's are four digits).
_MAX_NONCE_CHARS = 256


def load_object(body: bytes | str, what: str) -> dict[str, Any]:
    """``body`` parsed as a JSON object; ValueError for bad JSON, bad UTF-8 or deep nesting."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{what} is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise ValueError(  # noqa: TRY004 - a rejected body, reported like every other reason
            f"{what} must be a JSON object, not {type(value).__name__}"
        )
    return value


def require_str(outer: Mapping[str, Any], name: str) -> str:
    """The non-empty string field ``name``."""
    if name not in outer:
        raise ValueError(f"missing field {name!r}")
    value = outer[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"field {name!r} must be a non-empty string")
    return value


def _digits(value: object, max_digits: int) -> str | None:
    """The decimal text of a non-negative JSON integer or digit string, if short enough."""
    if isinstance(value, bool):  # a JSON true is not a number
        return None
    if isinstance(value, int):
        # Compare before str(): str() of a huge int is slow and may raise ValueError.
        return str(value) if 0 <= value < 10**max_digits else None
    if isinstance(value, str) and 0 < len(value) <= max_digits:
        return value if value.isascii() and value.isdigit() else None
    return None


def timestamp_ms(outer: Mapping[str, Any]) -> tuple[str, int]:
    """The ``timestamp`` field as (the text the signature covers, epoch milliseconds)."""
    if "timestamp" not in outer:
        raise ValueError("missing field 'timestamp'")
    text = _digits(outer["timestamp"], MAX_TIMESTAMP_DIGITS)
    if text is None:
        raise ValueError(
            f"field 'timestamp' must be a non-negative integer of at most "
            f"{MAX_TIMESTAMP_DIGITS} digits (epoch milliseconds)"
        )
    return text, int(text)


def nonce_text(outer: Mapping[str, Any]) -> str:
    """The ``nonce`` field as the text the signature covers (a string or an integer)."""
    if "nonce" not in outer:
        raise ValueError("missing field 'nonce'")
    value = outer["nonce"]
    if isinstance(value, str) and len(value) <= _MAX_NONCE_CHARS:
        return value
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and abs(value) < 10**_MAX_NONCE_CHARS:
        return str(value)
    raise ValueError(
        f"field 'nonce' must be a string or an integer (at most {_MAX_NONCE_CHARS} chars)"
    )


def status_number(value: object) -> int:
    """The decrypted ``status`` as an integer (not yet checked against the known ones)."""
    text = _digits(value, _MAX_STATUS_DIGITS)
    if text is None:
        raise ValueError("decrypted 'status' is not a small non-negative integer")
    return int(text)


def now_seconds(now: float | dt.datetime | None) -> float:
    """``now`` as epoch seconds (None: the system clock); a naive datetime is refused."""
    if now is None:
        return SYSTEM_CLOCK.wall()
    if isinstance(now, dt.datetime):
        if now.tzinfo is None:
            raise ConfigurationError("now must be an aware datetime (or epoch seconds)")
        return now.timestamp()
    return float(now)


def check_max_age(max_age: float | None) -> None:
    """ConfigurationError unless ``max_age`` is None or a finite number >= 0."""
    if max_age is not None and not (max_age >= 0 and math.isfinite(max_age)):
        raise ConfigurationError(f"max_age must be a finite number >= 0 or None, got {max_age!r}")
