"""Request validation and result model behaviour (no wire knowledge involved)."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from akool_async._errors import AkoolError, ValidationError
from akool_async._models import (
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
    Job,
    TaskStatus,
    url_problem,
)

IMG = "https://cdn.example.com/character.png"
VID = "https://cdn.example.com/source.mp4"
FACE = "https://cdn.example.com/face.png"


def _error(fn: Any, *args: Any, **kwargs: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------- TaskStatus


def test_task_status_values_and_terminality() -> None:
    """TaskStatus mirrors the wire enum 1-4 and only COMPLETED/FAILED are terminal."""
    assert [s.value for s in TaskStatus] == [1, 2, 3, 4]
    assert [s.is_terminal for s in TaskStatus] == [False, False, True, True]


# --------------------------------------------------------------------------- CharacterSwap


def test_character_swap_defaults() -> None:
    """A minimal CharacterSwap takes the documented defaults (720p, animate, no extras)."""
    req = CharacterSwap(IMG, VID)
    assert (req.duration, req.resolution, req.mode, req.prompt, req.webhook_url) == (
        None,
        "720p",
        "animate",
        None,
        None,
    )


def test_character_swap_options_are_keyword_only() -> None:
    """Only image and video may be passed positionally, as in DESIGN §2."""
    with pytest.raises(TypeError):
        CharacterSwap(IMG, VID, 10)  # type: ignore[call-arg]


def test_character_swap_accepts_all_valid_values() -> None:
    """Every documented resolution and mode, int and float durations at the bounds are valid."""
    for resolution in ("480p", "720p", "1080p"):
        for mode in ("animate", "replace"):
            for duration in (1, 120, 1.0, 12.5, 120.0):
                CharacterSwap(
                    "http://a.example/x.png",
                    VID,
                    duration=duration,
                    resolution=resolution,
                    mode=mode,
                    prompt="p" * 500,
                    webhook_url="https://hook.example/cb",
                )


def test_requests_are_frozen_and_hashable() -> None:
    """Requests are immutable values that can key dicts and sets."""
    req = CharacterSwap(IMG, VID, duration=10)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        req.duration = 20  # type: ignore[misc]
    assert {req: 1}[CharacterSwap(IMG, VID, duration=10.0)] == 1


@pytest.mark.parametrize("field", ["image", "video"])
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("ftp://example.com/a.png", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("example.com/a.png", "http or https"),
        ("https://", "with a host"),
        ("https:///path-only", "with a host"),
        ("", "empty string"),
        ("https://exa mple.com/a.png", "without spaces"),
        ("https://example.com/a\n.png", "control characters"),
        ("http://[::1/a.png", "well-formed"),
        (42, "URL string"),
        (None, "URL string"),
        (b"https://example.com/a.png", "URL string"),
    ],
)
def test_character_swap_urls_must_be_http_with_host(field: str, value: object, words: str) -> None:
    """image and video must be http(s) URLs with a host; the error names the field and rule."""
    kwargs: dict[str, Any] = {"image": IMG, "video": VID, field: value}
    err = _error(CharacterSwap, **kwargs)
    assert err.field == f"CharacterSwap.{field}"
    assert words in err.rule
    assert f"CharacterSwap.{field}" in str(err)


@pytest.mark.parametrize(
    "duration", [0, 0.99, 120.01, 300, -5, math.nan, math.inf, -math.inf, 10**400]
)
def test_character_swap_duration_range(duration: float) -> None:
    """duration outside 1-120 seconds is rejected with the bounds and the value in words."""
    err = _error(CharacterSwap, IMG, VID, duration=duration)
    assert err.field == "CharacterSwap.duration"
    assert "between 1 and 120 seconds" in err.rule


def test_character_swap_duration_message_matches_brief() -> None:
    """The out-of-range message reads 'must be between 1 and 120 seconds (got 300)'."""
    err = _error(CharacterSwap, IMG, VID, duration=300)
    assert err.rule == "must be between 1 and 120 seconds (got 300)"


@pytest.mark.parametrize("duration", [True, False, "10", [10], object()])
def test_character_swap_duration_type(duration: object) -> None:
    """duration must be an int or float (bools and strings refused) and says 'a number'."""
    err = _error(CharacterSwap, IMG, VID, duration=duration)
    assert err.field == "CharacterSwap.duration"
    assert "number" in err.rule


@pytest.mark.parametrize("resolution", ["1440p", "720", "720P", "", None, 720])
def test_character_swap_resolution(resolution: object) -> None:
    """resolution must be one of 480p/720p/1080p, listed in the message."""
    err = _error(CharacterSwap, IMG, VID, resolution=resolution)
    assert err.field == "CharacterSwap.resolution"
    assert "'480p', '720p' or '1080p'" in err.rule


@pytest.mark.parametrize("mode", ["Animate", "swap", "", None, 1])
def test_character_swap_mode(mode: object) -> None:
    """mode must be 'animate' or 'replace'."""
    err = _error(CharacterSwap, IMG, VID, mode=mode)
    assert err.field == "CharacterSwap.mode"
    assert "'animate' or 'replace'" in err.rule


def test_character_swap_prompt_length_and_type() -> None:
    """prompt is None or a string of at most 500 characters."""
    err = _error(CharacterSwap, IMG, VID, prompt="x" * 501)
    assert err.field == "CharacterSwap.prompt"
    assert err.rule == "must be at most 500 characters (got 501)"
    err = _error(CharacterSwap, IMG, VID, prompt=12)
    assert err.field == "CharacterSwap.prompt"
    assert "string" in err.rule


@pytest.mark.parametrize("url", ["ftp://h.example/cb", "hook", 5, ""])
def test_character_swap_webhook_url(url: object) -> None:
    """webhook_url is None or an http(s) URL."""
    err = _error(CharacterSwap, IMG, VID, webhook_url=url)
    assert err.field == "CharacterSwap.webhook_url"


def test_every_problem_is_reported_at_once() -> None:
    """One ValidationError lists every invalid field; .field/.rule are the first one."""
    err = _error(CharacterSwap, "nope", VID, duration=0, mode="x", resolution="8k")
    fields = [f for f, _ in err.errors]
    assert fields == [
        "CharacterSwap.image",
        "CharacterSwap.duration",
        "CharacterSwap.resolution",
        "CharacterSwap.mode",
    ]
    assert err.field == "CharacterSwap.image"
    assert str(err).startswith("4 invalid fields:")


def test_huge_values_are_truncated_in_messages() -> None:
    """A huge bad value is never echoed in full into the error message."""
    huge = "ftp://" + "a" * 100_000
    err = _error(CharacterSwap, huge, VID)
    assert len(str(err)) < 300
    assert "100006 characters" in str(err)
    err = _error(CharacterSwap, IMG, VID, duration=10**5000)
    assert len(str(err)) < 300


def test_validation_error_is_value_error_and_akool_error() -> None:
    """ValidationError can be caught as ValueError or AkoolError."""
    err = _error(CharacterSwap, IMG, VID, mode="x")
    assert isinstance(err, ValueError)
    assert isinstance(err, AkoolError)


def test_evolve_revalidates() -> None:
    """attrs.evolve cannot smuggle an invalid value past validation."""
    req = CharacterSwap(IMG, VID)
    with pytest.raises(ValidationError):
        attrs.evolve(req, duration=500)


# --------------------------------------------------------------------------- FaceMapping


@pytest.mark.parametrize("obj_id", [-1, True, 1.0, "0", None])
def test_face_mapping_obj_id(obj_id: object) -> None:
    """obj_id must be an int >= 0 (bools, floats and strings refused)."""
    err = _error(FaceMapping, obj_id, FACE)
    assert err.field == "FaceMapping.obj_id"
    assert "integer >= 0" in err.rule


def test_face_mapping_img_url() -> None:
    """img_url must be an http(s) URL."""
    err = _error(FaceMapping, 0, "s3://bucket/face.png")
    assert err.field == "FaceMapping.img_url"
    assert FaceMapping(0, FACE).obj_id == 0


# --------------------------------------------------------------------------- HeadSwap


def test_head_swap_defaults_and_faces_from_mapping() -> None:
    """A {obj_id: url} mapping becomes FaceMappings sorted by obj_id; defaults as documented."""
    req = HeadSwap(VID, {2: FACE, 0: "https://cdn.example.com/b.png"})
    assert req.faces == (
        FaceMapping(0, "https://cdn.example.com/b.png"),
        FaceMapping(2, FACE),
    )
    assert req.obj_ids == (0, 2)
    assert (req.resolution, req.model_name, req.keep_original_sound) == (
        "720p",
        "akool-premium",
        True,
    )
    assert (req.template_id, req.webhook_url) == (None, None)


def test_head_swap_faces_from_sequence_equal_mapping_form() -> None:
    """A list of FaceMapping and the equivalent mapping give equal requests in any order."""
    a = HeadSwap(VID, [FaceMapping(1, FACE), FaceMapping(0, FACE)])
    b = HeadSwap(VID, {0: FACE, 1: FACE})
    c = HeadSwap(VID, (m for m in (FaceMapping(0, FACE), FaceMapping(1, FACE))))  # type: ignore[arg-type]
    assert a == b == c
    assert hash(a) == hash(b)
    assert isinstance(a.faces, tuple)


@pytest.mark.parametrize("count", [0, 6])
def test_head_swap_face_count(count: int) -> None:
    """faces must hold 1-5 mappings."""
    err = _error(HeadSwap, VID, dict.fromkeys(range(count), FACE))
    assert err.field == "HeadSwap.faces"
    assert err.rule == f"must have between 1 and 5 mappings (got {count})"


def test_head_swap_distinct_obj_ids() -> None:
    """Two mappings for the same obj_id are refused, naming the repeated id."""
    err = _error(HeadSwap, VID, [FaceMapping(1, FACE), FaceMapping(1, FACE)])
    assert err.field == "HeadSwap.faces"
    assert "distinct" in err.rule
    assert "[1]" in err.rule


@pytest.mark.parametrize("faces", ["https://a.example/f.png", 3, None, b"x"])
def test_head_swap_faces_type(faces: object) -> None:
    """faces of the wrong type raise ValidationError, not TypeError."""
    err = _error(HeadSwap, VID, faces)
    assert err.field == "HeadSwap.faces"


def test_head_swap_faces_items_must_be_face_mappings() -> None:
    """A sequence item that is not a FaceMapping is named by its index."""
    err = _error(HeadSwap, VID, [FaceMapping(0, FACE), {"obj_id": 1, "img_url": FACE}])
    assert err.field == "HeadSwap.faces[1]"
    assert "FaceMapping" in err.rule


def test_head_swap_mapping_entry_errors_name_the_entry() -> None:
    """A bad entry in the {obj_id: url} form is reported as HeadSwap.faces[i].<field>."""
    err = _error(HeadSwap, VID, {0: FACE, -3: "nope"})
    assert [f for f, _ in err.errors] == ["HeadSwap.faces[1].obj_id", "HeadSwap.faces[1].img_url"]


@pytest.mark.parametrize("resolution", ["1080p", "360p", None])
def test_head_swap_resolution(resolution: object) -> None:
    """Head swap resolution is only 480p or 720p (1080p is character swap only)."""
    err = _error(HeadSwap, VID, {0: FACE}, resolution=resolution)
    assert err.field == "HeadSwap.resolution"
    assert "'480p' or '720p'" in err.rule


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("video_url", "rtmp://x.example/v", "http or https"),
        ("video_url", 7, "URL string"),
        ("model_name", "", "non-empty string"),
        ("model_name", None, "non-empty string"),
        ("keep_original_sound", 1, "True or False"),
        ("keep_original_sound", "yes", "True or False"),
        ("template_id", "", "non-empty string"),
        ("template_id", 5, "non-empty string"),
        ("webhook_url", "mailto:a@b.c", "http or https"),
    ],
)
def test_head_swap_field_rules(field: str, value: object, words: str) -> None:
    """Each HeadSwap field rule names the field and states the rule."""
    kwargs: dict[str, Any] = {"video_url": VID, "faces": {0: FACE}, field: value}
    err = _error(HeadSwap, **kwargs)
    assert err.field == f"HeadSwap.{field}"
    assert words in err.rule


def test_head_swap_keeps_url_byte_identical() -> None:
    """video_url is never normalised: analyze and create need the byte-identical string."""
    odd = "HTTPS://Example.COM:443/a/../v.mp4?b=2&a=1#frag"
    assert HeadSwap(odd, {0: FACE}).video_url == odd


# --------------------------------------------------------------------------- URL check


class _Str(str):
    """A str subclass: accepted like str by the URL check."""


# (value, accepted). URLs are checked with urlsplit, never normalised.
_URL_CASES: list[tuple[object, bool]] = [
    ("https://cdn.example.com/a/b.png?sig=a%2Fb&x=1#frag", True),
    ("http://a", True),
    ("https://a.b?q", True),
    ("https://a.b#f", True),
    ("https://a.b:8443/x", True),
    ("https://a.b/ü/[x]@y", True),
    (_Str("https://a.b/x"), True),
    ("https://a.b\n", False),  # a trailing newline: "$" would have matched
    ("https://a.b/x\n", False),
    ("https://a.b/x\u00a0", False),  # Unicode whitespace
    ("https://a.b/x\x85", False),
    ("https://a.b/\x7f", False),
    ("https://exa mple.com/", False),
    ("HTTPS://a.b/", True),  # upper-case scheme: urlsplit lowercases it
    ("https://user:pw@a.b/", True),
    ("https://@a.b/", True),
    ("https://a.b@/", False),  # user info but no host
    ("https://a.b:/", True),  # an empty port is not checked
    ("https://a.b:123456/", True),  # nor is a long one
    ("https://a.b\\evil.example/", True),  # urlsplit keeps "\\" in the host
    ("https://[::1]:8080/x", True),
    ("http://[::1/a.png", False),
    # Not an IP literal: urlsplit raises from Python 3.11.4 on (gh-103848), accepts before.
    ("https://[a]/", sys.version_info < (3, 11, 4)),
    ("https://\uff41.com/", True),  # fullwidth "a": NFKC-safe
    ("https://\u2100.com/", False),  # "a/c" under NFKC: urlsplit raises
    ("https://", False),
    ("https:///x", False),
    ("https:", False),
    ("http//a.b", False),
    ("javascript://a.b/", False),
    ("", False),
    (b"https://a.b/", False),
    (None, False),
]


@pytest.mark.parametrize(("value", "accepted"), _URL_CASES)
def test_url_check_accepts_absolute_http_urls_only(value: object, accepted: bool) -> None:
    """url_problem() accepts exactly the absolute http(s) URLs with a host."""
    assert (url_problem(value) is None) is accepted


# Few characters, most of them special to urlsplit or the fast-path regex, so the generated
# strings hit the edges (user info, ports, brackets, a delimiter or newline after the host).
_url_prefix = st.sampled_from(["http://", "https://"]) | st.sampled_from(
    ["", "HTTP://", "hTtPs://", "ftp://", "https:", "//", "http:/"]
)
_url_host = st.text(st.sampled_from(list("a0.-_@:[]%\\ \n\u2100\uff41")), max_size=6)
_url_joint = st.sampled_from(["", "/", "?", "#", ":", ":80", ":123456", "@", "\n"])
_url_rest = st.text(st.sampled_from(list("a/?#@[]: \n\x7f\x85\u00a0\u00fc")), max_size=6)
_urlish = st.builds(
    lambda prefix, host, joint, rest, end: prefix + host + joint + rest + end,
    _url_prefix,
    st.from_regex(r"[a-z0-9.-]{1,6}", fullmatch=True) | _url_host | st.text(max_size=6),
    _url_joint,
    _url_rest | st.text(max_size=6),
    st.sampled_from(["", "\n"]),  # a final newline is the classic "$" regex slip
)


@settings(max_examples=300)
@given(_urlish)
def test_hypothesis_url_check_never_raises(value: str) -> None:
    """For URL-like strings the check answers None or a rule in words, never an exception."""
    problem = url_problem(value)
    assert problem is None or problem.startswith("must be")


# --------------------------------------------------------------------------- Job


def test_job_accepts_requests_and_keys() -> None:
    """A Job wraps either request kind with an optional non-empty key."""
    assert Job(CharacterSwap(IMG, VID)).key is None
    assert Job(HeadSwap(VID, {0: FACE}), key="order-17").key == "order-17"


@pytest.mark.parametrize(
    ("request_", "key", "field"),
    [
        ("https://x.example", None, "Job.request"),
        ({"kind": "character_swap"}, None, "Job.request"),
        (CharacterSwap(IMG, VID), "", "Job.key"),
        (CharacterSwap(IMG, VID), 17, "Job.key"),
    ],
)
def test_job_validation(request_: object, key: object, field: str) -> None:
    """Job.request must be a request object and Job.key None or a non-empty string."""
    err = _error(Job, request_, key)
    assert err.field == field


# --------------------------------------------------------------------------- results


def test_results_share_the_common_surface() -> None:
    """Every result exposes id, status, output_url, failure_reason and raw."""
    results: list[AnyResult] = [
        CharacterSwapTask(id="a", status=TaskStatus.QUEUEING),
        CharacterSwapResult(id="a", status=TaskStatus.COMPLETED, output_url="https://o/x.mp4"),
        HeadSwapAnalysis(id="a", status=TaskStatus.PROCESSING),
        HeadSwapTask(id="a", status=TaskStatus.QUEUEING),
        HeadSwapResult(id="a", status=TaskStatus.FAILED, error_reason="boom"),
    ]
    for result in results:
        assert result.id == "a"
        assert isinstance(result.status, TaskStatus)
        assert result.raw == {}
    assert [r.output_url for r in results] == [None, "https://o/x.mp4", None, None, None]
    assert [r.failure_reason for r in results] == [None, None, None, None, "boom"]


def test_raw_is_excluded_from_equality_hash_and_repr() -> None:
    """Two results differing only in raw compare equal, hash, and keep raw out of repr."""
    a = HeadSwapTask(id="a", status=TaskStatus.QUEUEING, raw={"x": [1]})
    b = HeadSwapTask(id="a", status=TaskStatus.QUEUEING, raw={"y": {"z": 2}})
    assert a == b
    assert hash(a) == hash(b)
    assert "raw" not in repr(a)


def test_failure_reason_only_when_failed() -> None:
    """error_reason counts as a failure reason only for FAILED (completed analyses say success)."""
    done = HeadSwapAnalysis(id="a", status=TaskStatus.COMPLETED, error_reason="success")
    assert done.failure_reason is None
    failed = HeadSwapAnalysis(id="a", status=TaskStatus.FAILED, error_reason="no person")
    assert failed.failure_reason == "no person"
    coded = HeadSwapResult(id="a", status=TaskStatus.FAILED, error_code=2001)
    assert coded.failure_reason == "error code 2001"
    assert HeadSwapResult(id="a", status=TaskStatus.FAILED).failure_reason is None


def test_analysis_obj_ids_follow_people() -> None:
    """HeadSwapAnalysis.obj_ids lists the detected people's obj_ids in order."""
    analysis = HeadSwapAnalysis(
        id="a",
        status=TaskStatus.COMPLETED,
        people=(DetectedPerson(obj_id=2), DetectedPerson(obj_id=0)),
        detected_objects=3,
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    assert analysis.obj_ids == (2, 0)
    assert analysis.detected_objects == 3


# --------------------------------------------------------------------------- Hypothesis


def _outcome(build: Any) -> ValidationError | None:
    """Run ``build``; return its ValidationError or None. Any other exception propagates."""
    try:
        build()
    except ValidationError as err:
        assert err.errors  # noqa: PT017 -- inspecting the error is the point here
        return err
    return None


_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=600),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.integers(), st.text(max_size=20), max_size=7),
    st.sampled_from(["480p", "720p", "1080p", "animate", "replace", IMG, VID, "", "http://"]),
)


