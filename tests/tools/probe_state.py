"""State shared between the probe tools (loaded as a folder plugin) and the tests.

The probe module is loaded by the registry from its file, anew for each app; this module is
imported the ordinary way, once, so the tests and every copy of the probes see one `PROBE`.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Probe:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (tool, arguments) as each ran
        self.events: dict[str, asyncio.Event] = {}

    def event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    def ran(self, tool: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == tool]


PROBE = Probe()
