"""The JSONL input of ``run``: parsing, validation with "did you mean" hints, the estimate."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from akool_async import AkoolError, CharacterSwap, FaceMapping, HeadSwap
from akool_async._converters import (
    CHARACTER_SWAP_KIND,
    HEAD_SWAP_KIND,
    estimate_credits,
    request_fingerprint,
    request_from_dict,
)

if TYPE_CHECKING:
    from akool_async._models import Request

__all__ = [
    "CONTENT_KEY_LENGTH",
    "Estimate",
    "LineError",
    "ParsedJob",
    "content_key",
    "estimate",
    "parse_jobs",
]

KINDS = (CHARACTER_SWAP_KIND, HEAD_SWAP_KIND)
#: Hex digits of the request fingerprint in a content-derived key (as the batch's default).
CONTENT_KEY_LENGTH = 16


def content_key(request: CharacterSwap | HeadSwap, occurrence: int) -> str:
    """The default key of a keyless job: its content, never its position in the file.

    ``request_fingerprint(request)[:16]``, plus ``#2``, ``#3``... for the second and later
    identical requests, so comments, blank lines, inserted or reordered lines keep keys.
    """
    key = request_fingerprint(request)[:CONTENT_KEY_LENGTH]
    return key if occurrence == 1 else f"{key}#{occurrence}"


@attrs.frozen
class ParsedJob:
    """One valid input line: its 1-based ``line`` number, ``key`` and request."""

    line: int
    key: str
    request: CharacterSwap | HeadSwap


@attrs.frozen
class LineError:
    """One problem of one input line: ``field`` names what is wrong, ``rule`` says why."""

    line: int
    field: str
    rule: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.rule}"


def parse_jobs(data: bytes) -> tuple[list[ParsedJob], list[LineError]]:
    """Every valid job and EVERY problem of a JSONL file (not only the first).

    Blank lines and lines starting with ``#`` are skipped. ``key`` is optional (default:
    :func:`content_key`, derived from the request, never the line number) and must be
    unique; the rest of the object goes to ``request_from_dict``, whose every
    ``(field, rule)`` becomes one :class:`LineError`. No line, however hostile (huge
    numbers, deep nesting, lone surrogates), raises: it becomes an error.
    """
    jobs: list[ParsedJob] = []
    errors: list[LineError] = []
    keys: dict[str, int] = {}
    seen: Counter[str] = Counter()
    for number, raw in enumerate(data.splitlines(), start=1):
        obj = _decode_line(number, raw, errors)
        if obj is None:
            continue
        given = _given_key(number, obj, errors)
        request = _build_request(number, obj, errors)
        if request is None or given == "":
            continue
        if given is None:
            fingerprint = request_fingerprint(request)
            seen[fingerprint] += 1
            key = content_key(request, seen[fingerprint])
        else:
            key = given
        if key in keys:
            errors.append(LineError(number, "key", f"{key!r} is already used by line {keys[key]}"))
            continue
        keys[key] = number
        jobs.append(ParsedJob(number, key, request))
    return jobs, errors


def _decode_line(number: int, raw: bytes, errors: list[LineError]) -> dict[str, object] | None:
    """The line's JSON object; None for a skipped line or one whose problem is in ``errors``."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        errors.append(LineError(number, "line", f"is not valid UTF-8 ({exc.reason})"))
        return None
    text = text.removeprefix("\ufeff") if number == 1 else text
    if not text or text.startswith("#"):
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        errors.append(LineError(number, "json", f"{exc.msg} (column {exc.colno})"))
        return None
    except RecursionError:
        errors.append(LineError(number, "json", "is nested too deeply to decode"))
        return None
    except ValueError as exc:  # e.g. an integer over Python's digit limit
        errors.append(LineError(number, "json", str(exc).split(";")[0]))
        return None
    if not isinstance(obj, dict):
        errors.append(
            LineError(number, "line", f"must be a JSON object (got {type(obj).__name__})")
        )
        return None
    return obj


