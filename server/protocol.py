"""The wire contract of PROTOCOL.md v1, as types.

Every frame is a msgspec Struct in a tagged union on `type`. Client frames are decoded once,
at the gateway, by `decode_client_frame`; server frames are encoded by `encode`. Fields may
be added (clients ignore unknown ones) but never renamed or removed: `docs/protocol.md` is
the page bots are written against, and `chinwag schema` prints the JSON Schema of all of it.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any, Literal

import msgspec

from server.errors import BadRequest, UnknownType, validation_parts

PROTOCOL_VERSION = 1
SUBPROTOCOL = "chinwag.v1"
MAX_NESTING = 32


class CloseCode(enum.IntEnum):
    """Every WebSocket close code the server uses: the "Close codes" table of docs/protocol.md."""

    NORMAL = 1000
    GOING_AWAY = 1001
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTARTING = 1012
    OVERLOADED = 1013
    BAD_FRAMES = 4002
    NO_HELLO = 4003
    AUTH_FAILED = 4004  # also a login that ended: the credential no longer works
    RATE_LIMITED = 4008
    SLOW_CONSUMER = 4009
    KEY_REVOKED = 4011

Ref = str | int | None
ClientMsgId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=200)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class _Frame(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    pass


# ----------------------------------------------------------------------------- shared shapes


class ResumeInfo(msgspec.Struct, kw_only=True):
    session_id: str
    resume_token: str
    last_seq: Annotated[int, msgspec.Meta(ge=0)]


class ClientInfo(msgspec.Struct, kw_only=True):
    name: str = ""
    version: str = ""


class UserInfo(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: str


class ServerInfo(msgspec.Struct, kw_only=True):
    name: str
    version: str
    protocol: int = PROTOCOL_VERSION


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A stored message. `content` is a list of blocks (see `server.models.base`); `text` is
    the plain text of its text blocks, for clients that want only that."""

    id: str
    conversation_id: str
    role: Literal["user", "assistant", "tool"]
    content: list[dict[str, Any]]
    status: Literal["complete", "streaming", "cancelled", "incomplete", "failed"]
    created_at: str
    text: str = ""
    model: str | None = None
    client_msg_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    turn_id: str | None = None
    usage: dict[str, int] | None = None


