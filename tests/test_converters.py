"""The converter: wire quirks (akool-api.md §9), request bodies, dict round-trips, fingerprints.

The JSON documents below are copied from the contract (``/work/shared/akool-api.md``); shapes
the docs do not show (processing, failed) follow the contract's stated assumptions.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from akool_async._converters import (
    analyze_to_wire,
    character_swap_to_wire,
    estimate_credits,
    head_swap_to_wire,
    request_fingerprint,
    request_from_dict,
    request_kind,
    request_to_dict,
    result_from_raw,
    structure,
)
from akool_async._errors import ResponseError, UnknownStatusError, ValidationError
from akool_async._models import (
    CharacterSwap,
    CharacterSwapResult,
    CharacterSwapTask,
    DetectedPerson,
    HeadSwap,
    HeadSwapAnalysis,
    HeadSwapResult,
    HeadSwapTask,
    TaskStatus,
    VideoInfo,
)

# --------------------------------------------------------------------------- contract JSON

# §3.1 Character Swap create: request and response.
CS_CREATE_REQUEST = json.loads("""
{"image": "https://drz0f01yeq1cx.cloudfront.net/character-image.png",
 "video": "https://drz0f01yeq1cx.cloudfront.net/source-video.mp4",
 "duration": 10, "resolution": "720p", "mode": "animate",
 "prompt": "Smooth character animation with natural movement",
 "webhookurl": "https://your-callback-url.com/webhook"}
""")

def _structurer(cls: type[Any]) -> Any:
    """``data -> structure(data, cls)``: one endpoint's answer as its model."""
    return functools.partial(structure, cls=cls)


structure_character_swap_task = _structurer(CharacterSwapTask)
structure_character_swap_result = _structurer(CharacterSwapResult)
structure_head_swap_analysis = _structurer(HeadSwapAnalysis)
structure_head_swap_task = _structurer(HeadSwapTask)
structure_head_swap_result = _structurer(HeadSwapResult)

CS_CREATE_RESPONSE = json.loads("""
{"code": 1000, "msg": "OK",
 "data": {"_id": "689174694b4dbdd4ab3d28c9", "create_time": 1754362985482, "uid": 101400,
  "team_id": "6805fb69e92d9edc7ca0b409", "status": 1, "video_duration": 10, "deduction_credit": 20,
  "resolution": "720p", "file_name": "CharacterSwap_1754362985482.mp4",
  "image_url": "https://drz0f01yeq1cx.cloudfront.net/character-image.png",
  "video_url": "https://drz0f01yeq1cx.cloudfront.net/source-video.mp4",
  "prompt": "Smooth character animation with natural movement", "mode": "animate",
  "model_name": "wavespeed-ai/wan-2.2/animate",
  "webhookUrl": "https://your-callback-url.com/webhook"}}
""")["data"]

# §3.3 Character Swap v3 result, queueing; completed/failed are the documented differences.
CS_RESULT_QUEUEING = json.loads("""
{"code": 1000, "msg": "OK", "data": {"_id": "689174694b4dbdd4ab3d28c9", "create_time": 1754362985482,
 "uid": 101400, "team_id": "6805fb69e92d9edc7ca0b409", "video_duration": 10,
 "webhookUrl": "https://your-callback-url.com/webhook", "file_name": "CharacterSwap_1754362985482.mp4",
 "image_url": "https://drz0f01yeq1cx.cloudfront.net/character-image.png",
 "video_url": "https://drz0f01yeq1cx.cloudfront.net/source-video.mp4",
 "prompt": "Smooth character animation with natural movement", "resolution": "720p",
 "deduction_credit": 20, "video_status": 1}}
""")["data"]  # noqa: E501 (copied verbatim from the contract)
CS_RESULT_COMPLETED = {
    **CS_RESULT_QUEUEING,
    **json.loads("""
{"update_time": 1754363095482,
 "video": "https://d2qf6ukcym4kn9.cloudfront.net/1754363091791-1423.mp4",
 "video_duration": 10.5, "video_status": 3}
"""),
}
CS_RESULT_FAILED = {
    **CS_RESULT_QUEUEING,
    **json.loads("""
{"update_time": 1754363095482, "deduction_credit": 0, "video_status": 4,
 "faceswap_fail_reason": "Failed to process the video. Please check your input resources."}
"""),
}
# No processing example exists; the contract suggests the queueing shape with video_status 2.
CS_RESULT_PROCESSING = {**CS_RESULT_QUEUEING, "video_status": 2}

# §4.1 / §4.2 Head Swap analysis: submit response and completed detail.
HS_ANALYZE_RESPONSE = json.loads("""
{"code": 1000, "msg": "Analyze success",
 "data": {"_id": "6a066d03625746c797390f55", "create_time": 1778806019014, "uid": 101400,
  "team_id": "6805fb69e92d9edc7ca0b409", "video_url": "https://example.com/videos/source.mp4",
  "type": "head", "status": 1, "task_id": "6a066d022872921bde86b72f", "progress": 0}}
""")["data"]
HS_ANALYSIS_COMPLETED = json.loads("""
{"code": 1000, "msg": "OK",
 "data": {"_id": "6a066d03625746c797390f55", "create_time": 1778806019014, "uid": 101400,
  "team_id": "6805fb69e92d9edc7ca0b409", "video_url": "https://example.com/videos/source.mp4",
  "type": "head", "status": 3, "task_id": "6a066d022872921bde86b72f",
  "analysis_result": {"detected_objects": 3,
    "media": [{"media_type": "images", "obj_id": 0, "img_url": "https://example.com/previews/subject_0.png"}],
    "video_info": {"width": 1916, "height": 1082, "fps": 30, "frame_count": 450}},
  "progress": 100, "error_reason": "success", "error_code": 0}}
""")["data"]
# No failed example exists; the contract assumes error_reason/error_code set, result null.
HS_ANALYSIS_FAILED = {
    **HS_ANALYZE_RESPONSE,
    "status": 4,
    "analysis_result": None,
    "error_reason": "no person detected",
    "error_code": 1,
}

# §4.3 Head Swap create response, §4.4 task detail (completed).
HS_CREATE_RESPONSE = json.loads("""
{"code": 1000, "msg": "OK",
 "data": {"_id": "6a066dc58570ecbf64f761a5", "create_time": 1778806213962, "uid": 101400,
  "team_id": "6805fb69e92d9edc7ca0b409", "video_duration": 10, "task_id": "6a066dc52872921bde86b745",
  "resolution": "720p", "status": 1, "deduction_lock_duration": 100, "model_name": "akool-premium",
  "file_name": "Headswap_1778806213962.mp4", "video_url": null}}
""")["data"]  # noqa: E501 (copied verbatim from the contract)
HS_DETAIL_COMPLETED = json.loads("""
{"code": 1000, "msg": "OK",
 "data": {"_id": "6a066dc58570ecbf64f761a5", "uid": 101400, "team_id": "6805fb69e92d9edc7ca0b409",
  "source_video_url": "https://example.com/videos/source.mp4", "create_time": 1778806213962,
  "status": 3, "video_duration": 10, "resolution": "720p", "deduction_duration": 15,
  "video_url": "https://example.com/output/result.mp4", "progress": 100, "priority": 9,
  "task_id": "6a066dc52872921bde86b745", "file_name": "Headswap_1778806213962.mp4",
  "model_name": "akool-premium"}}
""")["data"]
# Processing: "video_url may be empty while status is 1 or 2" (no JSON in the docs).
HS_DETAIL_PROCESSING = {**HS_DETAIL_COMPLETED, "status": 2, "video_url": "", "progress": 40}
HS_DETAIL_FAILED = {
    **HS_DETAIL_COMPLETED,
    "status": 4,
    "video_url": None,
    "error_reason": "face not found",
    "error_code": 1016,
}

