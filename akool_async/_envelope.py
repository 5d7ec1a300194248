"""Decode one Akool response -- status line, headers, body -- in one place.

Akool answers ``{"code": <int>, "msg": <str>, "data": <object>}`` (getToken: ``{"code":
1000, "token": ...}``); ``code == 1000`` is success, and HTTP is "often 200" even for
errors. Gateways in front of it may answer 4xx/5xx with HTML. The rules, in order:

1. HTTP 429 -> :class:`RateLimitError` (``retry_after`` from ``Retry-After``).
2. HTTP 5xx -> the class of the envelope's business code if the body is an Akool envelope
   with a code other than 1000 (:class:`ServerError` if the code is not in the table), else
   :class:`ServerError` without a code (a gateway answered: the backend may have acted).
3. Other non-2xx -> the code's class if an envelope is present, else
   :class:`HTTPStatusError` (redirects are never followed and land here too).
4. 2xx that is not a JSON object with an integer ``code`` -> :class:`ResponseError`.
5. ``code != 1000`` -> ``error_for_code(code)``; 1005 also reads ``Retry-After``.
6. Success -> ``data`` as a dict (missing or null -> ``{}``).

Every error carries ``method``, ``path``, ``http_status``, ``code``, ``msg`` and
``task_id`` where known. No header value other than ``Retry-After``/``Location`` is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._errors import (
    APIError,
    HTTPStatusError,
    RateLimitError,
    ResponseError,
    ServerError,
    error_for_code,
)
from ._retry import parse_retry_after

__all__ = ["SUCCESS", "decode_response"]

#: The business code of success.
SUCCESS = 1000
# Longest server text quoted in an error message.
_QUOTE_LIMIT = 300


def _quote(text: str) -> str:
    if len(text) > _QUOTE_LIMIT:
        return text[:_QUOTE_LIMIT] + f"... ({len(text)} characters)"
    return text


def _body_hint(body: bytes) -> str:
    if not body:
        return "an empty body"
    snippet = body[:80].decode("utf-8", "replace")
    more = "..." if len(body) > 80 else ""
    return f"{len(body)} bytes starting {snippet + more!r}"


_NOT_JSON: Any = object()


def _parse(body: bytes) -> Any:
    """The decoded JSON value (UTF-8, -16 or -32, as ``json.loads`` reads bytes), or the
    sentinel ``_NOT_JSON``."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _NOT_JSON


def _envelope_code(parsed: Any) -> int | None:
    if isinstance(parsed, dict):
        code = parsed.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    return None


def _envelope_msg(parsed: Any) -> str | None:
    if isinstance(parsed, dict):
        msg = parsed.get("msg")
        if isinstance(msg, str):
            return msg
        if msg is not None:
            return str(msg)
    return None


def _code_error(
    code: int,
    msg: str | None,
    *,
    default: type[APIError] | None,
    status: int,
    headers: Mapping[str, str],
    method: str,
    path: str,
    task_id: str | None,
    now_wall: float,
) -> APIError:
    """The error for a business code (``default`` replaces plain APIError if given)."""
    cls = error_for_code(code)
    if cls is APIError and default is not None:
        cls = default
    text = f"Akool error {code}: {_quote(msg)}" if msg else f"Akool error {code}"
    if cls is RateLimitError:
        return _rate_limit_error(text, status, headers, code, msg, method, path, task_id, now_wall)
    return cls(
        text, method=method, path=path, http_status=status, code=code, msg=msg, task_id=task_id
    )


def _rate_limit_error(  # noqa: PLR0917 (the fields every API error carries, in one order)
    text: str,
    status: int,
    headers: Mapping[str, str],
    code: int | None,
    msg: str | None,
    method: str,
    path: str,
    task_id: str | None,
    now_wall: float,
) -> RateLimitError:
    """A :class:`RateLimitError` carrying the answer's Retry-After (seconds, or None)."""
    return RateLimitError(
        text,
        retry_after=parse_retry_after(headers.get("Retry-After"), now_wall=now_wall),
        method=method,
        path=path,
        http_status=status,
        code=code,
        msg=msg,
        task_id=task_id,
    )


