"""The binding rule: never listen beyond this machine while nobody needs credentials to get in."""

from __future__ import annotations

import asyncio
import ipaddress
import sqlite3
from pathlib import Path

import asyncpg

from server.config.settings import Config
from server.errors import ConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_binding(config: Config) -> None:
    """Refuse to listen beyond this machine while nobody needs credentials to get in."""
    host = config.server.host
    if is_loopback(host) or config.auth.required or _auth_configured(config):
        return
    raise ConfigError(
        "server.host",
        f"refusing to listen on {host} without authentication: anyone who can reach it would be "
        "the built-in admin user `local`.\n"
        "Configure authentication first (same --config/--set as serve), then start again:\n"
        "  chinwag users add NAME --role admin --password-stdin   # a user who logs in in the browser\n"
        "  chinwag keys create --user NAME                        # an API key for a bot\n"
        "or set `auth.required = true` in the [auth] section of chinwag.toml "
        "(--set auth.required=true), or listen on 127.0.0.1 only.\n"
        "See docs/security.md.",
    )


def _auth_configured(config: Config) -> bool:
    if config.store.url:
        return postgres_auth_configured(config.store.url, config.store.command_timeout_s)
    return stored_auth_configured(Path(config.store.path))


def postgres_auth_configured(url: str, timeout_s: float) -> bool:
    """Whether the PostgreSQL database at `url` has a user or an API key. A database that
    cannot be reached, or has no schema yet, has none: refusing to listen is the safe side."""
    async def ask() -> bool:
        conn = await asyncpg.connect(url, timeout=timeout_s)
        try:
            return bool(await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id != 'local')"
                " OR EXISTS (SELECT 1 FROM api_keys)"
            ))
        finally:
            await conn.close()

    try:
        return asyncio.run(ask())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False


def stored_auth_configured(db: Path) -> bool:
    """Whether the database at `db` (not opened for writing) has a user or an API key."""
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id != 'local')"
                " OR EXISTS (SELECT 1 FROM api_keys)"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # no schema yet
        return False
    return bool(row[0])
