"""How the simulator answers: JSON envelopes, gateway pages, dropped connections, faults.

Every answer is recorded in the bounded request log (never with credentials).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ._clock import SimClock
from ._faults import Fault
from ._model import RequestLogEntry

__all__ = ["Answers"]

_GATEWAY_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
_CODE_FAULTS = {
    "code_1005": (1005, "Operation is too frequent"),
    "code_1015": (1015, "Create video error, please try again later"),
    "code_2001": (2001, "Server error"),
}


def _dumps(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


class Answers:
    """Builds responses and records each one in the request log."""

    def __init__(self, clock: SimClock, log_size: int) -> None:
        self._clock = clock
        self._log: deque[RequestLogEntry] = deque(maxlen=log_size)

    @property
    def log(self) -> tuple[RequestLogEntry, ...]:
        """The most recent answers, oldest first."""
        return tuple(self._log)

    def record(self, request: web.Request, endpoint: str, status: int, code: int | None) -> None:
        """Log one answer (``status`` 0: the connection was dropped)."""
        self._log.append(
            RequestLogEntry(
                method=request.method,
                path=str(request.rel_url),
                endpoint=endpoint,
                status=status,
                code=code,
                time=self._clock.epoch(),
            )
        )

    def drop(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        """Abort the connection without an answer."""
        if request.transport is not None:
            request.transport.abort()
        self.record(request, endpoint, 0, None)
        return web.Response(status=500)

    def json(
        self,
        request: web.Request,
        endpoint: str,
        payload: Mapping[str, Any],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        """A JSON answer (normally an envelope ``{"code", "msg", "data"}``)."""
        code = payload.get("code")
        self.record(request, endpoint, status, code if isinstance(code, int) else None)
        return web.Response(
            status=status,
            body=_dumps(payload).encode(),
            content_type="application/json",
            headers=headers,
        )

    def malformed(
        self, request: web.Request, endpoint: str, payload: Mapping[str, Any]
    ) -> web.Response:
        """The first half of the JSON answer: a body no JSON parser accepts."""
        text = _dumps(payload)
        self.record(request, endpoint, 200, None)
        return web.Response(
            body=text[: max(1, len(text) // 2)].encode(), content_type="application/json"
        )

    def gateway_error(self, request: web.Request, endpoint: str, status: int) -> web.Response:
        """An HTML error page, as a proxy in front of the API would send."""
        text = f"<html><body><h1>{status} {_GATEWAY_REASONS[status]}</h1></body></html>"
        self.record(request, endpoint, status, None)
        return web.Response(status=status, text=text, content_type="text/html")

    def before_fault(self, request: web.Request, endpoint: str, fault: Fault) -> web.StreamResponse:
        """The answer of a fault that replaces processing the request."""
        kind = fault.kind
        if kind == "drop_before":
            return self.drop(request, endpoint)
        if kind in ("http_500", "http_502", "http_503"):
            return self.gateway_error(request, endpoint, int(kind[5:]))
        if kind in ("http_500_envelope", "http_503_envelope"):
            payload = {"code": 2001, "msg": "Server error, please try again later"}
            return self.json(request, endpoint, payload, int(kind[5:8]))
        if kind == "http_429":
            retry_after = f"{fault.retry_after * self._clock.time_scale:g}"
            payload = {"code": 1005, "msg": "Operation is too frequent"}
            return self.json(request, endpoint, payload, 429, {"Retry-After": retry_after})
        if kind == "code":
            payload = {"code": fault.code, "msg": f"Simulated error {fault.code}"}
            return self.json(request, endpoint, payload)
        code, msg = _CODE_FAULTS[kind]
        return self.json(request, endpoint, {"code": code, "msg": msg})