@given(
    image=_anything,
    video=_anything,
    duration=_anything,
    resolution=_anything,
    mode=_anything,
    prompt=_anything,
    webhook_url=_anything,
)
def test_random_character_swap_inputs_only_raise_validation_error(**kwargs: Any) -> None:
    """Arbitrary values either build a CharacterSwap or raise ValidationError, nothing else."""
    err = _outcome(lambda: CharacterSwap(**kwargs))
    assert err is None or all(f.startswith("CharacterSwap.") for f, _ in err.errors)


@given(
    video_url=_anything,
    faces=st.one_of(
        _anything,
        st.lists(st.builds(FaceMapping, st.integers(0, 9), st.just(FACE)), max_size=7),
        st.dictionaries(_anything.filter(lambda v: v.__hash__ is not None), _anything, max_size=6),
    ),
    resolution=_anything,
    model_name=_anything,
    keep_original_sound=_anything,
    template_id=_anything,
    webhook_url=_anything,
)
def test_random_head_swap_inputs_only_raise_validation_error(**kwargs: Any) -> None:
    """Arbitrary values either build a HeadSwap or raise ValidationError, nothing else."""
    err = _outcome(lambda: HeadSwap(**kwargs))
    assert err is None or all(f.startswith("HeadSwap.") for f, _ in err.errors)


