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

Requests go the other way with ``*_to_wire``; ``request_to_dict``/``request_from_dict`` are
the JSON form with Python names used by the journal and the JSONL CLI.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.errors import BaseValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception, transform_error

from ._errors import ResponseError, UnknownStatusError, ValidationError
from ._models import (
    AnyResult,
    CharacterSwap,
    CharacterSwapResult,
    CharacterSwapTask,
    DetectedPerson,
    FaceMapping,
    HeadSwap,
    HeadSwapAnalysis,
    HeadSwapResult,
    HeadSwapTask,
    Request,
    TaskStatus,
    VideoInfo,
    _slot_constructor,
)

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
    "structure_character_swap_result",
    "structure_character_swap_task",
    "structure_head_swap_analysis",
    "structure_head_swap_result",
    "structure_head_swap_task",
]

R = TypeVar(
    "R", CharacterSwapTask, CharacterSwapResult, HeadSwapAnalysis, HeadSwapTask, HeadSwapResult
)

#: ``kind`` discriminator values of request dicts, journals and ``result_from_raw``.
CHARACTER_SWAP_KIND: Final = "character_swap"
HEAD_SWAP_KIND: Final = "head_swap"

#: Character Swap credits per started 5-second block, by resolution (akool-api.md §3.2).
CHARACTER_SWAP_CREDITS_PER_BLOCK: Mapping[str, int] = {"480p": 5, "720p": 10, "1080p": 15}
_CREDIT_BLOCK_SECONDS = 5

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: ``_EPOCH + _MILLISECOND * ms`` is exact for an int ``ms``, and half the cost of
#: ``timedelta(milliseconds=ms)`` (keyword parsing and float accumulation in C).
_MILLISECOND = timedelta(milliseconds=1)

# Synthetic keys the structure wrappers add to a copy of ``data``. "$" never starts an Akool
# key, so they cannot collide with what the server sends.
_RAW = "$raw"
_AR_MEDIA = "$analysis_result.media"
_AR_DETECTED = "$analysis_result.detected_objects"
_AR_VIDEO_INFO = "$analysis_result.video_info"


# --------------------------------------------------------------------------- scalar hooks


class _WireValueError(ValueError):
    """A documented field had a value of the wrong type; the message says what was expected."""