ALL_DOCS: list[tuple[str, Any, dict[str, Any]]] = [
    ("character_swap_task", structure_character_swap_task, CS_CREATE_RESPONSE),
    ("character_swap", structure_character_swap_result, CS_RESULT_QUEUEING),
    ("character_swap", structure_character_swap_result, CS_RESULT_PROCESSING),
    ("character_swap", structure_character_swap_result, CS_RESULT_COMPLETED),
    ("character_swap", structure_character_swap_result, CS_RESULT_FAILED),
    ("head_swap_analysis", structure_head_swap_analysis, HS_ANALYZE_RESPONSE),
    ("head_swap_analysis", structure_head_swap_analysis, HS_ANALYSIS_COMPLETED),
    ("head_swap_analysis", structure_head_swap_analysis, HS_ANALYSIS_FAILED),
    ("head_swap_task", structure_head_swap_task, HS_CREATE_RESPONSE),
    ("head_swap", structure_head_swap_result, HS_DETAIL_COMPLETED),
    ("head_swap", structure_head_swap_result, HS_DETAIL_PROCESSING),
    ("head_swap", structure_head_swap_result, HS_DETAIL_FAILED),
]


def _utc_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)


# --------------------------------------------------------------------------- Character Swap results


def test_character_swap_create_response() -> None:
    """The create example maps _id, ms create_time, deduction_credit and camelCase webhookUrl."""
    task = structure_character_swap_task(CS_CREATE_RESPONSE)
    assert task == CharacterSwapTask(
        id="689174694b4dbdd4ab3d28c9",
        status=TaskStatus.QUEUEING,
        created_at=datetime(2025, 8, 5, 3, 3, 5, 482000, tzinfo=timezone.utc),
        video_duration=10.0,
        credits=20,
        resolution="720p",
        mode="animate",
        model_name="wavespeed-ai/wan-2.2/animate",
        file_name="CharacterSwap_1754362985482.mp4",
        image_url="https://drz0f01yeq1cx.cloudfront.net/character-image.png",
        video_url="https://drz0f01yeq1cx.cloudfront.net/source-video.mp4",
        prompt="Smooth character animation with natural movement",
        webhook_url="https://your-callback-url.com/webhook",
    )
    assert task.output_url is None
    assert task.failure_reason is None


def test_timestamps_are_aware_utc_and_exact_to_the_millisecond() -> None:
    """Epoch-ms timestamps become timezone-aware UTC datetimes without float rounding."""
    task = structure_character_swap_task(CS_CREATE_RESPONSE)
    assert task.created_at is not None
    assert task.created_at.tzinfo is timezone.utc
    assert task.created_at == _utc_ms(1754362985482)
    assert int(task.created_at.timestamp() * 1000) == 1754362985482


def test_character_swap_result_queueing_reads_video_status() -> None:
    """Quirk §9.2: the v3 result has video_status (no status, mode or model_name keys)."""
    result = structure_character_swap_result(CS_RESULT_QUEUEING)
    assert result.status is TaskStatus.QUEUEING
    assert result.output_url is None
    assert result.failure_reason is None
    assert result.updated_at is None
    assert result.webhook_url == "https://your-callback-url.com/webhook"


def test_character_swap_result_processing() -> None:
    """The assumed processing shape (queueing with video_status 2) gives PROCESSING, no output."""
    result = structure_character_swap_result(CS_RESULT_PROCESSING)
    assert result.status is TaskStatus.PROCESSING
    assert result.output_url is None


def test_character_swap_result_completed_output_and_input_urls() -> None:
    """Quirk §9.5: `video` is the output and `video_url` the input on a character swap result."""
    result = structure_character_swap_result(CS_RESULT_COMPLETED)
    assert result.status is TaskStatus.COMPLETED
    assert result.output_url == "https://d2qf6ukcym4kn9.cloudfront.net/1754363091791-1423.mp4"
    assert result.input_video_url == "https://drz0f01yeq1cx.cloudfront.net/source-video.mp4"
    assert result.image_url == "https://drz0f01yeq1cx.cloudfront.net/character-image.png"
    assert result.updated_at == _utc_ms(1754363095482)
    assert result.credits == 20


def test_character_swap_fractional_duration() -> None:
    """Quirk §9.14: video_duration is an int while queued but fractional (10.5) when done."""
    assert structure_character_swap_result(CS_RESULT_QUEUEING).video_duration == 10.0
    assert structure_character_swap_result(CS_RESULT_COMPLETED).video_duration == 10.5


def test_character_swap_result_failed() -> None:
    """A failed result carries faceswap_fail_reason as failure_reason and the zeroed charge."""
    result = structure_character_swap_result(CS_RESULT_FAILED)
    assert result.status is TaskStatus.FAILED
    assert result.failure_reason == (
        "Failed to process the video. Please check your input resources."
    )
    assert result.credits == 0
    assert result.output_url is None


def test_character_swap_result_falls_back_to_status() -> None:
    """Quirk §9.2: a result that only carries `status` (like create) is still understood."""
    data = {k: v for k, v in CS_RESULT_COMPLETED.items() if k != "video_status"}
    data["status"] = 3
    assert structure_character_swap_result(data).status is TaskStatus.COMPLETED
    null_video_status = {**data, "video_status": None}
    assert structure_character_swap_result(null_video_status).status is TaskStatus.COMPLETED


def test_character_swap_result_prefers_video_status() -> None:
    """When both keys are present, video_status (the result endpoint's field) wins."""
    data = {**CS_RESULT_COMPLETED, "status": 1}
    assert structure_character_swap_result(data).status is TaskStatus.COMPLETED


def test_character_swap_result_without_any_status_is_a_response_error() -> None:
    """A result with neither video_status nor status is malformed and names video_status."""
    data = {k: v for k, v in CS_RESULT_QUEUEING.items() if k != "video_status"}
    with pytest.raises(ResponseError, match="video_status") as info:
        structure_character_swap_result(data)
    assert not isinstance(info.value, UnknownStatusError)


# --------------------------------------------------------------------------- Head Swap results


