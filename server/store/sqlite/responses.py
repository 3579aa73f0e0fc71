"""Responses on SQLite: what each OpenAI Responses-API request asked, kept by its turn.

Plain functions of a sqlite3 connection like `writes.py` and `reads.py`, and
`ResponsesMixin`, which gives `SqliteStore` the matching `Store` methods. The single writer
makes each write one step: a delete removes the record and its turn together.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from server.errors import NotFound
from server.store import ids
from server.store.base import ResponseRecord
from server.store.records import RESPONSE_COLUMNS, dumps, to_response


def save_response(conn: sqlite3.Connection, record: ResponseRecord) -> ResponseRecord:
    """Store `record` unless its turn id is stored already; return what is stored."""
    conn.execute(
        "INSERT INTO responses (turn_id, user_id, conversation_id, question_id, answer_id,"
        " request, created_at)"
        " SELECT ?, ?, id, ?, ?, ?, ? FROM conversations WHERE id = ? AND user_id = ?"
        " ON CONFLICT (turn_id) DO NOTHING",
        (
            record.turn_id, record.user_id, record.question_id, record.answer_id,
            dumps(record.request), ids.utc_now(), record.conversation_id, record.user_id,
        ),
    )
    stored = get_response(conn, record.user_id, record.turn_id)
    if stored is None:  # not the user's conversation (or the turn id is another user's)
        raise NotFound("conversation not found")
    return stored


def get_response(conn: sqlite3.Connection, user_id: str, turn_id: str) -> ResponseRecord | None:
    row = conn.execute(
        f"SELECT {RESPONSE_COLUMNS} FROM responses WHERE turn_id = ? AND user_id = ?",
        (turn_id, user_id),
    ).fetchone()
    return None if row is None else to_response(row)


def delete_response(conn: sqlite3.Connection, user_id: str, turn_id: str) -> bool:
    """Delete the record, its turn's messages (the FTS triggers drop their search entries)
    and run, and the conversation if that left it empty."""
    row = conn.execute(
        "DELETE FROM responses WHERE turn_id = ? AND user_id = ? RETURNING conversation_id",
        (turn_id, user_id),
    ).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM messages WHERE turn_id = ? AND user_id = ?", (turn_id, user_id))
    conn.execute("DELETE FROM runs WHERE turn_id = ? AND user_id = ?", (turn_id, user_id))
    conn.execute("DELETE FROM approvals WHERE turn_id = ? AND user_id = ?", (turn_id, user_id))
    conn.execute(
        "DELETE FROM conversations WHERE id = ?"
        " AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = ?)",
        (row["conversation_id"], row["conversation_id"]),
    )
    return True


class ResponsesMixin:
    """The response methods of the `Store` protocol, for `SqliteStore` (which supplies
    `_read` and `_write`)."""

    _read: Any
    _write: Any

    async def save_response(self, record: ResponseRecord) -> ResponseRecord:
        return await self._write(save_response, record)

    async def get_response(self, user_id: str, turn_id: str) -> ResponseRecord | None:
        return await self._read(get_response, user_id, turn_id)

    async def delete_response(self, user_id: str, turn_id: str) -> bool:
        return await self._write(delete_response, user_id, turn_id)
