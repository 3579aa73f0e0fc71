"""Between stored rows and the wire types, the same for every backend: JSON columns, plain
text, titles, and a row (anything indexable by column name: `sqlite3.Row`,
`asyncpg.Record`) as a `Message` or a `Conversation`."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from server.protocol import Conversation, Message
from server.store.base import ApprovalRecord, ResponseRecord, RunRecord, StreamingAnswer

# What a stored message and conversation may hold, whatever the backend.
STATUSES = frozenset({"complete", "streaming", "cancelled", "incomplete", "failed"})
MESSAGE_ROLES = frozenset({"user", "assistant", "tool"})
CONVERSATION_FIELDS = frozenset({"title", "model", "template", "variables"})  # may be changed

TITLE_CHARS = 60
UNTITLED = "New conversation"

_encoder = msgspec.json.Encoder()
_WHITESPACE = re.compile(r"\s+")

MESSAGE_COLUMNS = (
    "id, conversation_id, turn_id, role, content, text, status, model, usage,"
    " client_msg_id, created_at"
)
CONVERSATION_COLUMNS = "id, title, model, template, variables, created_at, updated_at"
APPROVAL_COLUMNS = (
    "call_id, user_id, turn_id, conversation_id, name, args, created_at, expires_at,"
    " decision, decided_at, decided_by, taken_at"
)
RESPONSE_COLUMNS = (
    "turn_id, user_id, conversation_id, question_id, answer_id, request, created_at"
)


def dumps(value: Any) -> str | None:
    """A JSON column value; None stays SQL NULL."""
    return None if value is None else _encoder.encode(value).decode()


def loads(text: str | None) -> Any:
    return None if text is None else msgspec.json.decode(text)


def plain_text(content: list[dict[str, Any]]) -> str:
    """The text blocks of `content`, joined: what a reader sees and what search indexes."""
    parts = [
        b["text"] for b in content if b.get("type") == "text" and isinstance(b.get("text"), str)
    ]
    return "".join(parts)


def tool_calls(role: str, content: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The tool_use blocks of an assistant message, or None when it has none."""
    if role != "assistant":
        return None
    calls = [block for block in content if block.get("type") == "tool_use"]
    return calls or None


def title_from(text: str) -> str:
    """A new conversation's title: its first message on one line, cut near TITLE_CHARS."""
    line = _WHITESPACE.sub(" ", text).strip()
    if not line:
        return UNTITLED
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[: TITLE_CHARS - 1]
    # Prefer to end at a word boundary, unless that throws most of the title away.
    space = cut.rfind(" ")
    if space >= TITLE_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def to_message(row: Any, *, text_from_content: bool = False) -> Message:
    """`text_from_content`: for a backend whose text column may differ from the content's
    text (PostgreSQL replaces NUL there)."""
    content = loads(row["content"]) or []
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=content,
        status=row["status"],
        created_at=row["created_at"],
        text=plain_text(content) if text_from_content else row["text"],
        model=row["model"],
        client_msg_id=row["client_msg_id"],
        tool_calls=tool_calls(row["role"], content),
        turn_id=row["turn_id"],
        usage=loads(row["usage"]),
    )


def to_conversation(row: Any) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model=row["model"],
        template=row["template"],
        variables=loads(row["variables"]),
    )


def with_earlier_usage(
    before: Any, usage: dict[str, int] | None, cost: float | None
) -> tuple[dict[str, int] | None, float | None]:
    """A regenerated answer still holds what its earlier versions used (`before`: the row's
    `usage` and `cost`, or None): the new figures add to it, so the day's token count
    (quotas) keeps every version."""
    if before is not None and usage is not None and before["usage"] is not None:
        earlier = loads(before["usage"]) or {}
        usage = {k: int(earlier.get(k, 0)) + int(usage.get(k, 0)) for k in {*earlier, *usage}}
    if before is not None and cost is not None and before["cost"] is not None:
        cost += before["cost"]
    return usage, cost


RUN_FIELDS = (
    "turn_id", "user_id", "conversation_id", "answer_id", "model", "template", "variables",
    "chars", "attempts", "created_at", "request",
)
RUN_COLUMNS = ", ".join(RUN_FIELDS)
# A run whose answer is still streaming under the run's turn: one that can be continued (a
# regenerate gives the answer a new turn id, and the old turn's run is then stale).
RUN_IS_LIVE = (
    "EXISTS (SELECT 1 FROM messages m WHERE m.id = runs.answer_id AND m.turn_id = runs.turn_id"
    " AND m.status = 'streaming' AND m.role = 'assistant')"
)


def to_streaming_answer(row: Any) -> StreamingAnswer:
    return StreamingAnswer(
        message_id=row["id"],
        turn_id=row["turn_id"],
        user_id=row["user_id"],
        conversation_id=row["conversation_id"],
        created_at=row["created_at"],
    )


def to_run(row: Any) -> RunRecord:
    return RunRecord(
        turn_id=row["turn_id"],
        user_id=row["user_id"],
        conversation_id=row["conversation_id"],
        answer_id=row["answer_id"],
        model=row["model"],
        template=row["template"],
        variables=loads(row["variables"]),
        chars=row["chars"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        request=loads(row["request"]),
    )


def to_approval(row: Any) -> ApprovalRecord:
    return ApprovalRecord(
        call_id=row["call_id"],
        user_id=row["user_id"],
        turn_id=row["turn_id"],
        conversation_id=row["conversation_id"],
        name=row["name"],
        args=loads(row["args"]) or {},
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decision=row["decision"],
        decided_at=row["decided_at"],
        decided_by=row["decided_by"],
        taken_at=row["taken_at"],
    )


def to_response(row: Any) -> ResponseRecord:
    return ResponseRecord(
        turn_id=row["turn_id"],
        user_id=row["user_id"],
        conversation_id=row["conversation_id"],
        question_id=row["question_id"],
        answer_id=row["answer_id"],
        created_at=row["created_at"],
        request=loads(row["request"]),
    )