@given(obj_id=_anything, img_url=_anything, key=_anything)
def test_random_face_mapping_and_job_inputs_only_raise_validation_error(
    obj_id: object, img_url: object, key: object
) -> None:
    """FaceMapping and Job never raise anything but ValidationError on arbitrary values."""
    face_err = _outcome(lambda: FaceMapping(obj_id, img_url))  # type: ignore[arg-type]
    assert face_err is None or face_err.field.startswith("FaceMapping.")
    job_err = _outcome(lambda: Job(obj_id, key))  # type: ignore[arg-type]
    assert job_err is not None  # obj_id is never a request here
    assert job_err.field.startswith("Job.")


# --------------------------------------------------------------------------- unencodable text

#: A valid JSON string ("\ud800") that no UTF-8 body can carry.
LONE = "\ud800"


def _surrogate_cases() -> list[tuple[Any, dict[str, Any], str, int]]:
    """(build, kwargs, expected field, surrogate index) for every string field of a request."""
    cs: dict[str, Any] = {"image": IMG, "video": VID}
    hs: dict[str, Any] = {"video_url": VID, "faces": {0: FACE}}
    return [
        (CharacterSwap, {**cs, "image": IMG + LONE}, "CharacterSwap.image", len(IMG)),
        (CharacterSwap, {**cs, "video": VID + LONE}, "CharacterSwap.video", len(VID)),
        (CharacterSwap, {**cs, "prompt": "ab" + LONE}, "CharacterSwap.prompt", 2),
        (
            CharacterSwap,
            {**cs, "webhook_url": "https://hooks.example/" + LONE},
            "CharacterSwap.webhook_url",
            22,
        ),
        (CharacterSwap, {**cs, "resolution": "720p" + LONE}, "CharacterSwap.resolution", 4),
        (CharacterSwap, {**cs, "mode": LONE + "animate"}, "CharacterSwap.mode", 0),
        (HeadSwap, {**hs, "video_url": VID + LONE}, "HeadSwap.video_url", len(VID)),
        (HeadSwap, {**hs, "faces": {0: FACE + LONE}}, "HeadSwap.faces[0].img_url", len(FACE)),
        (HeadSwap, {**hs, "model_name": "akool" + LONE}, "HeadSwap.model_name", 5),
        (HeadSwap, {**hs, "template_id": "t" + LONE}, "HeadSwap.template_id", 1),
        (HeadSwap, {**hs, "resolution": LONE}, "HeadSwap.resolution", 0),
        (
            HeadSwap,
            {**hs, "webhook_url": "https://hooks.example/h" + LONE},
            "HeadSwap.webhook_url",
            23,
        ),
        (FaceMapping, {"obj_id": 0, "img_url": FACE + LONE}, "FaceMapping.img_url", len(FACE)),
        (Job, {"request": CharacterSwap(IMG, VID), "key": "order-" + LONE}, "Job.key", 6),
    ]


