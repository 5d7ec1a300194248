"""The slice of asyncpg the PostgreSQL store uses, typed, and imported only when needed.

asyncpg is an optional extra (``pip install 'akool-async[postgres]'``) and ships no type
information, so the store talks to it through the small protocols below; ``import
akool_async`` works without it, and a store opened without it raises a
:class:`ConfigurationError` that names the extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from types import ModuleType
from typing import Any, Protocol, cast

from akool_async._errors import ConfigurationError

__all__ = ["Connection", "DatabaseErrors", "Pool", "Row", "connect", "create_pool",
           "database_errors"]  # fmt: skip

#: Exception classes that mean "the database call failed" (driver, server or network).
DatabaseErrors = tuple[type[BaseException], ...]


class Row(Protocol):
    """An asyncpg ``Record``: indexable by position and by column name."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Any: ...
    def __len__(self) -> int: ...


class Connection(Protocol):
    """The asyncpg ``Connection`` methods the store calls."""

    async def execute(self, query: str, *args: object) -> str: ...
    async def fetch(self, query: str, *args: object) -> Sequence[Row]: ...
    async def fetchrow(self, query: str, *args: object) -> Row | None: ...
    async def fetchval(self, query: str, *args: object) -> Any: ...
    def transaction(self) -> AbstractAsyncContextManager[object]: ...
    async def add_listener(self, channel: str, callback: Callable[..., None]) -> None: ...
    async def close(self) -> None: ...


class Pool(Protocol):
    """The asyncpg ``Pool`` methods the store calls."""

    def acquire(self) -> AbstractAsyncContextManager[Connection]: ...
    async def close(self) -> None: ...


def _asyncpg() -> ModuleType:
    try:
        return importlib.import_module("asyncpg")
    except ImportError:
        raise ConfigurationError(
            "a postgresql:// job store needs asyncpg: pip install 'akool-async[postgres]'"
        ) from None


def database_errors() -> DatabaseErrors:
    """asyncpg's error classes plus OSError and TimeoutError (unreachable server)."""
    module = _asyncpg()
    return (module.PostgresError, module.InterfaceError, OSError, TimeoutError)


async def create_pool(url: str, size: int) -> Pool:
    """A pool of up to ``size`` connections to ``url`` (at least one opened now)."""
    pool = await _asyncpg().create_pool(url, min_size=1, max_size=size)
    return cast("Pool", pool)


async def connect(url: str) -> Connection:
    """One dedicated connection (for LISTEN)."""
    return cast("Connection", await _asyncpg().connect(url))
