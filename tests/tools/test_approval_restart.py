"""A pending approval survives a restart (`turns.on_interrupt = "continue"`): the server
stops while a call waits for the user's yes; after the restart the turn is taken up again,
waits for the same call, a new connection finds it in `history` and approves it, and the
turn completes with the tool run exactly once."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.scripted import ScriptedProvider, answer, tool_round
from tests.tools.helpers import by_type, connect, make_config, running
from tests.tools.probe_state import Probe


def test_an_approval_pending_across_a_restart_is_answered_from_a_new_connection(
    tmp_path: Path, probe: Probe
) -> None:
    config = make_config(
        tmp_path, 'turns.on_interrupt="continue"', "server.shutdown_grace_s=0.2",
        "tools.approval_timeout_s=60",
    )
    with running(config, ScriptedProvider(tool_round(("record", {"value": "v1"})))) as client, \
            connect(client) as tab:
        ack = tab.send("save v1")
        call = tab.until("tool.call")
        assert call["needs_approval"] is True
    # The shutdown handed the waiting turn over: nothing ran, nothing was decided.
    assert probe.calls == []

    with running(config, ScriptedProvider(answer("saved"))) as client, connect(client) as tab:
        reply = tab.request({"type": "history", "conversation_id": ack["conversation_id"]})
        waiting = reply["pending_approvals"]
        assert [w["call_id"] for w in waiting] == [call["call_id"]]
        assert waiting[0]["turn_id"] == ack["turn_id"]
        approved = tab.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
        assert approved["type"] == "ok", approved
        events = tab.turn(ack)
        again = tab.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
        assert again["code"] == "not_found"  # answered at most once
        history = tab.request({"type": "history", "conversation_id": ack["conversation_id"]})

    assert [o["ok"] for o in by_type(events, "tool.output")] == [True]
    assert events[-1]["type"] == "turn.completed" and events[-1]["status"] == "complete"
    assert probe.ran("record") == [{"value": "v1", "user": "local"}]
    answer_message = history["messages"][-1]
    assert answer_message["status"] == "complete"
    assert answer_message["text"].endswith("saved")


def _interrupted_mid_call(tmp_path: Path, call: tuple[str, dict[str, str]]) -> dict:
    """The server stops while `call` runs; after the restart, the continued answer once it
    is complete (the continuation may run before any client connects)."""
    config = make_config(tmp_path, 'turns.on_interrupt="continue"', "server.shutdown_grace_s=0.2")
    with running(config, ScriptedProvider(tool_round(call))) as client, connect(client) as tab:
        ack = tab.send("go")
        tab.until("tool.call")
    with running(config, ScriptedProvider(answer("done"))) as client, connect(client) as tab:
        for _ in range(200):
            reply = tab.request({"type": "history", "conversation_id": ack["conversation_id"]})
            answer_message = reply["messages"][-1]
            if answer_message["status"] != "streaming":
                return answer_message
            time.sleep(0.02)
    raise AssertionError("the continued answer did not finish")


def _results(message: dict) -> list[dict]:
    return [b for b in message["content"] if b.get("type") == "tool_result"]


def test_a_call_cut_off_is_not_run_again_unless_its_tool_is_idempotent(
    tmp_path: Path, probe: Probe
) -> None:
    message = _interrupted_mid_call(tmp_path / "a", ("stall", {}))
    assert probe.ran("stall") == [{}], "a tool that may change things ran once, not twice"
    (result,) = _results(message)
    assert result["is_error"] is True and "cut off by an interruption" in result["content"]
    assert message["status"] == "complete" and message["text"].endswith("done")

    message = _interrupted_mid_call(tmp_path / "b", ("lookup", {"key": "otter"}))
    assert probe.ran("lookup") == [{"key": "otter"}, {"key": "otter"}], "idempotent: run again"
    (result,) = _results(message)
    assert result.get("is_error") is not True and "found otter" in str(result["content"])
    assert message["status"] == "complete"