def _describe(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"  # repr() may raise on huge ints
    if not isinstance(value, (str, int, float, type(None))):
        return f"a value of type {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}... ({type(value).__name__})"


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise _WireValueError(f"expected a string, got {_describe(value)}")
    return value


def _number(value: object) -> float:
    """A JSON number (or a numeric string, leniently); bools and non-finite values refused."""
    if type(value) is float and math.isfinite(value):
        return value  # the common case, first: per-job structuring is a bulk hot path
    if isinstance(value, bool):
        raise _WireValueError(f"expected a number, got {_describe(value)}")
    if isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:  # an int beyond float range
            raise _WireValueError(f"expected a finite number, got {_describe(value)}") from None
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise _WireValueError(f"expected a number, got {_describe(value)}") from None
    else:
        raise _WireValueError(f"expected a number, got {_describe(value)}")
    if not math.isfinite(result):
        raise _WireValueError(f"expected a finite number, got {_describe(value)}")
    return result


def _structure_float(value: object, _: type) -> float:
    return _number(value)


def _structure_int(value: object, _: type) -> int:
    if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    number = _number(value)
    if not number.is_integer():
        raise _WireValueError(f"expected an integer, got {_describe(value)}")
    return int(number)


#: Integers up to this size are exact as floats, so ``timedelta`` gives the same answer for
#: ``ms`` and ``float(ms)``; larger ones keep the float path and its error messages.
_EXACT_FLOAT_INT = 2**53


def _structure_ms_timestamp(value: object, _: type) -> datetime:
    """Epoch milliseconds (``1754362985482``) -> aware UTC datetime, exact to the ms."""
    try:
        if type(value) is int and -_EXACT_FLOAT_INT <= value <= _EXACT_FLOAT_INT:
            # What the server sends; skips _number's float round trip (same result).
            return _EPOCH + _MILLISECOND * value
        return _EPOCH + timedelta(milliseconds=_number(value))
    except OverflowError:
        raise _WireValueError(
            f"expected epoch milliseconds, got {_describe(value)} (out of range)"
        ) from None


_KNOWN_STATUSES = "1 queueing, 2 processing, 3 completed or 4 failed"

# A dict lookup is several times cheaper than ``TaskStatus(n)`` (EnumType.__call__). Only
# exact ints use it: ``True == 1`` would otherwise find QUEUEING for a bool.
_STATUS_BY_INT: Mapping[int, TaskStatus] = {s.value: s for s in TaskStatus}


def _structure_status(value: object, _: type) -> TaskStatus:
    """1-4 -> TaskStatus; any other value is an UnknownStatusError, never a guess."""
    if type(value) is int:
        status = _STATUS_BY_INT.get(value)
        if status is not None:
            return status
    if value is None:
        raise _WireValueError("expected a task status, got null")
    try:
        return TaskStatus(_structure_int(value, int))
    except ValueError:
        raise UnknownStatusError(
            f"unknown task status {_describe(value)} (known: {_KNOWN_STATUSES}); "
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


# Hooks for the ``X | None`` field types. cattrs' default for an optional field is its generic
# union hook, which looks up the hook for ``X`` on every call; most result fields are
# optional, so these direct versions make up most of the per-job structuring saving.
def _optional_str(value: object, _: type) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _WireValueError(f"expected a string, got {_describe(value)}")


def _optional_float(value: object, _: type) -> float | None:
    return None if value is None else _number(value)


def _optional_int(value: object, _: type) -> int | None:
    return None if value is None else _structure_int(value, int)


def _optional_ms_timestamp(value: object, _: type) -> datetime | None:
    return None if value is None else _structure_ms_timestamp(value, datetime)


# --------------------------------------------------------------------------- the converter

#: The single cattrs converter. Detailed validation is on so one error report can name every
#: offending wire key; the wrappers below turn it into ResponseError/UnknownStatusError.
converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(datetime, _structure_ms_timestamp)
converter.register_structure_hook(TaskStatus, _structure_status)


def _is_type(expected: object) -> Callable[[Any], bool]:
    # ``==`` on unions ignores order and spelling, so ``Optional[str]`` matches too.
    return lambda type_: bool(type_ == expected)


converter.register_structure_hook_func(_is_type(str | None), _optional_str)
converter.register_structure_hook_func(_is_type(float | None), _optional_float)
converter.register_structure_hook_func(_is_type(int | None), _optional_int)
converter.register_structure_hook_func(_is_type(datetime | None), _optional_ms_timestamp)


def _people(value: object, _: type) -> tuple[DetectedPerson, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise _WireValueError(f"expected a list of objects, got {_describe(value)}")
    people: tuple[DetectedPerson, ...] = _HOOKS[_PEOPLE](value, _PEOPLE)
    return people


def _video_info(value: object, _: type) -> VideoInfo | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _WireValueError(f"expected an object, got {_describe(value)}")
    info: VideoInfo = _HOOKS[VideoInfo](value, VideoInfo)
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


_MODELS = (
    VideoInfo,
    CharacterSwapTask,
    CharacterSwapResult,
    HeadSwapAnalysis,
    HeadSwapTask,
    HeadSwapResult,
)
for _cls in (DetectedPerson, *_MODELS):
    _register_structure(_cls)

_PEOPLE = tuple[DetectedPerson, ...]

# The structure hooks, looked up once: ``converter.structure`` would dispatch on the class
# again for every response. Every hook is registered above, so nothing here goes stale.
_HOOKS: Mapping[Any, Callable[[Any, Any], Any]] = {
    cls: converter.get_structure_hook(cls) for cls in (_PEOPLE, *_MODELS)
}


# Requests -> wire bodies. ``omit_if_default`` drops optional fields left at None; the
# webhook spelling differs per endpoint (akool-api.md §9.1).
def _wire_duration(value: float | None) -> float | int | None:
    # 10.0 and 10 are the same request; send the integer form Akool's examples use.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _wire_mappings(faces: tuple[FaceMapping, ...]) -> list[dict[str, Any]]:
    return [{"obj_id": m.obj_id, "img_url": m.img_url} for m in faces]


converter.register_unstructure_hook(
    CharacterSwap,
    make_dict_unstructure_fn(
        CharacterSwap,
        converter,
        duration=override(omit_if_default=True, unstruct_hook=_wire_duration),
        prompt=override(omit_if_default=True),
        webhook_url=override(rename="webhookurl", omit_if_default=True),
    ),
)
converter.register_unstructure_hook(
    HeadSwap,
    make_dict_unstructure_fn(
        HeadSwap,
        converter,
        faces=override(rename="mappings", unstruct_hook=_wire_mappings),
        template_id=override(omit_if_default=True),
        webhook_url=override(rename="webhookUrl", omit_if_default=True),
    ),
)


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


#: Epoch milliseconds of 0001-01-01 and 10000-01-01: the range a datetime can hold.
_MIN_MS = -62_135_596_800_000
_END_MS = 253_402_300_800_000

#: What _plain_timestamp returns for a value the converter must judge.
_UNUSUAL: Any = object()


def _plain_timestamp(ms: object) -> Any:
    """None, the datetime of epoch milliseconds in datetime's range, or :data:`_UNUSUAL`."""
    if ms is None:
        return None
    if type(ms) is not int or not _MIN_MS <= ms < _END_MS:
        return _UNUSUAL
    return _EPOCH + _MILLISECOND * ms


def _plain_duration(value: object) -> Any:
    """None, a finite float of seconds (an int exactly as a float), or :data:`_UNUSUAL`."""
    if value is None or (type(value) is float and math.isfinite(value)):
        return value
    if type(value) is int and -_EXACT_FLOAT_INT <= value <= _EXACT_FLOAT_INT:
        return float(value)
    return _UNUSUAL


def _plain_character_swap_task(raw: dict[str, Any]) -> CharacterSwapTask | None:
    """The task for a create answer whose fields all have their usual types, else None:
    :func:`_plain_character_swap_result`'s fast path for ``create()`` (same rules, pinned
    against the converter in tests/test_converters.py). Wire names as in
    ``_WIRE_NAMES[CharacterSwapTask]``."""
    get = raw.get
    code = get("status")
    status = _STATUS_BY_INT.get(code) if type(code) is int else None
    texts = (
        get("resolution"),
        get("mode"),
        get("model_name"),
        get("file_name"),
        get("image_url"),
        get("video_url"),
        get("prompt"),
        get("webhookUrl"),
    )
    created_at = _plain_timestamp(get("create_time"))
    duration = _plain_duration(get("video_duration"))
    credits = get("deduction_credit")
    if (
        status is None
        or any(text is not None and type(text) is not str for text in texts)
        or created_at is _UNUSUAL
        or duration is _UNUSUAL
        or (credits is not None and type(credits) is not int)
    ):
        return None
    resolution, mode, model_name, file_name, image_url, video_url, prompt, webhook_url = texts
    return _new_character_swap_task(
        id=raw["_id"],
        status=status,
        created_at=created_at,
        video_duration=duration,
        credits=credits,
        resolution=resolution,
        mode=mode,
        model_name=model_name,
        file_name=file_name,
        image_url=image_url,
        video_url=video_url,
        prompt=prompt,
        webhook_url=webhook_url,
        raw=raw,
    )


def _plain_character_swap_result(raw: dict[str, Any]) -> CharacterSwapResult | None:
    """The result for a poll answer whose fields all have their usual types, else None.

    Every job's last poll is structured, so the common answer skips the generated hooks
    and their per-field calls (spelled out field by field: this runs once per job). It
    gives exactly what the converter gives for such an answer (tests/test_converters.py
    pins the agreement); anything unusual (a float credit, a numeric string, a timestamp
    out of range, an unknown status ...) returns None and the converter decides, with its
    error messages. Wire names as in ``_WIRE_NAMES[CharacterSwapResult]``.
    """
    get = raw.get
    code = get("video_status")
    if code is None:
        code = get("status")
    status = _STATUS_BY_INT.get(code) if type(code) is int else None
    resolution = get("resolution")
    image_url = get("image_url")
    input_video_url = get("video_url")
    output_url = get("video")
    failure_reason = get("faceswap_fail_reason")
    webhook_url = get("webhookUrl")
    file_name = get("file_name")
    prompt = get("prompt")
    if (
        status is None
        or (resolution is not None and type(resolution) is not str)
        or (image_url is not None and type(image_url) is not str)
        or (input_video_url is not None and type(input_video_url) is not str)
        or (output_url is not None and type(output_url) is not str)
        or (failure_reason is not None and type(failure_reason) is not str)
        or (webhook_url is not None and type(webhook_url) is not str)
        or (file_name is not None and type(file_name) is not str)
        or (prompt is not None and type(prompt) is not str)
    ):
        return None
    created_at = _plain_timestamp(get("create_time"))
    updated_at = _plain_timestamp(get("update_time"))
    duration = _plain_duration(get("video_duration"))
    credits = get("deduction_credit")
    if (
        created_at is _UNUSUAL
        or updated_at is _UNUSUAL
        or duration is _UNUSUAL
        or (credits is not None and type(credits) is not int)
    ):
        return None
    return _new_character_swap_result(
        id=raw["_id"],
        status=status,
        created_at=created_at,
        updated_at=updated_at,
        video_duration=duration,
        credits=credits,
        resolution=resolution,
        image_url=image_url,
        input_video_url=input_video_url,
        output_url=output_url or None,  # "" means no output (as _optional_url)
        failure_reason=failure_reason or None,  # "" means none (as _optional_text)
        webhook_url=webhook_url,
        file_name=file_name,
        prompt=prompt,
        raw=raw,
    )


#: CharacterSwapResult(...) and CharacterSwapTask(...) without the per-field setattr
#: lookups: built once per job.
_new_character_swap_result = _slot_constructor(CharacterSwapResult)
_new_character_swap_task = _slot_constructor(CharacterSwapTask)


def _structure_result(data: object, cls: type[Any]) -> Any:
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ResponseError(
            f"expected the response data to be an object for {cls.__name__}, "
            f"got {type(data).__name__}"
        )
    task_id = data.get("_id")
    if not isinstance(task_id, str) or not task_id:
        raise ResponseError(
            f"{cls.__name__} response data has no usable _id (got {_describe(task_id)})"
        )
    raw = dict(data)
    if cls is CharacterSwapResult:
        fast: Any = _plain_character_swap_result(raw)
        if fast is not None:
            return fast
    elif cls is CharacterSwapTask:
        fast = _plain_character_swap_task(raw)
        if fast is not None:
            return fast
    return _structure_with_hooks(raw, cls, task_id)


def _structure_with_hooks(raw: dict[str, Any], cls: type[Any], task_id: str) -> Any:
    """``raw`` (a copy of the answer's data, with a usable ``_id``) through the converter."""
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
    try:
        hook = _HOOKS.get(cls) or converter.get_structure_hook(cls)
        structured = hook(wire, cls)
    except BaseValidationError as exc:
        leaves = _leaves(exc)
        for leaf in leaves:
            if isinstance(leaf, UnknownStatusError):
                leaf.task_id = task_id
                raise leaf from None
        problems = [_wire_path(cls, m) for m in transform_error(exc, format_exception=_format)]
        raise ResponseError(
            f"malformed {cls.__name__} data: {'; '.join(problems)}", task_id=task_id
        ) from exc
    return structured


def structure(data: object, cls: type[R]) -> R:
    """Structure the decoded envelope ``data`` object into result class ``cls``.

    Raises :class:`UnknownStatusError` for a status outside 1-4 and :class:`ResponseError`
    for a missing ``_id``, non-object data or a documented field of the wrong type.
    """
    result: R = _structure_result(data, cls)
    return result


def structure_character_swap_task(data: object) -> CharacterSwapTask:
    """``data`` of ``POST /api/open/v4/characterSwap/create`` -> :class:`CharacterSwapTask`."""
    result: CharacterSwapTask = _structure_result(data, CharacterSwapTask)
    return result


def structure_character_swap_result(data: object) -> CharacterSwapResult:
    """``data`` of ``GET /api/open/v3/content/video/infobymodelid`` -> result."""
    result: CharacterSwapResult = _structure_result(data, CharacterSwapResult)
    return result


def structure_head_swap_analysis(data: object) -> HeadSwapAnalysis:
    """``data`` of head-swap ``analyze`` or ``analyze/detail`` -> :class:`HeadSwapAnalysis`."""
    result: HeadSwapAnalysis = _structure_result(data, HeadSwapAnalysis)
    return result


def structure_head_swap_task(data: object) -> HeadSwapTask:
    """``data`` of ``POST /api/open/v4/headswap/task/create`` -> :class:`HeadSwapTask`."""
    result: HeadSwapTask = _structure_result(data, HeadSwapTask)
    return result


def structure_head_swap_result(data: object) -> HeadSwapResult:
    """``data`` of ``GET /api/open/v4/headswap/task/detail`` -> :class:`HeadSwapResult`."""
    result: HeadSwapResult = _structure_result(data, HeadSwapResult)
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
            f"must be one of {sorted(_RESULT_KINDS)} (got {_describe(kind)})",
        )
    result: AnyResult = _structure_result(raw, cls)
    return result


# --------------------------------------------------------------------------- requests -> wire


def character_swap_to_wire(req: CharacterSwap) -> dict[str, Any]:
    """Body of ``POST /api/open/v4/characterSwap/create``.

    Keys ``image``, ``video``, ``duration`` (omitted if None), ``resolution``, ``mode``,
    ``prompt`` (omitted if None) and ``webhookurl`` (lowercase as documented; omitted if None).
    """
    body: dict[str, Any] = converter.unstructure(req, CharacterSwap)
    return body


def head_swap_to_wire(req: HeadSwap) -> dict[str, Any]:
    """Body of ``POST /api/open/v4/headswap/task/create``.

    Keys ``video_url``, ``mappings`` (``[{obj_id, img_url}]``), ``resolution``,
    ``model_name``, ``keep_original_sound``, ``template_id`` (omitted if None) and
    ``webhookUrl`` (camelCase as documented; omitted if None).
    """
    body: dict[str, Any] = converter.unstructure(req, HeadSwap)
    return body


def analyze_to_wire(video_url: str) -> dict[str, Any]:
    """Body of ``POST /api/open/v4/headswap/analyze``: the URL byte-identical, type "head"."""
    return {"video_url": video_url, "type": "head"}


# --------------------------------------------------------------------------- requests <-> dicts


def request_kind(req: Request) -> str:
    """``"character_swap"`` or ``"head_swap"``."""
    return CHARACTER_SWAP_KIND if isinstance(req, CharacterSwap) else HEAD_SWAP_KIND


def request_to_dict(req: Request) -> dict[str, Any]:
    """A JSON-serialisable dict with a ``"kind"`` discriminator and Python field names.

    Every field is present (None included); ``faces`` is a list of ``{obj_id, img_url}``
    objects; an integral float duration is written as an int so equal requests give equal
    dicts. Inverse of :func:`request_from_dict`.
    """
    if isinstance(req, CharacterSwap):
        return {
            "kind": CHARACTER_SWAP_KIND,
            "image": req.image,
            "video": req.video,
            "duration": _wire_duration(req.duration),
            "resolution": req.resolution,
            "mode": req.mode,
            "prompt": req.prompt,
            "webhook_url": req.webhook_url,
        }
    if isinstance(req, HeadSwap):
        return {
            "kind": HEAD_SWAP_KIND,
            "video_url": req.video_url,
            "faces": _wire_mappings(req.faces),
            "resolution": req.resolution,
            "model_name": req.model_name,
            "keep_original_sound": req.keep_original_sound,
            "template_id": req.template_id,
            "webhook_url": req.webhook_url,
        }
    raise ValidationError("request", f"must be a CharacterSwap or HeadSwap (got {_describe(req)})")


_REQUEST_CLASSES: Mapping[str, type[CharacterSwap] | type[HeadSwap]] = {
    CHARACTER_SWAP_KIND: CharacterSwap,
    HEAD_SWAP_KIND: HeadSwap,
}


def _faces_from_json(value: object) -> object:
    """``faces`` from JSON: a list of ``{obj_id, img_url}`` or an ``{"<obj_id>": url}`` object."""
    if isinstance(value, Mapping):
        # JSON object keys are strings; "0" means obj_id 0. Other keys go to HeadSwap's checks.
        return {
            int(k) if isinstance(k, str) and k.isascii() and k.isdigit() else k: v
            for k, v in value.items()
        }
    if not isinstance(value, list | tuple):
        return value  # HeadSwap reports the type problem
    faces: list[object] = []
    for index, item in enumerate(value):
        if isinstance(item, FaceMapping):
            faces.append(item)
            continue
        where = f"HeadSwap.faces[{index}]"
        if not isinstance(item, Mapping):
            raise ValidationError(
                where, f"must be an object with obj_id and img_url (got {_describe(item)})"
            )
        unknown = sorted(str(k) for k in item if k not in ("obj_id", "img_url"))
        if unknown:
            raise ValidationError(
                f"{where}.{unknown[0]}", "unknown field (expected obj_id, img_url)"
            )
        missing = [k for k in ("obj_id", "img_url") if k not in item]
        if missing:
            raise ValidationError(f"{where}.{missing[0]}", "is required")
        try:
            faces.append(FaceMapping(item["obj_id"], item["img_url"]))
        except ValidationError as exc:
            errors = [(f"{where}.{f.split('.', 1)[1]}", r) for f, r in exc.errors]
            raise ValidationError(errors[0][0], errors[0][1], errors=errors) from None
    return faces


def request_from_dict(data: object) -> CharacterSwap | HeadSwap:
    """Build a request from :func:`request_to_dict` output or a user's JSONL line.

    Requires ``"kind"``; unknown keys are an error (a typo must not pass silently); missing
    optional keys take the model defaults. Raises :class:`ValidationError` naming the field.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("request", f"must be a JSON object (got {_describe(data)})")
    kind = data.get("kind")
    cls = _REQUEST_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValidationError(
            "request.kind",
            f"must be {CHARACTER_SWAP_KIND!r} or {HEAD_SWAP_KIND!r} (got {_describe(kind)})",
        )
    owner = cls.__name__
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = sorted(str(k) for k in data if k != "kind" and k not in fields)
    if unknown:
        errors = [(f"{owner}.{k}", f"unknown field (known: {', '.join(fields)})") for k in unknown]
        raise ValidationError(errors[0][0], errors[0][1], errors=errors)
    missing = [
        name for name, f in fields.items() if f.default is attrs.NOTHING and name not in data
    ]
    if missing:
        errors = [(f"{owner}.{name}", "is required") for name in missing]
        raise ValidationError(errors[0][0], errors[0][1], errors=errors)
    kwargs = {k: v for k, v in data.items() if k != "kind"}
    if cls is HeadSwap:
        kwargs["faces"] = _faces_from_json(kwargs["faces"])
    return cls(**kwargs)


def request_fingerprint(req: Request) -> str:
    """sha256 hex of the canonical JSON of :func:`request_to_dict` (sorted keys, no spaces).

    Stable across runs, processes and machines; equal requests give equal fingerprints.
    """
    canonical = json.dumps(
        request_to_dict(req), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def estimate_credits(req: Request) -> int | None:
    """Credits a request should cost, or None when unknown.

    Character Swap: ``ceil(duration / 5) * rate`` with rate 5/10/15 for 480p/720p/1080p
    (None when ``duration`` is None: Akool detects it). Head Swap: None (no public price).
    """
    if not isinstance(req, CharacterSwap) or req.duration is None:
        return None
    blocks = math.ceil(req.duration / _CREDIT_BLOCK_SECONDS)
    return blocks * CHARACTER_SWAP_CREDITS_PER_BLOCK[req.resolution]
