"""What both OpenAI-compatible APIs do around a turn: who asks, the request's body and
`Idempotency-Key`, the stored question, and telling the user's other clients about it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request

from server import protocol
from server.auth.identity import (
    LOCAL_USER,
    Authenticator,
    Identity,
    StoreAuthenticator,
    bearer_token,
)
from server.auth.keys import KEY_MARK
from server.bus.base import Publisher
from server.errors import BadRequest, Conflict, NotFound, Unavailable
from server.models.base import ToolSpec
from server.models.selector import Selector
from server.openai_api.client_tools import client_tools
from server.store.base import Accepted, Store, UserRecord
from server.turns.guard import TurnGuard
from server.turns.runner import TurnRunner

MAX_IDEMPOTENCY_KEY = 200
# Names a stored conversation to add the turn to; every turn's response carries it back.
CONVERSATION_HEADER = "x-chinwag-conversation"
Body = TypeVar("Body")


class ApiParts(msgspec.Struct, kw_only=True, frozen=True):
    """What the OpenAI-compatible routes use, out of everything the process runs on."""

    authenticator: Authenticator
    store: Store
    turns: TurnRunner
    guard: TurnGuard
    selector: Selector
    fanout: Publisher
    draining: Callable[[], bool]


async def identify(authenticator: Authenticator, request: Request) -> Identity:
    """The caller, by `Authorization: Bearer <chinwag API key>`. An SDK always sends some
    key: in open mode (no users, no keys, loopback) one that is not a chinwag key is the
    built-in `local` user, as a request without any would be."""
    token = bearer_token(request.headers)
    open_mode = isinstance(authenticator, StoreAuthenticator) and not await authenticator.credentials_required()
    if token and not token.startswith(KEY_MARK) and open_mode:
        return Identity(user=LOCAL_USER, method="local")
    return await authenticator.identify(request.headers, None)


async def turn_maker(parts: ApiParts, request: Request) -> Identity:
    """The caller of a route that makes a turn, refused while the server drains. The store
    must know the user (a continued turn is run as its stored user), as a socket's connect
    makes sure: a key's or a login's user is stored already; the built-in `local` user, or
    one a proxy names, may not be."""
    if parts.draining():
        raise Unavailable("the server is shutting down; retry on another node or later")
    identity = await identify(parts.authenticator, request)
    if identity.method not in ("key", "login"):
        await parts.store.ensure_user(identity.user)
    return identity


def functions(parts: ApiParts, user: UserRecord, tools: Any, *, nested: bool) -> list[ToolSpec]:
    """The request's own functions, none named like a chinwag tool this user is offered."""
    own = {tool.name for tool in parts.turns.tools.available(user.role)}
    return client_tools(tools, nested=nested, server_tools=own)


def turn_headers(accepted: Accepted) -> dict[str, str]:
    """Where the turn went: its conversation (to continue it) and the turn itself."""
    return {CONVERSATION_HEADER: accepted.conversation_id, "x-chinwag-turn": accepted.turn_id}


def decode(raw: bytes, kind: type[Body]) -> Body:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request: {exc}") from None
    except msgspec.DecodeError:
        raise BadRequest("the request body is not JSON") from None


def idempotent_msg_id(request: Request) -> tuple[str, bool]:
    """The turn's `client_msg_id` (from `Idempotency-Key` when there is one, so a retry
    finds the turn), and whether there was one."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return f"http:{secrets.token_urlsafe(16)}", False
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return f"http:{key}", True


async def same_request(store: Store, user: UserRecord, accepted: Accepted, content: list[dict[str, Any]]) -> None:
    """A retry joins the first request's turn only if it asks the same question."""
    question = await stored_message(store, user, accepted.message_id)
    if question.content != content:
        raise Conflict("this Idempotency-Key was used for a different request")


async def stored_message(store: Store, user: UserRecord, message_id: str) -> protocol.Message:
    message = await store.get_message(user.id, message_id)
    if message is None:
        raise NotFound("message not found")
    return message


def announce(
    fanout: Publisher, user: UserRecord, accepted: Accepted, content: list[dict[str, Any]], text: str, client_msg_id: str
) -> None:
    """The user's tabs and bots see the question, as they do for a `send` from the socket."""
    fanout.message_stored(user.id, protocol.Message(
        id=accepted.message_id, conversation_id=accepted.conversation_id, role="user",
        content=content, text=text, status="complete",
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        client_msg_id=client_msg_id, turn_id=accepted.turn_id,
    ), origin=None)
