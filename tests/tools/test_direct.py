"""Direct calls: the `tool` frame (the page's `/name args` sends one)."""

from __future__ import annotations

from pathlib import Path

from server.store.base import UserRecord
from tests.support.scripted import ScriptedProvider, answer
from tests.tools.helpers import TWO_USERS, TokenAuthenticator, connect, make_config, running
from tests.tools.probe_state import Probe

ADMIN = UserRecord(id="root", name="Root", role="admin")


def test_a_tool_runs_and_answers_tool_result(tmp_path: Path, probe: Probe) -> None:
    with running(make_config(tmp_path)) as client, connect(client) as conn:
        reply = conn.tool("note", {"text": "hi", "times": 2})
    assert reply == {**reply, "type": "tool.result", "name": "note", "ok": True, "result": "local: hi hi"}
    assert "seq" not in reply  # a reply, not an event
    assert probe.ran("note") == [{"text": "hi", "times": 2, "user": "local"}]


def test_unknown_tool_is_not_found(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as client, connect(client) as conn:
        reply = conn.tool("nosuchtool", {})
    assert (reply["type"], reply["code"]) == ("error", "not_found")


def test_bad_arguments_are_bad_request_with_the_path(tmp_path: Path, probe: Probe) -> None:
    with running(make_config(tmp_path)) as client, connect(client) as conn:
        wrong_type = conn.tool("search", {"query": 5})
        out_of_range = conn.tool("search", {"query": "x", "limit": 500})
        missing = conn.tool("note", {})
        unknown = conn.tool("note", {"text": "x", "loud": True})
        assert conn.request({"type": "ping"})["type"] == "pong"  # still connected
    assert [(r["type"], r["code"], r["details"]["path"]) for r in (wrong_type, out_of_range, missing, unknown)] == [
        ("error", "bad_request", "$.args.query"),
        ("error", "bad_request", "$.args.limit"),
        ("error", "bad_request", "$.args.text"),
        ("error", "bad_request", "$.args.loud"),
    ]
    assert out_of_range["message"] == "Expected `int` <= 50"
    assert probe.calls == []


def test_a_failing_tool_answers_ok_false(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as client, connect(client) as conn:
        failed = conn.tool("boom", {"message": "no luck"})
        slow = conn.tool("stuck")
    assert (failed["type"], failed["ok"], failed["error"]) == ("tool.result", False, "RuntimeError: no luck")
    assert (slow["type"], slow["ok"], slow["error"]) == ("tool.result", False, "timed out after 0.2 s")


def test_a_tool_denied_for_the_role_is_forbidden(tmp_path: Path, probe: Probe) -> None:
    config = make_config(tmp_path, 'tools.role_policy.user.note="deny"')
    with (
        running(config, authenticator=TokenAuthenticator({**TWO_USERS, "admin": ADMIN})) as client,
        connect(client, "bob") as bob,
        connect(client, "admin") as admin,
    ):
        assert "note" not in [t["name"] for t in bob.welcome["tools"]]
        assert "note" in [t["name"] for t in admin.welcome["tools"]]
        refused = bob.tool("note", {"text": "hi"})
        allowed = admin.tool("note", {"text": "hi"})
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    assert allowed["ok"] is True
    assert probe.ran("note") == [{"text": "hi", "times": 1, "user": "root"}]


def test_a_tool_for_other_roles_only_is_forbidden(tmp_path: Path) -> None:
    config = make_config(tmp_path, 'tools.policy.note="deny"')
    with running(config) as client, connect(client) as conn:
        reply = conn.tool("note", {"text": "hi"})
    assert (reply["type"], reply["code"]) == ("error", "forbidden")


def test_a_clients_own_call_needs_no_approval(tmp_path: Path, probe: Probe) -> None:
    with running(make_config(tmp_path)) as client, connect(client) as conn:
        reply = conn.tool("record", {"value": "direct"})
    assert (reply["ok"], reply["result"]) == (True, {"recorded": "direct", "by": "local"})
    assert probe.ran("record") == [{"value": "direct", "user": "local"}]


def test_a_conversation_of_another_user_is_not_found(tmp_path: Path) -> None:
    provider = ScriptedProvider(answer("hello"))
    with (
        running(make_config(tmp_path), provider, TokenAuthenticator(TWO_USERS)) as client,
        connect(client, "alice") as alice,
        connect(client, "bob") as bob,
    ):
        ack, _ = alice.chat("alice's secret")
        theirs = bob.tool("export", {"format": "json", "conversation_id": ack["conversation_id"]})
        also = bob.tool("export", {"format": "json"}, conversation_id=ack["conversation_id"])
        mine = alice.tool("export", {"format": "md"}, conversation_id=ack["conversation_id"])
    assert (theirs["type"], theirs["ok"]) == ("tool.result", False)
    assert "secret" not in str(theirs)
    assert (also["type"], also["code"]) == ("error", "not_found")
    assert mine["ok"] is True and "alice's secret" in mine["result"]["content"]


def test_welcome_lists_each_tool_with_its_schema_and_effective_policy(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as client, connect(client) as conn:
        tools = {t["name"]: t for t in conn.welcome["tools"]}
    assert set(tools) >= {"boom", "export", "health", "note", "record", "rendezvous", "search", "stall", "stuck"}
    assert tools["record"] == {
        "name": "record",
        "description": "Change something: remember a value (asks first).",
        "input_schema": {
            "type": "object",
            "properties": {"value": {"type": "string", "description": "what to remember."}},
            "required": ["value"],
            "additionalProperties": False,
        },
        "policy": "ask",
    }


def test_health_reports_the_server(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as client, connect(client) as conn:
        reply = conn.tool("health")
    health = reply["result"]
    assert reply["ok"] is True
    assert health["store"]["ok"] is True
    assert set(health["models"]) >= {"fake"}
    assert (health["sessions"], health["sockets"], health["running_turns"], health["draining"]) == (1, 1, 0, False)
    assert health["uptime_s"] >= 0