def test_head_swap_analyze_response() -> None:
    """The submit answer has no analysis_result: no people, no count, no video info yet."""
    analysis = structure_head_swap_analysis(HS_ANALYZE_RESPONSE)
    assert analysis.id == "6a066d03625746c797390f55"
    assert analysis.task_id == "6a066d022872921bde86b72f"  # quirk §9.4: not the poll id
    assert analysis.status is TaskStatus.QUEUEING
    assert analysis.video_url == "https://example.com/videos/source.mp4"  # §9.5: input here
    assert analysis.progress == 0
    assert (analysis.people, analysis.detected_objects, analysis.video_info) == ((), None, None)
    assert analysis.obj_ids == ()
    assert analysis.output_url is None
    assert analysis.created_at == _utc_ms(1778806019014)


def test_head_swap_analysis_completed() -> None:
    """The completed example flattens analysis_result into people, count and video info."""
    analysis = structure_head_swap_analysis(HS_ANALYSIS_COMPLETED)
    assert analysis.status is TaskStatus.COMPLETED
    assert analysis.people == (
        DetectedPerson(
            obj_id=0,
            preview_url="https://example.com/previews/subject_0.png",
            media_type="images",
        ),
    )
    assert analysis.obj_ids == (0,)
    assert analysis.video_info == VideoInfo(width=1916, height=1082, fps=30.0, frame_count=450)
    assert analysis.progress == 100


def test_detected_objects_is_not_derived_from_media() -> None:
    """Quirk §9.15: detected_objects (3) is kept as sent although media lists one person."""
    analysis = structure_head_swap_analysis(HS_ANALYSIS_COMPLETED)
    assert analysis.detected_objects == 3
    assert len(analysis.people) == 1


def test_completed_analysis_error_reason_success_is_not_a_failure() -> None:
    """Quirk §9.7: error_reason "success"/error_code 0 are kept but failure_reason is None."""
    analysis = structure_head_swap_analysis(HS_ANALYSIS_COMPLETED)
    assert (analysis.error_reason, analysis.error_code) == ("success", 0)
    assert analysis.failure_reason is None


def test_head_swap_analysis_failed() -> None:
    """A failed analysis (assumed shape) reports error_reason as failure_reason, no people."""
    analysis = structure_head_swap_analysis(HS_ANALYSIS_FAILED)
    assert analysis.status is TaskStatus.FAILED
    assert analysis.failure_reason == "no person detected"
    assert analysis.people == ()


@pytest.mark.parametrize(
    "analysis_result",
    [None, {}, {"media": None}, {"media": [], "video_info": None}, {"video_info": {}}],
)
def test_head_swap_analysis_empty_or_partial_result(analysis_result: object) -> None:
    """An empty, null or partial analysis_result is lenient: no people and None defaults."""
    data = {**HS_ANALYZE_RESPONSE, "status": 2, "analysis_result": analysis_result}
    analysis = structure_head_swap_analysis(data)
    assert analysis.people == ()
    assert analysis.detected_objects is None
    assert analysis.video_info in (None, VideoInfo())


def test_head_swap_analysis_result_must_be_an_object() -> None:
    """A non-object analysis_result is a ResponseError carrying the analysis id."""
    with pytest.raises(ResponseError, match="analysis_result") as info:
        structure_head_swap_analysis({**HS_ANALYSIS_COMPLETED, "analysis_result": [1]})
    assert info.value.task_id == "6a066d03625746c797390f55"


def test_head_swap_create_response() -> None:
    """Quirks §9.5/§9.6: create's video_url is the (null) output; lock duration is its own field."""
    task = structure_head_swap_task(HS_CREATE_RESPONSE)
    assert task == HeadSwapTask(
        id="6a066dc58570ecbf64f761a5",
        status=TaskStatus.QUEUEING,
        created_at=_utc_ms(1778806213962),
        video_duration=10.0,
        resolution="720p",
        model_name="akool-premium",
        file_name="Headswap_1778806213962.mp4",
        lock_duration=100.0,
        output_url=None,
        task_id="6a066dc52872921bde86b745",
    )
    assert task.failure_reason is None


def test_head_swap_detail_completed() -> None:
    """Task detail: video_url is the output, source_video_url the input, deduction_duration kept."""
    result = structure_head_swap_result(HS_DETAIL_COMPLETED)
    assert result == HeadSwapResult(
        id="6a066dc58570ecbf64f761a5",
        status=TaskStatus.COMPLETED,
        source_video_url="https://example.com/videos/source.mp4",
        output_url="https://example.com/output/result.mp4",
        progress=100.0,
        video_duration=10.0,
        resolution="720p",
        deduction_duration=15.0,
        priority=9,
        model_name="akool-premium",
        file_name="Headswap_1778806213962.mp4",
        created_at=_utc_ms(1778806213962),
        task_id="6a066dc52872921bde86b745",
    )
    assert result.failure_reason is None


def test_head_swap_detail_processing_empty_output_is_none() -> None:
    """An empty-string video_url while processing means no output yet (None)."""
    result = structure_head_swap_result(HS_DETAIL_PROCESSING)
    assert result.status is TaskStatus.PROCESSING
    assert result.output_url is None


def test_head_swap_detail_failed() -> None:
    """A failed detail reports error_reason as failure_reason and keeps error_code."""
    result = structure_head_swap_result(HS_DETAIL_FAILED)
    assert result.status is TaskStatus.FAILED
    assert result.failure_reason == "face not found"
    assert result.error_code == 1016
    assert result.output_url is None


# --------------------------------------------------------------------------- leniency and errors


@pytest.mark.parametrize(("kind", "fn", "data"), ALL_DOCS)
def test_raw_is_the_data_as_received(kind: str, fn: Any, data: dict[str, Any]) -> None:
    """raw equals the response data (unknown keys included) and is a copy, not an alias."""
    received = {**copy.deepcopy(data), "brand_new_key": {"nested": [1, 2]}, "uid": 7}
    result = fn(received)
    assert result.raw == received
    received["brand_new_key"] = "mutated later"
    assert result.raw["brand_new_key"] == {"nested": [1, 2]}


@pytest.mark.parametrize(("kind", "fn", "data"), ALL_DOCS)
def test_unknown_keys_are_ignored(kind: str, fn: Any, data: dict[str, Any]) -> None:
    """Extra keys (forward compatibility) never change the structured fields."""
    extra = {**data, "future_field": 1, "raw": "not ours", "$raw": "nor this", "id": "x"}
    assert fn(extra) == fn(data)
    assert fn(extra).raw["raw"] == "not ours"


@pytest.mark.parametrize(("kind", "fn", "data"), ALL_DOCS)
def test_optional_keys_may_be_missing_or_null(kind: str, fn: Any, data: dict[str, Any]) -> None:
    """Only _id and the status are needed: every other key may be absent or null."""
    status_key = "video_status" if "video_status" in data else "status"
    minimal = {"_id": data["_id"], status_key: data[status_key]}
    nulls = {k: (v if k in minimal else None) for k, v in data.items()}
    for variant in (minimal, nulls):
        result = fn(variant)
        assert result.id == data["_id"]
        assert result.status == data[status_key]
        assert result.output_url is None


