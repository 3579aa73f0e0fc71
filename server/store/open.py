"""Which store a config asks for: PostgreSQL when `store.url` is set, else SQLite at
`store.path`. The one place that chooses (the app, `chinwag serve`'s check, offline commands)."""

from __future__ import annotations

from server.config.settings import Config
from server.errors import ConfigError
from server.store.base import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def store_for(config: Config, *, readers: int | None = None) -> Store:
    """A store for `config`, not opened yet. `readers`: SQLite reader connections."""
    settings = config.store
    if settings.url is None:
        from server.store.sqlite.store import DEFAULT_READERS, SqliteStore

        return SqliteStore(settings.path, settings, readers=readers or DEFAULT_READERS)
    if not settings.url.startswith(POSTGRES_SCHEMES):
        raise ConfigError("store.url", "must be a postgresql:// URL (or be left out for SQLite)")
    from server.store.postgres.store import PostgresStore

    return PostgresStore(settings.url, settings)
