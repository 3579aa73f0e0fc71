"""Fixtures every test folder may use: the session's private PostgreSQL."""

from tests.support.services import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]