@pytest.mark.parametrize(("build", "kwargs", "field", "index"), _surrogate_cases())
def test_lone_surrogate_in_any_string_field_is_a_validation_error(
    build: Any, kwargs: dict[str, Any], field: str, index: int
) -> None:
    """A lone surrogate is refused at construction, naming the field and where it is."""
    err = _error(build, **kwargs)
    assert err.field == field
    assert err.rule == f"must be valid Unicode text (lone surrogate at index {index})"


def test_surrogate_pair_written_as_two_code_points_is_refused() -> None:
    """Two surrogate code points in a str are not a character either: refused too."""
    err = _error(CharacterSwap, IMG, VID, prompt="\ud83d\ude00")
    assert err.rule.endswith("(lone surrogate at index 0)")
    CharacterSwap(IMG, VID, prompt="\U0001f600")  # the real character is fine


@pytest.mark.parametrize("field", ["image", "video", "webhook_url"])
def test_nul_in_a_url_is_a_validation_error(field: str) -> None:
    """A NUL character anywhere in a URL is refused, naming the field."""
    kwargs: dict[str, Any] = {"image": IMG, "video": VID, field: "https://a.example/x\x00.mp4"}
    err = _error(CharacterSwap, **kwargs)
    assert err.field == f"CharacterSwap.{field}"
    assert "control characters" in err.rule


