"""Helpers shared by the store tests."""

from __future__ import annotations

import secrets
import sqlite3

import asyncpg

from server.store.base import Accepted, NewUserMessage, Store
from server.store.postgres.store import PostgresStore
from server.store.sqlite.store import SqliteStore

ALICE = "u_alice"
BOB = "u_bob"


async def send(
    store: Store,
    user_id: str,
    text: str,
    *,
    conversation_id: str | None = None,
    client_msg_id: str | None = None,
) -> Accepted:
    """Accept a user message with a fresh client_msg_id unless one is given."""
    return await store.accept_user_message(
        NewUserMessage(
            user_id=user_id,
            client_msg_id=client_msg_id or secrets.token_hex(8),
            text=text,
            conversation_id=conversation_id,
        )
    )


async def count_messages(
    store: Store,
    *,
    user_id: str | None = None,
    turn_id: str | None = None,
    client_msg_id: str | None = None,
) -> int:
    """Message rows in the database (of one user, turn or client_msg_id when given), read
    straight from the tables, past the store's own queries."""
    params = (user_id, user_id, turn_id, turn_id, client_msg_id, client_msg_id)
    where = (
        "({0} IS NULL OR user_id = {0}) AND ({1} IS NULL OR turn_id = {1})"
        " AND ({2} IS NULL OR client_msg_id = {2})"
    )
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            sql = "SELECT count(*) FROM messages WHERE " + where.format("?", "?", "?")
            return int(conn.execute(sql, params).fetchone()[0])
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(store.url)
    try:
        sql = "SELECT count(*) FROM messages WHERE " + where.format("$1::text", "$2::text", "$3::text")
        return int(await conn.fetchval(sql, user_id, turn_id, client_msg_id))
    finally:
        await conn.close()