class Conversation(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    title: str
    created_at: str
    updated_at: str
    model: str | None = None
    template: str | None = None
    variables: dict[str, str] | None = None


# ----------------------------------------------------------------------------- client frames


class Hello(_Frame, tag="hello"):
    ref: Ref = None
    token: str | None = None
    resume: ResumeInfo | None = None
    client: ClientInfo | None = None


class Send(_Frame, tag="send"):
    client_msg_id: ClientMsgId
    text: str
    ref: Ref = None
    conversation_id: Id | None = None
    model: str | None = None
    template: str | None = None
    variables: dict[str, str] | None = None


class Cancel(_Frame, tag="cancel"):
    turn_id: Id
    ref: Ref = None


class Approve(_Frame, tag="approve"):
    call_id: Id
    decision: Literal["allow", "deny"]
    ref: Ref = None


class ToolInvoke(_Frame, tag="tool"):
    name: str
    args: dict[str, Any] = {}
    ref: Ref = None
    conversation_id: Id | None = None


class HistoryRequest(_Frame, tag="history"):
    conversation_id: Id
    ref: Ref = None
    before: Id | None = None
    limit: Limit = 50


class ConversationsRequest(_Frame, tag="conversations"):
    ref: Ref = None
    before: Id | None = None
    limit: Limit = 50
    query: str | None = None


class ConversationUpdate(_Frame, tag="conversation.update"):
    conversation_id: Id
    ref: Ref = None
    title: str | None = None
    model: str | None = None
    template: str | None = None
    variables: dict[str, str] | None = None


class ConversationDelete(_Frame, tag="conversation.delete"):
    conversation_id: Id
    ref: Ref = None


class Regenerate(_Frame, tag="regenerate"):
    """Answer the question of `message_id` (the conversation's newest answer) again, in its
    place: a new turn rewrites that answer; the question is neither stored nor sent twice."""

    conversation_id: Id
    message_id: Id
    ref: Ref = None


class Ping(_Frame, tag="ping"):
    ref: Ref = None


ClientFrame = (
    Hello
    | Send
    | Cancel
    | Approve
    | ToolInvoke
    | HistoryRequest
    | ConversationsRequest
    | ConversationUpdate
    | ConversationDelete
    | Regenerate
    | Ping
)
CLIENT_TYPES = frozenset(cls.__struct_config__.tag for cls in ClientFrame.__args__)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- replies


class Welcome(_Frame, tag="welcome"):
    session_id: str
    resume_token: str
    resumed: bool
    last_seq: int
    heartbeat_s: float
    user: UserInfo
    server: ServerInfo
    models: list[str]
    templates: list[str]
    tools: list[dict[str, Any]]
    limits: dict[str, Any]
    ref: Ref = None


class Ack(_Frame, tag="ack"):
    client_msg_id: str
    conversation_id: str
    message_id: str
    turn_id: str
    ref: Ref = None
    duplicate: bool = False
    # The assistant message that will hold the answer (the `message_id` of `turn.started`).
    answer_message_id: str | None = None


class Regenerated(_Frame, tag="regenerated"):
    """The reply to `regenerate`, sent before any event of the new turn."""

    conversation_id: str
    message_id: str  # the answer being rewritten (the `message_id` of the coming `turn.started`)
    turn_id: str
    ref: Ref = None
    duplicate: bool = False  # the answer was being written already: no new turn started


class Ok(_Frame, tag="ok"):
    ref: Ref = None


class Error(_Frame, tag="error"):
    code: str
    message: str
    ref: Ref = None
    details: Any = None
    retry_after: float | None = None


class PendingApproval(msgspec.Struct, kw_only=True):
    """A tool call of the conversation still waiting for `approve` (as its `tool.call` said)."""

    call_id: str
    name: str
    args: dict[str, Any]
    turn_id: str
    expires_at: str  # after this it can no longer be approved: it counts as denied


class HistoryReply(_Frame, tag="history"):
    conversation_id: str
    messages: list[Message]
    has_more: bool
    ref: Ref = None
    conversation: Conversation | None = None  # the conversation itself (title and choices)
    # The conversation's calls waiting for `approve`, oldest first (absent when none), so a
    # client that reconnects can still answer them.
    pending_approvals: list[PendingApproval] = []


class ConversationsReply(_Frame, tag="conversations"):
    conversations: list[Conversation]
    has_more: bool
    ref: Ref = None


class ToolResult(_Frame, tag="tool.result"):
    name: str
    ok: bool
    ref: Ref = None
    result: Any = None
    error: str | None = None


class Pong(_Frame, tag="pong"):
    ref: Ref = None


Reply = (
    Welcome | Ack | Regenerated | Ok | Error | HistoryReply | ConversationsReply | ToolResult | Pong
)


# ----------------------------------------------------------------------------- events


class _Event(_Frame, kw_only=True):
    seq: int = 0  # assigned by the session when the event is published


class MessageEvent(_Event, tag="message"):
    conversation_id: str
    message: Message


class TurnStarted(_Event, tag="turn.started"):
    turn_id: str
    conversation_id: str
    message_id: str
    model: str
    template: str
    # True when an interrupted turn continues (a restart, a deploy, a node's death): its
    # answer already holds what was written before; the deltas that follow append to it.
    continued: bool = False


class Delta(_Event, tag="delta"):
    turn_id: str
    text: str


class ToolCallEvent(_Event, tag="tool.call"):
    turn_id: str
    call_id: str
    name: str
    args: dict[str, Any]
    needs_approval: bool


class ToolOutput(_Event, tag="tool.output"):
    turn_id: str
    call_id: str
    ok: bool
    result: Any = None
    error: str | None = None


class TurnUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    # Present (true) only when a count was estimated because the server did not report it.
    estimated: bool | msgspec.UnsetType = msgspec.UNSET


class TurnError(msgspec.Struct):
    code: str
    message: str


class TurnCompleted(_Event, tag="turn.completed"):
    turn_id: str
    conversation_id: str
    message_id: str
    status: Literal["complete", "cancelled", "failed"]
    model: str
    usage: TurnUsage
    stop_reason: str | None = None
    fallback_from: str | None = None
    error: TurnError | None = None


class Reconnect(_Event, tag="reconnect"):
    reason: str


Event = MessageEvent | TurnStarted | Delta | ToolCallEvent | ToolOutput | TurnCompleted | Reconnect
ServerFrame = Reply | Event


# ----------------------------------------------------------------------------- codec

_decoder = msgspec.json.Decoder(ClientFrame)
_encoder = msgspec.json.Encoder()
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def decode_client_frame(data: bytes | str) -> ClientFrame:
    """Decode one client frame, or raise `BadRequest` / `UnknownType` saying what is wrong."""
    raw = data.encode() if isinstance(data, str) else data
    if _nested_too_deep(raw):
        raise BadRequest(f"JSON nested deeper than {MAX_NESTING} levels")
    try:
        return _decoder.decode(raw)
    except RecursionError:  # not reached past the check above; never let it escape
        raise BadRequest(f"JSON nested deeper than {MAX_NESTING} levels") from None
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc), raw) from None
    except msgspec.DecodeError as exc:
        if _LONE_SURROGATE.search(raw):
            raise BadRequest("string contains a lone UTF-16 surrogate") from None
        raise BadRequest(f"malformed JSON: {exc}") from None


