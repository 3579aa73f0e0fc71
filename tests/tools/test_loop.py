"""The tool loop over the WebSocket: a scripted model asks for tools; they run (parallel
calls concurrently), results go back to the model, and the answer stores the whole
exchange in order."""

from __future__ import annotations

from pathlib import Path

from server.models.base import Finish, TextDelta, ToolUse, Usage
from tests.support.scripted import ScriptedProvider, answer, tool_results, tool_round, tool_uses
from tests.tools.helpers import by_type, connect, make_config, running
from tests.tools.probe_state import Probe


def paired(content: list[dict]) -> dict[str, dict]:
    """Each tool_use id with its tool_result; asserts that every call has exactly one."""
    uses = [b["id"] for b in content if b["type"] == "tool_use"]
    results = {b["tool_use_id"]: b for b in content if b["type"] == "tool_result"}
    assert sorted(uses) == sorted(results), (uses, list(results))
    assert len(results) == len([b for b in content if b["type"] == "tool_result"])
    return results


def test_parallel_calls_run_concurrently(tmp_path: Path, probe: Probe) -> None:
    # Each call sets its own event and waits for the other's: run one after the other, the
    # first would wait for a partner that never comes, until tools.timeout_s (5 s) fails it.
    provider = ScriptedProvider(
        tool_round(("rendezvous", {"me": "a", "partner": "b"}), ("rendezvous", {"me": "b", "partner": "a"})),
        answer("both met"),
    )
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        _, events = conn.chat("meet")
    calls, outputs = by_type(events, "tool.call"), by_type(events, "tool.output")
    assert [c["args"] for c in calls] == [{"me": "a", "partner": "b"}, {"me": "b", "partner": "a"}]
    assert all(c["needs_approval"] is False for c in calls)
    results = {o["call_id"]: o for o in outputs}
    assert results[calls[0]["call_id"]]["result"] == "a met b"
    assert results[calls[1]["call_id"]]["result"] == "b met a"
    assert all(o["ok"] for o in outputs)
    # Both started before either finished; the model got both results, in call order.
    assert len(probe.ran("rendezvous")) == 2
    back = tool_results(provider.requests[1])
    assert [r["tool_use_id"] for r in back] == [c["call_id"] for c in calls]
    assert [r["content"] for r in back] == ["a met b", "b met a"]
    assert events[-1]["status"] == "complete"


def test_a_failing_tool_is_an_error_result_and_the_turn_completes(tmp_path: Path) -> None:
    provider = ScriptedProvider(tool_round(("boom", {"message": "disk on fire"})), answer("sorry"))
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        _, events = conn.chat("break it")
        (output,) = by_type(events, "tool.output")
        assert output["ok"] is False
        assert output["error"] == "RuntimeError: disk on fire"
        assert "result" not in output
        (result,) = tool_results(provider.requests[1])
        assert result["is_error"] is True
        assert result["content"] == "error: RuntimeError: disk on fire"
        done = events[-1]
        assert (done["type"], done["status"], done["stop_reason"]) == ("turn.completed", "complete", "end_turn")
        assert "".join(e["text"] for e in by_type(events, "delta")) == "sorry"
        # The socket is still fine.
        assert conn.request({"type": "ping"})["type"] == "pong"


def test_a_tool_over_its_own_timeout_is_an_error_result(tmp_path: Path) -> None:
    provider = ScriptedProvider(tool_round(("stuck", {})), answer("too slow"))
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        _, events = conn.chat("wait")
    (output,) = by_type(events, "tool.output")
    assert (output["ok"], output["error"]) == (False, "timed out after 0.2 s")
    (result,) = tool_results(provider.requests[1])
    assert (result["is_error"], result["content"]) == (True, "error: timed out after 0.2 s")
    assert events[-1]["status"] == "complete"


