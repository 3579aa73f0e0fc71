"""Readiness: what stops this process from serving, each a short reason (empty: ready)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from server.models.selector import Selector
    from server.store.base import Store


# How long /readyz waits for the store: a store that cannot answer a trivial query this
# fast is not one to send traffic to, and the probe itself must answer well under 100 ms.
STORE_PING_TIMEOUT_S = 0.05
# The retried write after a failed one (it waits for an fsync).
STORE_WRITE_TIMEOUT_S = 0.5
# The session bus (Redis), likewise: without it this node can neither resume nor fan out.
BUS_PING_TIMEOUT_S = 0.05


class Pingable(Protocol):
    async def ping(self) -> None: ...


class Readiness:
    """Whether this process should get traffic: what `/readyz` and the `ready` gauge say."""

    def __init__(
        self, store: Store, selector: Selector, draining: Callable[[], bool],
        bus: Pingable | None = None,
    ):
        self.store = store
        self.selector = selector
        self.draining = draining
        self.bus = bus

    async def problems(self) -> list[str]:
        """Why this process should not get traffic now; empty when it is ready.

        Not ready: draining; the store not answering a trivial query within
        `STORE_PING_TIMEOUT_S`, or unable to write; the session bus not answering within
        `BUS_PING_TIMEOUT_S`; every model's circuit open (nothing
        could answer a turn)."""
        problems: list[str] = []
        if self.draining():
            problems.append("draining")
        try:
            async with asyncio.timeout(STORE_PING_TIMEOUT_S):
                await self.store.ping()
        except TimeoutError:
            problems.append(f"store: no answer within {STORE_PING_TIMEOUT_S:g} s")
        except Exception as exc:  # noqa: BLE001 - any failure of the store means not ready
            problems.append(f"store: {type(exc).__name__}")
        else:
            problems.extend(await self._write_problems())
        problems.extend(await self._bus_problems())
        states = {name: status["state"] for name, status in self.selector.status().items()}
        if states and all(state == "open" for state in states.values()):
            problems.append("models: every circuit is open (" + ", ".join(sorted(states)) + ")")
        return problems

    def details(self) -> dict[str, dict[str, str]]:
        """What an operator should know even while the process is ready: models whose last
        call said they are misconfigured (bad key, no access, unknown model), with the
        reason. They do not make the process unready: the fallbacks answer, and every
        instance shares the config, so pulling this one out of the pool would not help."""
        misconfigured = self.selector.misconfigured()
        return {"misconfigured_models": misconfigured} if misconfigured else {}

    async def _bus_problems(self) -> list[str]:
        if self.bus is None:
            return []
        try:
            async with asyncio.timeout(BUS_PING_TIMEOUT_S):
                await self.bus.ping()
        except TimeoutError:
            return [f"bus: no answer within {BUS_PING_TIMEOUT_S:g} s"]
        except Exception as exc:  # noqa: BLE001 - any failure of the bus means not ready
            return [f"bus: {type(exc).__name__}"]
        return []

    async def _write_problems(self) -> list[str]:
        """A store whose last write failed (disk full, file read-only or damaged) is not
        ready until a write works again; the check retries one write that changes nothing."""
        try:
            async with asyncio.timeout(STORE_WRITE_TIMEOUT_S):
                problem = await self.store.write_problem()
        except TimeoutError:
            return [f"store: a write did not finish within {STORE_WRITE_TIMEOUT_S:g} s"]
        return [f"store: {problem}"] if problem else []
