"""Helpers shared by the store tests."""

from __future__ import annotations

import secrets

from server.store.base import Accepted, NewUserMessage
from server.store.sqlite.store import SqliteStore

ALICE = "u_alice"
BOB = "u_bob"


async def send(
    store: SqliteStore,
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