@pytest.mark.parametrize(("kind", "fn", "data"), ALL_DOCS)
@pytest.mark.parametrize("status", [0, 5, 7, -1, 99, "done", True, 3.5])
def test_unknown_status_is_a_clear_error(
    kind: str, fn: Any, data: dict[str, Any], status: object
) -> None:
    """A status outside 1-4 raises UnknownStatusError naming the value and carrying the id."""
    status_key = "video_status" if "video_status" in data else "status"
    with pytest.raises(UnknownStatusError, match="unknown task status") as info:
        fn({**data, status_key: status})
    assert info.value.task_id == data["_id"]
    assert "1 queueing, 2 processing, 3 completed or 4 failed" in str(info.value)
    assert isinstance(info.value, ResponseError)


def test_numeric_string_status_is_accepted() -> None:
    """A status sent as a numeric string ("3") is read leniently as that number."""
    assert structure_head_swap_result({**HS_DETAIL_COMPLETED, "status": "3"}).status == 3


@pytest.mark.parametrize(("kind", "fn", "data"), ALL_DOCS)
@pytest.mark.parametrize("bad_id", ["<missing>", None, "", 123, ["x"]])
def test_missing_id_is_a_response_error(
    kind: str, fn: Any, data: dict[str, Any], bad_id: object
) -> None:
    """Data without a usable string _id raises ResponseError mentioning _id."""
    broken = {k: v for k, v in data.items() if k != "_id"}
    if bad_id != "<missing>":
        broken["_id"] = bad_id
    with pytest.raises(ResponseError, match="_id"):
        fn(broken)


@pytest.mark.parametrize("data", [None, [], "text", 3, ["_id"]])
def test_non_object_data_is_a_response_error(data: object) -> None:
    """A data value that is not a JSON object raises ResponseError for every result type."""
    for fn in (
        structure_character_swap_task,
        structure_character_swap_result,
        structure_head_swap_analysis,
        structure_head_swap_task,
        structure_head_swap_result,
    ):
        with pytest.raises(ResponseError, match="object"):
            fn(data)


_cs_task = structure_character_swap_task
_cs_result = structure_character_swap_result
_hs_task = structure_head_swap_task
_hs_result = structure_head_swap_result


@pytest.mark.parametrize(
    ("fn", "data", "patch", "wire_key"),
    [
        (_cs_task, CS_CREATE_RESPONSE, {"deduction_credit": "lots"}, "deduction_credit"),
        (_cs_task, CS_CREATE_RESPONSE, {"webhookUrl": 5}, "webhookUrl"),
        (_cs_task, CS_CREATE_RESPONSE, {"create_time": "noon"}, "create_time"),
        (_cs_task, CS_CREATE_RESPONSE, {"create_time": 10**300}, "create_time"),
        (_cs_result, CS_RESULT_COMPLETED, {"video": 1}, "video"),
        (_cs_result, CS_RESULT_COMPLETED, {"video_duration": [1]}, "video_duration"),
        (_cs_result, CS_RESULT_COMPLETED, {"video_duration": 10**400}, "video_duration"),
        (
            _hs_task,
            HS_CREATE_RESPONSE,
            {"deduction_lock_duration": True},
            "deduction_lock_duration",
        ),
        (_hs_result, HS_DETAIL_COMPLETED, {"priority": 1.5}, "priority"),
        (_hs_result, HS_DETAIL_COMPLETED, {"progress": float("nan")}, "progress"),
        (
            structure_head_swap_analysis,
            HS_ANALYSIS_COMPLETED,
            {"analysis_result": {"media": [{"img_url": "https://x/y.png"}]}},
            "analysis_result.media[0].obj_id",
        ),
        (
            structure_head_swap_analysis,
            HS_ANALYSIS_COMPLETED,
            {"analysis_result": {"media": [{"obj_id": 0, "img_url": 3}]}},
            "analysis_result.media[0].img_url",
        ),
        (
            structure_head_swap_analysis,
            HS_ANALYSIS_COMPLETED,
            {"analysis_result": {"media": "abc"}},
            "analysis_result.media",
        ),
        (
            structure_head_swap_analysis,
            HS_ANALYSIS_COMPLETED,
            {"analysis_result": {"video_info": [1920, 1080]}},
            "analysis_result.video_info",
        ),
        (
            structure_head_swap_analysis,
            HS_ANALYSIS_COMPLETED,
            {"analysis_result": {"video_info": {"fps": "fast"}}},
            "analysis_result.video_info.fps",
        ),
    ],
)  # fmt: skip
def test_wrong_typed_field_names_the_wire_key(
    fn: Any, data: dict[str, Any], patch: dict[str, Any], wire_key: str
) -> None:
    """A documented field of the wrong type raises ResponseError naming the wire key and id."""
    with pytest.raises(ResponseError) as info:
        fn({**data, **patch})
    assert not isinstance(info.value, UnknownStatusError)
    assert f"{wire_key}:" in str(info.value)
    assert info.value.task_id == data["_id"]


def test_numeric_strings_are_read_leniently() -> None:
    """Numbers sent as numeric strings ("10.5", "20") are accepted for numeric fields."""
    data = {**CS_RESULT_COMPLETED, "video_duration": "10.5", "deduction_credit": "20"}
    result = structure_character_swap_result(data)
    assert (result.video_duration, result.credits) == (10.5, 20)


def test_integral_floats_are_accepted_for_integers() -> None:
    """An integer field sent as 9.0 reads as 9 (JSON encoders differ)."""
    assert structure_head_swap_result({**HS_DETAIL_COMPLETED, "priority": 9.0}).priority == 9


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (1, TaskStatus.QUEUEING),
        (4, TaskStatus.FAILED),
        (3.0, TaskStatus.COMPLETED),
        ("2", TaskStatus.PROCESSING),
        (" 3 ", TaskStatus.COMPLETED),
    ],
)
def test_status_values_take_the_same_path_whatever_their_type(
    sent: object, status: TaskStatus
) -> None:
    """Exact ints (the fast lookup), integral floats and numeric strings give the same status."""
    assert structure_head_swap_result({**HS_DETAIL_COMPLETED, "status": sent}).status is status


def _created_at(ms: object) -> datetime | str:
    try:
        task = structure_character_swap_task({**CS_CREATE_RESPONSE, "create_time": ms})
    except ResponseError as err:
        assert "create_time:" in str(err)  # noqa: PT017 -- the message is what we compare
        return "ResponseError"
    assert task.created_at is not None
    return task.created_at


@given(
    st.integers(-(2**53), 2**53)
    | st.integers(-(10**15), 10**15)
    | st.floats(-1e19, 1e19).map(int)  # beyond 2**53: only ints a float holds exactly
)
def test_hypothesis_integer_timestamps_match_their_float_form(ms: int) -> None:
    """An int create_time (the fast path) gives exactly what the same value as a float gives."""
    assert float(ms) == ms
    assert _created_at(ms) == _created_at(float(ms))


