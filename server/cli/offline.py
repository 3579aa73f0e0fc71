"""Commands that work on the database directly, without a running server (`chinwag users`,
`keys`, `export`, `import`): the store is opened for the one piece of work, then closed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.config.settings import Config
from server.store.base import Store
from server.store.open import store_for

T = TypeVar("T")


async def with_store(config: Config, work: Callable[[Store], Awaitable[T]]) -> T:
    store = store_for(config)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def run_with_store(config: Config, work: Callable[[Store], Awaitable[T]]) -> T:
    return asyncio.run(with_store(config, work))
