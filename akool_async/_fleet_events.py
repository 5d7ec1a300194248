"""Webhook events written to a shared job store, so that any replica's delivery reaches
the process that owns the job (it LISTENs) or a later owner (it reads them back)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from akool_async.webhooks import WebhookEvent

__all__ = ["EventStore", "record_event"]

_logger = logging.getLogger("akool_async")


@runtime_checkable
class EventStore(Protocol):
    """A store that keeps webhook events (``PostgresStore``)."""

    async def record_event(self, task_id: str, payload_json: str) -> int:
        """Store one verified event and announce its task id to the fleet."""
        ...


async def record_event(store: EventStore, event: WebhookEvent) -> bool:
    """Store ``event`` (its decrypted payload); False if the store refused or is down."""
    payload = json.dumps({"status": event.status.value, **dict(event.raw)}, default=str)
    try:
        await store.record_event(event.id, payload)
    except Exception as exc:  # noqa: BLE001 - any failure means "answer 500, Akool retries"
        _logger.warning("webhook event for task %s not stored: %s", event.id, type(exc).__name__)
        return False
    return True
