"""Simulator webhooks (checked by an independent section-5 decoder), time scale, output files."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from akool_async.testing import AkoolSimulator, Duration, sign_webhook, webhook_body

pytestmark = pytest.mark.anyio

CS_CREATE = "/api/open/v4/characterSwap/create"
CS_RESULT = "/api/open/v3/content/video/infobymodelid"
HS_ANALYZE = "/api/open/v4/headswap/analyze"
HS_CREATE = "/api/open/v4/headswap/task/create"


class Receiver:
    """A loopback webhook receiver that answers scripted statuses and queues what it got."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.statuses: list[int] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.put_nowait(await request.json())
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/hook"
    yield rec
    await runner.cleanup()


def decode(payload: dict[str, Any], client_id: str, client_secret: str) -> dict[str, Any]:
    """Independent section-5 implementation: verify the SHA-1 signature, then AES-CBC decrypt."""
    parts = sorted(
        [client_id, str(payload["timestamp"]), str(payload["nonce"]), payload["dataEncrypt"]]
    )
    expected = hashlib.sha1("".join(parts).encode()).hexdigest()
    assert payload["signature"] == expected
    decryptor = Cipher(
        algorithms.AES(client_secret.encode()), modes.CBC(client_id.encode()[:16])
    ).decryptor()
    padded = decryptor.update(base64.b64decode(payload["dataEncrypt"])) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    plain = unpadder.update(padded) + unpadder.finalize()
    result: dict[str, Any] = json.loads(plain)
    return result


def test_section_5_6_vector_reproduced() -> None:
    """The simulator's encryption and signature reproduce the section 5.6 test vector exactly."""
    plaintext = (
        '{"_id":"689174694b4dbdd4ab3d28c9","status":3,"type":"video",'
        '"url":"https://example.com/out.mp4"}'
    )
    body = webhook_body(
        plaintext=plaintext,
        client_id="0123456789abcdef01234567",
        client_secret="abcdefghijklmnopqrstuvwx",
        timestamp=1710757981609,
        nonce="1529",
    )
    assert body == {
        "signature": "346a0f62300af519e882b8c53a17b6e27f3d60e4",
        "dataEncrypt": (
            "d2old9DAwQr0qQK1JqkGb9gSmIcpXDFSuDwWk4lc+jyswBwDdyQIcXuFd744TCZRUlNAFuhAsBAylSYQ/"
            "AZZOFvG1t15Py0XnYZMaVS/jPDj+ov7rh62ieOH9/KQ3NAtIgAcOVl/HpyuAEM1i6uq8w=="
        ),
        "timestamp": 1710757981609,
        "nonce": "1529",
    }
    assert (
        sign_webhook(
            client_id="0123456789abcdef01234567",
            timestamp=1710757981609,
            nonce="1529",
            data_encrypt=body["dataEncrypt"],
        )
        == body["signature"]
    )


async def test_completion_webhook_payload(simulator: AkoolSimulator, receiver: Receiver) -> None:
    """A completed character swap POSTs a signed, encrypted {_id,status,type,url} payload."""
    async with aiohttp.ClientSession() as http:
        body = {
            "image": "https://cdn.example.com/a.png",
            "video": "https://cdn.example.com/v.mp4",
            "webhookurl": receiver.url,
        }
        async with http.post(
            simulator.base_url + CS_CREATE, json=body, headers={"x-api-key": simulator.api_key}
        ) as resp:
            task_id = (await resp.json())["data"]["_id"]
        assert receiver.received.empty()
        simulator.advance(10_000)
        payload = await receiver.received.get()
        assert set(payload) == {"signature", "dataEncrypt", "timestamp", "nonce"}
        assert isinstance(payload["timestamp"], int)
        assert payload["timestamp"] > 10**12
        assert isinstance(payload["nonce"], str)
        data = decode(payload, simulator.client_id, simulator.client_secret)
        assert list(data) == ["_id", "status", "type", "url"]
        assert data["_id"] == task_id
        assert data["status"] == 3
        assert data["type"] == "character swap"
        async with http.get(
            simulator.base_url + CS_RESULT,
            params={"video_model_id": task_id},
            headers={"x-api-key": simulator.api_key},
        ) as resp:
            assert data["url"] == (await resp.json())["data"]["video"]
    await simulator.wait_webhooks()
    assert simulator.stats.webhooks_delivered == 1
    assert simulator.webhook_deliveries[0].outcome == "delivered"


async def test_failure_and_processing_webhooks_head_swap(receiver: Receiver) -> None:
    """With webhook_on_processing a head swap sends status 2 then 4 (failure, empty url)."""
    async with (
        AkoolSimulator(manual_clock=True, webhook_on_processing=True) as sim,
        aiohttp.ClientSession() as http,
    ):
        headers = {"x-api-key": sim.api_key}
        url = "https://cdn.example.com/v.mp4?fail=1"
        await http.post(
            sim.base_url + HS_ANALYZE, json={"video_url": url, "type": "head"}, headers=headers
        )
        sim.advance(10_000)
        body = {
            "video_url": url,
            "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/f.png"}],
            "model_name": "akool-premium",
            "resolution": "480p",
            "webhookUrl": receiver.url,
        }
        async with http.post(sim.base_url + HS_CREATE, json=body, headers=headers) as resp:
            task_id = (await resp.json())["data"]["_id"]
        info = sim.task(task_id)
        sim.advance(info.processing_at - info.create_time + 0.001)
        first = decode(await receiver.received.get(), sim.client_id, sim.client_secret)
        assert (first["_id"], first["status"], first["type"]) == (task_id, 2, "head swap")
        sim.advance(10_000)
        second = decode(await receiver.received.get(), sim.client_id, sim.client_secret)
        assert (second["status"], second["url"]) == (4, "")


