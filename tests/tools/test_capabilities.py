"""A tool gets capabilities scoped to its user, never the server: no store, sessions or
sockets in its context; data reads are the caller's own; settings are for admins; the
health report is sized to the role."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.config.live import LiveConfig
from server.errors import Forbidden, NotFound
from server.store.base import UserRecord
from server.store.sqlite.store import SqliteStore
from server.tools import ToolContext
from server.tools.capabilities import SettingsView, UserData
from tests.store.helpers import send
from tests.tools.helpers import ALICE, BOB, TokenAuthenticator, connect, make_config, running

ADMIN = UserRecord(id="root", name="Root", role="admin")
USERS = {"alice": ALICE, "bob": BOB, "root": ADMIN}


def test_a_tool_context_offers_capabilities_not_the_server() -> None:
    fields = {f.name for f in dataclasses.fields(ToolContext)}
    assert fields == {"user", "conversation_id", "call_id", "log", "data", "settings", "server"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    config = make_config(tmp_path, probes=False)
    opened = SqliteStore(config.store.path, config.store)
    await opened.open()
    for user in (ALICE, BOB):
        await opened.ensure_user(user)
    yield opened
    await opened.close()


async def test_user_data_reads_only_the_callers_own(store: SqliteStore) -> None:
    alices = await send(store, ALICE.id, "the otter's secret")
    bob = UserData(store, BOB)
    with pytest.raises(NotFound):
        await bob.conversation(alices.conversation_id)
    with pytest.raises(NotFound):
        await bob.messages(alices.conversation_id)
    with pytest.raises(NotFound):
        await bob.export(alices.conversation_id, "md")
    assert await bob.search("otter") == []
    assert (await bob.conversations())[0] == []
    alice = UserData(store, ALICE)
    assert [h.conversation_id for h in await alice.search("otter")] == [alices.conversation_id]


def test_settings_are_for_admins_only(tmp_path: Path) -> None:
    live = LiveConfig(make_config(tmp_path))
    applied: list[object] = []
    for user in (ALICE, UserRecord(id="b", name="b", role="bot")):
        view = SettingsView(live, user, applied.append)  # type: ignore[arg-type]
        with pytest.raises(Forbidden):
            view.masked()
        with pytest.raises(Forbidden):
            view.change({"routing.default": '"echo"'}, source="test")
    assert applied == []
    assert "routing.default" in SettingsView(live, ADMIN, applied.append).masked()  # type: ignore[arg-type]


def test_health_counts_are_the_callers_own_unless_an_admin(tmp_path: Path) -> None:
    config = make_config(tmp_path, probes=False)
    with (
        running(config, authenticator=TokenAuthenticator(USERS)) as client,
        connect(client, "alice"), connect(client, "alice"), connect(client, "alice"),
        connect(client, "bob") as bob,
        connect(client, "root") as root,
    ):
        mine = bob.tool("health")["result"]
        everyone = root.tool("health")["result"]
    assert (mine["scope"], mine["sessions"], mine["sockets"]) == ("user", 1, 1)
    assert (everyone["scope"], everyone["sessions"], everyone["sockets"]) == ("server", 5, 5)
    # A user sees each model's state, not the text of its last error.
    assert all(set(model) == {"state"} for model in mine["models"].values())
