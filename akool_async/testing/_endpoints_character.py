"""Character Swap endpoints: v4 create and the v3 result (akool-api.md section 3)."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from ._accounts import AccountState
from ._clock import SimClock
from ._files import OutputFiles
from ._media import video_seconds
from ._model import CHARACTER_SWAP_FAIL_REASON, CHARACTER_SWAP_MODEL, CHARACTER_SWAP_RATES
from ._tasks import TaskBook
from ._validation import ApiError, is_number, read_json_object, url_field, webhook_field

__all__ = ["CharacterSwapEndpoints"]

#: Longest source video, seconds.
_MAX_SECONDS = 120
#: The answer for an unknown (or another team's) task id.
_NOT_FOUND = (1008, "Content does not exist")
#: Longest prompt, characters.
_MAX_PROMPT = 500


def _duration(body: dict[str, Any]) -> float | None:
    duration = body.get("duration")
    if duration is None:
        return None
    if not is_number(duration) or not math.isfinite(duration):
        raise ApiError(1003, "duration must be a number of seconds")
    if not 1 <= duration <= _MAX_SECONDS:
        raise ApiError(1003, "duration must be between 1 and 120 seconds")
    return duration  # type: ignore[no-any-return]


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """resolution, mode, prompt and model_name with their defaults, or ApiError 1003."""
    resolution = body.get("resolution") or "720p"
    if not isinstance(resolution, str) or resolution not in CHARACTER_SWAP_RATES:
        raise ApiError(1003, "resolution must be one of 480p, 720p, 1080p")
    mode = body.get("mode") or "animate"
    if mode not in ("animate", "replace"):
        raise ApiError(1003, "mode must be 'animate' or 'replace'")
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ApiError(1003, "prompt must be a string")
    if prompt is not None and len(prompt) > _MAX_PROMPT:
        raise ApiError(1003, "prompt must be at most 500 characters")
    model_name = body.get("model_name") or CHARACTER_SWAP_MODEL
    if not isinstance(model_name, str):
        raise ApiError(1003, "model_name must be a string")
    return {
        "resolution": resolution,
        "mode": mode,
        "prompt": prompt or "",
        "model_name": model_name,
    }


class CharacterSwapEndpoints:
    """``POST /api/open/v4/characterSwap/create`` and ``GET .../infobymodelid``."""

    def __init__(self, clock: SimClock, book: TaskBook, files: OutputFiles) -> None:
        self._clock = clock
        self._book = book
        self._files = files

    async def create(self, request: web.Request, state: AccountState) -> dict[str, Any]:
        """Validate, charge ``ceil(seconds / 5) * rate`` credits and start a task."""
        body = await read_json_object(request)
        image = url_field(body, "image")
        video = url_field(body, "video")
        duration = _duration(body)
        options = _options(body)
        webhook = webhook_field(body)
        seconds = video_seconds(video) if duration is None else duration
        if seconds > _MAX_SECONDS:
            raise ApiError(1003, "video duration must be at most 120 seconds")
        resolution = options["resolution"]
        task = self._book.start_swap(
            "character_swap",
            state,
            body,
            video_url=video,
            seconds=seconds,
            resolution=resolution,
            rate=CHARACTER_SWAP_RATES[resolution],
            webhook_url=webhook,
            fields={"image_url": image, **options},
        )
        price = task.price
        data = {
            **task.identity_fields(),
            "status": 1,
            "video_duration": seconds,
            "deduction_credit": price,
            "resolution": resolution,
            "file_name": f"CharacterSwap_{task.create_ms}.mp4",
            "image_url": image,
            "video_url": video,
            "prompt": options["prompt"],
            "mode": options["mode"],
            "model_name": options["model_name"],
            "webhookUrl": webhook or "",
        }
        return {"code": 1000, "msg": "OK", "data": data}

    async def result(self, request: web.Request, state: AccountState) -> dict[str, Any]:
        """The task's state; ``video`` once completed, a failure reason once failed."""
        task = self._book.require(
            state, request.query, "video_model_id", "character_swap", _NOT_FOUND
        )
        status = task.status(self._clock.now())
        data: dict[str, Any] = {
            **task.identity_fields(),
        }
        if status >= 3:
            data["update_time"] = self._clock.epoch_ms(task.t_done)
        # Completed results report a fractional measured duration, like the documented example.
        data["video_duration"] = task.video_duration + 0.5 if status == 3 else task.video_duration
        data["webhookUrl"] = task.webhook_url or ""
        data["file_name"] = f"CharacterSwap_{task.create_ms}.mp4"
        data["image_url"] = task.fields["image_url"]
        if status == 3:
            data["video"] = self._files.video_url(task)
        data["video_url"] = task.video_url
        data["prompt"] = task.fields["prompt"]
        data["resolution"] = task.resolution
        data["deduction_credit"] = 0 if status == 4 else task.price
        data["video_status"] = status
        if status == 4:
            data["faceswap_fail_reason"] = CHARACTER_SWAP_FAIL_REASON
        return {"code": 1000, "msg": "OK", "data": data}
