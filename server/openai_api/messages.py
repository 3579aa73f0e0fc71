"""An OpenAI Chat Completions request's `messages`, as chinwag's context.

The client keeps the conversation: its messages are the turn's whole context, in chinwag's
block format (`server.models.base`). `system` and `developer` messages become the turn's
instructions, after the template's own system prompt. The last message is the new one,
the turn's question: the user's text, or the results of the tool calls the client ran.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from server.errors import BadRequest
from server.models.base import ChatMessage

# Text content parts: Chat Completions' `text`, the Responses API's `input_text` and
# `output_text` (an earlier answer sent back as input).
TEXT_PARTS = {"text", "input_text", "output_text"}


class Question(msgspec.Struct, kw_only=True):
    """What a request asks: the context before the last message, that message's blocks
    and text (what is stored), and the client's instructions."""

    context: list[ChatMessage]
    text: str
    instructions: str | None

    @property
    def blocks(self) -> list[dict[str, Any]]:
        """The new message's blocks: the user's text, tool results first (as stored)."""
        return sorted(self.context[-1].content, key=lambda block: block.get("type") != "tool_result")


def question_from(messages: Any, *, earlier_calls: set[str] | None = None) -> Question:
    """`earlier_calls`: the ids of calls made before these messages (a stored conversation
    continued): a tool result must answer one of them or a call among the messages, since
    the model APIs refuse a result of no call."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array", details={"path": "messages"})
    instructions: list[str] = []
    turns: list[ChatMessage] = []
    calls = set(earlier_calls or ())
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object", details={"path": where})
        role = message.get("role")
        if role in ("system", "developer"):
            instructions.append(_text(message.get("content"), where))
        elif role == "user":
            _append(turns, "user", [{"type": "text", "text": _text(message.get("content"), where)}])
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
            calls.update(b["id"] for b in blocks if b["type"] == "tool_use")
            _append(turns, "assistant", blocks)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise BadRequest("a tool message needs tool_call_id", details={"path": f"{where}.tool_call_id"})
            if call_id not in calls:
                raise BadRequest(
                    f"tool_call_id {call_id!r} answers no tool call made before it", details={"path": f"{where}.tool_call_id"},
                )
            result = {"type": "tool_result", "tool_use_id": call_id, "content": _text(message.get("content"), where)}
            _append(turns, "user", [result])
        else:
            raise BadRequest(f"unknown role {role!r}", details={"path": f"{where}.role"})
    if not turns or turns[-1].role != "user":
        raise BadRequest("the last message must be from the user or a tool", details={"path": "messages"})
    last = turns[-1]
    text = "\n\n".join(
        b["text"] if b["type"] == "text" else f"[tool result {b['tool_use_id']}] {b['content']}"
        for b in last.content
    )
    if not text.strip():
        raise BadRequest("the last message is empty", details={"path": "messages"})
    return Question(context=turns, text=text, instructions="\n\n".join(instructions) or None)


def _append(turns: list[ChatMessage], role: str, blocks: list[dict[str, Any]]) -> None:
    """Messages of one role in a row join into one: every provider wants them alternating."""
    if turns and turns[-1].role == role:
        turns[-1] = ChatMessage(role, [*turns[-1].content, *blocks])
    else:
        turns.append(ChatMessage(role, blocks))


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.get("content"):
        blocks.append({"type": "text", "text": _text(message["content"], where)})
    for number, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise BadRequest("a tool call needs an id and a function", details={"path": f"{where}.tool_calls[{number}]"})
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            raise BadRequest("tool call arguments are not JSON", details={"path": f"{where}.tool_calls[{number}].function.arguments"}) from None
        blocks.append({"type": "tool_use", "id": call["id"], "name": function.get("name", ""), "input": arguments})
    if not blocks:
        raise BadRequest("an assistant message needs content or tool_calls", details={"path": where})
    return blocks


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or an array of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        parts = [p.get("text") for p in content if p.get("type") in TEXT_PARTS]
        if len(parts) == len(content) and all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
        raise BadRequest("only text content parts are supported", details={"path": f"{where}.content"})
    raise BadRequest("content must be a string or an array of text parts", details={"path": f"{where}.content"})
