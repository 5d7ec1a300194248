"""The one converter between Akool's wire format and the models.

Every wire name and quirk lives here (akool-api.md §9), never in the models:

- ``_id`` is ``id``; ``create_time``/``update_time`` are epoch milliseconds and become aware
  UTC datetimes.
- Character Swap create takes ``webhookurl`` (lowercase) and echoes ``webhookUrl``; Head
  Swap create takes ``webhookUrl``. We send the documented spelling per endpoint.
- Character Swap create answers ``status``, its v3 result ``video_status``; the result hook
  reads ``video_status`` and falls back to ``status``.
- ``video_url`` flips meaning: input on Character Swap results and analyses, *output* on Head
  Swap create/detail (empty string or null until done). Output URLs are normalised to
  ``output_url`` and ``""`` becomes None.
- ``video_duration`` may be fractional once completed: durations are floats.
- ``analysis_result`` (nested, often null) is flattened onto :class:`HeadSwapAnalysis`;
  ``detected_objects`` is kept as sent, never derived from ``media``.
- ``error_reason: "success"`` on a completed analysis is kept but is not a failure.
- Unknown keys are ignored by the models and kept in ``.raw``; a status outside 1-4 raises
  :class:`UnknownStatusError`; a missing ``_id``, a non-object ``data`` or a documented field
  of the wrong type raises :class:`ResponseError` naming the wire key.

Requests go the other way in ``_request_codec.py`` (wire bodies, the JSON dict form,
fingerprints); its functions are importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import BaseValidationError
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception, transform_error

from ._errors import ResponseError, UnknownStatusError, ValidationError
from ._models import (
    AnyResult,
    CharacterSwapResult,
    CharacterSwapTask,
    DetectedPerson,
    HeadSwapAnalysis,
    HeadSwapResult,
    HeadSwapTask,
    TaskStatus,
    VideoInfo,
)
from ._request_codec import (
    CHARACTER_SWAP_CREDITS_PER_BLOCK,
    CHARACTER_SWAP_KIND,
    HEAD_SWAP_KIND,
    analyze_to_wire,
    character_swap_to_wire,
    estimate_credits,
    head_swap_to_wire,
    request_fingerprint,
    request_from_dict,
    request_kind,
    request_to_dict,
)
from ._validation import show_value

__all__ = [
    "CHARACTER_SWAP_CREDITS_PER_BLOCK",
    "CHARACTER_SWAP_KIND",
    "HEAD_SWAP_KIND",
    "analyze_to_wire",
    "character_swap_to_wire",
    "converter",
    "estimate_credits",
    "head_swap_to_wire",
    "request_fingerprint",
    "request_from_dict",
    "request_kind",
    "request_to_dict",
    "result_from_raw",
    "structure",
]

R = TypeVar(
    "R", CharacterSwapTask, CharacterSwapResult, HeadSwapAnalysis, HeadSwapTask, HeadSwapResult
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Synthetic keys the structure wrappers add to a copy of ``data``. "$" never starts an Akool
# key, so they cannot collide with what the server sends.
_RAW = "$raw"
_AR_MEDIA = "$analysis_result.media"
_AR_DETECTED = "$analysis_result.detected_objects"
_AR_VIDEO_INFO = "$analysis_result.video_info"


# --------------------------------------------------------------------------- scalar hooks


class _WireValueError(ValueError):
    """A documented field had a value of the wrong type; the message says what was expected."""


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise _WireValueError(f"expected a string, got {show_value(value)}")
    return value


def _number(value: object) -> float:
    """A JSON number (or a numeric string, leniently); bools and non-finite values refused."""
    if isinstance(value, bool):
        raise _WireValueError(f"expected a number, got {show_value(value)}")
    if isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:  # an int beyond float range
            raise _WireValueError(f"expected a finite number, got {show_value(value)}") from None
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise _WireValueError(f"expected a number, got {show_value(value)}") from None
    else:
        raise _WireValueError(f"expected a number, got {show_value(value)}")
    if not math.isfinite(result):
        raise _WireValueError(f"expected a finite number, got {show_value(value)}")
    return result


def _structure_float(value: object, _: type) -> float:
    return _number(value)


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _number(value)
    if not number.is_integer():
        raise _WireValueError(f"expected an integer, got {show_value(value)}")
    return int(number)


def _structure_ms_timestamp(value: object, _: type) -> datetime:
    """Epoch milliseconds (``1754362985482``) -> aware UTC datetime, exact to the ms."""
    try:
        # A float holds every millisecond count up to 2**53 (year 285,000) exactly.
        return _EPOCH + timedelta(milliseconds=_number(value))
    except OverflowError:
        raise _WireValueError(
            f"expected epoch milliseconds, got {show_value(value)} (out of range)"
        ) from None


_KNOWN_STATUSES = "1 queueing, 2 processing, 3 completed or 4 failed"


def _structure_status(value: object, _: type) -> TaskStatus:
    """1-4 -> TaskStatus; any other value is an UnknownStatusError, never a guess."""
    if value is None:
        raise _WireValueError("expected a task status, got null")
    try:
        return TaskStatus(_structure_int(value, int))
    except ValueError:
        raise UnknownStatusError(
            f"unknown task status {show_value(value)} (known: {_KNOWN_STATUSES}); "
            "the API may have added a state this version of akool-async does not understand"
        ) from None


def _optional_url(value: object, _: type) -> str | None:
    """An output URL: null and "" (Head Swap sends "" until done) both mean no output."""
    if value is None or value == "":
        return None
    return _structure_str(value, str)


def _optional_text(value: object, _: type) -> str | None:
    """A failure text: "" means none."""
    if value is None or value == "":
        return None
    return _structure_str(value, str)


def _identity(value: object, _: type) -> object:
    return value


# --------------------------------------------------------------------------- the converter

#: The single cattrs converter. Detailed validation is on so one error report can name every
#: offending wire key; the wrappers below turn it into ResponseError/UnknownStatusError.
converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(datetime, _structure_ms_timestamp)
converter.register_structure_hook(TaskStatus, _structure_status)


def _people(value: object, _: type) -> tuple[DetectedPerson, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise _WireValueError(f"expected a list of objects, got {show_value(value)}")
    people: tuple[DetectedPerson, ...] = converter.structure(value, tuple[DetectedPerson, ...])
    return people


def _video_info(value: object, _: type) -> VideoInfo | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _WireValueError(f"expected an object, got {show_value(value)}")
    info: VideoInfo = converter.structure(value, VideoInfo)
    return info


_raw_override = override(rename=_RAW, struct_hook=_identity)

#: Per result class: attribute name -> wire key, for renames and error messages.
_WIRE_NAMES: dict[type, dict[str, str]] = {
    CharacterSwapTask: {
        "id": "_id",
        "created_at": "create_time",
        "credits": "deduction_credit",
        "webhook_url": "webhookUrl",
    },
    CharacterSwapResult: {
        "id": "_id",
        "status": "video_status",
        "created_at": "create_time",
        "updated_at": "update_time",
        "credits": "deduction_credit",
        "input_video_url": "video_url",
        "output_url": "video",
        "failure_reason": "faceswap_fail_reason",
        "webhook_url": "webhookUrl",
    },
    HeadSwapAnalysis: {
        "id": "_id",
        "created_at": "create_time",
        "people": _AR_MEDIA,
        "detected_objects": _AR_DETECTED,
        "video_info": _AR_VIDEO_INFO,
    },
    HeadSwapTask: {
        "id": "_id",
        "created_at": "create_time",
        "lock_duration": "deduction_lock_duration",
        "output_url": "video_url",
    },
    HeadSwapResult: {
        "id": "_id",
        "created_at": "create_time",
        "output_url": "video_url",
    },
    DetectedPerson: {"preview_url": "img_url"},
}

# Per-field hooks beyond the type-based ones above.
_FIELD_HOOKS: dict[type, dict[str, Callable[[Any, Any], Any]]] = {
    CharacterSwapResult: {"output_url": _optional_url, "failure_reason": _optional_text},
    HeadSwapAnalysis: {"people": _people, "video_info": _video_info},
    HeadSwapTask: {"output_url": _optional_url},
    HeadSwapResult: {"output_url": _optional_url, "error_reason": _optional_text},
}


def _register_structure(cls: type) -> None:
    renames = _WIRE_NAMES.get(cls, {})
    hooks = _FIELD_HOOKS.get(cls, {})
    overrides: dict[str, Any] = {}
    for field in attrs.fields(cls):
        name = field.name
        if name == "raw":
            overrides[name] = _raw_override
        elif name in renames or name in hooks:
            overrides[name] = override(rename=renames.get(name), struct_hook=hooks.get(name))
    converter.register_structure_hook(cls, make_dict_structure_fn(cls, converter, **overrides))


for _model in (
    DetectedPerson,
    VideoInfo,
    CharacterSwapTask,
    CharacterSwapResult,
    HeadSwapAnalysis,
    HeadSwapTask,
    HeadSwapResult,
):
    _register_structure(_model)

# --------------------------------------------------------------------------- structuring results


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseValidationError):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def _format(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, _WireValueError):
        return str(exc)
    if isinstance(exc, UnknownStatusError):
        return exc.message
    return format_exception(exc, type_)


# Nested models reached through a field, so error paths can use their wire names too.
_NESTED: dict[tuple[type, str], type] = {
    (HeadSwapAnalysis, "people"): DetectedPerson,
    (HeadSwapAnalysis, "video_info"): VideoInfo,
}


def _wire_path(cls: type, message: str) -> str:
    """Rewrite cattrs' ``text @ $.attr[0].attr`` into ``wire_key[0].wire_key: text``."""
    text, sep, path = message.rpartition(" @ $.")
    if not sep:
        return message
    parts: list[str] = []
    current: type | None = cls
    for component in path.split("."):
        name, bracket, index = component.partition("[")
        wire = _WIRE_NAMES.get(current, {}).get(name, name) if current else name
        parts.append(f"{wire.removeprefix('$')}{bracket}{index}")
        current = _NESTED.get((current, name)) if current else None
    return f"{'.'.join(parts)}: {text}"


