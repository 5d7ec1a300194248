"""Simulator endpoints, response shapes, auth, validation and credits, over real loopback HTTP."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from akool_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    AkoolSimulator,
    Duration,
    people_in,
    video_seconds,
)

pytestmark = pytest.mark.anyio

CS_CREATE = "/api/open/v4/characterSwap/create"
CS_RESULT = "/api/open/v3/content/video/infobymodelid"
HS_ANALYZE = "/api/open/v4/headswap/analyze"
HS_ADETAIL = "/api/open/v4/headswap/analyze/detail"
HS_CREATE = "/api/open/v4/headswap/task/create"
HS_DETAIL = "/api/open/v4/headswap/task/detail"
CREDIT = "/api/open/v3/faceswap/quota/info"
TOKEN = "/api/open/v3/getToken"

IMAGE = "https://cdn.example.com/character.png"
VIDEO = "https://cdn.example.com/source.mp4?duration=10"
HEAD_VIDEO = "https://cdn.example.com/people.mp4?people=2&duration=12"
FACE = "https://cdn.example.com/face.png"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session (not the SDK)."""
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    sim: AkoolSimulator,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """Send one request with ``x-api-key`` (unless headers are given) and return the JSON."""
    if headers is None:
        headers = {"x-api-key": key or sim.api_key}
    async with http.request(
        method, sim.base_url + path, json=body, params=params, headers=headers
    ) as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


def cs_body(**overrides: Any) -> dict[str, Any]:
    """A valid character swap create body."""
    body: dict[str, Any] = {"image": IMAGE, "video": VIDEO, "resolution": "720p"}
    body.update(overrides)
    return body


async def analyzed(http: aiohttp.ClientSession, sim: AkoolSimulator, url: str = HEAD_VIDEO) -> str:
    """Submit an analysis of ``url``, move time past it and return its id."""
    answer = await call(http, sim, "POST", HS_ANALYZE, body={"video_url": url, "type": "head"})
    assert answer["code"] == 1000
    sim.advance(10_000)
    return str(answer["data"]["_id"])


def hs_body(**overrides: Any) -> dict[str, Any]:
    """A valid head swap create body for HEAD_VIDEO."""
    body: dict[str, Any] = {
        "video_url": HEAD_VIDEO,
        "mappings": [{"obj_id": 0, "img_url": FACE}],
        "model_name": "akool-premium",
        "resolution": "720p",
    }
    body.update(overrides)
    return body


def test_default_credentials_are_valid_webhook_keys() -> None:
    """The default API key is a valid AES key length and the client id is 24 hex chars."""
    assert len(DEFAULT_API_KEY) in (16, 24, 32)
    assert len(DEFAULT_CLIENT_ID) == 24
    int(DEFAULT_CLIENT_ID, 16)


async def test_base_url_is_loopback_ephemeral(simulator: AkoolSimulator) -> None:
    """The server listens on 127.0.0.1 on an ephemeral port."""
    assert simulator.base_url.startswith("http://127.0.0.1:")
    assert int(simulator.base_url.rsplit(":", 1)[1]) > 0


