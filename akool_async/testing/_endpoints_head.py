"""Head Swap endpoints: analyze, analysis detail, create and detail (akool-api.md section 4).

A head swap needs a completed analysis of the exact same video URL by the same team, and
every ``obj_id`` it maps must have been detected by it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ._accounts import AccountState
from ._clock import SimClock
from ._files import OutputFiles
from ._media import video_seconds
from ._model import ANALYSIS_FAIL_REASON, HEAD_SWAP_FAIL_REASON, HEAD_SWAP_MODELS, HEAD_SWAP_RATES
from ._tasks import SimTask, TaskBook
from ._validation import ApiError, read_json_object, url_field, webhook_field

__all__ = ["HeadSwapEndpoints"]

#: The answer for an unknown (or another team's) task or analysis id.
_NOT_FOUND = (1014, "Resource not found")
#: Most faces one head swap may replace.
_MAX_MAPPINGS = 5


def _mappings(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``mappings`` array: up to 5 objects of a unique ``obj_id`` and an ``img_url``."""
    mappings = body.get("mappings")
    if mappings is None or mappings == []:
        raise ApiError(1003, "mappings cannot be empty")
    if not isinstance(mappings, list):
        raise ApiError(1003, "mappings must be an array")
    if len(mappings) > _MAX_MAPPINGS:
        raise ApiError(1003, "mappings: Up to 5 characters can be replaced at one time.")
    seen: set[int] = set()
    for i, mapping in enumerate(mappings):
        if not isinstance(mapping, dict):
            raise ApiError(1003, f"mappings[{i}] must be an object")
        obj_id = mapping.get("obj_id")
        if not isinstance(obj_id, int) or isinstance(obj_id, bool) or obj_id < 0:
            raise ApiError(1003, f"mappings[{i}].obj_id must be a non-negative integer")
        url_field(mapping, "img_url", label=f"mappings[{i}].img_url")
        if obj_id in seen:
            raise ApiError(1003, f"mappings[{i}].obj_id {obj_id} is duplicated")
        seen.add(obj_id)
    return mappings


def _required(body: dict[str, Any], name: str, allowed: Any, message: str) -> str:
    value = body.get(name)
    if value is None or value == "":
        raise ApiError(1003, f"{name} cannot be empty")
    if not isinstance(value, str) or value not in allowed:
        raise ApiError(1003, message)
    return value


def _check_optional(body: dict[str, Any]) -> None:
    """``template_id`` (a string) and ``keep_original_sound`` (a boolean) if present."""
    template_id = body.get("template_id")
    if template_id is not None and not isinstance(template_id, str):
        raise ApiError(1003, "template_id must be a string")
    keep_sound = body.get("keep_original_sound")
    if keep_sound is not None and not isinstance(keep_sound, bool):
        raise ApiError(1003, "keep_original_sound must be a boolean")