_RESULT_MODELS = (
    CharacterSwapTask,
    CharacterSwapResult,
    HeadSwapAnalysis,
    HeadSwapTask,
    HeadSwapResult,
    DetectedPerson,
    VideoInfo,
)


# --------------------------------------------------------------------------- result_from_raw


@pytest.mark.parametrize(("kind", "fn", "data"), ALL_DOCS)
def test_result_from_raw_rebuilds_the_result(kind: str, fn: Any, data: dict[str, Any]) -> None:
    """A result rebuilt from its JSON-stored raw equals the original, raw included."""
    result = fn(data)
    stored = json.loads(json.dumps(result.raw))
    rebuilt = result_from_raw(kind, stored)
    assert rebuilt == result
    assert type(rebuilt) is type(result)
    assert rebuilt.raw == result.raw


def test_result_from_raw_kinds() -> None:
    """The batch kinds map to the final result classes; an unknown kind is a ValidationError."""
    assert isinstance(result_from_raw("character_swap", CS_RESULT_COMPLETED), CharacterSwapResult)
    assert isinstance(result_from_raw("head_swap", HS_DETAIL_COMPLETED), HeadSwapResult)
    assert isinstance(result_from_raw("head_swap_analysis", HS_ANALYZE_RESPONSE), HeadSwapAnalysis)
    with pytest.raises(ValidationError, match="kind"):
        result_from_raw("face_swap", CS_RESULT_COMPLETED)


# --------------------------------------------------------------------------- requests -> wire


def test_character_swap_body_matches_the_documented_example() -> None:
    """Quirk §9.1: the create body equals the doc example, webhook as lowercase `webhookurl`."""
    req = CharacterSwap(
        "https://drz0f01yeq1cx.cloudfront.net/character-image.png",
        "https://drz0f01yeq1cx.cloudfront.net/source-video.mp4",
        duration=10,
        resolution="720p",
        mode="animate",
        prompt="Smooth character animation with natural movement",
        webhook_url="https://your-callback-url.com/webhook",
    )
    assert character_swap_to_wire(req) == CS_CREATE_REQUEST


def test_character_swap_body_omits_unset_options() -> None:
    """duration, prompt and webhookurl are left out when None; defaults are always sent."""
    body = character_swap_to_wire(
        CharacterSwap("https://a.example/i.png", "https://a.example/v.mp4")
    )
    assert body == {
        "image": "https://a.example/i.png",
        "video": "https://a.example/v.mp4",
        "resolution": "720p",
        "mode": "animate",
    }
    json.dumps(body)


def test_character_swap_body_sends_integral_durations_as_int() -> None:
    """10.0 seconds goes out as 10 (as in the examples) and 12.5 as 12.5."""
    base = ("https://a.example/i.png", "https://a.example/v.mp4")
    assert character_swap_to_wire(CharacterSwap(*base, duration=10.0))["duration"] == 10
    assert character_swap_to_wire(CharacterSwap(*base, duration=12.5))["duration"] == 12.5


def test_head_swap_body() -> None:
    """Quirk §9.1: head swap sends camelCase `webhookUrl` and mappings [{obj_id, img_url}]."""
    req = HeadSwap(
        "https://example.com/videos/source.mp4",
        {1: "https://example.com/faces/b.png", 0: "https://example.com/faces/a.png"},
        resolution="480p",
        keep_original_sound=False,
        template_id="tpl-1",
        webhook_url="https://hooks.example.com/akool",
    )
    assert head_swap_to_wire(req) == {
        "video_url": "https://example.com/videos/source.mp4",
        "mappings": [
            {"obj_id": 0, "img_url": "https://example.com/faces/a.png"},
            {"obj_id": 1, "img_url": "https://example.com/faces/b.png"},
        ],
        "resolution": "480p",
        "model_name": "akool-premium",
        "keep_original_sound": False,
        "template_id": "tpl-1",
        "webhookUrl": "https://hooks.example.com/akool",
    }


def test_head_swap_body_omits_unset_options() -> None:
    """template_id and webhookUrl are left out when None; keep_original_sound is always sent."""
    body = head_swap_to_wire(
        HeadSwap("https://example.com/v.mp4", {0: "https://example.com/f.png"})
    )
    assert body == {
        "video_url": "https://example.com/v.mp4",
        "mappings": [{"obj_id": 0, "img_url": "https://example.com/f.png"}],
        "resolution": "720p",
        "model_name": "akool-premium",
        "keep_original_sound": True,
    }


def test_analyze_body() -> None:
    """The analyze body is the URL unchanged plus type "head"."""
    url = "https://example.com/videos/source.mp4?sig=a%2Fb"
    assert analyze_to_wire(url) == {"video_url": url, "type": "head"}


# --------------------------------------------------------------------------- request dicts

CS_REQ = CharacterSwap(
    "https://a.example/i.png", "https://a.example/v.mp4", duration=12.5, mode="replace"
)
HS_REQ = HeadSwap(
    "https://a.example/v.mp4", {3: "https://a.example/f3.png", 1: "https://a.example/f1.png"}
)


def test_request_to_dict_shapes() -> None:
    """request_to_dict writes a kind discriminator and every Python field name."""
    assert request_to_dict(CS_REQ) == {
        "kind": "character_swap",
        "image": "https://a.example/i.png",
        "video": "https://a.example/v.mp4",
        "duration": 12.5,
        "resolution": "720p",
        "mode": "replace",
        "prompt": None,
        "webhook_url": None,
    }
    assert request_to_dict(HS_REQ) == {
        "kind": "head_swap",
        "video_url": "https://a.example/v.mp4",
        "faces": [
            {"obj_id": 1, "img_url": "https://a.example/f1.png"},
            {"obj_id": 3, "img_url": "https://a.example/f3.png"},
        ],
        "resolution": "720p",
        "model_name": "akool-premium",
        "keep_original_sound": True,
        "template_id": None,
        "webhook_url": None,
    }
    assert (request_kind(CS_REQ), request_kind(HS_REQ)) == ("character_swap", "head_swap")


@pytest.mark.parametrize("req", [CS_REQ, HS_REQ])
def test_request_dict_json_round_trip(req: CharacterSwap | HeadSwap) -> None:
    """A request survives request_to_dict -> JSON -> request_from_dict unchanged."""
    assert request_from_dict(json.loads(json.dumps(request_to_dict(req)))) == req


def test_request_from_dict_minimal_and_face_forms() -> None:
    """Optional keys default; faces may be a list of objects or a {"obj_id": url} object."""
    assert request_from_dict(
        {
            "kind": "character_swap",
            "image": "https://a.example/i.png",
            "video": "https://a.example/v.mp4",
        }
    ) == CharacterSwap("https://a.example/i.png", "https://a.example/v.mp4")
    as_object = request_from_dict(
        {
            "kind": "head_swap",
            "video_url": "https://a.example/v.mp4",
            "faces": {"1": "https://a.example/f1.png", "3": "https://a.example/f3.png"},
        }
    )
    as_list = request_from_dict(
        {
            "kind": "head_swap",
            "video_url": "https://a.example/v.mp4",
            "faces": [
                {"obj_id": 3, "img_url": "https://a.example/f3.png"},
                {"obj_id": 1, "img_url": "https://a.example/f1.png"},
            ],
        }
    )
    assert as_object == as_list == HS_REQ
    as_models = {"kind": "head_swap", "video_url": HS_REQ.video_url, "faces": HS_REQ.faces}
    assert request_from_dict(as_models) == HS_REQ


