"""Queued sends: each answer keeps its place right after its own question."""

from __future__ import annotations

from pathlib import Path

from tests.support.inproc import connected, make_config, running_app


def test_a_send_queued_behind_a_running_turn_is_answered_after_it_in_order(tmp_path: Path) -> None:
    config = make_config(tmp_path, "echo.delay_ms=20")
    with running_app(config) as client, connected(client, hello={}) as socket:
        opening, _ = socket.chat("hello")
        conversation_id = opening["conversation_id"]
        # Two questions back to back: the second is stored while the first turn is only
        # just starting (its answer not yet begun).
        socket.send({"type": "send", "client_msg_id": "q1", "text": "one two three four five",
                     "conversation_id": conversation_id, "ref": 1})
        socket.send({"type": "send", "client_msg_id": "q2", "text": "six seven",
                     "conversation_id": conversation_id, "ref": 2})
        frames = []
        while sum(f["type"] == "turn.completed" for f in frames) < 2:
            frames.append(socket.recv())
        first = next(f for f in frames if f.get("ref") == 1)
        second = next(f for f in frames if f.get("ref") == 2)
        started = {f["turn_id"]: f["message_id"] for f in frames if f["type"] == "turn.started"}
        assert started == {first["turn_id"]: first["answer_message_id"], second["turn_id"]: second["answer_message_id"]}
        history = socket.request({"type": "history", "conversation_id": first["conversation_id"]})
    rows = [(m["role"], m["text"], m["status"]) for m in history["messages"]][2:]
    assert rows == [
        ("user", "one two three four five", "complete"),
        ("assistant", "one two three four five", "complete"),
        ("user", "six seven", "complete"),
        ("assistant", "six seven", "complete"),
    ]


def test_a_turn_cancelled_while_queued_keeps_its_reserved_place(tmp_path: Path) -> None:
    config = make_config(tmp_path, "echo.delay_ms=20")
    with running_app(config) as client, connected(client, hello={}) as socket:
        first = socket.request({"type": "send", "client_msg_id": "q1", "text": "a b c d e f g h"})
        second = socket.request({"type": "send", "client_msg_id": "q2", "text": "never answered",
                                 "conversation_id": first["conversation_id"]})
        assert socket.request({"type": "cancel", "turn_id": second["turn_id"]})["type"] == "ok"
        statuses = {}
        while len(statuses) < 2:
            frame = socket.recv()
            if frame["type"] == "turn.completed":
                statuses[frame["turn_id"]] = (frame["status"], frame["message_id"])
        assert statuses[second["turn_id"]] == ("cancelled", second["answer_message_id"])
        assert statuses[first["turn_id"]][0] == "complete"
        history = socket.request({"type": "history", "conversation_id": first["conversation_id"]})
    assert [(m["role"], m["status"]) for m in history["messages"]] == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "cancelled"),
    ]
