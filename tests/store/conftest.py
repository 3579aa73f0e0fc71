"""Fixtures for store tests: real SQLite files under `tmp_path`, no mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from server.config.settings import StoreSettings
from server.store.sqlite.store import SqliteStore

OpenStore = Callable[..., Awaitable[SqliteStore]]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # A folder that does not exist yet: open() must create it.
    return tmp_path / "data" / "chinwag.db"


@pytest.fixture
async def open_store(db_path: Path) -> AsyncIterator[OpenStore]:
    """Open stores on `db_path` (the same file each time); all are closed at the end."""
    opened: list[SqliteStore] = []

    async def _open(**settings: object) -> SqliteStore:
        store = SqliteStore(db_path, StoreSettings(**settings))  # type: ignore[arg-type]
        await store.open()
        opened.append(store)
        return store

    yield _open
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> SqliteStore:
    return await open_store()
