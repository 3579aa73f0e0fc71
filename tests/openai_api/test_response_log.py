"""A response's events as a function of its answer's content: more content only appends
events, so a resume with `starting_after` is exact whoever computes the events."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from server.openai_api.response_log import MAX_PIECE, Final, ResponseMeta, build, pieces

META = ResponseMeta(id="resp_abc", created_at=1.0, model="echo", functions=["lookup"])


def never(_: str) -> bool:
    return False


def events(content: list[dict[str, Any]], final: Final | None = None, asked: set[str] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    return build(META, content, final, asked.__contains__)[0]


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def use(call_id: str, name: str = "search") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {"q": call_id}}


def result(call_id: str, content: str = "found", error: bool = False) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": error}


@pytest.mark.parametrize("value", ["", "one", "one two  three ", "  lead", "x" * 200, "a\n\nb\tc", "日本 語"])
def test_pieces_join_back_and_end_where_a_word_starts(value: str) -> None:
    cut = pieces(value)
    assert "".join(cut) == value
    assert all(0 < len(p) <= MAX_PIECE for p in cut)
    for before, after in itertools.pairwise(cut):
        assert len(before) == MAX_PIECE or (before[-1].isspace() and not after[0].isspace())


def test_pieces_of_a_prefix_are_the_pieces_of_the_whole_but_the_last() -> None:
    whole = "the quick  brown fox " + "y" * 150 + " jumps"
    for end in range(len(whole) + 1):
        assert pieces(whole[:end])[:-1] == pieces(whole)[: max(len(pieces(whole[:end])) - 1, 0)]


def _snapshots(final_content: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
    """Growing prefixes of `final_content`, as a live turn would show it: blocks arrive
    one by one, the last text block cut anywhere; a round's results arrive together."""
    shots: list[list[dict[str, Any]]] = []
    for index, block in enumerate(final_content):
        if block["type"] == "text":
            cuts = sorted(rng.sample(range(1, len(block["text"]) + 1), min(5, len(block["text"]))))
            shots += [[*final_content[:index], text(block["text"][:cut])] for cut in cuts]
        else:
            shots.append(final_content[: index + 1])
    return shots


@pytest.mark.parametrize("seed", range(30))
def test_every_snapshot_yields_a_prefix_of_the_final_events(seed: int) -> None:
    rng = random.Random(seed)
    words = ["alpha ", "beta ", "gamma\n", "delta  ", "x" * 70, "eps"]
    content: list[dict[str, Any]] = []
    for round_number in range(rng.randint(0, 3)):
        content.append(text("".join(rng.choice(words) for _ in range(rng.randint(1, 12)))))
        calls = [f"c{round_number}_{n}" for n in range(rng.randint(1, 3))]
        content += [use(c) for c in calls]
        content += [result(c, error=rng.random() < 0.3) for c in calls]
    content.append(text("".join(rng.choice(words) for _ in range(rng.randint(1, 20)))))
    final = events(content, Final(status="complete", usage={"input_tokens": 3, "output_tokens": 9}))
    assert [e["sequence_number"] for e in final] == list(range(len(final)))
    previous: list[dict[str, Any]] = []
    for shot in _snapshots(content, rng):
        now = events(shot)
        assert now == final[: len(now)]  # the same events with the same numbers
        assert now[: len(previous)] == previous  # and nothing seen before changes
        previous = now
    deltas = "".join(e["delta"] for e in final if e["type"] == "response.output_text.delta")
    assert deltas == "".join(b["text"] for b in content if b["type"] == "text")


def test_a_call_still_running_holds_back_what_follows() -> None:
    running = events([text("Looking. "), use("c1")])
    assert running[-1]["type"] == "response.output_item.done"  # the text item, closed
    assert not [e for e in running if "mcp_call" in e["type"]]
    done = events([text("Looking. "), use("c1"), result("c1", "3 hits")], Final(status="complete"))
    kinds = [e["type"] for e in done][len(running):]
    assert kinds == [
        "response.output_item.added", "response.mcp_call_arguments.done", "response.mcp_call.in_progress",
        "response.mcp_call.completed", "response.output_item.done", "response.completed",
    ]
    item = done[-1]["response"]["output"][1]
    assert item["type"] == "mcp_call" and item["output"] == "3 hits" and item["server_label"] == "chinwag"


def test_a_failed_call_is_an_mcp_call_with_its_error() -> None:
    done = events([use("c1"), result("c1", "error: tool 'search' is not allowed here", error=True)], Final(status="complete"))
    item = done[-1]["response"]["output"][0]
    assert item["status"] == "failed" and item["error"] == "tool 'search' is not allowed here" and item["output"] is None
    assert "response.mcp_call.failed" in [e["type"] for e in done]


def test_a_client_function_is_a_function_call_item() -> None:
    done = events([text("One moment."), use("c9", "lookup")], Final(status="complete", stop_reason="tool_use"))
    item = done[-1]["response"]["output"][1]
    assert item == {"type": "function_call", "id": "fc_c9", "call_id": "c9", "name": "lookup",
                    "arguments": '{"q": "c9"}', "status": "completed"}
    assert [e["type"] for e in done if "function_call_arguments" in e["type"]] == [
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
    ]


def test_a_call_left_waiting_for_approval_is_an_approval_request() -> None:
    done = events([use("c1", "remember")], Final(status="complete", stop_reason="tool_use"), asked={"c1"})
    assert done[-1]["response"]["output"] == [{
        "type": "mcp_approval_request", "id": "c1", "server_label": "chinwag", "name": "remember",
        "arguments": '{"q": "c1"}',
    }]
    cut_off = events([use("c1", "remember")], Final(status="cancelled"))
    assert cut_off[-1]["response"]["output"][0]["error"] == "the call was cut off before it returned"


@pytest.mark.parametrize(("status", "stop", "kind", "shown"), [
    ("complete", None, "response.completed", "completed"),
    ("complete", "max_tokens", "response.incomplete", "incomplete"),
    ("cancelled", None, "response.incomplete", "cancelled"),
    ("incomplete", None, "response.incomplete", "incomplete"),
    ("failed", None, "response.failed", "failed"),
])
def test_the_last_event_says_how_it_ended(status: str, stop: str | None, kind: str, shown: str) -> None:
    last = events([text("partial")], Final(status=status, stop_reason=stop))[-1]
    assert last["type"] == kind and last["response"]["status"] == shown
    if shown == "failed":
        assert last["response"]["error"]["code"] == "server_error"


def test_approved_calls_open_the_next_response() -> None:
    meta = ResponseMeta(id="resp_next", created_at=1.0, model="echo", approved=[
        {"call_id": "c1", "name": "remember", "arguments": "{}", "output": "saved", "error": None},
    ])
    first = build(meta, [], None, never)[0]
    assert first[2]["type"] == "response.output_item.added"
    assert first[2]["item"]["type"] == "mcp_call" and first[2]["item"]["approval_request_id"] == "c1"
