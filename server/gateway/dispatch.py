"""What each client frame does, once the gateway has decoded it and the session is known.

`handle()` returns the direct reply to a frame (its `ref` filled in by the gateway) and
raises `ChinwagError` for anything the client got wrong; the gateway maps those to
`error` frames in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from server import protocol
from server.errors import BadRequest, Conflict, TooLarge, Unavailable
from server.gateway.parts import GatewayParts
from server.sessions.session import SessionHandle
from server.store.base import NewUserMessage, Restarted
from server.tools.approvals import approval_author
from server.turns.state import TurnRequest


class FrameHandler:
    def __init__(self, parts: GatewayParts, session: SessionHandle):
        self.parts = parts
        self.session = session
        self.user = session.user
        # Regenerations committed and answered, by turn id, until the gateway starts them.
        self._restarted: dict[str, Restarted] = {}

    async def handle(self, frame: protocol.ClientFrame) -> protocol.Reply:
        match frame:
            case protocol.Send():
                return await self.send(frame)
            case protocol.Cancel(turn_id=turn_id):
                await self.parts.turns.cancel(self.user.id, turn_id)
                return protocol.Ok()
            case protocol.HistoryRequest():
                return await self.history(frame)
            case protocol.ConversationsRequest():
                conversations, has_more = await self.parts.store.list_conversations(
                    self.user.id, before=frame.before, limit=frame.limit, query=frame.query
                )
                return protocol.ConversationsReply(conversations=conversations, has_more=has_more)
            case protocol.ConversationUpdate():
                await self.update_conversation(frame)
                return protocol.Ok()
            case protocol.ConversationDelete(conversation_id=conversation_id):
                await self.parts.store.delete_conversation(self.user.id, conversation_id)
                self.session.open_conversations.discard(conversation_id)
                return protocol.Ok()
            case protocol.Approve(call_id=call_id, decision=decision):
                await self.approve(call_id, decision)
                return protocol.Ok()
            case protocol.ToolInvoke():
                outcome = await self.parts.tools.call_direct(
                    self.user, frame.name, frame.args, frame.conversation_id
                )
                return protocol.ToolResult(
                    name=frame.name, ok=outcome.ok, result=outcome.result, error=outcome.error
                )
            case protocol.Regenerate():
                return await self.regenerate(frame)
            case protocol.Ping():
                return protocol.Pong()
            case protocol.Hello():
                raise BadRequest("hello was already received on this connection")
        raise BadRequest(f"frame type {type(frame).__name__} is not handled")

    async def send(self, frame: protocol.Send) -> protocol.Ack:
        parts = self.parts
        if frame.conversation_id is not None:
            # Ownership before anything else: another user's conversation is `not_found`
            # whatever its state (busy or idle), and whatever else is wrong with the frame.
            await parts.store.get_conversation(self.user.id, frame.conversation_id)
        if len(frame.text) > parts.config.limits.max_text_chars:
            raise TooLarge(
                f"text is {len(frame.text)} characters; the limit is "
                f"{parts.config.limits.max_text_chars}",
                details={"path": "$.text"},
            )
        if not frame.text.strip():
            raise BadRequest("text is empty", details={"path": "$.text"})
        self._check_choices(frame.model, frame.template)
        try:
            parts.turns.check_accepts(self.user.id, frame.conversation_id)
        except Conflict:
            # A resend of a message already stored starts no turn: it gets its ack again
            # (Guarantee 1), whatever runs in the conversation.
            if not await parts.store.message_accepted(self.user.id, frame.client_msg_id):
                raise
        # The day's token quota and turns per minute (this send counted), before anything
        # is stored.
        await parts.guard.check(self.user, frame.client_msg_id)
        new = NewUserMessage(
            user_id=self.user.id,
            client_msg_id=frame.client_msg_id,
            text=frame.text,
            conversation_id=frame.conversation_id,
            model=frame.model,
            template=frame.template,
            variables=frame.variables,
        )
        try:
            accepted = await parts.store.accept_user_message(new)
        except Unavailable as exc:
            # Nothing was stored and no turn started: the same send may simply be retried.
            raise Unavailable(
                f"your message was not stored: {exc.message}; send it again later",
                details={**(exc.details or {}), "stored": False},
            ) from exc
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
            self._announce(frame, accepted.conversation_id, accepted.message_id, accepted.turn_id)
        return ack

    def start_turn(self, frame: protocol.Send, ack: protocol.Ack) -> None:
        """Called by the gateway after the ack is queued: the ack precedes every turn event."""
        if ack.duplicate or ack.answer_message_id is None:
            return
        self.parts.turns.start(TurnRequest(
            turn_id=ack.turn_id,
            answer_id=ack.answer_message_id,
            chars=len(frame.text),
            user=self.user,
            conversation_id=ack.conversation_id,
            model=frame.model,
            template=frame.template,
            variables=frame.variables,
        ))

    async def regenerate(self, frame: protocol.Regenerate) -> protocol.Regenerated:
        """Empty the newest answer for a new turn on the same question; the gateway starts
        that turn after the reply is queued (`start_regeneration`), as for a send."""
        parts = self.parts
        # Turns per minute and the day's quota, as for a send ("" names no stored message).
        await parts.guard.check(self.user, "")
        restarted = await parts.store.restart_answer(
            self.user.id, frame.conversation_id, frame.message_id
        )
        self.session.open_conversations.add(restarted.conversation_id)
        if restarted.created:
            self._restarted[restarted.turn_id] = restarted
        return protocol.Regenerated(
            conversation_id=restarted.conversation_id,
            message_id=restarted.message_id,
            turn_id=restarted.turn_id,
            duplicate=not restarted.created,
        )

    def start_regeneration(self, reply: protocol.Regenerated) -> None:
        restarted = self._restarted.pop(reply.turn_id, None)
        if restarted is None:
            return
        self.parts.turns.start(TurnRequest(
            turn_id=restarted.turn_id,
            answer_id=restarted.message_id,
            chars=restarted.chars,
            user=self.user,
            conversation_id=restarted.conversation_id,
        ))

    async def history(self, frame: protocol.HistoryRequest) -> protocol.HistoryReply:
        messages, has_more = await self.parts.store.history(
            self.user.id, frame.conversation_id, before=frame.before, limit=frame.limit
        )
        conversation = await self.parts.store.get_conversation(self.user.id, frame.conversation_id)
        waiting = await self.parts.store.pending_approvals(self.user.id, frame.conversation_id)
        self.session.open_conversations.add(frame.conversation_id)
        return protocol.HistoryReply(
            conversation_id=frame.conversation_id,
            messages=messages,
            has_more=has_more,
            conversation=conversation,
            pending_approvals=[
                protocol.PendingApproval(
                    call_id=a.call_id, name=a.name, args=a.args, turn_id=a.turn_id,
                    expires_at=a.expires_at,
                )
                for a in waiting
            ],
        )

    async def approve(self, call_id: str, decision: Literal["allow", "deny"]) -> None:
        """Decide a waiting call, once, whichever tab or node it waits on. With
        `tools.approver = "person"`, a socket opened with an API key (a bot) may not."""
        session = self.session
        author = approval_author(
            user_id=self.user.id, key_id=session.key_id, login_id=session.login_id,
            approver=self.parts.config.tools.approver,
        )
        await self.parts.tools.approvals.decide_anywhere(
            self.user.id, call_id, decision, decided_by=author
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
        await self.parts.store.update_conversation(self.user.id, frame.conversation_id, changes)

    def _check_choices(self, model: str | None, template: str | None) -> None:
        if model is not None:
            self.parts.selector.settings(model)
        if template is not None:
            self.parts.prompts.get(template)

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
        self.parts.fanout.message_stored(self.user.id, message, origin=self.session)
