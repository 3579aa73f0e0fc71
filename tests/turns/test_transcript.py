"""`server.turns.transcript`: a turn's answer as ordered blocks, and split back for a model."""

from __future__ import annotations

from typing import Any

import pytest

from server.models.base import ChatMessage
from server.protocol import Message
from server.store.base import UserRecord
from server.turns.history_budget import build_context
from server.turns.state import RunningTurn, TurnRequest
from server.turns.transcript import Transcript, expand

USE_1 = {"type": "tool_use", "id": "c1", "name": "a", "input": {}}
USE_2 = {"type": "tool_use", "id": "c2", "name": "b", "input": {"x": 1}}
RESULT_1 = {"type": "tool_result", "tool_use_id": "c1", "content": "one", "is_error": False}
RESULT_2 = {"type": "tool_result", "tool_use_id": "c2", "content": "error: no", "is_error": True}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def test_deltas_join_into_one_text_block_between_tool_blocks() -> None:
    transcript = Transcript()
    assert not transcript
    for piece in ["Let ", "me ", "look."]:
        transcript.add_text(piece)
    assert transcript.content() == [text("Let me look.")]  # the block still being written
    transcript.add_block(USE_1)
    transcript.add_block(RESULT_1)
    transcript.add_text("Done")
    transcript.add_text(".")
    assert transcript.content() == [text("Let me look."), USE_1, RESULT_1, text("Done.")]
    assert transcript.text() == "Let me look.Done."
    assert transcript


def test_expand_splits_an_answer_at_its_tool_results() -> None:
    content = [text("Checking. "), USE_1, USE_2, RESULT_1, RESULT_2, text("Found it.")]
    assert expand("assistant", content) == [
        ChatMessage("assistant", [text("Checking. "), USE_1, USE_2]),
        ChatMessage("user", [RESULT_1, RESULT_2]),
        ChatMessage("assistant", [text("Found it.")]),
    ]


def test_expand_over_two_rounds() -> None:
    content = [USE_1, RESULT_1, text("and "), USE_2, RESULT_2, text("end")]
    assert [(m.role, [b["type"] for b in m.content]) for m in expand("assistant", content)] == [
        ("assistant", ["tool_use"]),
        ("user", ["tool_result"]),
        ("assistant", ["text", "tool_use"]),
        ("user", ["tool_result"]),
        ("assistant", ["text"]),
    ]


def test_expand_only_splits_a_call_left_without_a_result() -> None:
    # A turn cancelled while its tool ran: the stored answer ends with the call. Its result
    # may still follow in another stored message, so expand leaves pairing to the context.
    assert expand("assistant", [text("Working. "), USE_1]) == [
        ChatMessage("assistant", [text("Working. "), USE_1]),
    ]


def test_the_prompt_after_a_turn_cancelled_mid_call_has_no_unanswered_call() -> None:
    def stored(role: str, content: list[dict]) -> Message:
        return Message(id=role, conversation_id="c", role=role, content=content, status="complete",
                       created_at="2026-01-01T00:00:00Z")

    history = [
        stored("user", [text("look it up")]),
        stored("assistant", [text("Working. "), USE_1, USE_2, RESULT_1]),
        stored("user", [text("never mind")]),
    ]
    messages = build_context(history, budget=10_000).messages
    calls = [b["id"] for m in messages for b in m.content if b.get("type") == "tool_use"]
    results = [b["tool_use_id"] for m in messages for b in m.content if b.get("type") == "tool_result"]
    assert calls == results == ["c1"]
    assert [m.role for m in messages] == ["user", "assistant", "user"]


def test_other_roles_and_empty_content_pass_through() -> None:
    assert expand("user", [text("hi")]) == [ChatMessage("user", [text("hi")])]
    assert expand("assistant", []) == []
    assert expand("assistant", [text("plain")]) == [ChatMessage("assistant", [text("plain")])]


def _turn_with(blocks: list[dict[str, Any]], held: int) -> RunningTurn:
    turn = RunningTurn(TurnRequest(
        turn_id="t_1", answer_id="m_1", user=UserRecord(id="u", name="u", role="user"), conversation_id="c_1",
    ))
    for block in blocks:
        if block["type"] == "text":
            turn.transcript.add_text(block["text"])
        else:
            turn.transcript.add_block(block)
    turn.held_chars = held
    return turn


@pytest.mark.parametrize(("held", "expected"), [
    (0, [{"type": "text", "text": "abcdef"}, {"type": "tool_use", "id": "x"}, {"type": "text", "text": "gh"}]),
    (1, [{"type": "text", "text": "abcdef"}, {"type": "tool_use", "id": "x"}, {"type": "text", "text": "g"}]),
    (2, [{"type": "text", "text": "abcdef"}, {"type": "tool_use", "id": "x"}]),
    # Held text before a call: the call was not published either (it came after that text).
    (4, [{"type": "text", "text": "abcd"}]),
    (8, []),
])
def test_published_content_leaves_out_the_held_text_and_what_follows_it(held: int, expected: list[dict[str, Any]]) -> None:
    turn = _turn_with([{"type": "text", "text": "abcdef"}, {"type": "tool_use", "id": "x"}, {"type": "text", "text": "gh"}], held)
    assert turn.published_content() == expected
