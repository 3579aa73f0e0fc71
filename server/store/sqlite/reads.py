"""Queries: plain functions of a sqlite3 connection, run on a reader inside one snapshot.

Every query that takes a `user_id` filters on it, so another user's ids are NotFound.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from server.errors import NotFound
from server.protocol import Conversation, Message
from server.store.base import SearchHit, StreamingAnswer, UserRecord
from server.store.ids import stored_bound, stored_time
from server.store.records import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    to_conversation,
    to_message,
    to_streaming_answer,
)
from server.store.sqlite.fts import match_expression

SNIPPET_TOKENS = 24


def get_user(conn: sqlite3.Connection, user_id: str) -> UserRecord | None:
    row = conn.execute("SELECT id, name, role FROM users WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else UserRecord(id=row["id"], name=row["name"], role=row["role"])


def get_conversation(conn: sqlite3.Connection, user_id: str, conversation_id: str) -> Conversation:
    return to_conversation(_conversation_row(conn, user_id, conversation_id))


def list_conversations(
    conn: sqlite3.Connection, user_id: str, *, before: str | None, limit: int, query: str | None
) -> tuple[list[Conversation], bool]:
    """A page of the user's conversations, newest `updated_at` first (ties: newest created)."""
    where, params = ["user_id = ?"], [user_id]
    if before is not None:
        cursor = _conversation_row(conn, user_id, before)
        where.append("(updated_at, seq) < (?, ?)")
        params += [cursor["updated_at"], cursor["seq"]]
    if query is not None and query.strip():
        where.append(_matching(query, params, user_id))
    rows = conn.execute(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {' AND '.join(where)}"
        " ORDER BY updated_at DESC, seq DESC LIMIT ?",
        (*params, limit + 1),
    ).fetchall()
    return [to_conversation(row) for row in rows[:limit]], len(rows) > limit


def history(
    conn: sqlite3.Connection, user_id: str, conversation_id: str, *, before: str | None, limit: int
) -> tuple[list[Message], bool]:
    """The `limit` messages before `before` (or the newest), oldest first, and has_more."""
    _conversation_row(conn, user_id, conversation_id)
    bound = None
    if before is not None:
        row = conn.execute(
            "SELECT seq FROM messages WHERE id = ? AND conversation_id = ?",
            (before, conversation_id),
        ).fetchone()
        if row is None:
            raise NotFound("message not found")
        bound = row["seq"]
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?"
        " AND seq < coalesce(?, 9223372036854775807) ORDER BY seq DESC LIMIT ?",
        (conversation_id, bound, limit + 1),
    ).fetchall()
    page = [to_message(row) for row in rows[:limit]]
    page.reverse()
    return page, len(rows) > limit


def context_messages(conn: sqlite3.Connection, user_id: str, conversation_id: str) -> list[Message]:
    _conversation_row(conn, user_id, conversation_id)
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
        (conversation_id,),
    ).fetchall()
    return [to_message(row) for row in rows]


def get_message(conn: sqlite3.Connection, user_id: str, message_id: str) -> Message | None:
    row = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ? AND user_id = ?",
        (message_id, user_id),
    ).fetchone()
    return None if row is None else to_message(row)


def turn_exists(conn: sqlite3.Connection, user_id: str, turn_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM messages WHERE turn_id = ? AND user_id = ? LIMIT 1", (turn_id, user_id)
    ).fetchone()
    return row is not None


def search_messages(
    conn: sqlite3.Connection,
    user_id: str,
    query: str,
    *,
    conversation_id: str | None,
    role: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    marks: tuple[str, str],
) -> list[SearchHit]:
    """The user's messages matching `query`, best bm25 first (ties: newest first)."""
    expression = match_expression(query)
    if expression is None or limit < 1:
        return []
    where, params = ["messages_fts MATCH ?", "m.user_id = ?"], [expression, user_id]
    if conversation_id is not None:
        _conversation_row(conn, user_id, conversation_id)
        where.append("m.conversation_id = ?")
        params.append(conversation_id)
    for clause, value in (
        ("m.role = ?", role),
        ("m.created_at >= ?", stored_bound(since)),
        ("m.created_at < ?", stored_bound(until)),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    rows = conn.execute(
        "SELECT m.id, m.conversation_id, c.title, m.role, m.created_at,"
        f" snippet(messages_fts, 0, ?, ?, '…', {SNIPPET_TOKENS}) AS snippet,"
        " bm25(messages_fts) AS rank"
        " FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid"
        " JOIN conversations c ON c.id = m.conversation_id"
        f" WHERE {' AND '.join(where)} ORDER BY rank, m.seq DESC LIMIT ?",
        (*marks, *params, limit),
    ).fetchall()
    return [_hit(row) for row in rows]


# Walks the index `messages_streaming_by_age` (a test checks the plan).
STREAMING_ANSWERS = (
    "SELECT id, turn_id, user_id, conversation_id, created_at FROM messages"
    " WHERE status = 'streaming' AND role = 'assistant' AND created_at < ?"
    " ORDER BY created_at, seq LIMIT ?"
)


def streaming_answers(
    conn: sqlite3.Connection, *, created_before: str, limit: int
) -> list[StreamingAnswer]:
    """Streaming answers created before `created_before`, oldest first."""
    bounds = (stored_time(created_before), max(limit, 0))
    rows = conn.execute(STREAMING_ANSWERS, bounds).fetchall()
    return [to_streaming_answer(row) for row in rows]


# ----------------------------------------------------------------------------- helpers


def _conversation_row(conn: sqlite3.Connection, user_id: str, conversation_id: str) -> sqlite3.Row:
    row = conn.execute(
        f"SELECT seq, {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?",
        (conversation_id, user_id),
    ).fetchone()
    if row is None:
        raise NotFound("conversation not found")
    return row


def _matching(query: str, params: list[Any], user_id: str) -> str:
    """A WHERE clause: the title contains `query`, or one of the messages matches it."""
    escaped = query.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    params.append(f"%{escaped}%")
    clause = "title LIKE ? ESCAPE '\\'"
    expression = match_expression(query)
    if expression is not None:
        clause += (
            " OR id IN (SELECT m.conversation_id FROM messages_fts"
            " JOIN messages m ON m.seq = messages_fts.rowid"
            " WHERE messages_fts MATCH ? AND m.user_id = ?)"
        )
        params += [expression, user_id]
    return f"({clause})"






def _hit(row: sqlite3.Row) -> SearchHit:
    return SearchHit(
        message_id=row["id"],
        conversation_id=row["conversation_id"],
        conversation_title=row["title"],
        role=row["role"],
        snippet=row["snippet"],
        created_at=row["created_at"],
        score=-float(row["rank"]),
    )
