"""Request and result models (plain frozen attrs; no wire knowledge).

Requests (:class:`CharacterSwap`, :class:`HeadSwap`, :class:`FaceMapping`, :class:`Job`) are
validated when constructed: every rule is checked and one :class:`ValidationError` lists all
the problems, each naming its field (``"CharacterSwap.duration"``) and the rule in words.
Nothing here knows a wire name; ``_converters.py`` owns ``_id``, ``webhookurl`` and friends.

Results carry Python names only. Every result has ``id``, ``status`` (:class:`TaskStatus`),
``output_url``, ``failure_reason`` and ``raw`` (the response ``data`` object as received,
unknown keys included; excluded from equality, hashing and ``repr``). Timestamps are
timezone-aware UTC datetimes; durations are seconds.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import attrs

from ._errors import ValidationError

__all__ = [
    "CHARACTER_SWAP_MODES",
    "CHARACTER_SWAP_RESOLUTIONS",
    "DEFAULT_HEAD_SWAP_MODEL",
    "HEAD_SWAP_RESOLUTIONS",
    "MAX_CHARACTER_SWAP_DURATION",
    "MAX_FACE_MAPPINGS",
    "MAX_PROMPT_LENGTH",
    "MIN_CHARACTER_SWAP_DURATION",
    "AnyResult",
    "CharacterSwap",
    "CharacterSwapResult",
    "CharacterSwapTask",
    "DetectedPerson",
    "FaceMapping",
    "HeadSwap",
    "HeadSwapAnalysis",
    "HeadSwapResult",
    "HeadSwapTask",
    "Job",
    "Request",
    "TaskStatus",
    "VideoInfo",
]


_T = TypeVar("_T")


def _slot_constructor(cls: type[_T]) -> Callable[..., _T]:
    """A keyword-only constructor for a frozen slotted attrs class ``cls``, for objects the
    SDK builds once per job (results, outcomes).

    attrs' frozen ``__init__`` stores each field with ``object.__setattr__``, which looks
    the name up again on every call; this stores it straight through the field's slot
    descriptor, half the cost. Only for classes whose fields take their values as given
    (no validator, converter, pre- or post-init), where the two agree exactly
    (tests/test_models.py pins it). Every field must be passed: there are no defaults.
    """
    fields = attrs.fields(cls)  # type: ignore[arg-type] # attrs classes only
    hooks = ("__attrs_pre_init__", "__attrs_post_init__")
    if any(getattr(cls, hook, None) is not None for hook in hooks) or any(
        f.validator is not None or f.converter is not None for f in fields
    ):
        raise TypeError(f"{cls.__name__} checks or converts its fields: use its __init__")
    names = [f.name for f in fields]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def build(*, {', '.join(names)}):", "    self = _new(_cls)"]
    for name in names:
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__  # the slot's member descriptor
        lines.append(f"    _set_{name}(self, {name})")
    lines.append("    return self")
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from field names, as attrs does
    build: Callable[..., _T] = namespace["build"]
    build.__qualname__ = f"_slot_constructor({cls.__name__})"
    return build


class TaskStatus(enum.IntEnum):
    """Lifecycle of every Akool task and analysis: 1 queueing, 2 processing, 3 done, 4 failed."""

    QUEUEING = 1
    PROCESSING = 2
    COMPLETED = 3
    FAILED = 4

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED and FAILED."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


# --------------------------------------------------------------------------- limits

#: Character Swap source duration bounds in seconds (akool-api.md §3.1).
MIN_CHARACTER_SWAP_DURATION = 1
MAX_CHARACTER_SWAP_DURATION = 120
#: Longest Character Swap prompt, in characters.
MAX_PROMPT_LENGTH = 500
#: Allowed output resolutions per endpoint.
CHARACTER_SWAP_RESOLUTIONS: tuple[str, ...] = ("480p", "720p", "1080p")
HEAD_SWAP_RESOLUTIONS: tuple[str, ...] = ("480p", "720p")
#: Character Swap modes: character animation or face replacement.
CHARACTER_SWAP_MODES: tuple[str, ...] = ("animate", "replace")
# For CharacterSwap's fast path (behind exact ``str`` checks: an unhashable value would
# make ``in`` raise).
_RESOLUTION_SET = frozenset(CHARACTER_SWAP_RESOLUTIONS)
_MODE_SET = frozenset(CHARACTER_SWAP_MODES)
#: Head Swap accepts 1 to this many face mappings per task.
MAX_FACE_MAPPINGS = 5
#: The only Head Swap model the v4 docs name.
DEFAULT_HEAD_SWAP_MODEL = "akool-premium"

_SHOW_LIMIT = 60


# --------------------------------------------------------------------------- validation helpers


def _show(value: object) -> str:
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

#: The common well-formed case, ``http(s)://host[:port][/?#rest]``, recognised by one regex
#: so request construction (a hot path in bulk runs) skips ``urlsplit``. Every string it
#: fully matches is one ``_url_problem_full`` accepts: a lowercase scheme; an ASCII host
#: without ``@``, ``[``, ``]`` or ``%`` (so ``urlsplit`` cannot raise and ``hostname`` is the
#: non-empty host); the netloc ends at the first ``/``, ``?`` or ``#``, exactly where
#: ``urlsplit`` ends it; and no character ``_BAD_URL_CHAR`` refuses. Anything else, e.g. an
#: upper-case scheme, user info or an IPv6 literal, takes the full check, so both accept and
#: reject exactly the same strings (tests/test_models.py pins the agreement). Always used
#: with ``fullmatch``: ``$`` would let a trailing newline through.
_PLAIN_HTTP_URL = re.compile(
    r"https?://[A-Za-z0-9._-]+(?::[0-9]{1,5})?(?:[/?#][^\s\x00-\x1f\x7f]*)?"
)


def _url_problem(value: object) -> str | None:
    """Why ``value`` is not an absolute http(s) URL with a host, or None if it is one.

    URLs are checked, never normalised: Head Swap needs the byte-identical string at
    analyze and create time.
    """
    if isinstance(value, str) and _PLAIN_HTTP_URL.fullmatch(value) is not None:
        return None
    return _url_problem_full(value)


def _url_problem_full(value: object) -> str | None:
    """:func:`_url_problem` without the regex fast path: ``urlsplit`` decides."""
    if not isinstance(value, str):
        return f"must be an http(s) URL string (got {_show(value)})"
    if not value:
        return "must be an http(s) URL (got an empty string)"
    if _BAD_URL_CHAR.search(value):
        return f"must be an http(s) URL without spaces or control characters (got {_show(value)})"
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return f"must be a well-formed http(s) URL (got {_show(value)})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must be an http or https URL (got {_show(value)})"
    if not host:
        return f"must be an http(s) URL with a host (got {_show(value)})"
    return None


def _valid_duration(value: object) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return MIN_CHARACTER_SWAP_DURATION <= float(value) <= MAX_CHARACTER_SWAP_DURATION
    except OverflowError:  # an int too large for a float is certainly out of range
        return False


class _Checks:
    """Collects every (field, rule) problem of one object, then raises once."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.errors: list[tuple[str, str]] = []

    def add(self, field: str, rule: str) -> None:
        self.errors.append((f"{self.owner}.{field}", rule))

    def url(self, field: str, value: object, *, optional: bool = False) -> None:
        if optional and value is None:
            return
        problem = _url_problem(value)
        if problem is not None:
            self.add(field, problem)

    def choice(self, field: str, value: object, options: tuple[str, ...]) -> None:
        if not isinstance(value, str) or value not in options:
            self.add(field, f"must be one of {_choices(options)} (got {_show(value)})")

    def optional_nonempty_str(self, field: str, value: object) -> None:
        if value is not None and (not isinstance(value, str) or not value):
            self.add(field, f"must be None or a non-empty string (got {_show(value)})")

    def done(self) -> None:
        if self.errors:
            field, rule = self.errors[0]
            raise ValidationError(field, rule, errors=self.errors)