def _check_data(data: object, cls: type[Any]) -> str:
    """The usable ``_id`` of the answer's ``data`` object (ResponseError if it has none)."""
    if not isinstance(data, Mapping):
        raise ResponseError(
            f"expected the response data to be an object for {cls.__name__}, "
            f"got {type(data).__name__}"
        )
    task_id = data.get("_id")
    if not isinstance(task_id, str) or not task_id:
        raise ResponseError(
            f"{cls.__name__} response data has no usable _id (got {show_value(task_id)})"
        )
    return task_id


def _wire_form(raw: dict[str, Any], cls: type[Any], task_id: str) -> dict[str, Any]:
    """``raw`` with the synthetic keys the structure hooks read (see ``_WIRE_NAMES``)."""
    wire: dict[str, Any] = {**raw, _RAW: raw}
    if cls is CharacterSwapResult and wire.get("video_status") is None:
        # v3 results say ``video_status``; accept ``status`` if that is all we get.
        wire["video_status"] = wire.get("status")
    if cls is HeadSwapAnalysis:
        result = wire.get("analysis_result")
        if result is None:
            result = {}
        if not isinstance(result, Mapping):
            raise ResponseError(
                f"analysis_result must be an object or null, got {type(result).__name__}",
                task_id=task_id,
            )
        wire[_AR_MEDIA] = result.get("media")
        wire[_AR_DETECTED] = result.get("detected_objects")
        wire[_AR_VIDEO_INFO] = result.get("video_info")
    return wire


