"""The throwaway PostgreSQL server as pytest fixtures, shared by the job-store tests.

Test modules load it with ``pytest_plugins = ["pg_fixtures"]``: a plugin's fixtures are
registered once, so every module using ``pg_cluster`` shares one server per session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from job_stores import empty_database
from pg_cluster import PostgresCluster, postgres_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server for the session; a failed start fails the tests."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
async def store_url(pg_cluster: PostgresCluster) -> str:
    """The URL of the server's test database, emptied first (a fresh schema, no tables)."""
    await empty_database(pg_cluster.dsn)
    return pg_cluster.dsn
