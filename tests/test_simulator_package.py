"""The simulator package as users run it: ``python -m akool_async.testing``, odd create bodies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import aiohttp
import pytest

from akool_async.testing import AkoolSimulator
from akool_async.testing._webhooks import is_loopback_url

HS_CREATE = "/api/open/v4/headswap/task/create"
CS_CREATE = "/api/open/v4/characterSwap/create"


def test_module_serves_until_sigterm() -> None:
    """``python -m akool_async.testing`` prints the environment, answers, and stops on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "akool_async.testing", "--time-scale", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        env = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
        assert set(env) == {
            "AKOOL_BASE_URL",
            "AKOOL_API_KEY",
            "AKOOL_CLIENT_ID",
            "AKOOL_CLIENT_SECRET",
        }
        request = urllib.request.Request(
            env["AKOOL_BASE_URL"] + "/api/open/v3/faceswap/quota/info",
            headers={"x-api-key": env["AKOOL_API_KEY"]},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read())["code"] == 1000
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "stopping: 1 requests, 0 creates" in stderr


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            HS_CREATE,
            {
                "video_url": "https://x/v.mp4",
                "mappings": [{"obj_id": 0, "img_url": "https://x/f.png"}],
                "model_name": "akool-premium",
                "resolution": ["720p"],
            },
        ),
        (
            HS_CREATE,
            {
                "video_url": "https://x/v.mp4",
                "mappings": [{"obj_id": 0, "img_url": "https://x/f.png"}],
                "model_name": {"a": 1},
                "resolution": "720p",
            },
        ),
        (
            CS_CREATE,
            {"image": "https://x/i.png", "video": "https://x/v.mp4", "resolution": ["720p"]},
        ),
        (CS_CREATE, {"image": "https://x/i.png", "video": "https://x/v.mp4", "mode": {"a": 1}}),
    ],
)
async def test_unhashable_options_are_validation_errors(
    simulator: AkoolSimulator, path: str, body: dict[str, Any]
) -> None:
    """A list or object where a choice is expected is code 1003, never an HTTP 500."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            simulator.base_url + path, json=body, headers={"x-api-key": simulator.api_key}
        ) as response,
    ):
        assert response.status == 200
        answer = await response.json()
    assert answer["code"] == 1003


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/hook", True),
        ("http://127.0.0.2/hook", True),
        ("https://LOCALHOST/hook", True),
        ("http://[::1]:9000/hook", True),
        ("http://example.com/hook", False),
        ("http://10.0.0.1/hook", False),
        ("ftp://127.0.0.1/hook", False),
        ("http://[::1/hook", False),
        ("not a url", False),
    ],
)
def test_webhooks_go_only_to_loopback_urls(url: str, expected: bool) -> None:
    """The simulator sends webhooks only to http(s) URLs whose host is loopback."""
    assert is_loopback_url(url) is expected
