"""Which history goes into a prompt: the newest messages that fit the model's budget.

The budget is the model's context window minus its output budget minus the system prompt.
Messages are taken newest first until the next one would not fit. A tool result is never
sent without the assistant message holding its tool call (the APIs reject that), so the
two are kept or dropped together. Token counts are estimated (about 4 characters a token,
rounded up); the estimate errs high so that the real count stays under the window.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from server.errors import TooLarge
from server.models.base import ChatMessage
from server.protocol import Message
from server.turns.transcript import expand

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
# Statuses whose text is worth showing the model: a cancelled or cut-off answer still says
# what the user saw; a failed one with no text is left out.
USABLE = {"complete", "cancelled", "incomplete", "streaming"}


class ContextWindow(msgspec.Struct):
    messages: list[ChatMessage]
    tokens: int  # estimated tokens of `messages`, never more than the budget
    dropped: int  # messages left out for the budget (after joining neighbours of one role)
    dropped_tokens: int = 0

    def require_some(self) -> None:
        """Refuse a prompt that lost every message: the newest one alone is too large."""
        if not self.messages and self.dropped:
            raise TooLarge("the message does not fit in the model's context window")


def estimate_tokens(value: Any) -> int:
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def build_context(history: list[Message], *, budget: int) -> ContextWindow:
    """Fit `history` (oldest first) into `budget` tokens, keeping the newest messages.

    The result is the longest run of newest messages that fits and starts with a user
    message (not a bare tool result); a tool call and its result are kept or dropped
    together. It is empty only when even the newest user message does not fit."""
    chat = prepare(history)
    groups = _group_tool_exchanges(chat)
    kept: list[list[ChatMessage]] = []
    used = 0
    for group in reversed(groups):
        cost = sum(message_tokens(m) for m in group)
        if used + cost > budget:
            break
        kept.append(group)
        used += cost
    messages = _drop_leading_non_user([m for group in reversed(kept) for m in group])
    tokens = sum(message_tokens(m) for m in messages)
    total = sum(message_tokens(m) for m in chat)
    return ContextWindow(
        messages=messages,
        tokens=tokens,
        dropped=len(chat) - len(messages),
        dropped_tokens=total - tokens,
    )


def prepare(history: list[Message]) -> list[ChatMessage]:
    """Stored messages as the model APIs want them: user and assistant alternating, every
    tool call answered by a result in the next message and every result answering one."""
    return _merge_same_role(_pair_tools(_merge_same_role(_to_chat(history))))


def _to_chat(history: list[Message]) -> list[ChatMessage]:
    chat: list[ChatMessage] = []
    for message in history:
        if message.status not in USABLE or not message.content:
            continue
        role = "user" if message.role in ("user", "tool") else "assistant"
        # An answer stores its whole turn, tool rounds included: split it back into the
        # alternating assistant / user messages the model APIs expect.
        chat += expand(role, list(message.content))
    return chat


def _merge_same_role(chat: list[ChatMessage]) -> list[ChatMessage]:
    """The APIs want user and assistant turns to alternate; join neighbours of one role.
    In a joined user message the tool results come first: Anthropic refuses results that
    follow text (a question sent after a turn that ended on calls the client answers)."""
    merged: list[ChatMessage] = []
    for message in chat:
        if merged and merged[-1].role == message.role:
            content = merged[-1].content + message.content
            if message.role == "user":
                content = sorted(content, key=lambda block: block.get("type") != "tool_result")
            merged[-1] = ChatMessage(message.role, content)
        else:
            merged.append(message)
    return merged


def _pair_tools(chat: list[ChatMessage]) -> list[ChatMessage]:
    """Drop tool calls with no result after them (a turn cancelled mid-call) and results
    with no call before them: the APIs refuse a prompt holding either."""
    cleaned: list[ChatMessage] = []
    for index, message in enumerate(chat):
        before = chat[index - 1] if index else None
        after = chat[index + 1] if index + 1 < len(chat) else None
        if message.role == "assistant":
            answered = _ids(after, "tool_result", "tool_use_id") if after and after.role == "user" else set()
            content = [b for b in message.content if b.get("type") != "tool_use" or b.get("id") in answered]
        else:
            asked = _ids(before, "tool_use", "id") if before and before.role == "assistant" else set()
            content = [
                b for b in message.content
                if b.get("type") != "tool_result" or b.get("tool_use_id") in asked
            ]
        if content:
            cleaned.append(ChatMessage(message.role, content))
    return cleaned


def _ids(message: ChatMessage, block_type: str, field: str) -> set[Any]:
    return {b.get(field) for b in message.content if b.get("type") == block_type}


def _group_tool_exchanges(chat: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Pair an assistant message that calls tools with the user message carrying results."""
    groups: list[list[ChatMessage]] = []
    for message in chat:
        if groups and _has(message, "tool_result") and _has(groups[-1][-1], "tool_use"):
            groups[-1].append(message)
        else:
            groups.append([message])
    return groups


def _drop_leading_non_user(messages: list[ChatMessage]) -> list[ChatMessage]:
    """A prompt must open with a user message that is not a bare tool result."""
    start = 0
    while start < len(messages) and (
        messages[start].role != "user" or _has(messages[start], "tool_result")
    ):
        start += 1
    return messages[start:]


def _has(message: ChatMessage, block_type: str) -> bool:
    return any(block.get("type") == block_type for block in message.content)


def message_tokens(message: ChatMessage) -> int:
    return MESSAGE_OVERHEAD_TOKENS + sum(estimate_tokens(block) for block in message.content)
