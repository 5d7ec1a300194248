"""Request validation shared by the endpoints: business errors and field readers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

__all__ = [
    "ApiError",
    "is_http_url",
    "is_number",
    "read_json_object",
    "url_field",
    "webhook_field",
]


class ApiError(Exception):
    """A business error: answered HTTP 200 ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def is_http_url(value: str) -> bool:
    """True for an http or https URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def is_number(value: object) -> bool:
    """True for a JSON number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or ApiError 1003."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(1003, "request body must be a JSON object")
    return body


def url_field(body: Mapping[str, Any], key: str, *, label: str | None = None) -> str:
    """The required http(s) URL field ``key`` (``label`` names it in errors)."""
    name = label or key
    value = body.get(key)
    if value is None or value == "":
        raise ApiError(1003, f"{name} cannot be empty")
    if not isinstance(value, str) or not is_http_url(value):
        raise ApiError(1003, f"{name} must be an http or https URL")
    return value


def webhook_field(body: Mapping[str, Any]) -> str | None:
    """The optional webhook URL, under either spelling."""
    # Both spellings are accepted on both create endpoints; if both are sent, the lowercase
    # `webhookurl` (character swap's documented spelling) wins.
    for key in ("webhookurl", "webhookUrl"):
        value = body.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not is_http_url(value):
            raise ApiError(1003, f"{key} must be an http or https URL")
        return value
    return None
