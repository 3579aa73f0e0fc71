"""What a tool handler gets besides its arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.store.base import Store, UserRecord

if TYPE_CHECKING:
    from server.runtime import Runtime


@dataclass(frozen=True)
class ToolContext:
    """The caller and the server, as a tool sees them.

    `user` is who the call is for: every store query a tool makes must be scoped to
    `user.id`, which is how a tool keeps one user's data from another. `conversation_id`
    is the conversation the call belongs to (None for a direct call outside one).
    `runtime` gives the built-in tools (health, config) the server's state; plugins should
    need only the rest.
    """

    user: UserRecord
    conversation_id: str | None
    store: Store
    config: Any  # server.config.settings.Config
    log: Any  # a structlog logger bound with the call's context
    call_id: str
    runtime: Runtime
