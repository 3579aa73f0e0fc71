"""What a tool handler gets besides its arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.store.base import UserRecord
from server.tools.capabilities import ServerView, SettingsView, UserData


@dataclass(frozen=True)
class ToolContext:
    """The caller, and what a tool may reach on its behalf: nothing wider than that user.

    `user` is who the call is for. `conversation_id` is the conversation the call belongs
    to (None for a direct call outside one). `data` reads and searches that user's own
    conversations; `settings` is the config as the user's role may see it; `server`
    reports the server's state sized to the role; `log` is a structlog logger bound with
    the call's context.
    """

    user: UserRecord
    conversation_id: str | None
    call_id: str
    log: Any
    data: UserData
    settings: SettingsView
    server: ServerView