def _structure_result(data: object, cls: type[Any]) -> Any:
    """``data`` (the answer's data object) through the converter, errors named by wire key."""
    task_id = _check_data(data, cls)
    assert isinstance(data, Mapping)  # _check_data checked it
    wire = _wire_form(dict(data), cls, task_id)
    try:
        return converter.structure(wire, cls)
    except BaseValidationError as exc:
        for leaf in _leaves(exc):
            if isinstance(leaf, UnknownStatusError):
                leaf.task_id = task_id
                raise leaf from None
        problems = [_wire_path(cls, m) for m in transform_error(exc, format_exception=_format)]
        raise ResponseError(
            f"malformed {cls.__name__} data: {'; '.join(problems)}", task_id=task_id
        ) from exc


def structure(data: object, cls: type[R]) -> R:
    """Structure the decoded envelope ``data`` object into result class ``cls``.

    Raises :class:`UnknownStatusError` for a status outside 1-4 and :class:`ResponseError`
    for a missing ``_id``, non-object data or a documented field of the wrong type.
    """
    result: R = _structure_result(data, cls)
    return result


_RESULT_KINDS: Mapping[str, type[Any]] = {
    CHARACTER_SWAP_KIND: CharacterSwapResult,
    HEAD_SWAP_KIND: HeadSwapResult,
    "character_swap_task": CharacterSwapTask,
    "head_swap_task": HeadSwapTask,
    "head_swap_analysis": HeadSwapAnalysis,
}


def result_from_raw(kind: str, raw: object) -> AnyResult:
    """Rebuild a result from its stored ``.raw`` (journal resume).

    ``kind`` is ``"character_swap"`` (-> CharacterSwapResult) or ``"head_swap"``
    (-> HeadSwapResult); ``"character_swap_task"``, ``"head_swap_task"`` and
    ``"head_swap_analysis"`` rebuild the other result types.
    """
    cls = _RESULT_KINDS.get(kind)
    if cls is None:
        raise ValidationError(
            "result_from_raw.kind",
            f"must be one of {sorted(_RESULT_KINDS)} (got {show_value(kind)})",
        )
    result: AnyResult = _structure_result(raw, cls)
    return result
