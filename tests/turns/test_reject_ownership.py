"""`turns.concurrent = "reject"`: a send to another user's conversation is `not_found`,
whether a turn runs there or not, and whatever else is wrong with it (Guarantee 6).

Alice's turn is held open by a tool call waiting for her approval (no timing involved)."""

from __future__ import annotations

from pathlib import Path

from tests.support.scripted import ScriptedProvider, answer, tool_round
from tests.tools.helpers import TWO_USERS, TokenAuthenticator, connect, make_config, running


def _send(conn, conversation_id: str, text: str, msg_id: str) -> dict:
    return conn.request({
        "type": "send", "client_msg_id": msg_id, "text": text, "conversation_id": conversation_id,
    })


def test_a_send_to_another_users_conversation_is_not_found_busy_or_idle(tmp_path: Path) -> None:
    provider = ScriptedProvider(tool_round(("record", {"value": "v"})), answer("done"))
    config = make_config(tmp_path, 'turns.concurrent="reject"', "limits.max_text_chars=40")
    with (
        running(config, provider, TokenAuthenticator(TWO_USERS)) as client,
        connect(client, "alice") as alice,
        connect(client, "bob") as bob,
    ):
        ack = alice.send("save v")
        conversation = ack["conversation_id"]
        call = alice.until("tool.call")  # the turn now waits for Alice's approval: busy

        busy = _send(bob, conversation, "hello", "b1")
        assert (busy["type"], busy.get("code")) == ("error", "not_found"), busy
        too_long = _send(bob, conversation, "x" * 41, "b2")  # ownership comes first
        assert (too_long["type"], too_long.get("code")) == ("error", "not_found"), too_long
        # Her own send to her busy conversation is still refused as busy.
        own = _send(alice, conversation, "again", "a2")
        assert (own["type"], own.get("code")) == ("error", "conflict"), own

        deny = {"type": "approve", "call_id": call["call_id"], "decision": "deny"}
        assert alice.request(deny)["type"] == "ok"
        assert alice.turn(ack)[-1]["type"] == "turn.completed"

        idle = _send(bob, conversation, "hello", "b3")
        assert (idle["type"], idle.get("code")) == ("error", "not_found"), idle
    assert len(provider.requests) == 2  # Alice's two model calls; nothing of Bob's ran


def test_a_resend_of_an_accepted_message_gets_its_ack_even_while_its_turn_runs(tmp_path: Path) -> None:
    """Guarantee 1 holds under "reject": the resend names a message already stored, so it
    starts no turn and must get the same `ack`, not `conflict`."""
    provider = ScriptedProvider(answer("first"), tool_round(("record", {"value": "v"})), answer("done"))
    config = make_config(tmp_path, 'turns.concurrent="reject"')
    with (
        running(config, provider, TokenAuthenticator(TWO_USERS)) as client,
        connect(client, "alice") as alice,
    ):
        _, events = alice.chat("hello")
        conversation = events[0]["conversation_id"]
        ack = _send(alice, conversation, "save v", "a-save")
        assert ack["type"] == "ack", ack
        call = alice.until("tool.call")  # busy with that very message's turn
        again = _send(alice, conversation, "save v", "a-save")
        assert again["type"] == "ack", again
        assert (again["message_id"], again["duplicate"]) == (ack["message_id"], True)
        other = _send(alice, conversation, "something else", "a-other")
        assert (other["type"], other.get("code")) == ("error", "conflict"), other
        alice.request({"type": "approve", "call_id": call["call_id"], "decision": "deny"})
        assert alice.turn(ack)[-1]["type"] == "turn.completed"
    assert len(provider.requests) == 3  # the resend ran nothing
