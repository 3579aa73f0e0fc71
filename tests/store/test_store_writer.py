"""The group-commit writer: several operations, one transaction, failures kept apart."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from server.store.sqlite.writer import GroupCommitWriter

from .conftest import OpenSqliteStore
from .helpers import ALICE, send


@pytest.fixture
async def table(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await aiosqlite.connect(tmp_path / "w.db", isolation_level=None)
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    yield conn
    await conn.close()


def insert(key: str, value: int | None = 1):  # type: ignore[no-untyped-def]
    def op(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (key, value))
        return key

    return op


async def rows(conn: aiosqlite.Connection) -> list[str]:
    async with conn.execute("SELECT k FROM t ORDER BY k") as cursor:
        return [row[0] for row in await cursor.fetchall()]


async def test_a_failing_operation_fails_alone_within_its_group(
    table: aiosqlite.Connection,
) -> None:
    writer = GroupCommitWriter(table, window_ms=20, max_group=100)
    writer.start()
    results = await asyncio.gather(
        writer.submit(insert("a")),
        writer.submit(insert("b")),
        writer.submit(insert("a")),  # duplicate key: IntegrityError
        writer.submit(insert("c", None)),  # NOT NULL: IntegrityError
        writer.submit(insert("d")),
        return_exceptions=True,
    )
    await writer.close()

    assert results[0] == "a" and results[1] == "b" and results[4] == "d"
    assert isinstance(results[2], sqlite3.IntegrityError)
    assert isinstance(results[3], sqlite3.IntegrityError)
    # All five really ran in one transaction: one commit, one group of five.
    assert writer.stats.commits == 1
    assert writer.stats.group_sizes == [5]
    assert await rows(table) == ["a", "b", "d"]


async def test_an_operation_raising_midway_leaves_none_of_its_writes(
    table: aiosqlite.Connection,
) -> None:
    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k, v) VALUES ('half', 1)")
        raise ValueError("changed my mind")

    writer = GroupCommitWriter(table, window_ms=5, max_group=100)
    writer.start()
    results = await asyncio.gather(
        writer.submit(half_done), writer.submit(insert("whole")), return_exceptions=True
    )
    await writer.close()
    assert isinstance(results[0], ValueError)
    assert await rows(table) == ["whole"]


async def test_groups_are_capped_at_max_group(table: aiosqlite.Connection) -> None:
    writer = GroupCommitWriter(table, window_ms=5, max_group=4)
    writer.start()
    await asyncio.gather(*(writer.submit(insert(f"k{i:02d}")) for i in range(10)))
    await writer.close()
    assert writer.stats.group_sizes == [4, 4, 2]
    assert len(await rows(table)) == 10


async def test_results_arrive_only_after_commit(
    table: aiosqlite.Connection, tmp_path: Path
) -> None:
    writer = GroupCommitWriter(table, window_ms=0, max_group=100)
    writer.start()
    await writer.submit(insert("seen"))
    # Another connection sees the row as soon as submit returned: it was committed.
    with sqlite3.connect(tmp_path / "w.db") as other:
        assert other.execute("SELECT k FROM t").fetchall() == [("seen",)]
    await writer.close()


async def test_a_cancelled_caller_that_was_still_queued_writes_nothing(
    table: aiosqlite.Connection,
) -> None:
    writer = GroupCommitWriter(table, window_ms=30, max_group=100)
    writer.start()
    first = asyncio.create_task(writer.submit(insert("kept")))
    dropped = asyncio.create_task(writer.submit(insert("dropped")))
    await asyncio.sleep(0)
    dropped.cancel()
    assert await first == "kept"
    await writer.close()
    assert await rows(table) == ["kept"]


async def test_store_writes_share_commits(open_sqlite_store: OpenSqliteStore) -> None:
    store = await open_sqlite_store(group_commit_ms=20)
    before = store.writer.stats.commits
    accepted = await asyncio.gather(*(send(store, ALICE, f"hello {i}") for i in range(10)))
    assert len({a.message_id for a in accepted}) == 10
    assert store.writer.stats.commits - before < 10
