"""Test helper: an AkoolSimulator served from its own thread and event loop.

Code under test that runs its own loop (the CLI's ``main()``, README blocks calling
``asyncio.run``) can then talk to it from the test's thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from akool_async.testing import AkoolSimulator


class ThreadedSimulator:
    """An AkoolSimulator served from its own thread and loop (a context manager)."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.sim: AkoolSimulator | None = None

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with AkoolSimulator(**self.options) as sim:
            self.sim = sim
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> AkoolSimulator:
        self._thread.start()
        assert self._ready.wait(30), "the simulator did not start"
        assert self.sim is not None
        return self.sim

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward, on the simulator's own loop, and wait for it."""

        async def advance() -> None:
            assert self.sim is not None
            self.sim.advance(seconds)

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(advance(), self._loop).result(30)
