"""Between asyncpg records and the wire types: the backend-neutral mapping of
`server.store.records`, with PostgreSQL's one difference (no NUL in text columns)."""

from __future__ import annotations

import asyncpg

from server.protocol import Message
from server.store import records
from server.store.records import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    dumps,
    loads,
    plain_text,
    title_from,
    to_conversation,
)

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



def no_nul(text: str) -> str:
    """PostgreSQL text cannot hold NUL characters (JSON columns escape them, plain text
    columns cannot): they become U+FFFD in the searchable text, titles and query words."""
    return text.replace("\x00", "\ufffd")


def to_message(row: asyncpg.Record) -> Message:
    # The text from the content, not the column: the column's copy has NUL replaced.
    return records.to_message(row, text_from_content=True)
