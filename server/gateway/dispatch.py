"""What each client frame does, once the gateway has decoded it and the session is known.

`handle()` returns the direct reply to a frame (its `ref` filled in by the gateway) and
raises `ChinwagError` for anything the client got wrong; the gateway maps those to
`error` frames in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from server import protocol
from server.errors import BadRequest, TooLarge
from server.runtime import Runtime
from server.sessions.session import Session
from server.store.base import NewUserMessage
from server.turns.state import TurnRequest


class FrameHandler:
    def __init__(self, runtime: Runtime, session: Session):
        self.runtime = runtime
        self.session = session
        self.user = session.user

    async def handle(self, frame: protocol.ClientFrame) -> protocol.Reply:
        match frame:
            case protocol.Send():
                return await self.send(frame)
            case protocol.Cancel(turn_id=turn_id):
                await self.runtime.turns.cancel(self.user.id, turn_id)
                return protocol.Ok()
            case protocol.HistoryRequest():
                return await self.history(frame)
            case protocol.ConversationsRequest():
                conversations, has_more = await self.runtime.store.list_conversations(
                    self.user.id, before=frame.before, limit=frame.limit, query=frame.query
                )
                return protocol.ConversationsReply(conversations=conversations, has_more=has_more)
            case protocol.ConversationUpdate():
                await self.update_conversation(frame)
                return protocol.Ok()
            case protocol.ConversationDelete(conversation_id=conversation_id):
                await self.runtime.store.delete_conversation(self.user.id, conversation_id)
                self.session.open_conversations.discard(conversation_id)
                return protocol.Ok()
            case protocol.Approve(call_id=call_id, decision=decision):
                self.runtime.tools.approvals.decide(self.user.id, call_id, decision)
                return protocol.Ok()
            case protocol.ToolInvoke():
                outcome = await self.runtime.tools.call_direct(
                    self.user, frame.name, frame.args, frame.conversation_id
                )
                return protocol.ToolResult(
                    name=frame.name, ok=outcome.ok, result=outcome.result, error=outcome.error
                )
            case protocol.Ping():
                return protocol.Pong()
            case protocol.Hello():
                raise BadRequest("hello was already received on this connection")
        raise BadRequest(f"frame type {type(frame).__name__} is not handled")

    async def send(self, frame: protocol.Send) -> protocol.Ack:
        runtime = self.runtime
        if len(frame.text) > runtime.config.limits.max_text_chars:
            raise TooLarge(
                f"text is {len(frame.text)} characters; the limit is "
                f"{runtime.config.limits.max_text_chars}",
                details={"path": "$.text"},
            )
        if not frame.text.strip():
            raise BadRequest("text is empty", details={"path": "$.text"})
        self._check_choices(frame.model, frame.template)
        runtime.turns.check_accepts(frame.conversation_id)
        # Turns per minute and the day's token quota, before anything is stored.
        await runtime.guard.check(self.user, frame.client_msg_id)
        accepted = await runtime.store.accept_user_message(NewUserMessage(
            user_id=self.user.id,
            client_msg_id=frame.client_msg_id,
            text=frame.text,
            conversation_id=frame.conversation_id,
            model=frame.model,
            template=frame.template,
            variables=frame.variables,
        ))
        self.session.open_conversations.add(accepted.conversation_id)
        ack = protocol.Ack(
            client_msg_id=frame.client_msg_id,
            conversation_id=accepted.conversation_id,
            message_id=accepted.message_id,
            turn_id=accepted.turn_id,
            duplicate=not accepted.created,
            answer_message_id=accepted.answer_id or None,
        )
        if accepted.created:
            await runtime.guard.counted(self.user)
            self._announce(frame, accepted.conversation_id, accepted.message_id, accepted.turn_id)
        return ack

    def start_turn(self, frame: protocol.Send, ack: protocol.Ack) -> None:
        """Called by the gateway after the ack is queued: the ack precedes every turn event."""
        if ack.duplicate or ack.answer_message_id is None:
            return
        self.runtime.turns.start(TurnRequest(
            turn_id=ack.turn_id,
            answer_id=ack.answer_message_id,
            chars=len(frame.text),
            user=self.user,
            conversation_id=ack.conversation_id,
            model=frame.model,
            template=frame.template,
            variables=frame.variables,
        ))

    async def history(self, frame: protocol.HistoryRequest) -> protocol.HistoryReply:
        messages, has_more = await self.runtime.store.history(
            self.user.id, frame.conversation_id, before=frame.before, limit=frame.limit
        )
        self.session.open_conversations.add(frame.conversation_id)
        return protocol.HistoryReply(
            conversation_id=frame.conversation_id, messages=messages, has_more=has_more
        )

    async def update_conversation(self, frame: protocol.ConversationUpdate) -> None:
        """Fields left out stay as they are; `model: ""` or `template: ""` clears the choice
        (back to the server's default)."""
        self._check_choices(frame.model or None, frame.template or None)
        changes: dict[str, Any] = {
            name: value or None if name in ("model", "template") else value
            for name in ("title", "model", "template", "variables")
            if (value := getattr(frame, name)) is not None
        }
        if "title" in changes and not changes["title"].strip():
            raise BadRequest("title is empty", details={"path": "$.title"})
        await self.runtime.store.update_conversation(self.user.id, frame.conversation_id, changes)

    def _check_choices(self, model: str | None, template: str | None) -> None:
        if model is not None:
            self.runtime.selector.settings(model)
        if template is not None:
            self.runtime.prompts.get(template)

    def _announce(self, frame: protocol.Send, conversation_id: str, message_id: str, turn_id: str) -> None:
        """Tell the user's other sessions (other tabs, devices) about the stored message."""
        message = protocol.Message(
            id=message_id,
            conversation_id=conversation_id,
            role="user",
            content=[{"type": "text", "text": frame.text}],
            text=frame.text,
            status="complete",
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            client_msg_id=frame.client_msg_id,
            turn_id=turn_id,
        )
        self.runtime.fanout.message_stored(self.user.id, message, origin=self.session)