def test_the_servers_tool_timeout_applies_to_tools_without_their_own(tmp_path: Path) -> None:
    provider = ScriptedProvider(tool_round(("stall", {}), ("note", {"text": "fine"})), answer("ok"))
    with running(make_config(tmp_path, "tools.timeout_s=0.3"), provider) as client, connect(client) as conn:
        _, events = conn.chat("wait")
    outputs = by_type(events, "tool.output")
    by_call = {c["name"]: c["call_id"] for c in by_type(events, "tool.call")}
    errors = {o["call_id"]: o.get("error") for o in outputs}
    assert errors[by_call["stall"]] == "timed out after 0.3 s"
    assert errors[by_call["note"]] is None  # the other call of the round is unaffected


def test_max_rounds_stops_the_loop_and_every_call_has_a_result(tmp_path: Path, probe: Probe) -> None:
    # A model that asks for a tool every time it is called.
    provider = ScriptedProvider(default=lambda request: tool_round(("note", {"text": "again"})))
    with running(make_config(tmp_path, "tools.max_rounds=2"), provider) as client, connect(client) as conn:
        ack, events = conn.chat("loop forever")
        messages = conn.history(ack["conversation_id"])
    done = events[-1]
    assert (done["status"], done["stop_reason"]) == ("complete", "max_tool_rounds")
    assert len(provider.requests) == 3  # the first call and one after each round of tools
    assert len(probe.ran("note")) == 2  # the third round's call was not run
    assert len(by_type(events, "tool.output")) == 2
    content = messages[-1]["content"]
    results = paired(content)
    assert len(results) == 3
    last = results[[b["id"] for b in content if b["type"] == "tool_use"][-1]]
    assert last == {
        "type": "tool_result", "tool_use_id": last["tool_use_id"],
        "content": "error: not run: tools.max_rounds (2) reached", "is_error": True,
    }
    # The third request carried both earlier rounds, each call answered.
    third = provider.requests[2]
    assert [u["id"] for u in tool_uses(third)] == [r["tool_use_id"] for r in tool_results(third)]


def test_the_stored_answer_and_history_show_calls_and_results_in_order(tmp_path: Path) -> None:
    provider = ScriptedProvider(
        tool_round(("note", {"text": "one"}), ("boom", {}), text="Let me check. "),
        answer("All done."),
    )
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        ack, events = conn.chat("go")
        messages = conn.history(ack["conversation_id"])
    assert [m["role"] for m in messages] == ["user", "assistant"]
    answer_message = messages[1]
    note_id, boom_id = (c["call_id"] for c in by_type(events, "tool.call"))
    assert answer_message["content"] == [
        {"type": "text", "text": "Let me check. "},
        {"type": "tool_use", "id": note_id, "name": "note", "input": {"text": "one"}},
        {"type": "tool_use", "id": boom_id, "name": "boom", "input": {}},
        {"type": "tool_result", "tool_use_id": note_id, "content": "local: one", "is_error": False},
        {"type": "tool_result", "tool_use_id": boom_id, "content": "error: RuntimeError: kaboom", "is_error": True},
        {"type": "text", "text": "All done."},
    ]
    assert answer_message["text"] == "Let me check. All done."
    assert answer_message["status"] == "complete"
    assert [c["name"] for c in answer_message["tool_calls"]] == ["note", "boom"]
    assert answer_message["id"] == ack_message_id(events)
    # Events came in the order a client renders them.
    kinds = [e["type"] for e in events]
    assert kinds[0] == "turn.started" and kinds[-1] == "turn.completed"
    assert kinds.index("tool.call") < kinds.index("tool.output")
    last_output = max(i for i, k in enumerate(kinds) if k == "tool.output")
    assert all(k != "delta" or i < kinds.index("tool.call") or i > last_output for i, k in enumerate(kinds))


def ack_message_id(events: list[dict]) -> str:
    return events[0]["message_id"]


