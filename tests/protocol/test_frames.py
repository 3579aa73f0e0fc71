"""The wire types: every frame round-trips, and bad input is named precisely."""

from __future__ import annotations

import json

import msgspec
import pytest

from server import protocol
from server.errors import BadRequest, UnknownType

CLIENT_FRAMES = [
    protocol.Hello(ref=1, token="t", resume=protocol.ResumeInfo(session_id="s", resume_token="r", last_seq=4),
                   client=protocol.ClientInfo(name="bot", version="1")),
    protocol.Send(client_msg_id="m1", text="hi", conversation_id="c1", model="echo", template="system",
                  variables={"tone": "dry"}, ref="x"),
    protocol.Cancel(turn_id="t1"),
    protocol.Approve(call_id="tc1", decision="deny"),
    protocol.ToolInvoke(name="search", args={"query": "x", "nested": [1, {"a": None}]}, conversation_id="c"),
    protocol.HistoryRequest(conversation_id="c", before="m", limit=200),
    protocol.ConversationsRequest(before="c", limit=1, query="q"),
    protocol.ConversationUpdate(conversation_id="c", title="T", model="", template="", variables={}),
    protocol.ConversationDelete(conversation_id="c"),
    protocol.Regenerate(conversation_id="c", message_id="m", ref=8),
    protocol.Ping(ref=7),
]

MESSAGE = protocol.Message(id="m", conversation_id="c", role="user", content=[{"type": "text", "text": "hi"}],
                           status="complete", created_at="2026-01-01T00:00:00.000Z", text="hi", client_msg_id="x")
SERVER_FRAMES = [
    protocol.Welcome(session_id="s", resume_token="r", resumed=False, last_seq=0, heartbeat_s=20,
                     user=protocol.UserInfo(id="u", name="n", role="admin"),
                     server=protocol.ServerInfo(name="chinwag", version="0"), models=["echo"],
                     templates=["system"], tools=[{"name": "search"}], limits={"max_frame_bytes": 1}),
    protocol.Ack(client_msg_id="m", conversation_id="c", message_id="m1", turn_id="t", ref=3),
    protocol.Regenerated(conversation_id="c", message_id="m", turn_id="t", duplicate=True, ref=4),
    protocol.Ok(ref="a"),
    protocol.Error(code="bad_request", message="nope", details={"path": "$.text"}, retry_after=1.5),
    protocol.HistoryReply(conversation_id="c", messages=[MESSAGE], has_more=True),
    protocol.ConversationsReply(conversations=[protocol.Conversation(
        id="c", title="t", created_at="x", updated_at="y")], has_more=False),
    protocol.ToolResult(name="search", ok=False, error="boom"),
    protocol.Pong(),
    protocol.MessageEvent(conversation_id="c", message=MESSAGE, seq=1),
    protocol.TurnStarted(turn_id="t", conversation_id="c", message_id="m", model="echo", template="system", seq=2),
    protocol.Delta(turn_id="t", text="hé ", seq=3),
    protocol.ToolCallEvent(turn_id="t", call_id="tc", name="search", args={"q": 1}, needs_approval=True, seq=4),
    protocol.ToolOutput(turn_id="t", call_id="tc", ok=True, result=[1, 2], seq=5),
    protocol.TurnCompleted(turn_id="t", conversation_id="c", message_id="m", status="failed", model="b",
                           fallback_from="a", usage=protocol.TurnUsage(1, 2), stop_reason="end_turn",
                           error=protocol.TurnError(code="timeout", message="slow"), seq=6),
    protocol.Reconnect(reason="shutdown", seq=7),
]


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=lambda f: type(f).__name__)
def test_client_frames_round_trip(frame: protocol.ClientFrame) -> None:
    assert protocol.decode_client_frame(msgspec.json.encode(frame)) == frame


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda f: type(f).__name__)
def test_server_frames_round_trip(frame: protocol.ServerFrame) -> None:
    encoded = protocol.encode(frame)
    assert msgspec.json.decode(encoded, type=protocol.ServerFrame) == frame
    assert json.loads(encoded)["type"] == frame.__struct_config__.tag


