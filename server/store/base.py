"""The `Store` protocol: everything chinwag keeps, behind one interface.

Every method that reads or changes a conversation takes the calling `user_id` and scopes
its query to it: another user's ids are `NotFound`, never `Forbidden`, so that an id reveals
nothing. SQLite (`sqlite.py`) is the embedded backend; a PostgreSQL backend would implement
the same protocol.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from server.protocol import Conversation, Message


class UserRecord(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: str  # "admin" | "user" | "bot"


class Accepted(msgspec.Struct, kw_only=True):
    """What `accept_user_message` committed, or found already committed for that id."""

    conversation_id: str
    message_id: str
    turn_id: str
    # False when (user, client_msg_id) was seen before: same ids, and no new turn.
    created: bool
    conversation_created: bool = False


class NewUserMessage(msgspec.Struct, kw_only=True):
    user_id: str
    client_msg_id: str
    text: str
    conversation_id: str | None = None  # None: open a new conversation
    # Settings of a new conversation (ignored when continuing one).
    model: str | None = None
    template: str | None = None
    variables: dict[str, str] | None = None


class SearchHit(msgspec.Struct, kw_only=True):
    """One message found by `search_messages`, best first."""

    message_id: str
    conversation_id: str
    conversation_title: str
    role: str
    # A short extract around the matches, each match wrapped in the requested marks
    # (default `**` … `**`), with "…" where the text was cut.
    snippet: str
    created_at: str
    # Relevance (bm25, negated): higher is better; only comparable within one search.
    score: float


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema and start the writer."""

    async def close(self) -> None:
        """Flush queued writes and close every connection."""

    async def recover(self) -> int:
        """At start-up: mark messages left `streaming` by a crash `incomplete`. Returns count."""

    async def ping(self) -> None:
        """Raise if the store cannot answer a trivial query (readiness)."""

    async def ensure_user(self, user: UserRecord) -> None:
        """Insert the user, or update the name and role of the one with that id."""

    async def get_user(self, user_id: str) -> UserRecord | None:
        """The user with that id, or None."""

    async def accept_user_message(self, new: NewUserMessage) -> Accepted:
        """Commit a user message once per (user, client_msg_id), creating its conversation
        when `conversation_id` is None. Committed before it returns (the `ack` depends on it).
        Raises NotFound for a conversation the user does not own."""

    async def get_conversation(self, user_id: str, conversation_id: str) -> Conversation: ...

    async def list_conversations(
        self, user_id: str, *, before: str | None, limit: int, query: str | None
    ) -> tuple[list[Conversation], bool]:
        """Newest-updated first; `before` is a conversation id from a previous page."""

    async def update_conversation(
        self, user_id: str, conversation_id: str, changes: dict[str, Any]
    ) -> Conversation:
        """`changes` holds any of title, model, template, variables."""

    async def delete_conversation(self, user_id: str, conversation_id: str) -> None: ...

    async def history(
        self, user_id: str, conversation_id: str, *, before: str | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The `limit` messages before `before` (or the newest), oldest first; has_more."""

    async def context_messages(self, user_id: str, conversation_id: str) -> list[Message]:
        """Every message of the conversation, oldest first, for building a prompt."""

    async def start_assistant_message(
        self, user_id: str, conversation_id: str, turn_id: str, model: str
    ) -> Message:
        """Insert an empty assistant message with status `streaming`."""

    async def checkpoint_message(self, message_id: str, content: list[dict[str, Any]]) -> None:
        """Save a streaming message's partial content (about once a second, never per token)."""

    async def finish_message(
        self,
        message_id: str,
        *,
        content: list[dict[str, Any]],
        status: str,
        model: str | None = None,
        usage: dict[str, int] | None = None,
        cost: float | None = None,
    ) -> Message:
        """Final content and status of an assistant (or tool) message."""

    async def add_message(
        self,
        user_id: str,
        conversation_id: str,
        *,
        role: str,
        content: list[dict[str, Any]],
        turn_id: str | None = None,
        status: str = "complete",
    ) -> Message:
        """Append a complete message (tool results inside a turn)."""

    async def turn_exists(self, user_id: str, turn_id: str) -> bool:
        """Whether this user has a message of that turn (cancelling an ended turn is fine)."""

    async def search_messages(
        self,
        user_id: str,
        query: str,
        *,
        conversation_id: str | None = None,
        role: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 20,
        marks: tuple[str, str] = ("**", "**"),
    ) -> list[SearchHit]:
        """Full-text search over this user's messages, best match first.

        `query` is plain words (any text is safe: it is never parsed as query syntax); a word
        ending in `*` matches as a prefix. `since` / `until` are RFC 3339 times bounding
        `created_at` (since inclusive, until exclusive). An empty query finds nothing.
        Raises NotFound for a `conversation_id` the user does not own."""

    async def import_conversation(
        self, user_id: str, conversation: dict[str, Any], messages: list[dict[str, Any]]
    ) -> str:
        """Store a copy of an exported conversation for `user_id`; returns its new id."""
