"""Shared test configuration: anyio on asyncio in debug mode."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from akool_async.testing import AkoolSimulator


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """Run every async test on asyncio with debug mode on (slow callbacks, unawaited coros)."""
    return ("asyncio", {"debug": True})


@pytest.fixture
async def simulator() -> AsyncIterator[AkoolSimulator]:
    """An Akool simulator on 127.0.0.1 with a manual clock (time moves only via advance())."""
    async with AkoolSimulator(manual_clock=True) as sim:
        yield sim
