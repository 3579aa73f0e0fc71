"""Responses on PostgreSQL: what each OpenAI Responses-API request asked, kept by its turn.

Functions of a connection inside a transaction, and `ResponsesMixin`, which gives
`PostgresStore` the matching `Store` methods. Saving one is `INSERT ... ON CONFLICT DO
NOTHING` (a concurrent retry waits for the first, then finds it stored). A delete locks the
conversation row first, as every write of `messages.py` does, so that it cannot find the
conversation empty while an accept adds to it.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from server.errors import NotFound
from server.store import ids
from server.store.base import ResponseRecord
from server.store.records import RESPONSE_COLUMNS, dumps, to_response


async def save_response(conn: asyncpg.Connection, record: ResponseRecord) -> ResponseRecord:
    """Store `record` unless its turn id is stored already; return what is stored."""
    await conn.execute(
        "INSERT INTO responses (turn_id, user_id, conversation_id, question_id, answer_id,"
        " request, created_at)"
        " SELECT $1, $2, id, $4, $5, $6, $7 FROM conversations WHERE id = $3 AND user_id = $2"
        " ON CONFLICT (turn_id) DO NOTHING",
        record.turn_id, record.user_id, record.conversation_id, record.question_id,
        record.answer_id, dumps(record.request), ids.utc_now(),
    )
    stored = await get_response(conn, record.user_id, record.turn_id)
    if stored is None:  # not the user's conversation (or the turn id is another user's)
        raise NotFound("conversation not found")
    return stored


async def get_response(conn: asyncpg.Connection, user_id: str, turn_id: str) -> ResponseRecord | None:
    row = await conn.fetchrow(
        f"SELECT {RESPONSE_COLUMNS} FROM responses WHERE turn_id = $1 AND user_id = $2",
        turn_id, user_id,
    )
    return None if row is None else to_response(row)


async def delete_response(conn: asyncpg.Connection, user_id: str, turn_id: str) -> bool:
    """Delete the record, its turn's messages (their generated search column goes with
    them) and run, and the conversation if that left it empty."""
    conversation_id = await conn.fetchval(
        "SELECT conversation_id FROM responses WHERE turn_id = $1 AND user_id = $2",
        turn_id, user_id,
    )
    if conversation_id is None:
        return False
    await conn.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conversation_id)
    deleted = await conn.fetchval(
        "DELETE FROM responses WHERE turn_id = $1 AND user_id = $2 RETURNING turn_id",
        turn_id, user_id,
    )
    if deleted is None:  # a concurrent delete committed first
        return False
    await conn.execute("DELETE FROM messages WHERE turn_id = $1 AND user_id = $2", turn_id, user_id)
    await conn.execute("DELETE FROM runs WHERE turn_id = $1 AND user_id = $2", turn_id, user_id)
    await conn.execute("DELETE FROM approvals WHERE turn_id = $1 AND user_id = $2", turn_id, user_id)
    await conn.execute(
        "DELETE FROM conversations WHERE id = $1"
        " AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = $1)",
        conversation_id,
    )
    return True


class ResponsesMixin:
    """The response methods of the `Store` protocol, for `PostgresStore` (which supplies
    `_read` and `_write`)."""

    _read: Any
    _write: Any

    async def save_response(self, record: ResponseRecord) -> ResponseRecord:
        return await self._write(save_response, record)

    async def get_response(self, user_id: str, turn_id: str) -> ResponseRecord | None:
        return await self._read(get_response, user_id, turn_id)

    async def delete_response(self, user_id: str, turn_id: str) -> bool:
        return await self._write(delete_response, user_id, turn_id)