# --------------------------------------------------------------------------- requests


@attrs.frozen
class FaceMapping:
    """One Head Swap mapping: the detected person ``obj_id`` gets the face at ``img_url``.

    ``obj_id`` is the zero-based id from :attr:`HeadSwapAnalysis.people`; ``img_url`` is an
    http(s) URL of one reference face image (not the analysis preview crop).
    """

    obj_id: int
    img_url: str

    def __attrs_post_init__(self) -> None:
        checks = _Checks("FaceMapping")
        obj_id: object = self.obj_id
        if not isinstance(obj_id, int) or isinstance(obj_id, bool) or obj_id < 0:
            checks.add("obj_id", f"must be an integer >= 0 (got {_show(self.obj_id)})")
        checks.url("img_url", self.img_url)
        checks.done()


def _indexed_mapping(index: int, obj_id: object, img_url: object) -> FaceMapping:
    """FaceMapping(obj_id, img_url), with errors named ``HeadSwap.faces[index].<field>``."""
    try:
        return FaceMapping(obj_id, img_url)  # type: ignore[arg-type]  # validated inside
    except ValidationError as exc:
        errors = [(f"HeadSwap.faces[{index}].{f.split('.', 1)[1]}", r) for f, r in exc.errors]
        raise ValidationError(errors[0][0], errors[0][1], errors=errors) from None


