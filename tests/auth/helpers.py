"""Accounts for auth tests: users and keys made in the store (as the CLI does), and the CLI
itself run as a subprocess against a data folder."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from server.auth.keys import new_api_key
from server.auth.passwords import hash_password
from server.config.settings import Config
from server.store.base import UserRecord
from server.store.sqlite.store import SqliteStore

REPO = Path(__file__).resolve().parents[2]


async def _with_store(config: Config, fn: Any) -> Any:
    store = SqliteStore(config.store.path, config.store)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


def add_user(config: Config, name: str, role: str = "user", password: str | None = None) -> UserRecord:
    digest = hash_password(password) if password else None
    return asyncio.run(_with_store(config, lambda s: s.create_user(name, role, digest)))


def add_key(config: Config, user_name: str, label: str = "") -> str:
    key, prefix, digest = new_api_key()
    asyncio.run(_with_store(config, lambda s: s.create_api_key(user_name, label, digest, prefix)))
    return key


def audit_entries(config: Config, action: str | None = None) -> list[Any]:
    return asyncio.run(_with_store(config, lambda s: s.audit_entries(action=action)))


def cli(data_dir: Path, *args: str, stdin: str = "", timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`chinwag ARGS --set store.path=...` in its own process, on the data folder's database."""
    command = [sys.executable, "-m", "server", *args, "--set", f'store.path="{data_dir / "chinwag.db"}"']
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        command, check=False, input=stdin, capture_output=True, text=True, timeout=timeout, cwd=data_dir, env=env
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