class HeadSwapEndpoints:
    """The four head swap routes, on one task book."""

    def __init__(self, clock: SimClock, book: TaskBook, files: OutputFiles) -> None:
        self._clock = clock
        self._book = book
        self._files = files

    def _analysis_result(self, task: SimTask) -> dict[str, Any]:
        media = [
            {"media_type": "images", "obj_id": i, "img_url": self._files.image_url(task, i)}
            for i in range(task.people)
        ]
        video_info = {
            "width": 1920,
            "height": 1080,
            "fps": 30,
            "frame_count": round(task.video_duration * 30),
        }
        return {"detected_objects": task.people, "media": media, "video_info": video_info}

    def _analysis_data(self, task: SimTask, *, detail: bool) -> dict[str, Any]:
        now = self._clock.now()
        status = task.status(now)
        data: dict[str, Any] = {
            **task.identity_fields(),
            "video_url": task.video_url,
            "type": "head",
            "status": status,
            "task_id": task.internal_id,
        }
        if status == 3:
            data["analysis_result"] = self._analysis_result(task)
        elif detail:
            data["analysis_result"] = None
        data["progress"] = task.progress(now)
        if status == 3:
            data["error_reason"] = "success"
            data["error_code"] = 0
        elif status == 4:
            data["error_reason"] = ANALYSIS_FAIL_REASON
            data["error_code"] = 1015
        elif detail:
            data["error_reason"] = ""
            data["error_code"] = 0
        return data

    async def analyze(self, request: web.Request, state: AccountState) -> dict[str, Any]:
        """``POST /api/open/v4/headswap/analyze``: start finding the people in a video."""
        body = await read_json_object(request)
        video_url = url_field(body, "video_url")
        kind = body.get("type")
        if kind is None or kind == "":
            raise ApiError(1003, "type cannot be empty")
        if kind != "head":
            raise ApiError(1003, "type must be 'head'")
        task = self._book.new_task(
            kind="analysis",
            owner=state,
            video_url=video_url,
            seconds=video_seconds(video_url),
            resolution="",
            price=0,
            webhook_url=None,
            fields={},
        )
        self._book.count_create(body, state)
        data = self._analysis_data(task, detail=False)
        return {"code": 1000, "msg": "Analyze success", "data": data}

    async def analysis_detail(self, request: web.Request, state: AccountState) -> dict[str, Any]:
        """``GET /api/open/v4/headswap/analyze/detail?_id=``."""
        task = self._book.require(state, request.query, "_id", "analysis", _NOT_FOUND)
        return {"code": 1000, "msg": "OK", "data": self._analysis_data(task, detail=True)}

    def _check_detected(
        self, state: AccountState, video_url: str, mappings: list[dict[str, Any]]
    ) -> None:
        detected = self._book.detected_ids(state, video_url)
        if detected is None:
            raise ApiError(
                1003, "video_url has no completed analysis; analyze this exact URL first"
            )
        for i, mapping in enumerate(mappings):
            if mapping["obj_id"] not in detected:
                raise ApiError(
                    1003,
                    f"mappings[{i}].obj_id {mapping['obj_id']} was not detected in the "
                    "analysis of video_url",
                )

    async def create(self, request: web.Request, state: AccountState) -> dict[str, Any]:
        """``POST /api/open/v4/headswap/task/create``: charge and start a head swap."""
        body = await read_json_object(request)
        video_url = url_field(body, "video_url")
        mappings = _mappings(body)
        model_name = _required(
            body,
            "model_name",
            HEAD_SWAP_MODELS,
            "model_name: Your current account does not support this feature.",
        )
        resolution = _required(
            body, "resolution", HEAD_SWAP_RATES, "resolution must be one of 480p, 720p"
        )
        _check_optional(body)
        webhook = webhook_field(body)
        self._check_detected(state, video_url, mappings)
        seconds = video_seconds(video_url)
        task = self._book.start_swap(
            "head_swap",
            state,
            body,
            video_url=video_url,
            seconds=seconds,
            resolution=resolution,
            rate=HEAD_SWAP_RATES[resolution],
            webhook_url=webhook,
            fields={"model_name": model_name},
        )
        price = task.price
        data = {
            **task.identity_fields(),
            "video_duration": seconds,
            "task_id": task.internal_id,
            "resolution": resolution,
            "status": 1,
            "deduction_lock_duration": price,
            "model_name": model_name,
            "file_name": f"Headswap_{task.create_ms}.mp4",
            "video_url": None,
        }
        return {"code": 1000, "msg": "OK", "data": data}

    async def detail(self, request: web.Request, state: AccountState) -> dict[str, Any]:
        """``GET /api/open/v4/headswap/task/detail?_id=``."""
        task = self._book.require(state, request.query, "_id", "head_swap", _NOT_FOUND)
        now = self._clock.now()
        status = task.status(now)
        account = state.account
        data: dict[str, Any] = {
            "_id": task.id,
            "uid": account.uid,
            "team_id": account.team_id,
            "source_video_url": task.video_url,
            "create_time": task.create_ms,
            "status": status,
            "video_duration": task.video_duration,
            "resolution": task.resolution,
            "deduction_duration": 0 if status == 4 else task.price,
            "video_url": self._files.video_url(task) if status == 3 else None,
            "progress": task.progress(now),
            "priority": 9,
            "task_id": task.internal_id,
            "file_name": f"Headswap_{task.create_ms}.mp4",
            "model_name": task.fields["model_name"],
        }
        if status == 4:
            data["error_reason"] = HEAD_SWAP_FAIL_REASON
            data["error_code"] = 1015
        return {"code": 1000, "msg": "OK", "data": data}
