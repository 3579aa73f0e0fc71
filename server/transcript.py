"""A turn's answer as one ordered list of content blocks, and how it goes back to a model.

An assistant message stores its whole turn: text, the tool calls it made and their results,
in the order they happened — `[text, tool_use, tool_result, text, ...]`. Clients render it
as written. For the model it is split back into the alternating assistant / user messages
the APIs expect (`expand`), and a tool call left without a result (a turn cancelled while
its tool ran) gets a result saying so, because the APIs reject an unanswered call.
"""

from __future__ import annotations

from typing import Any

from server.models.base import ChatMessage

NOT_RUN = "error: this tool call did not run (the turn was stopped first)"


class Transcript:
    """The blocks of an answer being written. Text from consecutive deltas joins one block."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        self._text: list[str] = []

    def add_text(self, text: str) -> None:
        self._text.append(text)

    def add_block(self, block: dict[str, Any]) -> None:
        self._close_text()
        self.blocks.append(block)

    def content(self) -> list[dict[str, Any]]:
        """The blocks so far, with the text still being written as the last one."""
        if not self._text:
            return list(self.blocks)
        return [*self.blocks, {"type": "text", "text": "".join(self._text)}]

    def text(self) -> str:
        """Every text block joined: exactly the deltas published."""
        return "".join(b["text"] for b in self.content() if b.get("type") == "text")

    def __bool__(self) -> bool:
        return bool(self.blocks or self._text)

    def _close_text(self) -> None:
        if self._text:
            self.blocks.append({"type": "text", "text": "".join(self._text)})
            self._text = []


def expand(role: str, content: list[dict[str, Any]]) -> list[ChatMessage]:
    """One stored message as the model sees it: an assistant message holding tool results is
    split at each run of results into assistant / user / assistant ..."""
    if not content:
        return []
    if role != "assistant":
        return [ChatMessage(role=role, content=content)]
    messages: list[ChatMessage] = []
    current: list[dict[str, Any]] = []
    current_role = "assistant"
    for block in content:
        block_role = "user" if block.get("type") == "tool_result" else "assistant"
        if block_role != current_role and current:
            messages.append(ChatMessage(role=current_role, content=current))
            current = []
        current_role = block_role
        current.append(block)
    if current:
        messages.append(ChatMessage(role=current_role, content=current))
    return _answer_orphans(messages)


def _answer_orphans(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Give every tool_use a tool_result in the message that follows it."""
    fixed: list[ChatMessage] = []
    for index, message in enumerate(messages):
        fixed.append(message)
        if message.role != "assistant":
            continue
        calls = [b["id"] for b in message.content if b.get("type") == "tool_use"]
        following = messages[index + 1] if index + 1 < len(messages) else None
        answered = {b.get("tool_use_id") for b in following.content} if following else set()
        missing = [
            {"type": "tool_result", "tool_use_id": call, "content": NOT_RUN, "is_error": True}
            for call in calls
            if call not in answered
        ]
        if missing and following is not None and following.role == "user":
            messages[index + 1] = ChatMessage("user", following.content + missing)
        elif missing:
            fixed.append(ChatMessage("user", missing))
    return fixed
