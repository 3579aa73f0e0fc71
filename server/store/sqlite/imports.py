"""Importing a conversation exported as JSON (see `server.exporting`): one write operation."""

from __future__ import annotations

import sqlite3
from typing import Any

from server.store import ids
from server.store.records import MESSAGE_ROLES, STATUSES, dumps, plain_text


def import_conversation(
    conn: sqlite3.Connection, user_id: str, conversation: dict[str, Any], messages: list[dict[str, Any]]
) -> str:
    """Insert a copy under new ids, owned by `user_id`. Times, titles and content are kept;
    client message ids are not (they are unique per user, and belong to the original)."""
    conversation_id = ids.new_id(ids.CONVERSATION)
    now = ids.utc_now()
    conn.execute(
        "INSERT INTO conversations (id, user_id, title, model, template, variables,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            conversation_id,
            user_id,
            str(conversation.get("title") or "Imported conversation"),
            conversation.get("model"),
            conversation.get("template"),
            dumps(conversation.get("variables")),
            conversation.get("created_at") or now,
            conversation.get("updated_at") or now,
        ),
    )
    for message in messages:
        role = message["role"] if message.get("role") in MESSAGE_ROLES else "user"
        status = message.get("status") if message.get("status") in STATUSES else "complete"
        content = message.get("content") or []
        conn.execute(
            "INSERT INTO messages (id, conversation_id, user_id, turn_id, role, content, text,"
            " status, model, usage, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ids.new_id(ids.MESSAGE),
                conversation_id,
                user_id,
                None,
                role,
                dumps(content),
                plain_text(content),
                "incomplete" if status == "streaming" else status,
                message.get("model"),
                dumps(message.get("usage")),
                message.get("created_at") or now,
            ),
        )
    return conversation_id
