"""Webhook health: counts by outcome in ``receiver.stats``, and a likely cause said once loudly."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import attrs
import pytest

from akool_async.testing import webhook_body
from akool_async.webhooks import WebhookReceiver, WebhookStats

pytestmark = pytest.mark.anyio

CLIENT_ID = "AKclientIdForTests0042=="
SECRET = "S3cr3t-Key-For-Tests-24b"
OTHER_SECRET = "another-secret-24-bytes!"
WRONG_ID = "wrong-client-id-000000"


def delivery(
    task_id: str, status: int = 3, *, client_id: str = CLIENT_ID, secret: str = SECRET
) -> bytes:
    """A fresh webhook body for ``task_id`` sealed with the given credentials."""
    plaintext = json.dumps({"_id": task_id, "status": status, "type": "character swap"})
    body: dict[str, Any] = webhook_body(
        plaintext=plaintext,
        client_id=client_id,
        client_secret=secret,
        timestamp=round(time.time() * 1000),
        nonce=task_id[-4:],
    )
    return json.dumps(body).encode()


def rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The receiver's rejection records."""
    return [r for r in caplog.records if "rejected" in r.getMessage()]


async def test_stats_start_at_zero_and_are_frozen() -> None:
    """A new receiver reports all-zero counts in a frozen WebhookStats."""
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET)
    stats = receiver.stats
    assert stats == WebhookStats()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.accepted = 1  # type: ignore[misc]


async def test_counts_by_outcome() -> None:
    """Accepted, duplicate and each kind of rejection are counted separately."""
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET)
    first = delivery("task-0001")
    assert (await receiver.handle(first)).status == 200
    assert (await receiver.handle(first)).status == 200  # duplicate
    assert (await receiver.handle(delivery("task-0002"))).status == 200
    assert (await receiver.handle(delivery("task-0003", client_id=WRONG_ID))).status == 400
    assert (await receiver.handle(delivery("task-0004", secret=OTHER_SECRET))).status == 400
    assert (await receiver.handle(b"not json")).status == 400
    stale = json.loads(delivery("task-0005"))
    stale["timestamp"] = 1
    assert (await receiver.handle(json.dumps(stale))).status == 400
    assert (await receiver.handle(b"x" * 70_000)).status == 413
    assert receiver.stats == WebhookStats(
        accepted=2,
        duplicates=1,
        rejected=5,
        rejected_signature=1,
        rejected_decrypt=1,
        rejected_stale=1,
        rejected_malformed=2,
        listener_errors=0,
    )
    assert receiver.accepted == 2
    assert receiver.rejected == 5


async def test_listener_errors_are_counted() -> None:
    """A delivery answered 500 because a listener raised is counted as a listener error."""
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET)

    def broken(event: object) -> None:
        raise RuntimeError("listener bug")

    receiver.add_listener(broken)
    assert (await receiver.handle(delivery("task-0001"))).status == 500
    assert receiver.stats.listener_errors == 1
    assert receiver.stats.accepted == 0


async def test_wrong_client_id_is_said_once_loudly(caplog: pytest.LogCaptureFixture) -> None:
    """The first signature mismatch is a WARNING naming the client id; later ones are DEBUG."""
    caplog.set_level(logging.DEBUG, logger="akool_async.webhooks")
    receiver = WebhookReceiver(client_id=WRONG_ID, client_secret=SECRET)
    for n in range(3):
        assert (await receiver.handle(delivery(f"task-000{n}"))).status == 400
    records = rejections(caplog)
    assert [r.levelno for r in records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    warning = records[0].getMessage()
    assert "signature mismatch: check AKOOL_CLIENT_ID" in warning
    assert "forged" in warning
    assert receiver.stats.rejected_signature == 3


async def test_wrong_secret_is_said_once_loudly(caplog: pytest.LogCaptureFixture) -> None:
    """A valid signature that does not decrypt is one WARNING naming the client secret."""
    caplog.set_level(logging.DEBUG, logger="akool_async.webhooks")
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=OTHER_SECRET)
    for n in range(3):
        assert (await receiver.handle(delivery(f"task-000{n}"))).status == 400
    records = rejections(caplog)
    assert [r.levelno for r in records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "check AKOOL_CLIENT_SECRET" in records[0].getMessage()
    assert receiver.stats.rejected_decrypt == 3


async def test_each_cause_warns_once_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    """A signature warning does not silence the first decryption warning, nor vice versa."""
    caplog.set_level(logging.DEBUG, logger="akool_async.webhooks")
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET)
    await receiver.handle(delivery("task-0001", client_id=WRONG_ID))
    await receiver.handle(delivery("task-0002", secret=OTHER_SECRET))
    await receiver.handle(delivery("task-0003", client_id=WRONG_ID))
    warnings = [r for r in rejections(caplog) if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "AKOOL_CLIENT_ID" in warnings[0].getMessage()
    assert "AKOOL_CLIENT_SECRET" in warnings[1].getMessage()


async def test_warnings_never_contain_the_credentials(caplog: pytest.LogCaptureFixture) -> None:
    """The loud warnings name the settings, never their values."""
    caplog.set_level(logging.DEBUG, logger="akool_async.webhooks")
    receiver = WebhookReceiver(client_id=WRONG_ID, client_secret=OTHER_SECRET)
    await receiver.handle(delivery("task-0001"))
    await receiver.handle(delivery("task-0002", client_id=WRONG_ID))
    text = caplog.text
    for secret in (CLIENT_ID, SECRET, OTHER_SECRET, WRONG_ID):
        assert secret not in text


async def test_malformed_bodies_stay_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """Junk bodies (scanners, typos) are logged at INFO, never WARNING."""
    caplog.set_level(logging.DEBUG, logger="akool_async.webhooks")
    receiver = WebhookReceiver(client_id=CLIENT_ID, client_secret=SECRET)
    await receiver.handle(b"{}")
    await receiver.handle(b"[]")
    assert [r.levelno for r in rejections(caplog)] == [logging.INFO, logging.INFO]
