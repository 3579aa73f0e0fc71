"""A turn's answer as one ordered list of content blocks, and how it goes back to a model.

An assistant message stores its whole turn: text, the tool calls it made and their results,
in the order they happened — `[text, tool_use, tool_result, text, ...]`. Clients render it
as written. For the model it is split back into the alternating assistant / user messages
the APIs expect (`expand`); the context builder then drops any call left without a result
(a turn cancelled while its tool ran), because the APIs reject an unanswered call.
"""

from __future__ import annotations

from typing import Any

from server.models.base import ChatMessage


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
    return messages
