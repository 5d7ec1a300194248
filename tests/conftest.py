"""Shared test configuration: anyio on asyncio in debug mode."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """Run every async test on asyncio with debug mode on (slow callbacks, unawaited coros)."""
    return ("asyncio", {"debug": True})