def _face_mappings(
    value: Sequence[FaceMapping] | Mapping[int, str],
) -> tuple[FaceMapping, ...]:
    """Normalise ``HeadSwap.faces`` to a tuple of FaceMapping sorted by ``obj_id``.

    Accepts a sequence of :class:`FaceMapping` or a mapping ``{obj_id: img_url}``. Sorting
    makes equal requests compare (and fingerprint) equal whatever order the caller used.
    """
    raw: object = value
    items: list[FaceMapping] = []
    if isinstance(raw, Mapping):
        items = [
            _indexed_mapping(index, obj_id, img_url)
            for index, (obj_id, img_url) in enumerate(raw.items())
        ]
    elif isinstance(raw, (str, bytes, bytearray)) or not isinstance(raw, Iterable):
        raise ValidationError(
            "HeadSwap.faces",
            "must be a sequence of FaceMapping or a mapping of obj_id to image URL "
            f"(got {_show(raw)})",
        )
    else:
        for index, item in enumerate(raw):
            if not isinstance(item, FaceMapping):
                raise ValidationError(
                    f"HeadSwap.faces[{index}]", f"must be a FaceMapping (got {_show(item)})"
                )
            items.append(item)
    items.sort(key=lambda m: m.obj_id)
    return tuple(items)


@attrs.frozen
class CharacterSwap:
    """A Character Swap request: animate the character in ``image`` with ``video``'s motion.

    - ``image``: http(s) URL of the character image (PNG or JPEG).
    - ``video``: http(s) URL of the driving MP4 video.
    - ``duration`` (None): seconds to render, 1-120 (int or float); None lets Akool detect it
      from the video. Credits are charged per started 5-second block.
    - ``resolution`` ("720p"): ``"480p"``, ``"720p"`` or ``"1080p"``.
    - ``mode`` ("animate"): ``"animate"`` (character animation) or ``"replace"`` (face
      replacement).
    - ``prompt`` (None): optional text guidance, at most 500 characters.
    - ``webhook_url`` (None): http(s) URL Akool POSTs the final state to.
    """

    image: str
    video: str
    duration: float | None = attrs.field(default=None, kw_only=True)
    resolution: str = attrs.field(default="720p", kw_only=True)
    mode: str = attrs.field(default="animate", kw_only=True)
    prompt: str | None = attrs.field(default=None, kw_only=True)
    webhook_url: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not _plain_character_swap(self):
            self._check()

    def _check(self) -> None:
        """Every rule, each problem named (ValidationError)."""
        checks = _Checks("CharacterSwap")
        checks.url("image", self.image)
        checks.url("video", self.video)
        duration: object = self.duration
        if duration is not None and not _valid_duration(duration):
            is_number = isinstance(duration, (int, float)) and not isinstance(duration, bool)
            kind = "" if is_number else "None or a number "
            checks.add(
                "duration",
                f"must be {kind}between {MIN_CHARACTER_SWAP_DURATION} and "
                f"{MAX_CHARACTER_SWAP_DURATION} seconds (got {_show(duration)})",
            )
        checks.choice("resolution", self.resolution, CHARACTER_SWAP_RESOLUTIONS)
        checks.choice("mode", self.mode, CHARACTER_SWAP_MODES)
        prompt: object = self.prompt
        if prompt is not None:
            if not isinstance(prompt, str):
                checks.add("prompt", f"must be None or a string (got {_show(prompt)})")
            elif len(prompt) > MAX_PROMPT_LENGTH:
                checks.add(
                    "prompt",
                    f"must be at most {MAX_PROMPT_LENGTH} characters (got {len(prompt)})",
                )
        checks.url("webhook_url", self.webhook_url, optional=True)
        checks.done()


def _plain_character_swap(req: CharacterSwap) -> bool:
    """The common request (two plain URLs, valid resolution and mode, no duration, prompt
    or webhook) in one expression: bulk runs build thousands of these. True only for
    requests ``CharacterSwap._check`` accepts (tests/test_models.py pins it); anything
    else takes those checks, which decide and name every problem."""
    image: object = req.image
    video: object = req.video
    resolution: object = req.resolution
    mode: object = req.mode
    return (
        type(image) is str
        and type(video) is str
        and req.duration is None
        and req.prompt is None
        and req.webhook_url is None
        and type(resolution) is str
        and resolution in _RESOLUTION_SET
        and type(mode) is str
        and mode in _MODE_SET
        and _PLAIN_HTTP_URL.fullmatch(image) is not None
        and _PLAIN_HTTP_URL.fullmatch(video) is not None
    )