_I, _V, _F = "https://a.example/i.png", "https://a.example/v.mp4", "https://a.example/f.png"
_CS = {"kind": "character_swap", "image": _I, "video": _V}
_HS = {"kind": "head_swap", "video_url": _V}


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (["kind"], "request", "JSON object"),
        (None, "request", "JSON object"),
        ({}, "request.kind", "'character_swap' or 'head_swap'"),
        ({"kind": "face_swap"}, "request.kind", "'character_swap' or 'head_swap'"),
        ({"kind": 1}, "request.kind", "'character_swap' or 'head_swap'"),
        ({"kind": "character_swap", "video": _V}, "CharacterSwap.image", "is required"),
        ({**_CS, "durration": 5}, "CharacterSwap.durration", "unknown field"),
        ({**_CS, "webhookurl": "https://h.example"}, "CharacterSwap.webhookurl", "unknown field"),
        ({**_CS, "duration": 500}, "CharacterSwap.duration", "between 1 and 120"),
        ({"kind": "head_swap", "video_url": _V}, "HeadSwap.faces", "is required"),
        ({**_HS, "faces": [{"obj_id": 0}]}, "HeadSwap.faces[0].img_url", "is required"),
        (
            {**_HS, "faces": [{"obj_id": 0, "img_url": _F, "url": 1}]},
            "HeadSwap.faces[0].url",
            "unknown field",
        ),
        (
            {**_HS, "faces": [{"obj_id": "0", "img_url": _F}]},
            "HeadSwap.faces[0].obj_id",
            "integer >= 0",
        ),
        ({**_HS, "faces": [_F]}, "HeadSwap.faces[0]", "obj_id and img_url"),
        ({**_HS, "faces": {"x": _F}}, "HeadSwap.faces[0].obj_id", "integer >= 0"),
        ({**_HS, "faces": _F}, "HeadSwap.faces", "sequence of FaceMapping"),
        ({**_HS, "faces": []}, "HeadSwap.faces", "between 1 and 5"),
    ],
)
def test_request_from_dict_errors_name_the_field(data: object, field: str, words: str) -> None:
    """Bad input files raise ValidationError naming the field (unknown keys included)."""
    with pytest.raises(ValidationError) as info:
        request_from_dict(data)
    assert info.value.field == field
    assert words in info.value.rule


def test_request_from_dict_reports_every_unknown_key() -> None:
    """All unknown keys are listed at once so a user can fix a file in one pass."""
    with pytest.raises(ValidationError) as info:
        request_from_dict({"kind": "head_swap", "b": 1, "a": 2})
    assert [f for f, _ in info.value.errors] == ["HeadSwap.a", "HeadSwap.b"]


# ------------------------------------------------------------------------- fingerprint and credits


def test_fingerprint_is_pinned() -> None:
    """The fingerprint is sha256 of sorted-key canonical JSON; this value must never drift."""
    canonical = (
        '{"duration":12.5,"image":"https://a.example/i.png","kind":"character_swap",'
        '"mode":"replace","prompt":null,"resolution":"720p","video":"https://a.example/v.mp4",'
        '"webhook_url":null}'
    )
    assert request_fingerprint(CS_REQ) == hashlib.sha256(canonical.encode()).hexdigest()
    assert request_fingerprint(CS_REQ) == (
        "c1179f67227f13b7d3c538fed0f4613833f3b9676ebe570f0683fdc1844ee676"
    )


def test_fingerprint_equal_requests_agree() -> None:
    """Equal requests (10 vs 10.0 seconds, faces in any order) have equal fingerprints."""
    a = CharacterSwap("https://a.example/i.png", "https://a.example/v.mp4", duration=10)
    b = CharacterSwap("https://a.example/i.png", "https://a.example/v.mp4", duration=10.0)
    assert request_fingerprint(a) == request_fingerprint(b)
    swapped = HeadSwap(HS_REQ.video_url, list(reversed(HS_REQ.faces)))
    assert request_fingerprint(swapped) == request_fingerprint(HS_REQ)
    assert request_fingerprint(a) != request_fingerprint(CS_REQ)
    assert len(request_fingerprint(HS_REQ)) == 64


def test_fingerprint_is_stable_across_processes() -> None:
    """Another interpreter with a different hash seed computes the same fingerprint."""
    code = (
        "from akool_async._converters import request_fingerprint as f\n"
        "from akool_async._models import HeadSwap\n"
        "print(f(HeadSwap('https://a.example/v.mp4', "
        "{3: 'https://a.example/f3.png', 1: 'https://a.example/f1.png'})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == request_fingerprint(HS_REQ)


@pytest.mark.parametrize(
    ("duration", "resolution", "credits"),
    [
        (12, "720p", 30),  # the pricing text's example (§3.2, quirk §9.13)
        (10, "720p", 20),  # the create example's deduction_credit
        (5, "480p", 5),
        (5.01, "480p", 10),
        (1, "1080p", 15),
        (120, "1080p", 360),
        (12.5, "480p", 15),
    ],
)
def test_estimate_credits(duration: float, resolution: str, credits: int) -> None:
    """Character swap costs ceil(duration / 5) blocks at 5/10/15 credits per block."""
    req = CharacterSwap(_I, _V, duration=duration, resolution=resolution)
    assert estimate_credits(req) == credits


def test_estimate_credits_unknown() -> None:
    """Without a duration, or for head swap (no public price), the estimate is None."""
    assert (
        estimate_credits(CharacterSwap("https://a.example/i.png", "https://a.example/v.mp4"))
        is None
    )
    assert estimate_credits(HS_REQ) is None


# --------------------------------------------------------------------------- Hypothesis

_host = st.from_regex(r"[a-z][a-z0-9-]{0,20}\.[a-z]{2,6}", fullmatch=True)
_path = st.text(st.characters(exclude_categories=("Z", "C"), exclude_characters="#?"), max_size=30)
_urls = st.builds(
    lambda s, h, p: f"{s}://{h}/{p}", st.sampled_from(["http", "https"]), _host, _path
)
_text = st.text(max_size=40)

character_swaps = st.builds(
    CharacterSwap,
    _urls,
    _urls,
    duration=st.none() | st.integers(1, 120) | st.floats(1, 120),
    resolution=st.sampled_from(["480p", "720p", "1080p"]),
    mode=st.sampled_from(["animate", "replace"]),
    prompt=st.none() | st.text(max_size=500),
    webhook_url=st.none() | _urls,
)
head_swaps = st.builds(
    HeadSwap,
    _urls,
    st.dictionaries(st.integers(0, 10**6), _urls, min_size=1, max_size=5),
    resolution=st.sampled_from(["480p", "720p"]),
    model_name=st.text(min_size=1, max_size=30),
    keep_original_sound=st.booleans(),
    template_id=st.none() | st.text(min_size=1, max_size=20),
    webhook_url=st.none() | _urls,
)


@given(st.one_of(character_swaps, head_swaps))
def test_hypothesis_request_dict_round_trip(req: CharacterSwap | HeadSwap) -> None:
    """Any valid request round-trips through request_to_dict, JSON and request_from_dict."""
    data = request_to_dict(req)
    back = request_from_dict(json.loads(json.dumps(data)))
    assert back == req
    assert request_fingerprint(back) == request_fingerprint(req)
    body = character_swap_to_wire(req) if isinstance(req, CharacterSwap) else head_swap_to_wire(req)
    json.dumps(body)


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.one_of(
        _json,
        st.dictionaries(
            st.sampled_from(
                ["kind", "image", "video", "duration", "resolution", "mode", "prompt",
                 "webhook_url", "video_url", "faces", "model_name", "keep_original_sound",
                 "template_id", "typo"]
            ),
            st.one_of(_json, st.sampled_from(["character_swap", "head_swap", "https://a.b/c"])),
        ),
    )
)  # fmt: skip
def test_hypothesis_request_from_dict_only_raises_validation_error(data: object) -> None:
    """Arbitrary JSON either parses into a request or raises ValidationError, nothing else."""
    try:
        req = request_from_dict(data)
    except ValidationError as err:
        error: ValidationError | None = err
    else:
        error = None
        assert request_from_dict(request_to_dict(req)) == req
    assert error is None or error.field


