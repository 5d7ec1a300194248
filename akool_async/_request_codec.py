"""Requests on their way out: wire bodies, the JSON dict form, fingerprints, credit estimates.

Wire bodies use the documented spelling per endpoint (akool-api.md §9.1): Character Swap
create takes ``webhookurl`` (lowercase), Head Swap create takes ``webhookUrl`` and
``mappings``. ``request_to_dict``/``request_from_dict`` are the JSON form with Python names
used by the journal and the JSONL CLI; ``request_fingerprint`` digests that form.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ._errors import ValidationError
from ._models import CharacterSwap, FaceMapping, HeadSwap, Request, indexed_face_mapping
from ._validation import show_value

__all__ = [
    "CHARACTER_SWAP_CREDITS_PER_BLOCK",
    "CHARACTER_SWAP_KIND",
    "HEAD_SWAP_KIND",
    "analyze_to_wire",
    "character_swap_to_wire",
    "estimate_credits",
    "head_swap_to_wire",
    "request_fingerprint",
    "request_from_dict",
    "request_kind",
    "request_to_dict",
]

#: ``kind`` discriminator values of request dicts, journals and ``result_from_raw``.
CHARACTER_SWAP_KIND: Final = "character_swap"
HEAD_SWAP_KIND: Final = "head_swap"

#: Character Swap credits per started 5-second block, by resolution (akool-api.md §3.2).
CHARACTER_SWAP_CREDITS_PER_BLOCK: Mapping[str, int] = {"480p": 5, "720p": 10, "1080p": 15}
_CREDIT_BLOCK_SECONDS = 5


def _wire_duration(value: float | None) -> float | int | None:
    # 10.0 and 10 are the same request; send the integer form Akool's examples use.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _wire_mappings(faces: tuple[FaceMapping, ...]) -> list[dict[str, Any]]:
    return [{"obj_id": m.obj_id, "img_url": m.img_url} for m in faces]


#: The converter for request bodies. ``omit_if_default`` drops optional fields left at None.
wire_converter = cattrs.Converter()
wire_converter.register_unstructure_hook(
    CharacterSwap,
    make_dict_unstructure_fn(
        CharacterSwap,
        wire_converter,
        duration=override(omit_if_default=True, unstruct_hook=_wire_duration),
        prompt=override(omit_if_default=True),
        webhook_url=override(rename="webhookurl", omit_if_default=True),
    ),
)
wire_converter.register_unstructure_hook(
    HeadSwap,
    make_dict_unstructure_fn(
        HeadSwap,
        wire_converter,
        faces=override(rename="mappings", unstruct_hook=_wire_mappings),
        template_id=override(omit_if_default=True),
        webhook_url=override(rename="webhookUrl", omit_if_default=True),
    ),
)


def character_swap_to_wire(req: CharacterSwap) -> dict[str, Any]:
    """Body of ``POST /api/open/v4/characterSwap/create``.

    Keys ``image``, ``video``, ``duration`` (omitted if None), ``resolution``, ``mode``,
    ``prompt`` (omitted if None) and ``webhookurl`` (lowercase as documented; omitted if None).
    """
    body: dict[str, Any] = wire_converter.unstructure(req, CharacterSwap)
    return body


def head_swap_to_wire(req: HeadSwap) -> dict[str, Any]:
    """Body of ``POST /api/open/v4/headswap/task/create``.

    Keys ``video_url``, ``mappings`` (``[{obj_id, img_url}]``), ``resolution``,
    ``model_name``, ``keep_original_sound``, ``template_id`` (omitted if None) and
    ``webhookUrl`` (camelCase as documented; omitted if None).
    """
    body: dict[str, Any] = wire_converter.unstructure(req, HeadSwap)
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
    raise ValidationError("request", f"must be a CharacterSwap or HeadSwap (got {show_value(req)})")


_REQUEST_CLASSES: Mapping[str, type[CharacterSwap] | type[HeadSwap]] = {
    CHARACTER_SWAP_KIND: CharacterSwap,
    HEAD_SWAP_KIND: HeadSwap,
}
_FACE_KEYS = ("obj_id", "img_url")


def _face_from_json(index: int, item: object) -> FaceMapping:
    """One ``{obj_id, img_url}`` object of a JSON ``faces`` list, errors naming its index."""
    if isinstance(item, FaceMapping):
        return item
    where = f"HeadSwap.faces[{index}]"
    if not isinstance(item, Mapping):
        raise ValidationError(
            where, f"must be an object with obj_id and img_url (got {show_value(item)})"
        )
    unknown = sorted(str(k) for k in item if k not in _FACE_KEYS)
    if unknown:
        raise ValidationError(f"{where}.{unknown[0]}", "unknown field (expected obj_id, img_url)")
    missing = [k for k in _FACE_KEYS if k not in item]
    if missing:
        raise ValidationError(f"{where}.{missing[0]}", "is required")
    return indexed_face_mapping(index, item["obj_id"], item["img_url"])


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
    return [_face_from_json(index, item) for index, item in enumerate(value)]


def _request_class(data: object) -> type[CharacterSwap] | type[HeadSwap]:
    """The request class ``data["kind"]`` names (ValidationError if none)."""
    if not isinstance(data, Mapping):
        raise ValidationError("request", f"must be a JSON object (got {show_value(data)})")
    kind = data.get("kind")
    cls = _REQUEST_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValidationError(
            "request.kind",
            f"must be {CHARACTER_SWAP_KIND!r} or {HEAD_SWAP_KIND!r} (got {show_value(kind)})",
        )
    return cls


def _check_keys(cls: type[CharacterSwap] | type[HeadSwap], data: Mapping[Any, Any]) -> None:
    """Refuse unknown keys (a typo must not pass silently) and missing required ones."""
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


def request_from_dict(data: object) -> CharacterSwap | HeadSwap:
    """Build a request from :func:`request_to_dict` output or a user's JSONL line.

    Requires ``"kind"``; unknown keys are an error (a typo must not pass silently); missing
    optional keys take the model defaults. Raises :class:`ValidationError` naming the field.
    """
    cls = _request_class(data)
    assert isinstance(data, Mapping)  # _request_class checked it
    _check_keys(cls, data)
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
