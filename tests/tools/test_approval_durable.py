"""Durable approvals through the socket: who may approve (`tools.approver`), what the store
records as the decider, and `history` listing the calls still waiting (in process, real
SQLite, real keys and logins)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.config.settings import Config
from server.store.base import ApprovalRecord
from server.store.sqlite.store import SqliteStore
from tests.auth.helpers import add_key, add_user
from tests.support.scripted import ScriptedProvider, answer, tool_round
from tests.tools.helpers import by_type, connect, make_config, running
from tests.tools.probe_state import Probe

ORIGIN = {"Origin": "http://127.0.0.1:8000"}


def stored_approval(config: Config, user_id: str, call_id: str) -> ApprovalRecord | None:
    async def read() -> ApprovalRecord | None:
        store = SqliteStore(config.store.path, config.store)
        await store.open()
        try:
            return await store.get_approval(user_id, call_id)
        finally:
            await store.close()

    return asyncio.run(read())


def save_v1() -> ScriptedProvider:
    return ScriptedProvider(tool_round(("record", {"value": "v1"})), answer("saved"))


def test_a_person_policy_refuses_an_api_key_and_accepts_a_login(tmp_path: Path, probe: Probe) -> None:
    config = make_config(tmp_path, 'tools.approver="person"')
    ann = add_user(config, "ann", password="correct horse")
    key = add_key(config, "ann", "bot")
    with running(config, save_v1()) as client, connect(client, key) as bot:
        ack = bot.send("save v1")
        call = bot.until("tool.call")
        refused = bot.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
        assert (refused["type"], refused["code"]) == ("error", "forbidden")
        assert refused["message"] == "approvals need a person: this connection uses an API key"
        assert probe.calls == []

        login = client.post("/auth/login", json={"username": "ann", "password": "correct horse"}, headers=ORIGIN)
        assert login.status_code == 200, login.text
        with connect(client) as browser:  # the login's cookie
            assert browser.welcome["user"]["id"] == ann.id
            approved = browser.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
            assert approved["type"] == "ok", approved
        events = bot.turn(ack)
    assert [o["ok"] for o in by_type(events, "tool.output")] == [True]
    assert probe.ran("record") == [{"value": "v1", "user": ann.id}]
    stored = stored_approval(config, ann.id, call["call_id"])
    assert stored is not None and stored.decision == "allow"
    assert stored.decided_by is not None and stored.decided_by.startswith("login:")


def test_a_person_policy_accepts_the_local_user(tmp_path: Path, probe: Probe) -> None:
    config = make_config(tmp_path, 'tools.approver="person"')
    with running(config, save_v1()) as client, connect(client) as conn:
        ack = conn.send("save v1")
        call = conn.until("tool.call")
        assert conn.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})["type"] == "ok"
        conn.turn(ack)
    assert probe.ran("record") == [{"value": "v1", "user": "local"}]
    stored = stored_approval(config, "local", call["call_id"])
    assert stored is not None and (stored.decision, stored.decided_by) == ("allow", "local")


def test_by_default_an_api_key_may_approve(tmp_path: Path, probe: Probe) -> None:
    config = make_config(tmp_path)
    robot = add_user(config, "robot", role="user")
    key = add_key(config, "robot", "bot")
    with running(config, save_v1()) as client, connect(client, key) as bot:
        ack = bot.send("save v1")
        call = bot.until("tool.call")
        assert bot.request({"type": "approve", "call_id": call["call_id"], "decision": "deny"})["type"] == "ok"
        events = bot.turn(ack)
    assert [(o["ok"], o["error"]) for o in by_type(events, "tool.output")] == [(False, "the user denied this call")]
    stored = stored_approval(config, robot.id, call["call_id"])
    assert stored is not None and stored.decided_by is not None and stored.decided_by.startswith("key:")


def test_history_lists_the_waiting_call_and_another_tab_can_answer_it_once(
    tmp_path: Path, probe: Probe
) -> None:
    with running(make_config(tmp_path), save_v1()) as client, connect(client) as first:
        ack = first.send("save v1")
        call = first.until("tool.call")
        with connect(client) as second:  # a tab opened (or reconnected) since
            reply = second.request({"type": "history", "conversation_id": ack["conversation_id"]})
            [pending] = reply["pending_approvals"]
            assert {k: pending[k] for k in ("call_id", "name", "args")} == {
                "call_id": call["call_id"], "name": "record", "args": {"value": "v1"},
            }
            # turn_id: the turn's once the turn runner passes it to `call_for_model`.
            assert set(pending) == {"call_id", "name", "args", "turn_id", "expires_at"}
            assert pending["expires_at"].endswith("Z")

            ok = second.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
            late = first.request({"type": "approve", "call_id": call["call_id"], "decision": "deny"})
            assert ok["type"] == "ok"
            assert (late["type"], late["code"]) == ("error", "not_found")
            events = first.turn(ack)
            after = second.request({"type": "history", "conversation_id": ack["conversation_id"]})
    assert [o["ok"] for o in by_type(events, "tool.output")] == [True]
    assert "pending_approvals" not in after  # decided: no longer waiting
    assert len(probe.ran("record")) == 1
