"""The context builder on long, random conversations (hypothesis).

For any history and budget: the estimate never exceeds the budget; what is kept is the
newest run of messages that fits and can open a prompt; a tool call never travels without
its result (nor a result without its call); roles alternate.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.errors import TooLarge
from server.models.base import ChatMessage
from server.protocol import Message
from server.turns.history_budget import build_context, message_tokens, prepare

_ids = itertools.count()


def message(role: str, content: list[dict[str, Any]], status: str = "complete") -> Message:
    return Message(id=f"m{next(_ids)}", conversation_id="c", role=role, content=content,
                   status=status, created_at="2030-01-01T00:00:00Z")


def text(size: int, mark: str = "x") -> dict[str, Any]:
    return {"type": "text", "text": mark * size}


sizes = st.integers(min_value=0, max_value=2000)


@st.composite
def exchanges(draw: st.DrawFn) -> list[Message]:
    """One step of a conversation: a user message, an answer, or a tool exchange (possibly
    broken: a call left unanswered, or a result whose call is gone)."""
    kind = draw(st.sampled_from(["user", "assistant", "tools", "unanswered", "orphan", "failed"]))
    if kind == "user":
        return [message("user", [text(draw(sizes), "u")])]
    if kind == "assistant":
        status = draw(st.sampled_from(["complete", "cancelled", "incomplete"]))
        return [message("assistant", [text(draw(sizes), "a")], status)]
    if kind == "failed":
        return [message("assistant", [], "failed")]
    calls = [f"t{next(_ids)}" for _ in range(draw(st.integers(1, 3)))]
    uses = [{"type": "tool_use", "id": c, "name": "search", "input": {"q": "q" * draw(sizes)}} for c in calls]
    preface = [text(draw(sizes), "a")] if draw(st.booleans()) else []
    results = [message("tool", [{"type": "tool_result", "tool_use_id": c, "content": "r" * draw(sizes)}])
               for c in calls]
    if kind == "unanswered":
        return [message("assistant", preface + uses)]
    if kind == "orphan":
        return results[:1]
    return [message("assistant", preface + uses), *results]


histories = st.lists(exchanges(), max_size=40).map(lambda steps: [m for s in steps for m in s])
budgets = st.integers(min_value=0, max_value=6000)


def opens_prompt(m: ChatMessage) -> bool:
    return m.role == "user" and not has(m, "tool_result")


def has(m: ChatMessage, kind: str) -> bool:
    return any(b["type"] == kind for b in m.content)


def ids(m: ChatMessage, kind: str, field: str) -> set[str]:
    return {b[field] for b in m.content if b["type"] == kind}


def cost(messages: list[ChatMessage]) -> int:
    return sum(message_tokens(m) for m in messages)


@settings(max_examples=400, deadline=None)
@given(histories, budgets)
def test_budget_is_never_exceeded(history, budget):
    window = build_context(history, budget=budget)
    assert window.tokens == cost(window.messages) <= budget


@settings(max_examples=400, deadline=None)
@given(histories, budgets)
def test_keeps_the_longest_newest_run_that_fits_and_opens_with_a_user(history, budget):
    chat = prepare(history)
    window = build_context(history, budget=budget)
    kept = window.messages
    assert kept == chat[len(chat) - len(kept):]  # a suffix: the newest messages
    assert not kept or opens_prompt(kept[0])
    # Nothing longer would do: every earlier place a prompt could start costs too much.
    starts = [i for i in range(len(chat) - len(kept)) if opens_prompt(chat[i])]
    assert all(cost(chat[i:]) > budget for i in starts)
    assert window.dropped == len(chat) - len(kept)
    assert window.dropped_tokens == cost(chat) - window.tokens


@settings(max_examples=400, deadline=None)
@given(histories, budgets)
def test_newest_user_message_is_kept_when_it_fits_alone(history, budget):
    chat = prepare(history)
    window = build_context(history, budget=budget)
    if chat and opens_prompt(chat[-1]) and message_tokens(chat[-1]) <= budget:
        assert window.messages and window.messages[-1] == chat[-1]


@settings(max_examples=400, deadline=None)
@given(histories, budgets)
def test_tool_calls_and_results_travel_together_and_roles_alternate(history, budget):
    kept = build_context(history, budget=budget).messages
    for before, after in itertools.pairwise(kept):
        assert before.role != after.role
    for index, m in enumerate(kept):
        if m.role == "assistant":
            answered = ids(kept[index + 1], "tool_result", "tool_use_id") if index + 1 < len(kept) else set()
            assert ids(m, "tool_use", "id") <= answered
        else:
            asked = ids(kept[index - 1], "tool_use", "id") if index else set()
            assert ids(m, "tool_result", "tool_use_id") <= asked


@settings(max_examples=200, deadline=None)
@given(histories)
def test_everything_fits_in_a_big_enough_budget(history):
    chat = prepare(history)
    window = build_context(history, budget=10**9)
    first = next((i for i, m in enumerate(chat) if opens_prompt(m)), len(chat))
    assert window.messages == chat[first:]


def test_a_long_conversation_keeps_its_newest_messages():
    history = []
    for turn in range(500):
        history += [message("user", [text(400, f"{turn % 10}")]), message("assistant", [text(800, "a")])]
    history.append(message("user", [text(40, "N")]))
    window = build_context(history, budget=5000)
    assert window.messages[-1].content == [text(40, "N")]
    assert 5000 - 305 < window.tokens <= 5000  # full up to less than one exchange
    assert window.dropped == len(history) - len(window.messages)


def test_a_tool_exchange_is_dropped_whole():
    call = {"type": "tool_use", "id": "t1", "name": "search", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "r" * 4000}
    history = [
        message("user", [text(10)]), message("assistant", [call]),
        message("tool", [result]), message("assistant", [text(10)]), message("user", [text(10)]),
    ]
    kept = build_context(history, budget=100).messages
    assert kept == [ChatMessage("user", [text(10)])]


def test_a_message_too_large_for_the_window_is_refused():
    window = build_context([message("user", [text(4000)])], budget=10)
    assert window.messages == []
    with pytest.raises(TooLarge):
        window.require_some()
    build_context([], budget=0).require_some()  # nothing to send is not an error
