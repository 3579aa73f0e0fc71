"""What a tool may reach, scoped to the user it runs for.

A tool gets capabilities, not the server: the calling user's own conversations, messages
and search (`UserData`), the settings its role may see (`SettingsView`), and a report of
the server's state sized to its role (`ServerView`). Nothing here hands out the store,
the sessions or the sockets, so a plugin cannot create accounts or reach another user's
data, whatever it calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from server.config.changes import needs_restart
from server.config.live import LiveConfig
from server.config.settings import Config, with_changes
from server.config.view import masked_settings
from server.errors import Forbidden
from server.exporting import Exported, export_conversation
from server.store.base import Conversation, Message, SearchHit, Store, UserRecord

ExportFormat = Literal["md", "json", "csv", "html"]


class UserData:
    """The calling user's conversations and messages: every read is scoped to that user."""

    def __init__(self, store: Store, user: UserRecord):
        self._store = store
        self._user_id = user.id

    async def conversation(self, conversation_id: str) -> Conversation:
        """Raises NotFound for a conversation this user does not own."""
        return await self._store.get_conversation(self._user_id, conversation_id)

    async def conversations(
        self, *, before: str | None = None, limit: int = 50, query: str | None = None
    ) -> tuple[list[Conversation], bool]:
        return await self._store.list_conversations(self._user_id, before=before, limit=limit, query=query)

    async def messages(
        self, conversation_id: str, *, before: str | None = None, limit: int = 50
    ) -> tuple[list[Message], bool]:
        return await self._store.history(self._user_id, conversation_id, before=before, limit=limit)

    async def search(self, query: str, **filters: Any) -> list[SearchHit]:
        """Full-text search over this user's messages (see `Store.search_messages`)."""
        return await self._store.search_messages(self._user_id, query, **filters)

    async def export(self, conversation_id: str, fmt: ExportFormat) -> Exported:
        return await export_conversation(self._store, self._user_id, conversation_id, fmt)


class SettingsView:
    """The effective settings as this user's role may see them (admins: all, masked;
    others: none), and live changes for admins."""

    def __init__(self, live: LiveConfig, user: UserRecord, apply: Callable[[Config], list[str]]):
        self._live = live
        self._user = user
        self._apply = apply

    def masked(self) -> dict[str, Any]:
        self._require_admin()
        return masked_settings(self._live.current)

    def change(self, changes: dict[str, str], *, source: str) -> dict[str, Any]:
        """Apply settings that reload live; returns the masked settings afterwards.
        Raises Forbidden for non-admins and for settings that need a restart, ConfigError
        (changing nothing) for a bad value."""
        self._require_admin()
        restart = sorted(key for key in changes if needs_restart(key))
        if restart:
            raise Forbidden(f"these settings need a restart and cannot be changed live: {', '.join(restart)}")
        self._apply(with_changes(self._live.current, changes, source=source))
        return masked_settings(self._live.current)

    def _require_admin(self) -> None:
        if self._user.role != "admin":
            raise Forbidden("only admins may see or change settings")


class ServerStatus(msgspec.Struct):
    """What the server reports of itself; counts are the user's own unless `scope` is "server"."""

    scope: Literal["user", "server"]
    uptime_s: float
    draining: bool
    models: dict[str, Any]
    sessions: int
    sockets: int
    running_turns: int


class ServerView:
    """The server's state for this user: admins see server-wide counts, everyone else
    their own sessions, sockets and turns."""

    def __init__(self, report: Callable[[UserRecord | None], ServerStatus], ping: Callable[[], Any], user: UserRecord):
        self._report = report
        self._ping = ping
        self._user = user

    def status(self) -> ServerStatus:
        return self._report(None if self._user.role == "admin" else self._user)

    async def ping_store(self) -> None:
        """Raises whatever the store raises when it cannot answer."""
        await self._ping()
