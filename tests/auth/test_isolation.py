"""Property-based isolation: user A tries user B's ids every way the protocol allows and
gets nothing: `not_found`, `resumed: false`, no hits, no export; B's text never appears in
any frame or download A receives, and B's data is untouched afterwards."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth.helpers import add_key, add_user, bearer
from tests.support.inproc import connected, make_config, running_app
from tests.support.scripted import ScriptedProvider, tool_round

SECRETS = ["xylophonequartz", "marmaladezebra", "quixoticnebula"]
NOT_FOUND = "not_found"


class Recorder:
    """Every frame and body A receives, to search for B's text at the end."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def wrap(self, socket: Any) -> Any:
        original = socket.recv

        def recv() -> dict[str, Any]:
            frame = original()
            self.seen.append(json.dumps(frame))
            return frame

        socket.recv = recv
        return socket


def _bob_world(client: Any, bob_key: str, provider: ScriptedProvider) -> tuple[dict[str, list[str]], Any]:
    """B's conversations, messages, turns, a tool call waiting for approval, and a session."""
    ids: dict[str, list[str]] = {"conversation": [], "message": [], "turn": [], "call": [], "session": []}
    bob_cm = connected(client, hello={}, headers=bearer(bob_key))
    bob = bob_cm.__enter__()
    for index, secret in enumerate(SECRETS):
        ack, _ = bob.chat(f"{secret} is my secret number {index}")
        ids["conversation"].append(ack["conversation_id"])
        ids["turn"].append(ack["turn_id"])
        follow, _ = bob.chat(f"more about {secret}", conversation_id=ack["conversation_id"])
        ids["turn"].append(follow["turn_id"])
    for conversation in ids["conversation"]:
        history = bob.request({"type": "history", "conversation_id": conversation})
        ids["message"] += [m["id"] for m in history["messages"]]
    provider.script(tool_round(("search", {"query": "anything"})))
    pending = bob.request({"type": "send", "client_msg_id": "pending", "text": f"{SECRETS[0]} again",
                           "conversation_id": ids["conversation"][0]})
    ids["turn"].append(pending["turn_id"])
    call = bob.until("tool.call")
    assert call["needs_approval"] is True
    ids["call"].append(call["call_id"])
    ids["session"] = [bob.welcome["session_id"], bob.welcome["resume_token"]]
    return ids, (bob_cm, bob, pending)


def _id_or_junk(values: list[str], prefix: str) -> st.SearchStrategy[str]:
    junk = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789_-", min_size=1, max_size=20)
    return st.one_of(st.sampled_from(values), junk.map(lambda s: prefix + s), st.sampled_from(values).map(
        lambda v: v[:-1] + ("A" if not v.endswith("A") else "B")))


