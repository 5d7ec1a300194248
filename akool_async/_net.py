"""Small network predicates shared by the client and downloads."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import SplitResult, urlsplit

__all__ = ["UrlProblem", "http_url_problem", "is_loopback_host", "split_url"]

#: The rule an http(s) URL breaks: another scheme, no host, credentials in it, or plain http
#: to a host that is not loopback (secrets would travel in clear text).
UrlProblem = Literal["scheme", "host", "credentials", "plain_http"]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_url(url: str) -> SplitResult:
    """``urlsplit(url)``, also raising ``ValueError`` for a bad host or port."""
    parts = urlsplit(url)
    _ = parts.hostname, parts.port  # each raises ValueError when malformed
    return parts


def http_url_problem(parts: SplitResult) -> UrlProblem | None:
    """The first rule ``parts`` breaks, or None for https (or http to a loopback host)."""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return "scheme"
    if not parts.hostname:
        return "host"
    if parts.username is not None or parts.password is not None:
        return "credentials"
    if scheme == "http" and not is_loopback_host(parts.hostname):
        return "plain_http"
    return None