@attrs.frozen
class HeadSwap:
    """A Head Swap request: replace the heads of detected people in ``video_url``.

    - ``video_url``: http(s) URL of the source video; sent byte-identical to the analysis.
    - ``faces``: a sequence of :class:`FaceMapping` or a mapping ``{obj_id: img_url}``;
      stored as a tuple of FaceMapping sorted by ``obj_id``. 1-5 mappings, distinct obj_ids.
    - ``resolution`` ("720p"): ``"480p"`` or ``"720p"``.
    - ``model_name`` ("akool-premium"): the Head Swap model, a non-empty string.
    - ``keep_original_sound`` (True): keep the source audio track.
    - ``template_id`` (None): only when enabled for your account; a non-empty string.
    - ``webhook_url`` (None): http(s) URL Akool POSTs the final state to.
    """

    video_url: str
    faces: tuple[FaceMapping, ...] = attrs.field(converter=_face_mappings)
    resolution: str = attrs.field(default="720p", kw_only=True)
    model_name: str = attrs.field(default=DEFAULT_HEAD_SWAP_MODEL, kw_only=True)
    keep_original_sound: bool = attrs.field(default=True, kw_only=True)
    template_id: str | None = attrs.field(default=None, kw_only=True)
    webhook_url: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        checks = _Checks("HeadSwap")
        checks.url("video_url", self.video_url)
        count = len(self.faces)
        if not 1 <= count <= MAX_FACE_MAPPINGS:
            checks.add(
                "faces", f"must have between 1 and {MAX_FACE_MAPPINGS} mappings (got {count})"
            )
        obj_ids = [m.obj_id for m in self.faces]
        duplicates = sorted({i for i in obj_ids if obj_ids.count(i) > 1})
        if duplicates:
            checks.add("faces", f"obj_ids must be distinct (repeated: {duplicates})")
        checks.choice("resolution", self.resolution, HEAD_SWAP_RESOLUTIONS)
        model_name: object = self.model_name
        if not isinstance(model_name, str) or not model_name:
            checks.add("model_name", f"must be a non-empty string (got {_show(model_name)})")
        keep_sound: object = self.keep_original_sound
        if not isinstance(keep_sound, bool):
            checks.add("keep_original_sound", f"must be True or False (got {_show(keep_sound)})")
        checks.optional_nonempty_str("template_id", self.template_id)
        checks.url("webhook_url", self.webhook_url, optional=True)
        checks.done()

    @property
    def obj_ids(self) -> tuple[int, ...]:
        """The mapped obj_ids, ascending."""
        return tuple(m.obj_id for m in self.faces)


#: Any request the SDK can submit.
Request: TypeAlias = CharacterSwap | HeadSwap


@attrs.frozen
class Job:
    """A request plus the caller's ``key`` for batches.

    ``key`` (None) is a non-empty string the batch reports back on the outcome; None means
    the input index is used.
    """

    request: CharacterSwap | HeadSwap
    key: str | None = None

    def __attrs_post_init__(self) -> None:
        checks = _Checks("Job")
        request: object = self.request
        if not isinstance(request, (CharacterSwap, HeadSwap)):
            checks.add("request", f"must be a CharacterSwap or HeadSwap (got {_show(request)})")
        checks.optional_nonempty_str("key", self.key)
        checks.done()


# --------------------------------------------------------------------------- results


def _raw() -> Any:
    # ``raw`` is the response ``data`` as received; a plain dict so it stays
    # JSON-serialisable (journals store it). Left out of eq/hash/repr: it is unhashable
    # and noisy, and every meaningful value already has its own field.
    return attrs.field(factory=dict, eq=False, repr=False, kw_only=True)


@attrs.frozen(kw_only=True)
class CharacterSwapTask:
    """The task a Character Swap create returned (status starts at QUEUEING).

    ``video_duration`` is in seconds, ``credits`` the credits charged at create time,
    ``image_url``/``video_url`` echo the inputs. ``output_url`` and ``failure_reason`` are
    always None here: poll for a :class:`CharacterSwapResult`.
    """

    id: str
    status: TaskStatus
    created_at: datetime | None = None
    video_duration: float | None = None
    credits: int | None = None
    resolution: str | None = None
    mode: str | None = None
    model_name: str | None = None
    file_name: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    prompt: str | None = None
    webhook_url: str | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def output_url(self) -> str | None:
        """Always None: a freshly created task has no output yet."""
        return None

    @property
    def failure_reason(self) -> str | None:
        """Always None: a freshly created task has not failed."""
        return None


