"""`health`: the server's state as an operator would ask for it, sized to the caller:
admins see server-wide counts, everyone else their own sessions, sockets and turns."""

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
    scope: str  # "server" (an admin's view) or "user" (the caller's own counts)
    uptime_s: float
    draining: bool
    store: StoreHealth
    models: dict[str, Any]
    sessions: int
    sockets: int
    running_turns: int


@tool(idempotent=True)
async def health(ctx: ToolContext) -> Health:
    """Report the store, each model's circuit state, uptime, and sessions, sockets and running turns (the caller's own unless an admin)."""
    status = ctx.server.status()
    return Health(
        version=__version__,
        scope=status.scope,
        uptime_s=status.uptime_s,
        draining=status.draining,
        store=await _store_health(ctx),
        models=status.models,
        sessions=status.sessions,
        sockets=status.sockets,
        running_turns=status.running_turns,
    )


async def _store_health(ctx: ToolContext) -> StoreHealth:
    started = time.perf_counter()
    try:
        await ctx.server.ping_store()
    except Exception as exc:  # noqa: BLE001 - the report says what failed, it does not fail
        return StoreHealth(ok=False, error=f"{type(exc).__name__}: {exc}")
    return StoreHealth(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))