async def test_webhook_retries_on_non_200(simulator: AkoolSimulator, receiver: Receiver) -> None:
    """A non-200 answer is retried after a (simulated) backoff until a 200 arrives."""
    receiver.statuses = [500, 503]
    async with aiohttp.ClientSession() as http:
        body = {
            "image": "https://cdn.example.com/a.png",
            "video": "https://cdn.example.com/v.mp4",
            "webhookUrl": receiver.url,
        }
        await http.post(
            simulator.base_url + CS_CREATE, json=body, headers={"x-api-key": simulator.api_key}
        )
    simulator.advance(10_000)
    await receiver.received.get()
    await simulator.wait_webhooks()
    assert receiver.received.empty()
    simulator.advance(2.0)
    await receiver.received.get()
    await simulator.wait_webhooks()  # the 503 answer is processed and the retry scheduled
    simulator.advance(4.0)
    await receiver.received.get()
    await simulator.wait_webhooks()
    stats = simulator.stats
    assert (stats.webhooks_delivered, stats.webhook_attempts) == (1, 3)
    assert simulator.webhook_deliveries[0].attempts == 3


async def test_non_loopback_webhook_is_skipped(simulator: AkoolSimulator) -> None:
    """A webhook URL that is not loopback is never contacted and is recorded as skipped."""
    async with aiohttp.ClientSession() as http:
        body = {
            "image": "https://cdn.example.com/a.png",
            "video": "https://cdn.example.com/v.mp4",
            "webhookurl": "https://hooks.example.com/akool",
        }
        await http.post(
            simulator.base_url + CS_CREATE, json=body, headers={"x-api-key": simulator.api_key}
        )
    simulator.advance(10_000)
    await simulator.wait_webhooks()
    assert simulator.stats.webhooks_skipped == 1
    assert simulator.webhook_deliveries[0].outcome == "skipped"
    assert simulator.stats.webhook_attempts == 0


async def test_time_scale_runs_lifecycle_in_real_time(receiver: Receiver) -> None:
    """Under time_scale the task completes by itself; timestamps show the simulated duration."""
    durations = {"character_swap": Duration(queue=10.0, process=40.0)}
    async with (
        AkoolSimulator(time_scale=0.002, durations=durations) as sim,
        aiohttp.ClientSession() as http,
    ):
        headers = {"x-api-key": sim.api_key}
        body = {
            "image": "https://cdn.example.com/a.png",
            "video": "https://cdn.example.com/v.mp4",
            "webhookurl": receiver.url,
        }
        async with http.post(sim.base_url + CS_CREATE, json=body, headers=headers) as resp:
            task_id = (await resp.json())["data"]["_id"]
        payload = decode(await receiver.received.get(), sim.client_id, sim.client_secret)
        assert payload["status"] == 3
        params = {"video_model_id": task_id}
        async with http.get(sim.base_url + CS_RESULT, params=params, headers=headers) as resp:
            data = (await resp.json())["data"]
        assert data["video_status"] == 3
        assert abs(data["update_time"] - data["create_time"] - 50_000) <= 1


async def test_output_file_bytes_and_ranges(simulator: AkoolSimulator) -> None:
    """Output videos are deterministic MP4 bytes (ftyp box) with 206/416 Range support."""
    async with aiohttp.ClientSession() as http:
        headers = {"x-api-key": simulator.api_key}
        body = {"image": "https://cdn.example.com/a.png", "video": "https://cdn.example.com/v.mp4"}
        async with http.post(simulator.base_url + CS_CREATE, json=body, headers=headers) as resp:
            task_id = (await resp.json())["data"]["_id"]
        file_url = f"{simulator.base_url}/files/{task_id}.mp4"
        async with http.get(file_url) as resp:
            assert resp.status == 404  # not produced yet
        simulator.advance(10_000)
        async with http.get(file_url) as resp:
            assert resp.status == 200
            assert resp.headers["Accept-Ranges"] == "bytes"
            whole = await resp.read()
        assert whole[4:8] == b"ftyp"
        assert 10_000 < len(whole) < 100_000
        async with http.get(file_url) as resp:
            assert await resp.read() == whole
        async with http.get(file_url, headers={"Range": "bytes=100-199"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
            assert await resp.read() == whole[100:200]
        async with http.get(file_url, headers={"Range": "bytes=-10"}) as resp:
            assert await resp.read() == whole[-10:]
        async with http.get(file_url, headers={"Range": "bytes=1000-"}) as resp:
            assert await resp.read() == whole[1000:]
        async with http.get(file_url, headers={"Range": f"bytes={len(whole)}-"}) as resp:
            assert resp.status == 416
            assert resp.headers["Content-Range"] == f"bytes */{len(whole)}"
