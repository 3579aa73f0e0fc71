"""The app on the PostgreSQL store (`store.url`): turns over the socket, a restart on the
same database, and what clients see when PostgreSQL refuses connections."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from tests.support.inproc import connected, make_config, running_app
from tests.support.services import PostgresServer


def test_a_turn_survives_a_restart_on_the_same_postgres_database(
    tmp_path: Path, postgres_url: str
) -> None:
    config = make_config(tmp_path, f'store.url="{postgres_url}"')
    with running_app(config) as client, connected(client, hello={}) as socket:
        ack, events = socket.chat("kept in postgres")
        assert events[-1]["type"] == "turn.completed" and events[-1]["status"] == "complete"
    assert not (tmp_path / "chinwag.db").exists()  # nothing went to SQLite

    with running_app(config) as client, connected(client, hello={}) as socket:
        history = socket.request({"type": "history", "conversation_id": ack["conversation_id"]})
        found = socket.request({"type": "tool", "name": "search", "args": {"query": "postgres"}})
    assert [(m["role"], m["text"], m["status"]) for m in history["messages"]] == [
        ("user", "kept in postgres", "complete"),
        ("assistant", "kept in postgres", "complete"),
    ]
    assert found["type"] == "tool.result", found
    assert found["result"]


def test_postgres_refusing_connections_is_unavailable_and_not_ready(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[-1]
    config = make_config(tmp_path, f'store.url="{postgres_url}"')
    with running_app(config) as client, connected(client, hello={}) as socket:
        socket.chat("before")
        assert client.get("/readyz").status_code == 200
        # No connection may be made any more, and the pool's are cut.
        postgres_server.sql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        postgres_server.sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        )
        reply = socket.request({"type": "send", "client_msg_id": "after", "text": "after"})
        assert reply["type"] == "error" and reply["code"] == "unavailable", reply
        assert client.get("/readyz").status_code == 503

        postgres_server.sql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        assert client.get("/readyz").status_code == 200
        socket.chat("back again")
    assert asyncio.run(_count(postgres_url)) == 4


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()
