"""Field checks shared by the request models: each names the field and the rule in words.

:class:`FieldChecks` collects every problem of one object and raises one
:class:`ValidationError`; :func:`url_problem` and :func:`text_problem` say why a value cannot
be sent (for callers that check a single value, such as ``head_swap.analyze``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from ._errors import ValidationError

__all__ = ["FieldChecks", "show_value", "text_problem", "url_problem"]

_SHOW_LIMIT = 60


def show_value(value: object) -> str:
    """A short description of a bad value for an error message (never a huge echo)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        # repr() of a huge int is slow and may even raise (int_max_str_digits).
        return f"an integer of {value.bit_length()} bits"
    if value is None or isinstance(value, (bool, int, float)):
        text = repr(value)
        if len(text) > _SHOW_LIMIT:
            return f"{type(value).__name__} of {len(text)} digits"
        return text
    if isinstance(value, str):
        if len(value) > _SHOW_LIMIT:
            return f"{value[:_SHOW_LIMIT]!r}... ({len(value)} characters)"
        return repr(value)
    return f"a value of type {type(value).__name__}"


def _choices(options: Iterable[str]) -> str:
    quoted = [repr(o) for o in options]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


#: Whitespace (any Unicode space) or an ASCII control character: never valid in a URL.
_BAD_URL_CHAR = re.compile(r"[\s\x00-\x1f\x7f]")

#: A UTF-16 surrogate code point: valid in a Python str (and in JSON as ``"\ud800"``) but
#: not encodable as UTF-8, so a request holding one could never be sent.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why the string ``value`` cannot be sent (a lone surrogate), or None if it can."""
    found = _SURROGATE.search(value)
    if found is None:
        return None
    return f"must be valid Unicode text (lone surrogate at index {found.start()})"


def url_problem(value: object) -> str | None:
    """Why ``value`` is not an absolute http(s) URL with a host, or None if it is one.

    URLs are checked, never normalised: Head Swap needs the byte-identical string at
    analyze and create time.
    """
    if not isinstance(value, str):
        return f"must be an http(s) URL string (got {show_value(value)})"
    if not value:
        return "must be an http(s) URL (got an empty string)"
    problem = text_problem(value)
    if problem is not None:
        return problem
    if _BAD_URL_CHAR.search(value):
        shown = show_value(value)
        return f"must be an http(s) URL without spaces or control characters (got {shown})"
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return f"must be a well-formed http(s) URL (got {show_value(value)})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must be an http or https URL (got {show_value(value)})"
    if not host:
        return f"must be an http(s) URL with a host (got {show_value(value)})"
    return None


class FieldChecks:
    """Collects every (field, rule) problem of one object, then raises once."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.errors: list[tuple[str, str]] = []

    def add(self, field: str, rule: str) -> None:
        self.errors.append((f"{self.owner}.{field}", rule))

    def url(self, field: str, value: object, *, optional: bool = False) -> None:
        if optional and value is None:
            return
        problem = url_problem(value)
        if problem is not None:
            self.add(field, problem)

    def sendable(self, field: str, value: object) -> bool:
        """False, with the problem noted, for a string that cannot be encoded (surrogates)."""
        problem = text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            self.add(field, problem)
        return problem is None

    def choice(self, field: str, value: object, options: tuple[str, ...]) -> None:
        if not self.sendable(field, value):
            return
        if not isinstance(value, str) or value not in options:
            self.add(field, f"must be one of {_choices(options)} (got {show_value(value)})")

    def nonempty_str(self, field: str, value: object, *, optional: bool = False) -> None:
        if optional and value is None:
            return
        if not isinstance(value, str) or not value:
            allowed = "None or a non-empty string" if optional else "a non-empty string"
            self.add(field, f"must be {allowed} (got {show_value(value)})")
        else:
            self.sendable(field, value)

    def done(self) -> None:
        if self.errors:
            field, rule = self.errors[0]
            raise ValidationError(field, rule, errors=self.errors)
