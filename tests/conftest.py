"""Shared fixtures. Keep this file small; put logic in helper modules (e.g. tests/postgres.py)."""

from __future__ import annotations

import postgres as pg  # tests/postgres.py (tests/ is on sys.path: rootdir conftest, no __init__)
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres: needs a PostgreSQL server (see tests/postgres.py)"
    )
    config.addinivalue_line(
        "markers", "slow: a long but bounded test; runs in the normal suite and CI (deselect: -m 'not slow')"
    )


# ---------------------------------------------------------------------- storage


@pytest.fixture
def postgres_url() -> str:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    with pg.fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A storage URL per backend: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flowgram.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def storage(storage_url: str):
    """A migrated Storage on each backend; closed after the test."""
    from engine.storage import open_storage

    store = open_storage(storage_url)
    await store.migrate()
    yield store
    await store.close()