def test_a_follow_up_turn_sees_the_earlier_exchange_correctly_paired(tmp_path: Path) -> None:
    provider = ScriptedProvider(
        tool_round(("note", {"text": "first"}), text="Checking. "),
        answer("It said first."),
        answer("Yes."),
    )
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        ack, events = conn.chat("what does note say?")
        (call,) = by_type(events, "tool.call")
        conn.chat("are you sure?", conversation_id=ack["conversation_id"])
    follow_up = provider.requests[2]
    assert [(m.role, m.content) for m in follow_up.messages] == [
        ("user", [{"type": "text", "text": "what does note say?"}]),
        ("assistant", [
            {"type": "text", "text": "Checking. "},
            {"type": "tool_use", "id": call["call_id"], "name": "note", "input": {"text": "first"}},
        ]),
        ("user", [
            {"type": "tool_result", "tool_use_id": call["call_id"], "content": "local: first", "is_error": False},
        ]),
        ("assistant", [{"type": "text", "text": "It said first."}]),
        ("user", [{"type": "text", "text": "are you sure?"}]),
    ]
    # The tools are offered on every call.
    assert {t.name for t in follow_up.tools} >= {"note", "search", "export", "health"}


def test_the_model_gets_errors_for_unknown_tools_bad_arguments_and_denied_tools(tmp_path: Path, probe: Probe) -> None:
    provider = ScriptedProvider(
        tool_round(("nope", {}), ("note", {"text": 3}), ("boom", {})),
        answer("noted"),
    )
    config = make_config(tmp_path, 'tools.policy.boom="deny"')
    with running(config, provider) as client, connect(client) as conn:
        assert "boom" not in [t["name"] for t in conn.welcome["tools"]]
        _, events = conn.chat("try")
    errors = [o["error"] for o in by_type(events, "tool.output")]
    assert sorted(errors) == sorted([
        "there is no tool named 'nope'",
        "invalid arguments: Expected `str`, got `int` at $.args.text",
        "tool 'boom' is not allowed here",
    ])
    assert all(r["is_error"] for r in tool_results(provider.requests[1]))
    assert probe.calls == []
    assert events[-1]["status"] == "complete"


def test_provider_events_in_one_round_keep_their_order(tmp_path: Path) -> None:
    # Text, a call, more text, another call: the stored answer keeps that order.
    provider = ScriptedProvider(
        [TextDelta("A"), ToolUse("x1", "note", {"text": "1"}), TextDelta("B"),
         ToolUse("x2", "note", {"text": "2"}), Usage(1, 1), Finish("tool_use")],
        answer("C"),
    )
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        ack, _ = conn.chat("order")
        content = conn.history(ack["conversation_id"])[-1]["content"]
    assert [b["type"] for b in content] == ["text", "tool_use", "text", "tool_use", "tool_result", "tool_result", "text"]
    paired(content)
    # The model got the round back as it was said, then both results.
    second = provider.requests[1]
    assert [b["type"] for b in second.messages[-2].content] == ["text", "tool_use", "text", "tool_use"]
    assert second.messages[-1].role == "user"
    assert [b["type"] for b in second.messages[-1].content] == ["tool_result", "tool_result"]


def test_cancel_stops_a_running_tool(tmp_path: Path, probe: Probe) -> None:
    provider = ScriptedProvider(tool_round(("stall", {}), text="Working on it. "), answer("never"))
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        ack = conn.send("start something long")
        call = conn.until("tool.call")
        assert conn.request({"type": "cancel", "turn_id": ack["turn_id"]})["type"] == "ok"
        events = conn.turn(ack)
        stored = conn.history(ack["conversation_id"])[-1]
    assert events[-1]["status"] == "cancelled"
    assert [name for name, _ in probe.calls] == ["stall", "stall_cancelled"]
    assert len(provider.requests) == 1  # the model was not called again
    assert stored["status"] == "cancelled"
    assert stored["content"] == [
        {"type": "text", "text": "Working on it. "},
        {"type": "tool_use", "id": call["call_id"], "name": "stall", "input": {}},
    ]