async def test_get_token_shape_and_bearer_use(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """getToken answers {code, token} without msg/data and the token authenticates as Bearer."""
    body = {"clientId": simulator.client_id, "clientSecret": simulator.client_secret}
    answer = await call(http, simulator, "POST", TOKEN, body=body, headers={})
    assert set(answer) == {"code", "token"}
    assert answer["code"] == 1000
    bearer = {"Authorization": f"Bearer {answer['token']}"}
    credit = await call(http, simulator, "GET", CREDIT, headers=bearer)
    assert credit["code"] == 1000


async def test_get_token_errors(simulator: AkoolSimulator, http: aiohttp.ClientSession) -> None:
    """getToken: wrong secret is 1101, missing credentials 1102."""
    wrong = {"clientId": simulator.client_id, "clientSecret": "x" * 24}
    assert (await call(http, simulator, "POST", TOKEN, body=wrong, headers={}))["code"] == 1101
    missing = {"clientId": simulator.client_id}
    assert (await call(http, simulator, "POST", TOKEN, body=missing, headers={}))["code"] == 1102


async def test_auth_missing_and_invalid(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """No credentials is 1102; an unknown key or token is 1101; errors carry no data."""
    missing = await call(http, simulator, "GET", CREDIT, headers={})
    assert missing["code"] == 1102
    assert "data" not in missing
    bad_key = await call(http, simulator, "GET", CREDIT, headers={"x-api-key": "nope"})
    assert bad_key["code"] == 1101
    bad_token = await call(http, simulator, "GET", CREDIT, headers={"Authorization": "Bearer x"})
    assert bad_token["code"] == 1101


async def test_authorization_wins_over_api_key(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """With both headers the Authorization header decides, and x-api-key is ignored."""
    both_bad = {"Authorization": "Bearer invalid", "x-api-key": simulator.api_key}
    assert (await call(http, simulator, "GET", CREDIT, headers=both_bad))["code"] == 1101
    other = simulator.add_account(
        api_key="second-team-key-00000001", client_id="0123456789abcdef01234567", credit=77
    )
    token_body = {"clientId": other.client_id, "clientSecret": other.client_secret}
    token = (await call(http, simulator, "POST", TOKEN, body=token_body, headers={}))["token"]
    headers = {"Authorization": f"Bearer {token}", "x-api-key": simulator.api_key}
    credit = await call(http, simulator, "GET", CREDIT, headers=headers)
    assert credit["data"]["credit"] == 77


async def test_character_swap_create_shape(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """Char swap create returns every documented field, status 1, price and camelCase webhookUrl."""
    body = cs_body(prompt="wave", mode="replace", webhookurl="http://127.0.0.1:9/hook")
    answer = await call(http, simulator, "POST", CS_CREATE, body=body)
    assert answer["code"] == 1000
    assert answer["msg"] == "OK"
    data = answer["data"]
    assert set(data) == {
        "_id", "create_time", "uid", "team_id", "status", "video_duration", "deduction_credit",
        "resolution", "file_name", "image_url", "video_url", "prompt", "mode", "model_name",
        "webhookUrl",
    }  # fmt: skip
    assert len(data["_id"]) == 24
    int(data["_id"], 16)
    assert data["status"] == 1
    assert data["video_duration"] == 10
    assert data["deduction_credit"] == 20
    assert data["file_name"] == f"CharacterSwap_{data['create_time']}.mp4"
    assert data["create_time"] > 10**12  # milliseconds
    assert data["image_url"] == IMAGE
    assert data["video_url"] == VIDEO
    assert data["webhookUrl"] == "http://127.0.0.1:9/hook"
    assert data["model_name"] == "wavespeed-ai/wan-2.2/animate"
    assert data["mode"] == "replace"


@pytest.mark.parametrize(("seconds", "resolution"), [(12, "720p"), (5, "480p"), (61, "1080p")])
async def test_character_swap_pricing(
    simulator: AkoolSimulator, http: aiohttp.ClientSession, seconds: int, resolution: str
) -> None:
    """Price is ceil(duration / 5) x the per-resolution rate, charged at create."""
    before = simulator.balance()
    body = cs_body(duration=seconds, resolution=resolution)
    data = (await call(http, simulator, "POST", CS_CREATE, body=body))["data"]
    expected = math.ceil(seconds / 5) * {"480p": 5, "720p": 10, "1080p": 15}[resolution]
    assert data["deduction_credit"] == expected
    assert simulator.balance() == before - expected


async def test_character_swap_result_states(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """The v3 result uses video_status; queueing has no video/update_time, completed has both."""
    created = (await call(http, simulator, "POST", CS_CREATE, body=cs_body()))["data"]
    params = {"video_model_id": created["_id"]}
    queued = (await call(http, simulator, "GET", CS_RESULT, params=params))["data"]
    assert queued["video_status"] == 1
    assert "status" not in queued
    assert "video" not in queued
    assert "update_time" not in queued
    assert queued["video_url"] == VIDEO
    info = simulator.task(created["_id"])
    simulator.advance(info.processing_at - info.create_time + 0.001)
    processing = (await call(http, simulator, "GET", CS_RESULT, params=params))["data"]
    assert processing["video_status"] == 2
    simulator.advance(10_000)
    done = (await call(http, simulator, "GET", CS_RESULT, params=params))["data"]
    assert done["video_status"] == 3
    assert done["video"].startswith(simulator.base_url + "/files/")
    assert done["update_time"] >= done["create_time"]
    assert done["video_duration"] == 10.5
    assert done["deduction_credit"] == 20
    assert simulator.stats.polls[created["_id"]] == 3


async def test_failed_character_swap_refunds(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """A failing task (fail=1 hook) reports status 4, a reason, deduction 0, and is refunded."""
    before = simulator.balance()
    body = cs_body(video="https://cdn.example.com/v.mp4?duration=10&fail=1")
    created = (await call(http, simulator, "POST", CS_CREATE, body=body))["data"]
    assert simulator.balance() == before - 20
    simulator.advance(10_000)
    params = {"video_model_id": created["_id"]}
    failed = (await call(http, simulator, "GET", CS_RESULT, params=params))["data"]
    assert failed["video_status"] == 4
    assert failed["deduction_credit"] == 0
    assert failed["faceswap_fail_reason"]
    assert "video" not in failed
    credit = await call(http, simulator, "GET", CREDIT)
    assert credit["data"]["credit"] == before


async def test_insufficient_credit_is_1104() -> None:
    """A create the balance cannot cover is 1104 and charges nothing."""
    async with AkoolSimulator(manual_clock=True, credit=15) as sim, aiohttp.ClientSession() as http:
        answer = await call(http, sim, "POST", CS_CREATE, body=cs_body(duration=10))
        assert answer["code"] == 1104
        assert sim.balance() == 15
        assert sim.stats.creates == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"image": None}, "image"),
        ({"image": "ftp://x/a.png"}, "image"),
        ({"video": ""}, "video"),
        ({"video": "not a url"}, "video"),
        ({"duration": 0}, "duration"),
        ({"duration": 121}, "duration"),
        ({"duration": "10"}, "duration"),
        ({"resolution": "4k"}, "resolution"),
        ({"mode": "dance"}, "mode"),
        ({"prompt": "x" * 501}, "prompt"),
        ({"webhookurl": "mailto:a@b"}, "webhookurl"),
        ({"video": "https://cdn.example.com/long.mp4?duration=200"}, "video"),
    ],
)
async def test_character_swap_validation(
    simulator: AkoolSimulator, http: aiohttp.ClientSession, change: dict[str, Any], field: str
) -> None:
    """Each invalid character swap field is code 1003 with a msg naming the field."""
    body = cs_body(**change)
    body = {k: v for k, v in body.items() if v is not None}
    answer = await call(http, simulator, "POST", CS_CREATE, body=body)
    assert answer["code"] == 1003
    assert field in answer["msg"]
    assert simulator.stats.creates == {}


async def test_body_must_be_json_object(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """A non-object body is 1003."""
    answer = await call(http, simulator, "POST", CS_CREATE, body=[1, 2])
    assert answer["code"] == 1003


async def test_prompt_of_500_characters_is_accepted(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """The prompt limit is inclusive: 500 characters are fine."""
    answer = await call(http, simulator, "POST", CS_CREATE, body=cs_body(prompt="p" * 500))
    assert answer["code"] == 1000


async def test_unknown_ids_are_not_found(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """Unknown ids: 1008 for character swap, 1014 for head swap analysis and task."""
    missing = "0" * 24
    cs = await call(http, simulator, "GET", CS_RESULT, params={"video_model_id": missing})
    assert cs["code"] == 1008
    analysis = await call(http, simulator, "GET", HS_ADETAIL, params={"_id": missing})
    assert analysis["code"] == 1014
    task = await call(http, simulator, "GET", HS_DETAIL, params={"_id": missing})
    assert task["code"] == 1014
    no_param = await call(http, simulator, "GET", CS_RESULT)
    assert no_param["code"] == 1003
    assert "video_model_id" in no_param["msg"]


async def test_other_team_tasks_are_invisible(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """A task created by one team is not found for another team's key."""
    other = simulator.add_account(api_key="other-team-key-000000001", client_id="ab" * 12)
    created = (await call(http, simulator, "POST", CS_CREATE, body=cs_body()))["data"]
    params = {"video_model_id": created["_id"]}
    answer = await call(http, simulator, "GET", CS_RESULT, params=params, key=other.api_key)
    assert answer["code"] == 1008
    analysis_id = await analyzed(http, simulator)
    hidden = await call(
        http, simulator, "GET", HS_ADETAIL, params={"_id": analysis_id}, key=other.api_key
    )
    assert hidden["code"] == 1014
    # The analysis belongs to the first team: the second cannot create a head swap from it.
    create = await call(http, simulator, "POST", HS_CREATE, body=hs_body(), key=other.api_key)
    assert create["code"] == 1003


async def test_head_swap_flow_shapes(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """Analyze -> detail (media with obj_id/img_url) -> create (video_url null) -> detail output."""
    submit = await call(
        http, simulator, "POST", HS_ANALYZE, body={"video_url": HEAD_VIDEO, "type": "head"}
    )
    assert submit["msg"] == "Analyze success"
    data = submit["data"]
    assert {"_id", "create_time", "uid", "team_id", "video_url", "type", "status", "task_id",
            "progress"} <= set(data)  # fmt: skip
    assert data["status"] == 1
    assert data["type"] == "head"
    assert data["progress"] == 0
    pending = await call(http, simulator, "GET", HS_ADETAIL, params={"_id": data["_id"]})
    assert pending["data"]["analysis_result"] is None
    not_yet = await call(http, simulator, "POST", HS_CREATE, body=hs_body())
    assert not_yet["code"] == 1003
    assert "video_url" in not_yet["msg"]
    simulator.advance(10_000)
    detail = (await call(http, simulator, "GET", HS_ADETAIL, params={"_id": data["_id"]}))["data"]
    assert detail["status"] == 3
    assert detail["progress"] == 100
    assert detail["error_reason"] == "success"
    assert detail["error_code"] == 0
    result = detail["analysis_result"]
    assert [m["obj_id"] for m in result["media"]] == [0, 1]
    assert all(m["media_type"] == "images" for m in result["media"])
    async with http.get(result["media"][1]["img_url"]) as resp:
        assert resp.status == 200
        assert (await resp.read()).startswith(b"\x89PNG")
    body = hs_body(mappings=[{"obj_id": 1, "img_url": FACE}, {"obj_id": 0, "img_url": FACE}])
    created = (await call(http, simulator, "POST", HS_CREATE, body=body))["data"]
    assert created["status"] == 1
    assert created["video_url"] is None
    assert created["file_name"] == f"Headswap_{created['create_time']}.mp4"
    assert created["deduction_lock_duration"] == math.ceil(12 / 5) * 10
    assert created["model_name"] == "akool-premium"
    assert len(created["task_id"]) == 24
    queued = await call(http, simulator, "GET", HS_DETAIL, params={"_id": created["_id"]})
    assert queued["data"]["video_url"] is None
    assert queued["data"]["source_video_url"] == HEAD_VIDEO
    simulator.advance(10_000)
    done = (await call(http, simulator, "GET", HS_DETAIL, params={"_id": created["_id"]}))["data"]
    assert done["status"] == 3
    assert done["progress"] == 100
    assert done["video_url"].startswith(simulator.base_url + "/files/")
    assert done["source_video_url"] == HEAD_VIDEO
    assert done["deduction_duration"] == created["deduction_lock_duration"]


async def test_failed_head_swap_and_analysis(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """fail=1 fails a head swap (error_reason/code, refunded); people=0 fails an analysis."""
    url = "https://cdn.example.com/x.mp4?duration=5&fail=1"
    await analyzed(http, simulator, url)
    before = simulator.balance()
    created = await call(http, simulator, "POST", HS_CREATE, body=hs_body(video_url=url))
    simulator.advance(10_000)
    done = await call(http, simulator, "GET", HS_DETAIL, params={"_id": created["data"]["_id"]})
    assert done["data"]["status"] == 4
    assert done["data"]["error_reason"]
    assert done["data"]["video_url"] is None
    assert done["data"]["deduction_duration"] == 0
    assert simulator.balance() == before
    empty = await analyzed(http, simulator, "https://cdn.example.com/empty.mp4?people=0")
    detail = (await call(http, simulator, "GET", HS_ADETAIL, params={"_id": empty}))["data"]
    assert detail["status"] == 4
    assert detail["analysis_result"] is None
    assert detail["error_code"] != 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "head"}, "video_url"),
        ({"video_url": "file:///etc/passwd", "type": "head"}, "video_url"),
        ({"video_url": HEAD_VIDEO}, "type"),
        ({"video_url": HEAD_VIDEO, "type": "face"}, "type"),
    ],
)
async def test_analyze_validation(
    simulator: AkoolSimulator, http: aiohttp.ClientSession, body: dict[str, Any], field: str
) -> None:
    """Analyze rejects a missing/non-http video_url and a type other than 'head' with 1003."""
    answer = await call(http, simulator, "POST", HS_ANALYZE, body=body)
    assert answer["code"] == 1003
    assert field in answer["msg"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"video_url": None}, "video_url"),
        ({"mappings": []}, "mappings"),
        ({"mappings": None}, "mappings"),
        ({"mappings": [{"obj_id": i, "img_url": FACE} for i in range(6)]}, "mappings"),
        ({"mappings": [{"obj_id": 0, "img_url": FACE}] * 2}, "mappings[1].obj_id"),
        ({"mappings": [{"obj_id": 7, "img_url": FACE}]}, "mappings[0].obj_id"),
        ({"mappings": [{"obj_id": "0", "img_url": FACE}]}, "mappings[0].obj_id"),
        ({"mappings": [{"obj_id": 0, "img_url": "nope"}]}, "mappings[0].img_url"),
        ({"resolution": "1080p"}, "resolution"),
        ({"resolution": None}, "resolution"),
        ({"model_name": None}, "model_name"),
        ({"model_name": "other"}, "model_name"),
        ({"video_url": "https://cdn.example.com/people.mp4?people=2"}, "video_url"),
        ({"webhookUrl": "ftp://x"}, "webhookUrl"),
    ],
)
async def test_head_swap_create_validation(
    simulator: AkoolSimulator, http: aiohttp.ClientSession, change: dict[str, Any], field: str
) -> None:
    """Each invalid head swap create input is 1003 naming the field, and nothing is created."""
    await analyzed(http, simulator)
    body = {k: v for k, v in hs_body(**change).items() if v is not None}
    answer = await call(http, simulator, "POST", HS_CREATE, body=body)
    assert answer["code"] == 1003
    assert field in answer["msg"]
    assert simulator.stats.tasks["head_swap"] == {}


async def test_webhook_spellings_accepted_on_both_creates(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """Both webhookurl and webhookUrl are accepted on both create endpoints."""
    hook = "http://127.0.0.1:9/hook"
    for key in ("webhookurl", "webhookUrl"):
        data = await call(http, simulator, "POST", CS_CREATE, body=cs_body(**{key: hook}))
        assert data["data"]["webhookUrl"] == hook
    await analyzed(http, simulator)
    for key in ("webhookurl", "webhookUrl"):
        answer = await call(http, simulator, "POST", HS_CREATE, body=hs_body(**{key: hook}))
        assert simulator.task(answer["data"]["_id"]).webhook_url == hook


async def test_create_fingerprints_count_duplicates(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """Identical create bodies from one key share a fingerprint; stats count the duplicate."""
    body = cs_body(prompt="same")
    await call(http, simulator, "POST", CS_CREATE, body=body)
    await call(http, simulator, "POST", CS_CREATE, body=body)
    await call(http, simulator, "POST", CS_CREATE, body=cs_body(prompt="other"))
    stats = simulator.stats
    assert stats.creates[simulator.fingerprint(body)] == 2
    assert stats.duplicate_creates == 1
    assert stats.requests["character_swap.create"] == 3
    assert stats.tasks["character_swap"] == {"queueing": 3}


async def test_request_log_never_contains_the_key(
    simulator: AkoolSimulator, http: aiohttp.ClientSession
) -> None:
    """The request log records method, path, endpoint, status and code, never the API key."""
    await call(http, simulator, "POST", CS_CREATE, body=cs_body())
    await call(http, simulator, "GET", CREDIT, headers={})
    log = simulator.request_log
    assert [(e.endpoint, e.status, e.code) for e in log] == [
        ("character_swap.create", 200, 1000),
        ("credit", 200, 1102),
    ]
    assert all(simulator.api_key not in repr(e) for e in log)


def test_duration_hash_is_deterministic() -> None:
    """Without hooks, detected duration is within 3-20 s and the same for the same URL."""
    for i in range(50):
        url = f"https://cdn.example.com/v{i}.mp4"
        assert 3 <= video_seconds(url) <= 20
        assert video_seconds(url) == video_seconds(url)
        assert 1 <= people_in(url) <= 3
    assert video_seconds("https://x/v.mp4?duration=7.5") == 7.5
    assert people_in("https://x/v.mp4?people=4") == 4


async def test_fixed_durations_option() -> None:
    """A float duration means that many simulated seconds from create to the final state."""
    async with (
        AkoolSimulator(manual_clock=True, durations={"character_swap": 100.0}) as sim,
        aiohttp.ClientSession() as http,
    ):
        created = (await call(http, sim, "POST", CS_CREATE, body=cs_body()))["data"]
        info = sim.task(created["_id"])
        assert info.finished_at - info.create_time == pytest.approx(100.0)
        assert info.processing_at - info.create_time == pytest.approx(20.0)
        sim.advance(99.9)
        assert sim.task(created["_id"]).status == 2
        sim.advance(0.2)
        assert sim.task(created["_id"]).status == 3
    assert Duration.fixed(10).queue == pytest.approx(2.0)
