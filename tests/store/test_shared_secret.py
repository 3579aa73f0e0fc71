"""The deployment's shared secret: made once by whichever process asks first."""

from __future__ import annotations

import asyncio

from tests.store.conftest import OpenStore


async def test_every_process_on_one_database_gets_the_same_secret(open_store: OpenStore, backend: str) -> None:
    first, second = await open_store(), await open_store()
    secrets = await asyncio.gather(*(s.shared_secret("cookie") for s in (first, second, first)))
    if backend == "sqlite":
        assert secrets == [None, None, None]  # one process per file: the secret is a file
        return
    assert secrets[0] is not None and len(secrets[0]) == 64
    assert secrets[0] == secrets[1] == secrets[2]
    assert await second.shared_secret("other") not in (None, secrets[0])  # one per name