def test_nul_in_head_swap_urls_is_a_validation_error() -> None:
    """NUL in the Head Swap video or a face URL is refused, naming the field."""
    assert _error(HeadSwap, VID + "\x00", {0: FACE}).field == "HeadSwap.video_url"
    assert _error(HeadSwap, VID, {0: FACE + "\x00"}).field == "HeadSwap.faces[0].img_url"


def test_url_problem_names_the_surrogate() -> None:
    """url_problem() (used by head_swap.analyze) reports a surrogate before any URL rule."""
    assert url_problem("https://a.example/" + LONE) == (
        "must be valid Unicode text (lone surrogate at index 18)"
    )


#: Text that mixes ordinary characters with surrogate code points.
_mixed_text = st.text(
    st.characters(codec=None) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    max_size=12,
)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=300)
@given(prompt=_mixed_text, key=_mixed_text)
def test_hypothesis_text_fields_build_exactly_when_encodable(prompt: str, key: str) -> None:
    """A prompt and a job key are accepted exactly when they encode as UTF-8."""

    def build() -> Job:
        return Job(CharacterSwap(IMG, VID, prompt=prompt), key=key or None)

    if _encodable(prompt) and _encodable(key):
        job = build()
        assert job.request.prompt == prompt
    else:
        with pytest.raises(ValidationError, match="lone surrogate at index"):
            build()


@settings(max_examples=300)
@given(path=_mixed_text)
def test_hypothesis_url_with_a_surrogate_is_refused_for_it(path: str) -> None:
    """A URL is refused for a surrogate exactly when its text does not encode as UTF-8."""
    problem = url_problem("https://a.example/" + path)
    refused_for_surrogate = problem is not None and "lone surrogate" in problem
    assert refused_for_surrogate is not _encodable(path)