def encode(frame: ServerFrame) -> bytes:
    return _encoder.encode(frame)


class _RefOnly(msgspec.Struct):
    ref: Ref = None


_ref_decoder = msgspec.json.Decoder(_RefOnly)


def peek_ref(raw: bytes | str) -> Ref:
    """The `ref` of a frame that failed to decode, so its error can still carry it; None
    when the frame has no usable one. Never raises: it runs on the error path."""
    try:
        return _ref_decoder.decode(raw).ref
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None


def _validation_error(text: str, raw: bytes) -> BadRequest | UnknownType:
    message, path = validation_parts(text)
    if path == "$.type" and message.startswith("Invalid value"):
        frame_type = message.removeprefix("Invalid value ").strip("'")
        return UnknownType(f"unknown frame type {frame_type}", details={"path": path})
    return BadRequest(message or text, details={"path": path})


# The depth check without a loop in Python: strings (where brackets mean nothing) are cut
# out, the brackets kept, and a regex that only matches balanced brackets nested at most
# MAX_NESTING deep must match all of them. Every step runs in C, about as fast as decoding.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]"), bytes(set(range(256)) - set(b"[]{}"))


def _balanced_within(depth: int) -> re.Pattern[bytes]:
    pattern = b""
    for _ in range(depth):
        pattern = rb"(?:\[" + pattern + rb"\])*+"  # possessive: nothing to backtrack into
    return re.compile(pattern)


_WITHIN_MAX_NESTING = _balanced_within(MAX_NESTING)


def _nested_too_deep(raw: bytes) -> bool:
    """True when brackets outside strings nest deeper than MAX_NESTING. Free unless the
    frame has that many brackets. Brackets that do not balance are left to the decoder to
    call malformed (it stops at its own recursion limit, which `decode_client_frame` maps)."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_NESTING:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(*_BRACKETS_ONLY)
    if brackets.count(b"[") * 2 != len(brackets):
        return False
    return _WITHIN_MAX_NESTING.fullmatch(brackets) is None


def json_schema() -> dict[str, Any]:
    """JSON Schema of every frame, client and server, for `chinwag schema`."""
    (client, server), components = msgspec.json.schema_components(
        [ClientFrame, ServerFrame], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"chinwag wire protocol v{PROTOCOL_VERSION}",
        "$defs": components,
        "oneOf": [
            {"title": "client frame", **client},
            {"title": "server frame", **server},
        ],
    }