def test_user_a_never_reaches_user_b(tmp_path):
    config = make_config(tmp_path, 'tools.policy.search="ask"', "limits.frames_per_window=100000",
                         "limits.http_per_minute=100000", "limits.turns_per_minute=0")
    add_user(config, "alice")
    add_user(config, "bob")
    alice_key, bob_key = add_key(config, "alice"), add_key(config, "bob")
    provider = ScriptedProvider()
    recorder = Recorder()
    with running_app(config, providers={"echo": provider}) as client:
        ids, (bob_cm, bob, pending) = _bob_world(client, bob_key, provider)
        bob_history_before = {
            c: bob.request({"type": "history", "conversation_id": c})["messages"] for c in ids["conversation"]
        }
        with connected(client, hello={}, headers=bearer(alice_key)) as raw_alice:
            alice = recorder.wrap(raw_alice)
            own, _ = alice.chat("alice's own harmless words")
            own_conversation = own["conversation_id"]

            conversation_ids = _id_or_junk(ids["conversation"], "c_")
            operations = st.one_of(
                st.tuples(st.just("history"), conversation_ids),
                st.tuples(st.just("history_before"), _id_or_junk(ids["message"], "m_")),
                st.tuples(st.just("conversations_before"), conversation_ids),
                st.tuples(st.just("update"), conversation_ids),
                st.tuples(st.just("delete"), conversation_ids),
                st.tuples(st.just("cancel"), _id_or_junk(ids["turn"], "t_")),
                st.tuples(st.just("approve"), _id_or_junk(ids["call"], "tc_")),
                st.tuples(st.just("tool_in"), conversation_ids),
                st.tuples(st.just("export_tool"), conversation_ids),
                st.tuples(st.just("export_url"), conversation_ids),
                st.tuples(st.just("search"), st.sampled_from(SECRETS)),
                st.tuples(st.just("conversations_query"), st.sampled_from(SECRETS)),
                st.tuples(st.just("resume"), st.sampled_from([0, 1, 2])),
            )

            @settings(max_examples=60, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])
            @given(operations)
            def attempt(operation: tuple[str, Any]) -> None:
                kind, target = operation
                tried.add(kind)
                match kind:
                    case "history":
                        reply = alice.request({"type": "history", "conversation_id": target})
                        assert reply["code"] == NOT_FOUND, reply
                    case "history_before":
                        reply = alice.request({"type": "history", "conversation_id": own_conversation, "before": target})
                        assert reply["code"] == NOT_FOUND, reply
                    case "conversations_before":
                        reply = alice.request({"type": "conversations", "before": target})
                        assert reply["code"] == NOT_FOUND, reply
                    case "update":
                        reply = alice.request({"type": "conversation.update", "conversation_id": target, "title": "pwned"})
                        assert reply["code"] == NOT_FOUND, reply
                    case "delete":
                        reply = alice.request({"type": "conversation.delete", "conversation_id": target})
                        assert reply["code"] == NOT_FOUND, reply
                    case "cancel":
                        reply = alice.request({"type": "cancel", "turn_id": target})
                        assert reply["code"] == NOT_FOUND, reply
                    case "approve":
                        reply = alice.request({"type": "approve", "call_id": target, "decision": "allow"})
                        assert reply["code"] == NOT_FOUND, reply
                    case "tool_in":
                        reply = alice.request({"type": "tool", "name": "search", "args": {"query": "secret"},
                                               "conversation_id": target})
                        assert reply["code"] == NOT_FOUND, reply
                    case "export_tool":
                        reply = alice.request({"type": "tool", "name": "export", "args": {"conversation_id": target}})
                        assert reply["type"] == "tool.result" and reply["ok"] is False, reply
                        assert "not found" in reply["error"]
                    case "export_url":
                        for fmt in ("md", "json"):
                            response = client.get(f"/api/conversations/{target}/export?format={fmt}",
                                                  headers=bearer(alice_key))
                            recorder.seen.append(response.text)
                            assert response.status_code == 404, response.text
                            assert response.json()["error"]["code"] == NOT_FOUND
                    case "search":
                        reply = alice.request({"type": "tool", "name": "search", "args": {"query": target}})
                        assert reply["type"] == "tool.result" and reply["ok"] is True, reply
                        assert reply["result"] in ([], {"hits": []}) or not reply["result"].get("hits"), reply
                    case "conversations_query":
                        reply = alice.request({"type": "conversations", "query": target})
                        assert reply["type"] == "conversations" and reply["conversations"] == [], reply
                    case "resume":
                        session_id, token = ids["session"]
                        resume = [
                            {"session_id": session_id, "resume_token": token, "last_seq": 0},
                            {"session_id": session_id, "resume_token": token, "last_seq": 3},
                            {"session_id": session_id, "resume_token": "wrong", "last_seq": 0},
                        ][target]
                        with connected(client, hello={"resume": resume}, headers=bearer(alice_key)) as other:
                            recorder.seen.append(json.dumps(other.welcome))
                            assert other.welcome["resumed"] is False
                            assert other.welcome["session_id"] != session_id
                            recorder.wrap(other)
                            assert other.request({"type": "ping"})["type"] == "pong"

            tried: set[str] = set()
            attempt()
            assert len(tried) == 13, tried  # every kind of attempt was made

            listing = alice.request({"type": "conversations"})
            assert [c["id"] for c in listing["conversations"]] == [own_conversation]

        for secret in SECRETS:
            assert all(secret not in text for text in recorder.seen), secret
        assert len(recorder.seen) > 60

        # B's world is as it was: the call still waits for B, B's turn finishes, nothing changed.
        bob.request({"type": "approve", "call_id": ids["call"][0], "decision": "allow"})
        completed = bob.until("turn.completed")
        assert completed["turn_id"] == pending["turn_id"] and completed["status"] == "complete"
        for conversation, messages in bob_history_before.items():
            now = bob.request({"type": "history", "conversation_id": conversation})["messages"]
            assert [m["id"] for m in now][: len(messages)] == [m["id"] for m in messages]
        titles = [c["title"] for c in bob.request({"type": "conversations"})["conversations"]]
        assert "pwned" not in titles and len(titles) == len(SECRETS)
        bob_cm.__exit__(None, None, None)
