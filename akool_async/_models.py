"""Request and result models (plain frozen attrs; no wire knowledge)."""

from __future__ import annotations

import enum

__all__ = ["TaskStatus"]


class TaskStatus(enum.IntEnum):
    """Lifecycle of every Akool task and analysis: 1 queueing, 2 processing, 3 completed, 4 failed."""

    QUEUEING = 1
    PROCESSING = 2
    COMPLETED = 3
    FAILED = 4

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED and FAILED."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)