_ms = st.integers(0, 4_102_444_800_000)  # up to 2100
_status = st.integers(1, 4)
_opt = st.none
# Unknown keys only: a prefix no documented field has (a generated "task_id" holding a list
# is a malformed documented field, which must raise, not an unknown key).
_extra = st.dictionaries(st.text(max_size=12).map(lambda k: "x_" + k), _json, max_size=3)


@st.composite
def _cs_result_wire(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(_extra)
    data.update(
        {
            "_id": draw(st.text(min_size=1, max_size=24)),
            "video_status": draw(_status),
            "create_time": draw(_opt() | _ms),
            "update_time": draw(_opt() | _ms),
            "video_duration": draw(_opt() | st.integers(0, 200) | st.floats(0, 200)),
            "deduction_credit": draw(_opt() | st.integers(0, 10**6)),
            "resolution": draw(_opt() | _text),
            "video": draw(_opt() | _urls),
            "video_url": draw(_opt() | _urls),
            "faceswap_fail_reason": draw(_opt() | st.text(min_size=1)),
            "webhookUrl": draw(_opt() | _urls),
        }
    )
    return data


@st.composite
def _hs_analysis_wire(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(_extra)
    media = draw(
        st.lists(
            st.fixed_dictionaries(
                {"obj_id": st.integers(0, 50), "img_url": _urls, "media_type": _text}
            ),
            max_size=5,
        )
    )
    data.update(
        {
            "_id": draw(st.text(min_size=1, max_size=24)),
            "status": draw(_status),
            "create_time": draw(_ms),
            "progress": draw(st.integers(0, 100)),
            "task_id": draw(_text),
            "analysis_result": draw(
                st.none()
                | st.fixed_dictionaries(
                    {"media": st.just(media), "detected_objects": st.integers(0, 9)},
                    optional={
                        "video_info": st.fixed_dictionaries(
                            {}, optional={"width": st.integers(1, 4000), "fps": st.floats(1, 120)}
                        )
                    },
                )
            ),
        }
    )
    return data


@st.composite
def _hs_result_wire(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(_extra)
    data.update(
        {
            "_id": draw(st.text(min_size=1, max_size=24)),
            "status": draw(_status),
            "video_url": draw(_opt() | st.just("") | _urls),
            "source_video_url": draw(_urls),
            "error_reason": draw(_opt() | _text),
            "error_code": draw(_opt() | st.integers(0, 9999)),
            "priority": draw(_opt() | st.integers(0, 20)),
            "deduction_duration": draw(_opt() | st.integers(0, 100) | st.floats(0, 100)),
        }
    )
    return data


@given(_cs_result_wire())
def test_hypothesis_character_swap_result_wire(data: dict[str, Any]) -> None:
    """Generated v3 result dicts structure with every rename applied and raw kept intact."""
    result = structure_character_swap_result(data)
    assert result.id == data["_id"]
    assert result.status == data["video_status"]
    assert result.output_url == data["video"]
    assert result.input_video_url == data["video_url"]
    assert result.failure_reason == data["faceswap_fail_reason"]
    assert result.credits == data["deduction_credit"]
    assert result.webhook_url == data["webhookUrl"]
    if data["create_time"] is not None:
        assert result.created_at is not None
        assert round(result.created_at.timestamp() * 1000) == data["create_time"]
    assert result.raw == data
    assert result_from_raw("character_swap", json.loads(json.dumps(data))) == result


@given(_hs_analysis_wire())
def test_hypothesis_head_swap_analysis_wire(data: dict[str, Any]) -> None:
    """Generated analyses keep media order, the sent count and the preview URLs."""
    analysis = structure_head_swap_analysis(data)
    result = data["analysis_result"] or {}
    media = result.get("media") or []
    assert analysis.obj_ids == tuple(m["obj_id"] for m in media)
    assert [p.preview_url for p in analysis.people] == [m["img_url"] for m in media]
    assert analysis.detected_objects == result.get("detected_objects")
    assert analysis.raw == data


@given(_hs_result_wire())
def test_hypothesis_head_swap_result_wire(data: dict[str, Any]) -> None:
    """Generated task details map video_url to output_url ("" as None) and keep raw."""
    result = structure_head_swap_result(data)
    assert result.output_url == (data["video_url"] or None)
    assert result.source_video_url == data["source_video_url"]
    expected_reason = data["error_reason"] or None
    if data["status"] != 4:
        assert result.failure_reason is None
    elif expected_reason is not None:
        assert result.failure_reason == expected_reason
    assert result.raw == data
    assert isinstance(result, HeadSwapResult)


@given(st.dictionaries(st.text(max_size=12), _json, max_size=6))
def test_hypothesis_arbitrary_data_gives_a_result_or_response_error(data: dict[str, Any]) -> None:
    """Whatever object the server sends, structuring yields a result or a ResponseError."""
    for fn in (
        structure_character_swap_result,
        structure_head_swap_analysis,
        structure_head_swap_result,
    ):
        _result_or_response_error(fn, data)
    for cls in (CharacterSwapResult, HeadSwapAnalysis):
        _result_or_response_error(
            lambda d, c=cls: structure(d, c), {**data, "_id": "x", "status": 1, "video_status": 2}
        )


def _result_or_response_error(fn: Any, data: object) -> None:
    with contextlib.suppress(ResponseError):
        fn(data)


# A poll answer field by field: the usual type, its edge values, and the unusual types the
# converter also reads (or refuses) that the fast path must leave to it.
_ANY_VALUE = st.sampled_from([None, "", "x", True, 0, 1, -1, 2.5, float("inf"), [], {}])
_MS = st.integers(-(2**60), 2**60) | st.sampled_from(
    [-62_135_596_800_001, -62_135_596_800_000, 253_402_300_799_999, 253_402_300_800_000]
)
_TEXT = st.none() | st.text(max_size=4) | _ANY_VALUE
_POLL_ANSWERS = st.fixed_dictionaries(
    {"_id": st.just("689174694b4dbdd4ab3d28c9")},
    optional={
        "video_status": st.integers(0, 5) | _ANY_VALUE | st.just("3"),
        "status": st.integers(0, 5) | _ANY_VALUE,
        "create_time": _MS | _ANY_VALUE,
        "update_time": _MS | _ANY_VALUE,
        "video_duration": st.floats() | st.integers(-(2**60), 2**60) | _ANY_VALUE,
        "deduction_credit": st.integers() | st.just(20.0) | _ANY_VALUE,
        "resolution": _TEXT,
        "image_url": _TEXT,
        "video_url": _TEXT,
        "video": _TEXT,
        "faceswap_fail_reason": _TEXT,
        "webhookUrl": _TEXT,
        "file_name": _TEXT,
        "prompt": _TEXT,
        "extra": _ANY_VALUE,
    },
)

_USUAL_TEXT = st.none() | st.text(max_size=4)
_USUAL_POLL_ANSWERS = st.fixed_dictionaries(
    {"_id": st.just("689174694b4dbdd4ab3d28c9"), "video_status": st.integers(1, 4)},
    optional={
        "create_time": st.integers(-62_135_596_800_000, 253_402_300_799_999),
        "update_time": st.integers(0, 2**42) | st.none(),
        "video_duration": st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(-(2**53), 2**53)
        | st.none(),
        "deduction_credit": st.integers() | st.none(),
        **dict.fromkeys(
            [
                "resolution",
                "image_url",
                "video_url",
                "video",
                "faceswap_fail_reason",
                "webhookUrl",
                "file_name",
                "prompt",
            ],
            _USUAL_TEXT,
        ),
    },
)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@given(_USUAL_POLL_ANSWERS)
def test_hypothesis_usual_poll_answers_structure_exactly(data: dict[str, Any]) -> None:
    """A poll answer with the documented types structures, its timestamps exact to the ms."""
    result = structure_character_swap_result(dict(data))
    assert result.id == data["_id"]
    assert result.status == data["video_status"]
    for key, value in (("create_time", result.created_at), ("update_time", result.updated_at)):
        ms = data.get(key)
        assert value == (None if ms is None else _EPOCH + timedelta(milliseconds=ms))
    duration = data.get("video_duration")
    assert result.video_duration == (None if duration is None else float(duration))
    assert result.credits == data.get("deduction_credit")
    assert result.output_url == (data.get("video") or None)
    assert result.failure_reason == (data.get("faceswap_fail_reason") or None)
    assert result.raw == data


@given(_POLL_ANSWERS)
def test_hypothesis_poll_answers_give_a_result_or_a_response_error(data: dict[str, Any]) -> None:
    """Any poll answer field values give a result or a ResponseError, nothing else."""
    with contextlib.suppress(ResponseError):
        assert structure_character_swap_result(dict(data)).raw == data


_CREATE_ANSWERS = st.fixed_dictionaries(
    {"_id": st.just("689174694b4dbdd4ab3d28c9")},
    optional={
        "status": st.integers(0, 5) | _ANY_VALUE | st.just("1"),
        "create_time": _MS | _ANY_VALUE | st.none(),
        "video_duration": st.floats() | st.integers(-(2**60), 2**60) | _ANY_VALUE,
        "deduction_credit": st.integers() | st.just(20.0) | _ANY_VALUE,
        **dict.fromkeys(
            [
                "resolution",
                "mode",
                "model_name",
                "file_name",
                "image_url",
                "video_url",
                "prompt",
                "webhookUrl",
            ],
            _TEXT,
        ),
        "extra": _ANY_VALUE,
    },
)
_USUAL_CREATE_ANSWERS = st.fixed_dictionaries(
    {"_id": st.just("689174694b4dbdd4ab3d28c9"), "status": st.integers(1, 4)},
    optional={
        "create_time": st.integers(0, 2**42) | st.none(),
        "video_duration": st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(-(2**53), 2**53)
        | st.none(),
        "deduction_credit": st.integers() | st.none(),
        **dict.fromkeys(
            [
                "resolution",
                "mode",
                "model_name",
                "file_name",
                "image_url",
                "video_url",
                "prompt",
                "webhookUrl",
            ],
            _USUAL_TEXT,
        ),
    },
)


@given(_USUAL_CREATE_ANSWERS | _CREATE_ANSWERS)
@example({**CS_CREATE_RESPONSE, "mode": 5})
@example({**CS_CREATE_RESPONSE, "deduction_credit": 20.0})
@example({**CS_CREATE_RESPONSE, "video_duration": True})
@example({**CS_CREATE_RESPONSE, "create_time": "1754362985482"})
@example({**CS_CREATE_RESPONSE, "status": True})
def test_hypothesis_create_answers_give_a_task_or_a_response_error(data: dict[str, Any]) -> None:
    """Any create answer gives a task keeping the data as raw, or a ResponseError."""
    with contextlib.suppress(ResponseError):
        task = structure_character_swap_task(dict(data))
        assert task.id == data["_id"]
        assert task.raw == data


def test_documented_create_answer_structures() -> None:
    """The contract's create answer gives a queueing task through structure() too."""
    task = structure_character_swap_task(dict(CS_CREATE_RESPONSE))
    assert task == structure(dict(CS_CREATE_RESPONSE), CharacterSwapTask)
    assert task.status is TaskStatus.QUEUEING


def test_request_from_dict_refuses_a_lone_surrogate_from_json() -> None:
    """A JSONL line with a "\\ud800" escape (valid JSON) is refused naming the field."""
    line = (
        '{"kind": "character_swap", "image": "https://a.example/i.png", '
        '"video": "https://a.example/v\\ud800.mp4"}'
    )
    with pytest.raises(ValidationError) as info:
        request_from_dict(json.loads(line))
    assert info.value.field == "CharacterSwap.video"
    assert "lone surrogate at index 19" in info.value.rule
    faces = '{"kind": "head_swap", "video_url": "https://a.example/v.mp4", "faces": '
    for tail in (
        '[{"obj_id": 1, "img_url": "https://f.example/\\udfff"}]}',
        '{"1": "https://f.example/\\udfff"}}',
    ):
        with pytest.raises(ValidationError) as info:
            request_from_dict(json.loads(faces + tail))
        assert info.value.field == "HeadSwap.faces[0].img_url"
