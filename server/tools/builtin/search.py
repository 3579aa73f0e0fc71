"""`search`: full-text search over the calling user's own messages."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from server.store.base import SearchHit
from server.tools import ToolContext, tool

Limit = Annotated[int, msgspec.Meta(ge=1, le=50)]


@tool(idempotent=True)
async def search(
    ctx: ToolContext,
    query: str,
    limit: Limit = 10,
    conversation_id: str | None = None,
    role: Literal["user", "assistant"] | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[SearchHit]:
    """Search this user's past messages by words, best matches first.

    Args:
        query: the words to look for; a word ending in * matches any word it starts.
        limit: the most hits to return.
        conversation_id: only search this conversation.
        role: only messages by "user" or by "assistant".
        since: only messages at or after this RFC 3339 time.
        until: only messages before this RFC 3339 time.
    """
    return await ctx.data.search(
        query,
        conversation_id=conversation_id,
        role=role,
        since=since,
        until=until,
        limit=limit,
        marks=("<mark>", "</mark>"),
    )
