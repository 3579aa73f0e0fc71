"""Opening the store: folder, pragmas, migrations, durability across close and reopen.

The folder, pragmas and migration ledger are SQLite's (`sqlite_store`, `open_sqlite_store`);
durability across close and reopen is the contract of both backends."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from server.store.sqlite.migrations import MIGRATIONS, Migration, migrate, split_statements
from server.store.sqlite.store import SqliteStore

from .conftest import AnyStore, OpenSqliteStore, OpenStore
from .helpers import ALICE, send


def _ledger(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()


async def test_open_creates_the_folder_and_applies_every_migration_once(
    open_sqlite_store: OpenSqliteStore, db_path: Path
) -> None:
    assert not db_path.parent.exists()
    first = await open_sqlite_store()
    assert db_path.exists()
    assert first.applied_migrations == [m.version for m in MIGRATIONS]
    await first.close()

    again = await open_sqlite_store()
    assert again.applied_migrations == []
    assert _ledger(db_path) == [(m.version, m.name) for m in MIGRATIONS]


async def test_tables_and_search_index_exist(sqlite_store: SqliteStore, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {
        "users",
        "api_keys",
        "conversations",
        "messages",
        "messages_fts",
        "responses",
        "schema_migrations",
        "messages_client_msg_id",
    } <= names


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    broken = (
        Migration(1, "ok", "CREATE TABLE a (x);"),
        Migration(2, "broken", "CREATE TABLE b (x); CREATE TABLE a (x);"),
    )
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "a" in tables and "b" not in tables
    assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [(1,)]


def test_statements_split_around_trigger_bodies_and_comments() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x);
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL", "EXTRA"])
async def test_pragmas_are_what_settings_say(
    open_sqlite_store: OpenSqliteStore, synchronous: str
) -> None:
    store = await open_sqlite_store(synchronous=synchronous, busy_timeout_ms=1234)
    pragmas = await store.pragmas()
    for role in ("writer", "reader"):
        assert pragmas[role]["journal_mode"] == "WAL"
        assert pragmas[role]["synchronous"] == synchronous
        assert pragmas[role]["foreign_keys"] is True
        assert pragmas[role]["busy_timeout_ms"] == 1234
    assert pragmas["writer"]["query_only"] is False
    assert pragmas["reader"]["query_only"] is True


async def test_data_survives_close_and_reopen(open_store: OpenStore) -> None:
    store = await open_store()
    accepted = await send(store, ALICE, "remember this")
    await store.finish_message(
        accepted.answer_id,
        content=[{"type": "text", "text": "noted"}],
        status="complete",
        model="echo",
    )
    await store.close()

    reopened = await open_store()
    messages, has_more = await reopened.history(
        ALICE, accepted.conversation_id, before=None, limit=10
    )
    assert [m.id for m in messages] == [accepted.message_id, accepted.answer_id]
    assert [m.text for m in messages] == ["remember this", "noted"]
    assert [(m.status, m.model) for m in messages] == [("complete", None), ("complete", "echo")]
    assert not has_more
    hits = await reopened.search_messages(ALICE, "remember")
    assert [hit.message_id for hit in hits] == [accepted.message_id]


async def test_close_commits_writes_already_submitted(open_store: OpenStore) -> None:
    store = await open_store(group_commit_ms=50)
    pending = [asyncio.create_task(send(store, ALICE, f"message {i}")) for i in range(5)]
    await asyncio.sleep(0)  # the writes are queued, the group is still gathering
    await store.close()
    accepted = [task.result() for task in pending]
    reopened = await open_store()
    for item in accepted:
        messages, _ = await reopened.history(ALICE, item.conversation_id, before=None, limit=5)
        # The question and its reserved answer were one write: both committed, or neither.
        assert [m.id for m in messages] == [item.message_id, item.answer_id]
        assert (messages[1].role, messages[1].status) == ("assistant", "streaming")


async def test_writes_after_close_are_refused(store: AnyStore) -> None:
    await store.close()
    with pytest.raises(RuntimeError):
        await send(store, ALICE, "too late")


async def test_ping(store: AnyStore) -> None:
    await store.ping()
