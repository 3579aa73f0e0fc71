"""What the OpenAI-compatible API tests share: a live server with two users and their keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai

from tests.auth.helpers import cli
from tests.support.live import LiveServer


@contextmanager
def two_users_with_keys(folder: Path, *settings: str) -> Iterator[tuple[LiveServer, str, str]]:
    """A started `chinwag serve` in `folder` where alice and bob each have an API key."""
    for name in ("alice", "bob"):
        assert cli(folder, "users", "add", name, "--role", "user").returncode == 0
    alice = cli(folder, "keys", "create", "--user", "alice").stdout.strip()
    bob = cli(folder, "keys", "create", "--user", "bob").stdout.strip()
    live = LiveServer(folder, *settings).start()
    try:
        yield live, alice, bob
    finally:
        live.kill()


def api(live: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)
