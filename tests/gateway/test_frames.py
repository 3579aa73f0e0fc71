"""The gateway, in process: every frame type, every bad frame, and the close codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.support.inproc import connected, make_config, running_app


@pytest.fixture
def client(tmp_path: Path):
    with running_app(make_config(tmp_path, "limits.bad_frames_per_window=100")) as client:
        yield client


def test_hello_gets_welcome_with_everything_a_client_needs(client) -> None:
    with connected(client, hello={"client": {"name": "test", "version": "1"}}) as socket:
        welcome = socket.welcome
    assert welcome["resumed"] is False and welcome["last_seq"] == 0
    assert welcome["user"] == {"id": "local", "name": "local", "role": "admin"}
    assert "echo" in welcome["models"] and "system" in welcome["templates"]
    assert {"search", "export", "health"} <= {t["name"] for t in welcome["tools"]}
    assert welcome["limits"]["max_frame_bytes"] == 65536
    assert welcome["session_id"] and welcome["resume_token"]


def test_subprotocol_is_selected_when_offered(client) -> None:
    with client.websocket_connect("/ws", subprotocols=["other", "chinwag.v1"]) as ws:
        assert ws.accepted_subprotocol == "chinwag.v1"


def test_a_turn_acks_then_streams_with_gapless_seq(client) -> None:
    with connected(client, hello={}) as socket:
        ack, events = socket.chat("one two  three")
        assert [e["type"] for e in events] == ["turn.started", "delta", "delta", "delta", "turn.completed"]
        assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
        assert "".join(e["text"] for e in events if e["type"] == "delta") == "one two  three"
        done = events[-1]
        assert done["status"] == "complete" and done["model"] == "echo"
        assert done["message_id"] == events[0]["message_id"] != ack["message_id"]
        history = socket.request({"type": "history", "conversation_id": ack["conversation_id"]})
        texts = [(m["role"], m["text"], m["status"]) for m in history["messages"]]
        assert texts == [("user", "one two  three", "complete"), ("assistant", "one two  three", "complete")]
        assert history["messages"][0]["client_msg_id"] == ack["client_msg_id"]


BAD_FRAMES = [
    ("{oops", "bad_request", None),
    ('{"type":"fly"}', "unknown_type", "$.type"),
    ('{"type":"send","client_msg_id":"a","text":["x"]}', "bad_request", "$.text"),
    ('{"type":"history","conversation_id":"c","limit":500}', "bad_request", "$.limit"),
    ('{"type":"cancel"}', "bad_request", "$"),
    ('{"type":"send","client_msg_id":"a","text":"\\ud800"}', "bad_request", None),
    ('{"type":"tool","name":"x","args":' + "[" * 40 + "]" * 40 + "}", "bad_request", None),
    ('{"type":"hello"}', "bad_request", None),  # a second hello
]


@pytest.mark.parametrize(("raw", "code", "path"), BAD_FRAMES)
def test_each_bad_frame_costs_one_error_and_the_socket_stays_usable(client, raw, code, path) -> None:
    with connected(client, hello={}) as socket:
        socket.send(raw)
        error = socket.recv()
        assert error["type"] == "error" and error["code"] == code, error
        if path:
            assert error["details"]["path"] == path
        assert socket.request({"type": "ping"})["type"] == "pong"


def test_errors_carry_the_ref_of_the_bad_frame(client) -> None:
    with connected(client, hello={}) as socket:
        socket.send('{"type":"fly","ref":"r9"}')
        assert socket.recv()["ref"] == "r9"
        reply = socket.request({"type": "history", "conversation_id": "c_missing", "ref": 11})
        assert reply == {"type": "error", "code": "not_found", "message": "conversation not found", "ref": 11}


def test_binary_frames_are_bad_requests(client) -> None:
    with connected(client, hello={}) as socket:
        socket.send(b'{"type":"ping"}')
        assert socket.recv()["code"] == "bad_request"


def test_text_over_the_limit_is_too_large(tmp_path: Path) -> None:
    with (
        running_app(make_config(tmp_path, "limits.max_text_chars=10")) as client,
        connected(client, hello={}) as socket,
    ):
        reply = socket.request({"type": "send", "client_msg_id": "a", "text": "x" * 11})
        assert reply["code"] == "too_large"


def close_code(socket) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        for _ in range(50):
            socket.recv()
    return closed.value.code


def test_a_frame_before_hello_closes_with_4003(client) -> None:
    with connected(client) as socket:
        socket.send({"type": "ping"})
        assert close_code(socket) == 4003


def test_no_hello_in_time_closes_with_4003(tmp_path: Path) -> None:
    with (
        running_app(make_config(tmp_path, "session.hello_timeout_s=0.2")) as client,
        connected(client) as socket,
    ):
        assert close_code(socket) == 4003


def test_more_than_ten_bad_frames_close_with_4002(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path)) as client, connected(client, hello={}) as socket:
        for _ in range(11):
            socket.send("nope")
        codes = []
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                codes.append(socket.recv()["code"])
        assert codes == ["bad_request"] * 11 and closed.value.code == 4002


def test_a_frame_over_the_size_limit_closes_with_1009(tmp_path: Path) -> None:
    with (
        running_app(make_config(tmp_path, "limits.max_frame_bytes=1000")) as client,
        connected(client, hello={}) as socket,
    ):
        socket.send(json.dumps({"type": "send", "client_msg_id": "a", "text": "x" * 2000}))
        assert close_code(socket) == 1009


def test_a_flood_closes_with_4008(tmp_path: Path) -> None:
    with (
        running_app(make_config(tmp_path, "limits.frames_per_window=5")) as client,
        connected(client, hello={}) as socket,  # hello counts as one
    ):
        for _ in range(5):
            socket.send({"type": "ping"})
        assert close_code(socket) == 4008


def test_a_repeated_send_is_stored_once_and_acked_identically(client) -> None:
    with connected(client, hello={}) as socket:
        first, _events = socket.chat("only once")
        again = socket.request({"type": "send", "client_msg_id": first["client_msg_id"], "text": "only once"})
        assert {k: again[k] for k in ("conversation_id", "message_id", "turn_id")} == {
            k: first[k] for k in ("conversation_id", "message_id", "turn_id")
        }
        assert again.get("duplicate") is True
        history = socket.request({"type": "history", "conversation_id": first["conversation_id"]})
        assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
        # no second turn: the next frame after a ping is the pong, not a turn.started
        assert socket.request({"type": "ping"})["type"] == "pong"


def test_a_repeated_send_into_an_existing_conversation_is_also_idempotent(client) -> None:
    with connected(client, hello={}) as socket:
        first, _ = socket.chat("start")
        frame = {"type": "send", "client_msg_id": "again-1", "text": "more", "conversation_id": first["conversation_id"]}
        ack1 = socket.request(frame)
        socket.until("turn.completed")
        ack2 = socket.request(frame)
        assert ack1["message_id"] == ack2["message_id"] and ack1["turn_id"] == ack2["turn_id"]
        history = socket.request({"type": "history", "conversation_id": first["conversation_id"]})
        assert len(history["messages"]) == 4


def test_conversations_list_update_and_delete(client) -> None:
    with connected(client, hello={}) as socket:
        a, _ = socket.chat("first conversation")
        b, _ = socket.chat("second conversation")
        listed = socket.request({"type": "conversations"})
        assert [c["id"] for c in listed["conversations"]] == [b["conversation_id"], a["conversation_id"]]
        assert socket.request({"type": "conversation.update", "conversation_id": a["conversation_id"],
                               "title": "Renamed", "template": "system"})["type"] == "ok"
        bad = socket.request({"type": "conversation.update", "conversation_id": a["conversation_id"], "model": "nope"})
        assert bad["code"] == "bad_request" and "nope" in bad["message"]
        listed = socket.request({"type": "conversations", "limit": 1})
        assert listed["has_more"] is True and listed["conversations"][0]["title"] == "Renamed"
        assert socket.request({"type": "conversation.delete", "conversation_id": a["conversation_id"]})["type"] == "ok"
        gone = socket.request({"type": "history", "conversation_id": a["conversation_id"]})
        assert gone["code"] == "not_found"


def test_cancel_of_an_ended_turn_is_ok_and_of_an_unknown_turn_not_found(client) -> None:
    with connected(client, hello={}) as socket:
        ack, _ = socket.chat("done already")
        assert socket.request({"type": "cancel", "turn_id": ack["turn_id"]})["type"] == "ok"
        assert socket.request({"type": "cancel", "turn_id": "t_nope"})["code"] == "not_found"


def test_unknown_model_or_template_in_send_is_a_bad_request(client) -> None:
    with connected(client, hello={}) as socket:
        assert socket.request({"type": "send", "client_msg_id": "a", "text": "x", "model": "gpt-9"})["code"] == "bad_request"
        assert socket.request({"type": "send", "client_msg_id": "b", "text": "x", "template": "nope"})["code"] == "bad_request"


def test_a_foreign_origin_is_refused_before_accept(client) -> None:
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws", headers={"origin": "https://evil.example"}),
    ):
        pass


def test_the_page_is_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"status": "ready"}
