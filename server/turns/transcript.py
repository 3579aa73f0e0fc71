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

    def preload(self, blocks: list[dict[str, Any]]) -> None:
        """Start from an answer written before (a turn continued after an interruption):
        new text joins its last text block, so the stored answer reads as one."""
        self.blocks = [dict(b) for b in blocks]
        self._text = []
        if self.blocks and self.blocks[-1].get("type") == "text":
            self._text = [self.blocks.pop()["text"]]

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


INTERRUPTED_CALL = (
    "this call was cut off by an interruption (a restart or a node's failure) and was not run"
    " again: the tool is not declared idempotent, so it may or may not have taken effect"
)


def interrupted_result(call: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call["id"], "content": f"error: {INTERRUPTED_CALL}", "is_error": True}


def dangling_calls(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls of `content` without a result: calls an interruption cut off."""
    answered = {b.get("tool_use_id") for b in content if b.get("type") == "tool_result"}
    return [b for b in content if b.get("type") == "tool_use" and b.get("id") not in answered]


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
