"""Between asyncpg records and the wire types. JSON columns, plain text and titles are made
exactly as the SQLite store makes them (`server.store.sqlite.rows`)."""

from __future__ import annotations

import asyncpg

from server.protocol import Conversation, Message
from server.store.sqlite.rows import dumps, loads, plain_text, title_from, tool_calls

__all__ = [
    "CONVERSATION_COLUMNS",
    "MESSAGE_COLUMNS",
    "dumps",
    "loads",
    "no_nul",
    "plain_text",
    "title_from",
    "to_conversation",
    "to_message",
]

MESSAGE_COLUMNS = (
    "id, conversation_id, turn_id, role, content, text, status, model, usage,"
    " client_msg_id, created_at"
)
CONVERSATION_COLUMNS = "id, title, model, template, variables, created_at, updated_at"


def no_nul(text: str) -> str:
    """PostgreSQL text cannot hold NUL characters (JSON columns escape them, plain text
    columns cannot): they become U+FFFD in the searchable text, titles and query words."""
    return text.replace("\x00", "\ufffd")


def to_message(row: asyncpg.Record) -> Message:
    content = loads(row["content"]) or []
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=content,
        status=row["status"],
        created_at=row["created_at"],
        # From the content, not the column: the column's copy has NUL replaced.
        text=plain_text(content),
        model=row["model"],
        client_msg_id=row["client_msg_id"],
        tool_calls=tool_calls(row["role"], content),
        turn_id=row["turn_id"],
        usage=loads(row["usage"]),
    )


def to_conversation(row: asyncpg.Record) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model=row["model"],
        template=row["template"],
        variables=loads(row["variables"]),
    )
