"""Copying a SQLite database into PostgreSQL (`chinwag store copy`): every table, row for
row with its ids and its `seq` order, in one PostgreSQL transaction. The target must be
empty unless `force`, which empties it first; either way it ends as a copy of the source."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from server.errors import Conflict
from server.store.postgres.rows import no_nul

# In an order that satisfies the foreign keys; the same columns in both schemas.
TABLES: dict[str, tuple[str, ...]] = {
    "users": ("id", "name", "role", "password_hash", "created_at"),
    "api_keys": (
        "id", "user_id", "name", "key_hash", "prefix", "created_at", "last_used_at", "revoked_at",
    ),
    "logins": ("id", "user_id", "created_at", "expires_at", "ended_at", "address", "user_agent"),
    "conversations": (
        "seq", "id", "user_id", "title", "model", "template", "variables", "created_at",
        "updated_at",
    ),
    "messages": (
        "seq", "id", "conversation_id", "user_id", "turn_id", "role", "content", "text",
        "status", "model", "usage", "cost", "client_msg_id", "created_at",
    ),
    "responses": (
        "turn_id", "user_id", "conversation_id", "question_id", "answer_id", "request", "created_at",
    ),
    # An interrupted turn in the SQLite file continues on PostgreSQL.
    "runs": (
        "turn_id", "user_id", "conversation_id", "answer_id", "model", "template", "variables",
        "chars", "attempts", "created_at", "request",
    ),
    "audit_log": ("seq", "at", "actor_id", "action", "target", "details", "address"),
    "approvals": (
        "call_id", "user_id", "turn_id", "conversation_id", "name", "args", "created_at",
        "expires_at", "decision", "decided_at", "decided_by", "taken_at",
    ),
}
_WITH_SEQ = ("conversations", "messages", "audit_log")


def read_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read in one snapshot of the (migrated) SQLite file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one snapshot: a server writing meanwhile cannot tear it
        rows = {}
        for table, columns in TABLES.items():
            order = "seq" if "seq" in columns else "rowid"
            cursor = conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
            rows[table] = [_clean(row) for row in cursor]
        conn.execute("COMMIT")
        return rows
    finally:
        conn.close()


async def is_empty(conn: asyncpg.Connection) -> bool:
    for table in TABLES:
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
            return False
    return True


async def write_postgres(
    conn: asyncpg.Connection, rows: dict[str, list[tuple[Any, ...]]], *, force: bool
) -> dict[str, int]:
    """Insert `rows` into the (migrated) database; returns the count per table."""
    async with conn.transaction():
        if not await is_empty(conn):
            if not force:
                raise Conflict("the target database is not empty (--force replaces its data)")
            await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        for table, columns in TABLES.items():
            await conn.copy_records_to_table(table, records=rows[table], columns=list(columns))
        for table in _WITH_SEQ:
            # The next row gets the next number after the copied ones.
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'),"
                f" coalesce((SELECT max(seq) FROM {table}), 0) + 1, false)"
            )
    return {table: len(rows[table]) for table in TABLES}


def _clean(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(no_nul(value) if isinstance(value, str) else value for value in row)
