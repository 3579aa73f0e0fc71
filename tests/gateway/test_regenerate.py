"""`regenerate`: the newest answer is written again in its place; the question is neither
stored nor sent to the model twice; a repeat while it runs starts nothing; only the owner
may regenerate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.auth.helpers import add_key, add_user, bearer
from tests.support.inproc import connected, make_config, running_app
from tests.support.scripted import ScriptedProvider, answer


def _texts(request: Any) -> list[tuple[str, str]]:
    return [
        (m.role, "".join(b.get("text", "") for b in m.content if b.get("type") == "text"))
        for m in request.messages
    ]


def _until_completed(socket: Any, turn_id: str) -> list[dict[str, Any]]:
    events = []
    while True:
        frame = socket.recv()
        if frame.get("turn_id") == turn_id and "seq" in frame:
            events.append(frame)
            if frame["type"] == "turn.completed":
                return events


def test_regenerate_rewrites_the_answer_in_place(tmp_path: Path) -> None:
    provider = ScriptedProvider(answer("first try"), answer("second try"))
    with running_app(make_config(tmp_path), providers={"echo": provider}) as client, connected(client, hello={}) as socket:
        ack, _ = socket.chat("hi")
        conversation, answer_id = ack["conversation_id"], ack["answer_message_id"]

        reply = socket.request({"type": "regenerate", "conversation_id": conversation, "message_id": answer_id})
        assert reply["type"] == "regenerated", reply
        assert (reply["conversation_id"], reply["message_id"]) == (conversation, answer_id)
        assert "duplicate" not in reply  # false, left out
        assert reply["turn_id"] != ack["turn_id"]
        events = _until_completed(socket, reply["turn_id"])
        assert events[0]["type"] == "turn.started" and events[0]["message_id"] == answer_id
        assert events[-1]["status"] == "complete" and events[-1]["message_id"] == answer_id
        history = socket.request({"type": "history", "conversation_id": conversation})

    rows = [(m["id"], m["role"], m["text"], m["status"]) for m in history["messages"]]
    assert rows == [
        (ack["message_id"], "user", "hi", "complete"),
        (answer_id, "assistant", "second try", "complete"),
    ]
    # The model got the question once, the second time as the first: no earlier answer.
    assert _texts(provider.requests[1]) == [("user", "hi")]
    assert history["conversation"]["id"] == conversation


def test_regenerate_while_the_answer_is_written_starts_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path, "echo.delay_ms=20")
    with running_app(config) as client, connected(client, hello={}) as socket:
        ack, _ = socket.chat("one two three")
        conversation, answer_id = ack["conversation_id"], ack["answer_message_id"]
        frame = {"type": "regenerate", "conversation_id": conversation, "message_id": answer_id}
        socket.send({**frame, "ref": "first"})
        socket.send({**frame, "ref": "again"})
        frames = []
        while not any(f["type"] == "turn.completed" for f in frames):
            frames.append(socket.recv())
        replies = {f["ref"]: f for f in frames if f.get("ref") in ("first", "again")}
        first, again = replies["first"], replies["again"]
        assert (again["turn_id"], again["duplicate"]) == (first["turn_id"], True)
        assert [f["type"] for f in frames].count("turn.started") == 1
        # Each reply comes before any event of the turn.
        assert frames.index(first) < next(i for i, f in enumerate(frames) if f["type"] == "turn.started")
        assert socket.request({"type": "ping"})["type"] == "pong"
        history = socket.request({"type": "history", "conversation_id": conversation})
    assert [(m["role"], m["text"]) for m in history["messages"]] == [
        ("user", "one two three"), ("assistant", "one two three"),
    ]


def test_only_the_newest_answer_and_only_an_answer(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path)) as client, connected(client, hello={}) as socket:
        first, _ = socket.chat("first")
        conversation = first["conversation_id"]
        socket.chat("second", conversation_id=conversation)
        older = socket.request({"type": "regenerate", "conversation_id": conversation,
                                "message_id": first["answer_message_id"]})
        question = socket.request({"type": "regenerate", "conversation_id": conversation,
                                   "message_id": first["message_id"]})
        unknown = socket.request({"type": "regenerate", "conversation_id": conversation, "message_id": "m_nope"})
    assert (older["type"], older["code"]) == ("error", "conflict")
    assert (question["code"], question["details"]) == ("bad_request", {"path": "$.message_id"})
    assert unknown["code"] == "not_found"


def test_another_users_answer_is_not_found_and_untouched(tmp_path: Path) -> None:
    config = make_config(tmp_path, "limits.turns_per_minute=0")
    add_user(config, "alice")
    add_user(config, "bob")
    alice_key, bob_key = add_key(config, "alice"), add_key(config, "bob")
    with running_app(config) as client:
        with connected(client, hello={}, headers=bearer(bob_key)) as bob:
            ack, _ = bob.chat("bob's question")
        with connected(client, hello={}, headers=bearer(alice_key)) as alice:
            for conversation in (ack["conversation_id"], "c_nope"):
                reply = alice.request({"type": "regenerate", "conversation_id": conversation,
                                       "message_id": ack["answer_message_id"]})
                assert (reply["type"], reply["code"]) == ("error", "not_found")
        with connected(client, hello={}, headers=bearer(bob_key)) as bob:
            history = bob.request({"type": "history", "conversation_id": ack["conversation_id"]})
    assert [(m["role"], m["text"], m["status"]) for m in history["messages"]] == [
        ("user", "bob's question", "complete"), ("assistant", "bob's question", "complete"),
    ]
