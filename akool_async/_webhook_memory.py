"""What a webhook receiver remembers: recent signatures, transitions and events, bounded."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .webhooks import WebhookEvent

__all__ = ["BoundedSet", "DeliveryMemory"]


class BoundedSet:
    """Insertion-ordered set that forgets its oldest members beyond ``size``."""

    def __init__(self, size: int) -> None:
        self._items: collections.OrderedDict[object, None] = collections.OrderedDict()
        self._size = size

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def add(self, item: object) -> None:
        """Add ``item`` (or refresh it) and forget the oldest beyond the size."""
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


class DeliveryMemory:
    """The last ``size`` signatures, ``(id, status)`` pairs and per-task events accepted."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._signatures = BoundedSet(size)
        self._transitions = BoundedSet(size)
        self._recent: collections.OrderedDict[str, WebhookEvent] = collections.OrderedDict()

    def is_repeat(self, event: WebhookEvent) -> bool:
        """True when the same signature or the same ``(id, status)`` was accepted before."""
        return event.signature in self._signatures or (
            (event.id, event.status) in self._transitions
        )

    def remember(self, event: WebhookEvent) -> None:
        """Record an accepted event."""
        self._signatures.add(event.signature)
        self._transitions.add((event.id, event.status))
        previous = self._recent.get(event.id)
        # An out-of-order non-terminal event must not hide a terminal one.
        if previous is None or not previous.is_terminal or event.is_terminal:
            self._recent[event.id] = event
        self._recent.move_to_end(event.id)
        while len(self._recent) > self._size:
            self._recent.popitem(last=False)

    def recent(self, task_id: str) -> WebhookEvent | None:
        """The latest accepted event of ``task_id`` (terminal events win), or ``None``."""
        return self._recent.get(task_id)