def _given_key(number: int, obj: dict[str, object], errors: list[LineError]) -> str | None:
    """Pop the line's ``key``: the key, None when absent, ``""`` when it is invalid."""
    key = obj.pop("key", None)
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip():
        errors.append(LineError(number, "key", "must be a non-empty string"))
        return ""
    problem = unencodable(key)
    if problem:
        errors.append(LineError(number, "key", problem))
        return ""
    return key


def unencodable(text: str) -> str:
    """Why ``text`` cannot be written as UTF-8 (a lone surrogate), or an empty string."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"must be valid Unicode text (lone surrogate at index {exc.start})"
    return ""


def _build_request(
    number: int, obj: dict[str, object], errors: list[LineError]
) -> CharacterSwap | HeadSwap | None:
    try:
        return request_from_dict(obj)
    except AkoolError as exc:
        problems = list(getattr(exc, "errors", ())) or [("request", exc.message)]
        errors.extend(LineError(number, f, with_suggestion(obj, f, r)) for f, r in problems)
    except (TypeError, ValueError, RecursionError) as exc:  # a model check we did not expect
        errors.append(LineError(number, "request", str(exc) or type(exc).__name__))
    return None


def with_suggestion(obj: dict[str, object], field: str, rule: str) -> str:
    """``rule`` plus "did you mean 'x'?" when a bad kind or unknown field is close to a name."""
    if field == "request.kind":
        wrong, names = obj.get("kind"), list(KINDS)
    elif rule.startswith("unknown field"):
        wrong, names = field.rsplit(".", 1)[-1], _field_names(field)
    else:
        return rule
    if not isinstance(wrong, str):
        return rule
    close = difflib.get_close_matches(wrong, names, n=1)
    return f"{rule}; did you mean {close[0]!r}?" if close else rule


def _field_names(field: str) -> list[str]:
    """The names allowed where ``field`` (``HeadSwap.faces[0].imgurl``, ...) was found."""
    if ".faces[" in field:
        return [f.name for f in attrs.fields(FaceMapping)]
    cls = HeadSwap if field.startswith("HeadSwap.") else CharacterSwap
    return [f.name for f in attrs.fields(cls)] + ["key", "kind"]


@attrs.frozen
class Estimate:
    """Credits estimated from the pricing table (akool-api.md §3.2), without any request.

    ``credits`` covers the ``estimated`` character swaps that state a ``duration``;
    ``no_duration`` character swaps (Akool detects the length) and ``head_swaps`` (no public
    price) are not estimated, so the real cost can be higher.
    """

    credits: int
    estimated: int
    no_duration: int
    head_swaps: int

    @property
    def complete(self) -> bool:
        """True when every job was estimated."""
        return self.no_duration == 0 and self.head_swaps == 0

    def summary(self) -> str:
        """One short line: the estimate and, if partial, which jobs it covers."""
        if self.complete:
            return f"{self.credits:,}"
        left = [
            f"{n} {what}"
            for n, what in (
                (self.no_duration, "without a duration"),
                (self.head_swaps, "head swap(s)"),
            )
            if n
        ]
        return (
            f"{self.credits:,} for the {self.estimated} character swap(s) with a duration "
            f"(not estimated: {', '.join(left)})"
        )

    def describe(self) -> str:
        """One or two lines for humans."""
        text = f"estimated credits: {self.credits:,} for {self.estimated} character swap(s)"
        gaps = []
        if self.no_duration:
            gaps.append(
                f"{self.no_duration} character swap(s) without a duration "
                '(Akool detects it; add "duration" to estimate them)'
            )
        if self.head_swaps:
            gaps.append(f"{self.head_swaps} head swap(s) (no public price)")
        if gaps:
            text += "\n  not estimated: " + "; ".join(gaps) + " - the real cost can be higher"
        return text


def estimate(requests: Sequence[Request]) -> Estimate:
    """Sum :func:`estimate_credits` over ``requests``."""
    credits = estimated = no_duration = head_swaps = 0
    for req in requests:
        value = estimate_credits(req)
        if value is not None:
            credits += value
            estimated += 1
        elif isinstance(req, HeadSwap):
            head_swaps += 1
        else:
            no_duration += 1
    return Estimate(credits, estimated, no_duration, head_swaps)
