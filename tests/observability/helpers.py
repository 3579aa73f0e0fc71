"""Helpers for the observability tests: a model provider that plays a script, and a reader
of the `/metrics` text exposition."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from server.models.base import (
    Finish,
    ModelEvent,
    ModelRequest,
    ProviderError,
    TextDelta,
    ToolUse,
    Usage,
)
from tests.support.inproc import Socket

# A round is what one model call does: events to stream, an error to raise before any
# event, or HANG (one delta, then wait until cancelled).
HANG = "hang"
Round = Sequence[ModelEvent] | ProviderError | str


def answer(text: str, *, usage: tuple[int, int]) -> list[ModelEvent]:
    words = text.split(" ")
    deltas = [TextDelta(w + (" " if i < len(words) - 1 else "")) for i, w in enumerate(words)]
    return [*deltas, Usage(*usage), Finish("end_turn")]


def tools(*calls: tuple[str, dict[str, Any]], usage: tuple[int, int]) -> list[ModelEvent]:
    uses = [ToolUse(f"toolu_{i}", name, args) for i, (name, args) in enumerate(calls)]
    return [*uses, Usage(*usage), Finish("tool_use")]


class ScriptProvider:
    """Plays one round per model call, whichever model is called; records who was called."""

    def __init__(self, *rounds: Round):
        self.rounds: deque[Round] = deque(rounds)
        self.calls: list[str] = []
        self.requests: list[ModelRequest] = []

    def script(self, *rounds: Round) -> None:
        self.rounds.extend(rounds)

    async def stream(self, model: Any, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.calls.append(model.model_id)
        self.requests.append(request)
        current = self.rounds.popleft()
        if isinstance(current, ProviderError):
            raise current
        if current == HANG:
            yield TextDelta("partial ")
            await asyncio.Event().wait()  # until the turn is cancelled
            return
        for event in current:
            yield event


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of `/metrics`, keyed by (sample name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled sample never incremented (not exported)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def family(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample called `name` that is not zero, by labels."""
    return {labels: v for (n, labels), v in samples.items() if n == name and v}


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def cancel_turn(socket: Socket, ack: dict[str, Any]) -> dict[str, Any]:
    """Wait for the turn's first delta, cancel it, and return its `turn.completed`."""
    turn_id = ack["turn_id"]
    while (frame := socket.recv())["type"] != "delta":
        pass
    socket.send({"type": "cancel", "turn_id": turn_id, "ref": "cancel"})
    replied, completed = False, None
    while not (replied and completed):
        frame = socket.recv()
        if frame.get("ref") == "cancel":
            assert frame["type"] == "ok", frame
            replied = True
        elif frame["type"] == "turn.completed" and frame["turn_id"] == turn_id:
            completed = frame
    return completed
