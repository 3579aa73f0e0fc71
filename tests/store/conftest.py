"""Fixtures for store tests: real databases, no mocks.

`store` and `open_store` are the contract suite's: each test that uses them runs against
SQLite (a file under `tmp_path`) and PostgreSQL (a fresh database of the session's private
server, see tests/support/services.py). `sqlite_store` and `open_sqlite_store` are for what
only SQLite has: its files, pragmas, migrations ledger and group-commit writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from server.config.settings import StoreSettings
from server.store.postgres.store import PostgresStore
from server.store.sqlite.store import SqliteStore

AnyStore = SqliteStore | PostgresStore
OpenStore = Callable[..., Awaitable[AnyStore]]
OpenSqliteStore = Callable[..., Awaitable[SqliteStore]]
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # A folder that does not exist yet: open() must create it.
    return tmp_path / "data" / "chinwag.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_store(
    backend: str, db_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[OpenStore]:
    """Open stores on one database (the same each time); all are closed at the end."""
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    opened: list[AnyStore] = []

    async def _open(**settings: object) -> AnyStore:
        options = StoreSettings(**settings)  # type: ignore[arg-type]
        store: AnyStore = SqliteStore(db_path, options) if url is None else PostgresStore(url, options)
        await store.open()
        opened.append(store)
        return store

    yield _open
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> AnyStore:
    return await open_store()


@pytest.fixture
async def open_sqlite_store(db_path: Path) -> AsyncIterator[OpenSqliteStore]:
    """SQLite only: stores on `db_path`, closed at the end."""
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
async def sqlite_store(open_sqlite_store: OpenSqliteStore) -> SqliteStore:
    return await open_sqlite_store()
