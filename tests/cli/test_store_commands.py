"""`chinwag migrate` and `chinwag store copy`, run as the real command against real
databases: SQLite files and the session's private PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from server.auth.identity import LOCAL_USER
from server.config.settings import StoreSettings
from server.store.base import NewUserMessage
from server.store.postgres.migrations import MIGRATIONS as POSTGRES_MIGRATIONS
from server.store.postgres.store import PostgresStore
from server.store.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from tests.cli.commands import chinwag, one_line_error
from tests.support.inproc import connected, make_config, running_app
from tests.support.services import PostgresServer


def on(url: str) -> tuple[str, str]:
    return ("--set", f'store.url="{url}"')


def test_migrate_applies_the_sqlite_migrations_once(tmp_path: Path) -> None:
    first = chinwag(tmp_path, "migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"conversations/chinwag.db: applied migration {m.version}: {m.name}"
        for m in SQLITE_MIGRATIONS
    ]
    again = chinwag(tmp_path, "migrate")
    assert again.stdout.strip().endswith(
        f"the schema is up to date (version {SQLITE_MIGRATIONS[-1].version})"
    )


def test_migrate_applies_the_postgres_migrations_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.new_database(migrated=False)
    first = chinwag(tmp_path, "migrate", *on(url))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"{url}: applied migration {m.version}: {m.name}" for m in POSTGRES_MIGRATIONS
    ]
    again = chinwag(tmp_path, "migrate", *on(url))
    assert again.stdout.strip() == (
        f"{url}: the schema is up to date (version {POSTGRES_MIGRATIONS[-1].version})"
    )
    assert not (tmp_path / "conversations").exists()  # SQLite was never opened


def test_migrate_names_a_postgres_server_that_cannot_be_reached(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = f"postgresql://nobody:hunter2@127.0.0.1:{postgres_server.port}/missing_database"
    line = one_line_error(chinwag(tmp_path, "migrate", *on(url)))
    assert line.startswith("chinwag: unavailable: cannot open the PostgreSQL store at")
    assert "hunter2" not in line and "nobody:***@" in line


def test_store_copy_moves_everything_and_refuses_a_non_empty_target(
    tmp_path: Path, postgres_url: str
) -> None:
    config = make_config(tmp_path / "conversations")  # the command's store.path
    with running_app(config) as client, connected(client, hello={}) as socket:
        ack, _ = socket.chat("copied across")
        socket.chat("and the second one", conversation_id=ack["conversation_id"])
    assert chinwag(tmp_path, "users", "add", "ann", "--role", "admin").returncode == 0
    assert chinwag(tmp_path, "keys", "create", "--user", "ann", "--name", "bot").returncode == 0
    exported = chinwag(tmp_path, "export", ack["conversation_id"], "--format", "json")

    copied = chinwag(tmp_path, "store", "copy", "--to", postgres_url)
    assert copied.returncode == 0, copied.stderr
    assert "4 messages" in copied.stdout and "1 conversations" in copied.stdout

    # The same conversation, ids and all, now read from PostgreSQL.
    again = chinwag(tmp_path, "export", ack["conversation_id"], "--format", "json", *on(postgres_url))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["messages"] == json.loads(exported.stdout)["messages"]
    users = chinwag(tmp_path, "users", "list", *on(postgres_url))
    assert "ann" in users.stdout
    keys = chinwag(tmp_path, "keys", "list", *on(postgres_url))
    assert "bot" in keys.stdout
    # New rows continue after the copied ones.
    texts = asyncio.run(_write_after_copy(postgres_url, ack["conversation_id"]))
    assert texts == ["copied across", "copied across", "and the second one",
                     "and the second one", "written after the copy", ""]

    refused = one_line_error(chinwag(tmp_path, "store", "copy", "--to", postgres_url))
    assert "not empty" in refused and "--force" in refused
    forced = chinwag(tmp_path, "store", "copy", "--to", postgres_url, "--force")
    assert forced.returncode == 0, forced.stderr
    after = chinwag(tmp_path, "export", ack["conversation_id"], "--format", "json", *on(postgres_url))
    assert json.loads(after.stdout)["messages"] == json.loads(exported.stdout)["messages"]


async def _write_after_copy(url: str, conversation_id: str) -> list[str]:
    store = PostgresStore(url, StoreSettings())
    await store.open()
    try:
        new = NewUserMessage(
            user_id=LOCAL_USER.id, client_msg_id="after", text="written after the copy",
            conversation_id=conversation_id,
        )
        await store.accept_user_message(new)
        history, _ = await store.history(LOCAL_USER.id, conversation_id, before=None, limit=10)
        return [m.text for m in history]
    finally:
        await store.close()


def test_store_copy_refuses_a_url_that_is_not_postgres(tmp_path: Path) -> None:
    line = one_line_error(chinwag(tmp_path, "store", "copy", "--to", "mysql://db/x"))
    assert "postgresql://" in line
