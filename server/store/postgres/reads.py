"""Queries on conversations and messages. Every query that takes a `user_id` filters on
it, so another user's ids are NotFound, as in the SQLite store."""

from __future__ import annotations

import asyncpg

from server.errors import NotFound
from server.protocol import Conversation, Message
from server.store.base import StreamingAnswer, UserRecord
from server.store.ids import stored_time
from server.store.postgres.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    no_nul,
    to_conversation,
    to_message,
)
from server.store.postgres.search import query_words
from server.store.records import to_streaming_answer


async def get_user(conn: asyncpg.Connection, user_id: str) -> UserRecord | None:
    row = await conn.fetchrow("SELECT id, name, role FROM users WHERE id = $1", user_id)
    return None if row is None else UserRecord(id=row["id"], name=row["name"], role=row["role"])


async def get_conversation(conn: asyncpg.Connection, user_id: str, conversation_id: str) -> Conversation:
    return to_conversation(await conversation_row(conn, user_id, conversation_id))


async def list_conversations(
    conn: asyncpg.Connection, user_id: str, *, before: str | None, limit: int, query: str | None
) -> tuple[list[Conversation], bool]:
    """A page of the user's conversations, newest `updated_at` first (ties: newest created)."""
    where: list[str] = ["user_id = $1"]
    params: list[object] = [user_id]
    if before is not None:
        cursor = await conversation_row(conn, user_id, before)
        params += [cursor["updated_at"], cursor["seq"]]
        where.append(f"(updated_at, seq) < (${len(params) - 1}, ${len(params)})")
    if query is not None and query.strip():
        where.append(_matching(query, params))
    params.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {' AND '.join(where)}"
        f" ORDER BY updated_at DESC, seq DESC LIMIT ${len(params)}",
        *params,
    )
    return [to_conversation(row) for row in rows[:limit]], len(rows) > limit


async def history(
    conn: asyncpg.Connection, user_id: str, conversation_id: str, *, before: str | None, limit: int
) -> tuple[list[Message], bool]:
    """The `limit` messages before `before` (or the newest), oldest first, and has_more."""
    await conversation_row(conn, user_id, conversation_id)
    bound = None
    if before is not None:
        bound = await conn.fetchval(
            "SELECT seq FROM messages WHERE id = $1 AND conversation_id = $2",
            before, conversation_id,
        )
        if bound is None:
            raise NotFound("message not found")
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1"
        " AND ($2::bigint IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3",
        conversation_id, bound, limit + 1,
    )
    page = [to_message(row) for row in rows[:limit]]
    page.reverse()
    return page, len(rows) > limit


async def context_messages(conn: asyncpg.Connection, user_id: str, conversation_id: str) -> list[Message]:
    await conversation_row(conn, user_id, conversation_id)
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq",
        conversation_id,
    )
    return [to_message(row) for row in rows]


async def get_message(conn: asyncpg.Connection, user_id: str, message_id: str) -> Message | None:
    row = await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND user_id = $2",
        message_id, user_id,
    )
    return None if row is None else to_message(row)


async def turn_exists(conn: asyncpg.Connection, user_id: str, turn_id: str) -> bool:
    row = await conn.fetchval(
        "SELECT 1 FROM messages WHERE turn_id = $1 AND user_id = $2 LIMIT 1", turn_id, user_id
    )
    return row is not None


# Walks the index `messages_streaming_by_age` (a test checks the plan).
STREAMING_ANSWERS = (
    "SELECT id, turn_id, user_id, conversation_id, created_at FROM messages"
    " WHERE status = 'streaming' AND role = 'assistant' AND created_at < $1"
    " ORDER BY created_at, seq LIMIT $2"
)


async def streaming_answers(
    conn: asyncpg.Connection, *, created_before: str, limit: int
) -> list[StreamingAnswer]:
    """Streaming answers created before `created_before`, oldest first."""
    rows = await conn.fetch(STREAMING_ANSWERS, stored_time(created_before), max(limit, 0))
    return [to_streaming_answer(row) for row in rows]


async def conversation_row(
    conn: asyncpg.Connection, user_id: str, conversation_id: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT seq, {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2",
        conversation_id, user_id,
    )
    if row is None:
        raise NotFound("conversation not found")
    return row


def _matching(query: str, params: list[object]) -> str:
    """A WHERE clause: the title contains `query`, or one of the user's messages matches it
    (`$1` is the user id)."""
    escaped = no_nul(query.strip()).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    params.append(f"%{escaped}%")
    clause = f"title ILIKE ${len(params)} ESCAPE '\\'"
    words = query_words(query)
    if words is not None:
        params += list(words)
        clause += (
            " OR id IN (SELECT m.conversation_id FROM messages m WHERE m.user_id = $1"
            f" AND m.search @@ chinwag_query(${len(params) - 1}, ${len(params)}))"
        )
    return f"({clause})"