def decode_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    now_wall: float,
    task_id: str | None = None,
    whole_body: bool = False,
) -> dict[str, Any]:
    """The ``data`` object of a successful answer, or raise the one matching error.

    ``whole_body=True`` returns the whole top-level object instead of ``data`` (getToken,
    whose token is not wrapped). ``now_wall`` (Unix seconds) resolves HTTP-date Retry-After.
    """
    parsed = _parse(body) if body else _NOT_JSON
    if not 200 <= status < 300:
        return _http_error(
            status,
            headers,
            body,
            parsed,
            method=method,
            path=path,
            task_id=task_id,
            now_wall=now_wall,
        )
    if type(parsed) is not dict:
        kind = "not JSON" if parsed is _NOT_JSON else f"JSON {type(parsed).__name__}"
        raise ResponseError(
            f"expected a JSON object from Akool, got {kind} ({_body_hint(body)})",
            method=method,
            path=path,
            http_status=status,
            task_id=task_id,
        )
    code = parsed.get("code")
    if code != SUCCESS or type(code) is not int:
        raise _envelope_error(
            parsed, status, headers, method=method, path=path, task_id=task_id, now_wall=now_wall
        )
    if whole_body:
        return parsed
    data = parsed.get("data")
    if data is None:
        return {}
    if type(data) is dict:
        return data
    raise ResponseError(
        f"expected 'data' to be an object, got {type(data).__name__}",
        method=method,
        path=path,
        http_status=status,
        code=SUCCESS,
        task_id=task_id,
    )


def _envelope_error(
    parsed: dict[str, Any],
    status: int,
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    task_id: str | None,
    now_wall: float,
) -> APIError:
    """The error for a 2xx JSON object that is not a success envelope."""
    envelope_code = _envelope_code(parsed)
    msg = _envelope_msg(parsed)
    if envelope_code is None:
        return ResponseError(
            f"the answer has no integer 'code' (got {parsed.get('code')!r:.40})",
            method=method,
            path=path,
            http_status=status,
            msg=msg,
            task_id=task_id,
        )
    return _code_error(
        envelope_code,
        msg,
        default=None,
        status=status,
        headers=headers,
        method=method,
        path=path,
        task_id=task_id,
        now_wall=now_wall,
    )


def _http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    parsed: Any,
    *,
    method: str,
    path: str,
    task_id: str | None,
    now_wall: float,
) -> dict[str, Any]:
    code = _envelope_code(parsed)
    if code == SUCCESS:
        code = None  # "success" under an error status proves nothing either way
    msg = _envelope_msg(parsed)
    if status == 429:
        text = f"rate limited (HTTP 429{f', code {code}' if code is not None else ''})"
        if msg:
            text += f": {_quote(msg)}"
        raise _rate_limit_error(text, status, headers, code, msg, method, path, task_id, now_wall)
    if code is not None:
        raise _code_error(
            code,
            msg,
            default=ServerError if status >= 500 else None,
            status=status,
            headers=headers,
            method=method,
            path=path,
            task_id=task_id,
            now_wall=now_wall,
        )
    if status >= 500:
        raise ServerError(
            f"server error HTTP {status} without an Akool envelope ({_body_hint(body)})",
            method=method,
            path=path,
            http_status=status,
            msg=msg,
            task_id=task_id,
        )
    if 300 <= status < 400:
        location = headers.get("Location")
        where = f" to {_quote(location)!r}" if location else ""
        text = f"unexpected redirect HTTP {status}{where}; API calls do not follow redirects"
    else:
        text = f"unexpected HTTP {status} without an Akool envelope ({_body_hint(body)})"
    raise HTTPStatusError(
        text, method=method, path=path, http_status=status, msg=msg, task_id=task_id
    )
