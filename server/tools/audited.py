"""The tool executor with an audit trail: every call, approval and denial is recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from server.observability.audit import MAX_ARGS_CHARS, record
from server.store.base import UserRecord
from server.tools.executor import ToolExecutor, ToolOutcome

if TYPE_CHECKING:
    from server.tools.decorator import ToolHandler


class AuditedToolExecutor(ToolExecutor):
    """The tool executor, also auditing every call of a tool whose policy is `ask` (the
    tools that change things) once it has run."""

    async def _run(
        self,
        handler: ToolHandler,
        arguments: msgspec.Struct,
        user: UserRecord,
        conversation_id: str | None,
        call_id: str,
    ) -> ToolOutcome:
        outcome = await super()._run(handler, arguments, user, conversation_id, call_id)
        if self.policy_for(handler, user.role) == "ask":
            args = msgspec.json.encode(arguments).decode()
            await record(
                self.store,
                "tool_call",
                actor_id=user.id,
                target=handler.name,
                details={
                    "call_id": call_id,
                    "conversation_id": conversation_id,
                    "ok": outcome.ok,
                    "args": args[:MAX_ARGS_CHARS],
                },
            )
        return outcome
