"""`ask` policy: a call the model makes waits for the user's `approve` of that exact call.

The probe tool `record` (policy "ask") appends to `PROBE.calls` when its body runs, so a
test sees exactly when, and whether, it ran."""

from __future__ import annotations

from pathlib import Path

from tests.support.scripted import ScriptedProvider, answer, tool_results, tool_round
from tests.tools.helpers import (
    TWO_USERS,
    TokenAuthenticator,
    by_type,
    connect,
    make_config,
    running,
)
from tests.tools.probe_state import Probe


def test_nothing_runs_before_approve(tmp_path: Path, probe: Probe) -> None:
    provider = ScriptedProvider(tool_round(("record", {"value": "v1"})), answer("saved"))
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        ack = conn.send("save v1")
        call = conn.until("tool.call")
        assert (call["name"], call["args"], call["needs_approval"]) == ("record", {"value": "v1"}, True)
        # The turn is waiting: the socket answers, the tool has not run, no output came.
        for _ in range(3):
            assert conn.request({"type": "ping"})["type"] == "pong"
        assert probe.calls == []
        assert not [f for f in conn.buffer if f["type"] in ("tool.output", "turn.completed")]
        assert len(provider.requests) == 1

        assert conn.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})["type"] == "ok"
        events = conn.turn(ack)
    (output,) = by_type(events, "tool.output")
    assert output == {**output, "call_id": call["call_id"], "ok": True, "result": {"recorded": "v1", "by": "local"}}
    assert probe.ran("record") == [{"value": "v1", "user": "local"}]
    (result,) = tool_results(provider.requests[1])
    assert result["is_error"] is False
    assert events[-1]["status"] == "complete"


def test_deny_returns_an_error_to_the_model(tmp_path: Path, probe: Probe) -> None:
    provider = ScriptedProvider(tool_round(("record", {"value": "v1"})), answer("not saved"))
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        ack = conn.send("save v1")
        call = conn.until("tool.call")
        assert conn.request({"type": "approve", "call_id": call["call_id"], "decision": "deny"})["type"] == "ok"
        events = conn.turn(ack)
    (output,) = by_type(events, "tool.output")
    assert (output["ok"], output["error"]) == (False, "the user denied this call")
    (result,) = tool_results(provider.requests[1])
    assert (result["is_error"], result["content"]) == (True, "error: the user denied this call")
    assert probe.calls == []
    assert events[-1]["status"] == "complete"


def test_the_approval_timeout_denies(tmp_path: Path, probe: Probe) -> None:
    provider = ScriptedProvider(tool_round(("record", {"value": "v1"})), answer("no answer"))
    config = make_config(tmp_path, "tools.approval_timeout_s=0.2")
    with running(config, provider) as client, connect(client) as conn:
        ack = conn.send("save v1")
        call = conn.until("tool.call")
        events = conn.turn(ack)  # nobody approves
        # A decision after the timeout finds nothing waiting.
        late = conn.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
    (output,) = by_type(events, "tool.output")
    assert (output["ok"], output["error"]) == (False, "approval timed out")
    (result,) = tool_results(provider.requests[1])
    assert (result["is_error"], result["content"]) == (True, "error: approval timed out")
    assert probe.calls == []
    assert late["type"] == "error" and late["code"] == "not_found"


def test_approving_one_call_does_not_approve_another(tmp_path: Path, probe: Probe) -> None:
    provider = ScriptedProvider(
        tool_round(("record", {"value": "keep"}), ("record", {"value": "drop"})), answer("one of two")
    )
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        ack = conn.send("save both")
        first, second = conn.until("tool.call"), conn.until("tool.call")
        calls = {c["args"]["value"]: c["call_id"] for c in (first, second)}
        assert all(c["needs_approval"] for c in (first, second))
        assert calls["keep"] != calls["drop"]
        assert conn.request({"type": "approve", "call_id": calls["keep"], "decision": "allow"})["type"] == "ok"
        kept = conn.until("tool.output", call_id=calls["keep"])
        assert kept["ok"] is True
        # The approved call ran; the other one still waits.
        assert probe.ran("record") == [{"value": "keep", "user": "local"}]
        assert conn.request({"type": "approve", "call_id": calls["drop"], "decision": "deny"})["type"] == "ok"
        events = conn.turn(ack)
    dropped = [o for o in by_type(events, "tool.output") if o["call_id"] == calls["drop"]]
    assert [(o["ok"], o["error"]) for o in dropped] == [(False, "the user denied this call")]
    assert probe.ran("record") == [{"value": "keep", "user": "local"}]
    results = {r["tool_use_id"]: r["is_error"] for r in tool_results(provider.requests[1])}
    assert results == {calls["keep"]: False, calls["drop"]: True}


def test_a_decision_counts_once(tmp_path: Path, probe: Probe) -> None:
    provider = ScriptedProvider(tool_round(("record", {"value": "once"})), answer("ok"))
    with running(make_config(tmp_path), provider) as client, connect(client) as conn:
        ack = conn.send("save once")
        call = conn.until("tool.call")
        assert conn.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})["type"] == "ok"
        conn.turn(ack)
        again = conn.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
    assert (again["type"], again["code"]) == ("error", "not_found")
    assert len(probe.ran("record")) == 1


def test_approve_for_an_unknown_call_or_by_another_user_is_not_found(tmp_path: Path, probe: Probe) -> None:
    provider = ScriptedProvider(tool_round(("record", {"value": "alice's"})), answer("ok"))
    config = make_config(tmp_path)
    with (
        running(config, provider, TokenAuthenticator(TWO_USERS)) as client,
        connect(client, "alice") as alice,
        connect(client, "bob") as bob,
    ):
        ack = alice.send("save it")
        call = alice.until("tool.call")
        unknown = alice.request({"type": "approve", "call_id": "tc_nosuchcall", "decision": "allow"})
        assert (unknown["type"], unknown["code"]) == ("error", "not_found")
        stolen = bob.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
        assert (stolen["type"], stolen["code"]) == ("error", "not_found")
        assert probe.calls == []
        # Bob's attempt changed nothing: Alice's own decision still counts.
        assert alice.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})["type"] == "ok"
        events = alice.turn(ack)
    assert [o["ok"] for o in by_type(events, "tool.output")] == [True]
    assert probe.ran("record") == [{"value": "alice's", "user": "alice"}]


def test_policy_settings_override_the_tools_own(tmp_path: Path, probe: Probe) -> None:
    # `tools.policy` makes an "allow" tool ask; `tools.role_policy` lets a role skip asking.
    provider = ScriptedProvider(
        tool_round(("note", {"text": "n"}), ("record", {"value": "r"})), answer("ok")
    )
    config = make_config(tmp_path, 'tools.policy.note="ask"', 'tools.role_policy.admin.record="allow"')
    with running(config, provider) as client, connect(client) as conn:
        policies = {t["name"]: t["policy"] for t in conn.welcome["tools"]}
        assert (policies["note"], policies["record"]) == ("ask", "allow")
        ack = conn.send("go")
        calls = {c["name"]: c for c in (conn.until("tool.call"), conn.until("tool.call"))}
        assert (calls["note"]["needs_approval"], calls["record"]["needs_approval"]) == (True, False)
        conn.until("tool.output", call_id=calls["record"]["call_id"])
        assert [name for name, _ in probe.calls] == ["record"]
        conn.request({"type": "approve", "call_id": calls["note"]["call_id"], "decision": "allow"})
        events = conn.turn(ack)
    assert [name for name, _ in probe.calls] == ["record", "note"]
    assert events[-1]["status"] == "complete"
