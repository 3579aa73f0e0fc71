"""Tools with observable behaviour, loaded by the tests through `tools.folders`.

Each records its call in `PROBE.calls` when (and only when) its body runs.
"""

from __future__ import annotations

import asyncio

from server.tools import ToolContext, tool
from tests.tools.probe_state import PROBE


@tool
async def rendezvous(ctx: ToolContext, me: str, partner: str) -> str:
    """Meet another call: set my event, then wait for my partner's.

    Two calls of this tool in one round finish only if they run at the same time; run one
    after the other, the first waits for a partner that never comes and times out.

    Args:
        me: the name of this call's event.
        partner: the event to wait for.
    """
    PROBE.calls.append(("rendezvous", {"me": me, "partner": partner}))
    PROBE.event(me).set()
    await PROBE.event(partner).wait()
    return f"{me} met {partner}"


@tool
async def boom(ctx: ToolContext, message: str = "kaboom") -> str:
    """Fail with an exception.

    Args:
        message: the exception's message.
    """
    PROBE.calls.append(("boom", {"message": message}))
    raise RuntimeError(message)


@tool(timeout_s=0.2)
async def stuck(ctx: ToolContext) -> str:
    """Never finish (its own timeout, 0.2 s, stops it)."""
    PROBE.calls.append(("stuck", {}))
    await asyncio.Event().wait()
    return "unreachable"


@tool
async def stall(ctx: ToolContext) -> str:
    """Never finish (the server's `tools.timeout_s` stops it)."""
    PROBE.calls.append(("stall", {}))
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        PROBE.calls.append(("stall_cancelled", {}))
        raise
    return "unreachable"


@tool(policy="ask")
async def record(ctx: ToolContext, value: str) -> dict[str, str]:
    """Change something: remember a value (asks first).

    Args:
        value: what to remember.
    """
    PROBE.calls.append(("record", {"value": value, "user": ctx.user.id}))
    return {"recorded": value, "by": ctx.user.id}


@tool
async def note(ctx: ToolContext, text: str, times: int = 1) -> str:
    """Say something back, with the caller's id.

    Args:
        text: what to say.
        times: how many times to repeat it.
    """
    PROBE.calls.append(("note", {"text": text, "times": times, "user": ctx.user.id}))
    return f"{ctx.user.id}: " + " ".join([text] * times)


@tool(idempotent=True)
async def lookup(ctx: ToolContext, key: str) -> str:
    """Look something up (idempotent); the first call of a test never finishes.

    Args:
        key: what to look up.
    """
    PROBE.calls.append(("lookup", {"key": key}))
    if len(PROBE.ran("lookup")) == 1:
        await asyncio.Event().wait()
    return f"found {key}"