def test_unknown_fields_are_ignored_so_clients_can_send_newer_frames() -> None:
    frame = protocol.decode_client_frame(b'{"type":"ping","ref":1,"future_field":{"x":1}}')
    assert frame == protocol.Ping(ref=1)


def test_every_client_type_of_the_protocol_is_decodable() -> None:
    assert protocol.CLIENT_TYPES == {
        "hello", "send", "cancel", "approve", "tool", "history", "conversations",
        "conversation.update", "conversation.delete", "ping",
        "regenerate",  # an addition (docs/protocol.md, Additions)
    }


@pytest.mark.parametrize(
    ("raw", "error", "path", "words"),
    [
        (b"{not json", BadRequest, None, "malformed JSON"),
        (b"[1,2]", BadRequest, "$", "Expected `object`"),
        (b'{"ref":1}', BadRequest, "$", "missing required field `type`"),
        (b'{"type":"dance"}', UnknownType, "$.type", "dance"),
        (b'{"type":"send","client_msg_id":"a","text":5}', BadRequest, "$.text", "Expected `str`"),
        (b'{"type":"send","client_msg_id":"","text":"x"}', BadRequest, "$.client_msg_id", "length >= 1"),
        (b'{"type":"send","client_msg_id":"' + b"a" * 65 + b'","text":"x"}', BadRequest, "$.client_msg_id", "length <= 64"),
        (b'{"type":"history","conversation_id":"c","limit":0}', BadRequest, "$.limit", ">= 1"),
        (b'{"type":"history","conversation_id":"c","limit":201}', BadRequest, "$.limit", "<= 200"),
        (b'{"type":"approve","call_id":"c","decision":"maybe"}', BadRequest, "$.decision", "Invalid enum value"),
        (b'{"type":"send","client_msg_id":"a","text":"x","variables":{"k":1}}', BadRequest, "$.variables[...]", "Expected `str`"),
        (b'{"type":"send","client_msg_id":"a","text":"\\ud800"}', BadRequest, None, "lone UTF-16 surrogate"),
        (b'{"type":"send","client_msg_id":"a","text":"\\udc00x"}', BadRequest, None, "lone UTF-16 surrogate"),
    ],
)
def test_bad_frames_name_what_is_wrong(raw: bytes, error: type, path: str | None, words: str) -> None:
    with pytest.raises(error) as caught:
        protocol.decode_client_frame(raw)
    assert words in caught.value.message
    if path is not None:
        assert caught.value.details == {"path": path}


def test_surrogate_pairs_are_fine() -> None:
    frame = protocol.decode_client_frame(b'{"type":"send","client_msg_id":"a","text":"\\ud83d\\ude00"}')
    assert isinstance(frame, protocol.Send) and frame.text == "\N{GRINNING FACE}"


def test_nesting_deeper_than_32_is_refused_and_32_is_not() -> None:
    def nested(depth: int) -> bytes:
        # the frame object itself and "args" make two levels
        return b'{"type":"tool","name":"t","args":{"a":' + b"[" * (depth - 2) + b"]" * (depth - 2) + b"}}"

    assert isinstance(protocol.decode_client_frame(nested(32)), protocol.ToolInvoke)
    with pytest.raises(BadRequest, match="nested deeper than 32"):
        protocol.decode_client_frame(nested(33))


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 100
    frame = protocol.decode_client_frame(json.dumps({"type": "send", "client_msg_id": "a", "text": text}))
    assert isinstance(frame, protocol.Send) and frame.text == text


def test_peek_ref_recovers_the_ref_of_a_frame_that_failed() -> None:
    assert protocol.peek_ref(b'{"type":"dance","ref":"abc"}') == "abc"
    assert protocol.peek_ref(b'{"type":"dance","ref":true}') is None
    assert protocol.peek_ref(b"nonsense") is None
