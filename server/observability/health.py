"""Readiness: what stops this process from serving, each a short reason (empty: ready)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.runtime import Runtime


# How long /readyz waits for the store: a store that cannot answer a trivial query this
# fast is not one to send traffic to, and the probe itself must answer well under 100 ms.
STORE_PING_TIMEOUT_S = 0.05


async def readiness_problems(runtime: Runtime) -> list[str]:
    """Why this process should not get traffic now; empty when it is ready.

    Not ready: draining; the store not answering a trivial query within
    `STORE_PING_TIMEOUT_S`; every model's circuit open (nothing could answer a turn)."""
    problems: list[str] = []
    if runtime.draining:
        problems.append("draining")
    try:
        async with asyncio.timeout(STORE_PING_TIMEOUT_S):
            await runtime.store.ping()
    except TimeoutError:
        problems.append(f"store: no answer within {STORE_PING_TIMEOUT_S:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure of the store means not ready
        problems.append(f"store: {type(exc).__name__}")
    states = {name: status["state"] for name, status in runtime.selector.status().items()}
    if states and all(state == "open" for state in states.values()):
        problems.append("models: every circuit is open (" + ", ".join(sorted(states)) + ")")
    return problems
