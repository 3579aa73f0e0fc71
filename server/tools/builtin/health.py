"""`health`: the server's state as an operator would ask for it."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from server import __version__
from server.tools import ToolContext, tool


class StoreHealth(msgspec.Struct):
    ok: bool
    error: str | None = None
    latency_ms: float | None = None


class Health(msgspec.Struct):
    version: str
    uptime_s: float
    draining: bool
    store: StoreHealth
    models: dict[str, Any]
    sessions: int
    sockets: int
    running_turns: int


@tool
async def health(ctx: ToolContext) -> Health:
    """Report the store, each model's circuit state and last error, uptime, sessions and sockets."""
    runtime = ctx.runtime
    return Health(
        version=__version__,
        uptime_s=round(time.time() - runtime.started_at, 1),
        draining=runtime.draining,
        store=await _store_health(ctx),
        models=runtime.selector.status(),
        sessions=len(runtime.sessions.sessions),
        sockets=runtime.sessions.attached_count(),
        running_turns=len(runtime.turns.running),
    )


async def _store_health(ctx: ToolContext) -> StoreHealth:
    started = time.perf_counter()
    try:
        await ctx.store.ping()
    except Exception as exc:  # noqa: BLE001 - the report says what failed, it does not fail
        return StoreHealth(ok=False, error=f"{type(exc).__name__}: {exc}")
    return StoreHealth(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))
