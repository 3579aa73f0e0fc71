"""The binding rule on PostgreSQL: beyond loopback only once the database has credentials."""

from __future__ import annotations

import asyncio

import pytest

from server.auth.binding import check_binding
from server.config.settings import StoreSettings, load_config
from server.errors import ConfigError
from server.store.postgres.store import PostgresStore


def _config(url: str, *extra: str):
    return load_config(environ={}, overrides=[f'store.url="{url}"', 'server.host="0.0.0.0"', *extra])


def test_beyond_loopback_needs_a_user_or_key_in_the_postgres_database(postgres_url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_binding(_config(postgres_url))
    assert refused.value.key == "server.host"

    async def add_user() -> None:
        store = PostgresStore(postgres_url, StoreSettings())
        await store.open()
        try:
            await store.create_user("ann", "admin", None)
        finally:
            await store.close()

    asyncio.run(add_user())
    check_binding(_config(postgres_url))  # a user exists: connections need credentials


def test_an_unreachable_database_counts_as_no_credentials() -> None:
    with pytest.raises(ConfigError):
        check_binding(_config("postgresql://nobody@127.0.0.1:1/none", "store.command_timeout_s=1"))
