"""A scripted model provider for in-process tests: each model call plays the next round.

A round is a list of `server.models.base` events, or a callable `(ModelRequest) -> list`
to answer from what the model was sent. Every request is recorded, so a test can assert
what the model got back (tool_result blocks, the earlier exchange in a follow-up turn):

    provider = ScriptedProvider(tool_round(("search", {"query": "otter"})), answer("done"))
    app = create_app(config, providers={"echo": provider})
    ...
    assert tool_results(provider.requests[1])[0]["is_error"] is False

When the script runs out, `default` plays (by default a plain answer "ok").
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from server.models.base import Finish, ModelEvent, ModelRequest, TextDelta, ToolUse, Usage

Round = Sequence[ModelEvent] | Callable[[ModelRequest], Sequence[ModelEvent]]

_ids = itertools.count(1)


def answer(text: str = "ok") -> list[ModelEvent]:
    """A final answer: the text as one delta per word, then usage and `end_turn`."""
    words = [w for w in text.split(" ")]
    deltas = [TextDelta(w + (" " if i < len(words) - 1 else "")) for i, w in enumerate(words)]
    return [*deltas, Usage(5, len(deltas)), Finish("end_turn")]


def tool_round(*calls: tuple[str, dict[str, Any]], text: str = "") -> list[ModelEvent]:
    """A round in which the model (optionally says `text` and) asks for these tool calls."""
    events: list[ModelEvent] = [TextDelta(text)] if text else []
    events += [ToolUse(f"toolu_scripted_{next(_ids)}", name, args) for name, args in calls]
    return [*events, Usage(5, len(calls)), Finish("tool_use")]


class ScriptedProvider:
    """Plays scripted rounds, one per model call, and records every request it received."""

    def __init__(self, *rounds: Round, default: Round | None = None):
        self.rounds: deque[Round] = deque(rounds)
        self.default: Round = default if default is not None else answer()
        self.requests: list[ModelRequest] = []

    def script(self, *rounds: Round) -> ScriptedProvider:
        self.rounds.extend(rounds)
        return self

    async def stream(self, model: Any, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        current = self.rounds.popleft() if self.rounds else self.default
        events = current(request) if callable(current) else current
        for event in events:
            yield event


def blocks(request: ModelRequest, kind: str) -> list[dict[str, Any]]:
    """Every content block of `kind` in a request's messages, in order."""
    return [b for m in request.messages for b in m.content if b.get("type") == kind]


def tool_results(request: ModelRequest) -> list[dict[str, Any]]:
    return blocks(request, "tool_result")


def tool_uses(request: ModelRequest) -> list[dict[str, Any]]:
    return blocks(request, "tool_use")