@attrs.frozen(kw_only=True)
class CharacterSwapResult:
    """A polled Character Swap task.

    ``output_url`` is the generated video (set when COMPLETED; valid for 7 days);
    ``input_video_url`` the driving video. ``video_duration`` is in seconds and may be
    fractional once completed. ``credits`` is the actual charge (0 after a failure).
    ``failure_reason`` is Akool's text when FAILED.
    """

    id: str
    status: TaskStatus
    created_at: datetime | None = None
    updated_at: datetime | None = None
    video_duration: float | None = None
    credits: int | None = None
    resolution: str | None = None
    image_url: str | None = None
    input_video_url: str | None = None
    output_url: str | None = None
    failure_reason: str | None = None
    webhook_url: str | None = None
    file_name: str | None = None
    prompt: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class DetectedPerson:
    """One person found by a Head Swap analysis: ``obj_id`` to map, ``preview_url`` crop."""

    obj_id: int
    preview_url: str | None = None
    media_type: str | None = None


@attrs.frozen(kw_only=True)
class VideoInfo:
    """Source video facts from an analysis: size in pixels, frames per second, frame count."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None


@attrs.frozen(kw_only=True)
class HeadSwapAnalysis:
    """A Head Swap person analysis of ``video_url``.

    ``people`` lists the detected persons (empty until COMPLETED). ``detected_objects`` is
    Akool's own count and need not equal ``len(people)``. ``progress`` is 0-100.
    ``error_reason``/``error_code`` are reported as received (a completed analysis says
    ``"success"``/``0``); ``failure_reason`` is ``error_reason`` only when FAILED.
    ``task_id`` is Akool's internal id, useful only for support. ``output_url`` is None.
    """

    id: str
    status: TaskStatus
    video_url: str | None = None
    progress: float | None = None
    people: tuple[DetectedPerson, ...] = ()
    detected_objects: int | None = None
    video_info: VideoInfo | None = None
    error_reason: str | None = None
    error_code: int | None = None
    task_id: str | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def obj_ids(self) -> tuple[int, ...]:
        """The obj_ids of the detected people, in the order Akool listed them."""
        return tuple(p.obj_id for p in self.people)

    @property
    def output_url(self) -> str | None:
        """Always None: an analysis produces no video."""
        return None

    @property
    def failure_reason(self) -> str | None:
        """``error_reason`` (or the error code) when FAILED, else None."""
        return _failure_reason(self.status, self.error_reason, self.error_code)


def _failure_reason(status: TaskStatus, reason: str | None, code: int | None) -> str | None:
    if status is not TaskStatus.FAILED:
        return None
    if reason:
        return reason
    return f"error code {code}" if code is not None else None


@attrs.frozen(kw_only=True)
class HeadSwapTask:
    """The task a Head Swap create returned.

    ``video_duration`` in seconds; ``lock_duration`` is Akool's credit pre-hold value
    (semantics per agreement). ``output_url`` is None at creation. ``task_id`` is Akool's
    internal id (support only; poll with ``id``).
    """

    id: str
    status: TaskStatus
    created_at: datetime | None = None
    video_duration: float | None = None
    resolution: str | None = None
    model_name: str | None = None
    file_name: str | None = None
    lock_duration: float | None = None
    output_url: str | None = None
    task_id: str | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def failure_reason(self) -> str | None:
        """Always None: a freshly created task has not failed."""
        return None


@attrs.frozen(kw_only=True)
class HeadSwapResult:
    """A polled Head Swap task.

    ``output_url`` is the generated video (None until COMPLETED); ``source_video_url`` the
    input. ``progress`` is 0-100, ``video_duration`` seconds, ``deduction_duration`` Akool's
    billing metric. ``failure_reason`` is ``error_reason`` (or the error code) when FAILED.
    """

    id: str
    status: TaskStatus
    source_video_url: str | None = None
    output_url: str | None = None
    progress: float | None = None
    video_duration: float | None = None
    resolution: str | None = None
    deduction_duration: float | None = None
    priority: int | None = None
    model_name: str | None = None
    file_name: str | None = None
    error_reason: str | None = None
    error_code: int | None = None
    created_at: datetime | None = None
    task_id: str | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def failure_reason(self) -> str | None:
        """``error_reason`` (or the error code) when FAILED, else None."""
        return _failure_reason(self.status, self.error_reason, self.error_code)


#: Any result model the converter produces.
AnyResult: TypeAlias = (
    CharacterSwapTask | CharacterSwapResult | HeadSwapAnalysis | HeadSwapTask | HeadSwapResult
)


url_problem = _url_problem
