"""The configured MCP servers (`[mcp.servers.NAME]`): connected at start-up, connected,
dropped or reconnected when a reload changes them, their tools kept in the tool registry.

Each server's tools are the registry's tools of the source `MCP server NAME`: replaced
whenever the server lists them (each connection), kept while it is down (so a call names
the server and why it failed), removed when the server leaves the config.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from server.config.live import LiveConfig
from server.config.settings import McpServerSettings
from server.mcp.connection import McpConnection
from server.mcp.tools import McpTool
from server.tools.registry import ToolRegistry

log = structlog.get_logger("chinwag.mcp")


class McpServers:
    def __init__(self, registry: ToolRegistry, live: LiveConfig):
        self.registry = registry
        self._live = live
        self.connections: dict[str, McpConnection] = {}
        self._applying = asyncio.Lock()  # one reconciliation at a time

    async def start(self) -> None:
        """Connect every enabled server; wait (up to `mcp.startup_wait_s`) for their first
        answers, so the first turns are offered their tools."""
        await self.apply()
        settings = self._live.current.mcp
        if self.connections:
            await asyncio.gather(*(c.ready(settings.startup_wait_s) for c in self.connections.values()))

    async def apply(self) -> None:
        """Bring the connections in line with the live config: new servers connect,
        removed or disabled ones are dropped, changed ones reconnect."""
        async with self._applying:
            wanted = {n: s for n, s in self._live.current.mcp.servers.items() if s.enabled}
            for name, connection in list(self.connections.items()):
                if wanted.get(name) != connection.settings:
                    await self._drop(name)
            for name, settings in wanted.items():
                if name not in self.connections:
                    self._connect(name, settings)

    def schedule_apply(self) -> None:
        """From a config reload (not a coroutine): apply once the loop gets to it."""
        with contextlib.suppress(RuntimeError):  # no running loop: nothing is connected
            task = asyncio.get_running_loop().create_task(self.apply())
            task.add_done_callback(_log_failure)

    async def stop(self) -> None:
        for name in list(self.connections):
            await self._drop(name)

    def _connect(self, name: str, settings: McpServerSettings) -> None:
        connection = McpConnection(
            name, settings, on_change=self._changed, reconnect_max_s=self._live.current.mcp.reconnect_max_s,
        )
        self.connections[name] = connection
        connection.start()

    async def _drop(self, name: str) -> None:
        connection = self.connections.pop(name)
        await connection.stop()
        self.registry.replace_source(_source(name), [])
        log.info("mcp_removed", server=name)

    def _changed(self, connection: McpConnection) -> None:
        if connection.state != "ready" or self.connections.get(connection.name) is not connection:
            return  # a server that is down keeps its tools: a call says why it fails
        handlers = []
        for tool in connection.tools:
            try:
                handlers.append(McpTool(connection, tool))
            except Exception as exc:  # noqa: BLE001 - one bad schema must not hide the rest
                log.warning("mcp_tool_skipped", server=connection.name, tool=tool.name, error=str(exc))
        for name in self.registry.replace_source(_source(connection.name), handlers):
            log.warning("mcp_tool_skipped", server=connection.name, tool=name, error="the name is taken")


def _source(name: str) -> str:
    return f"MCP server {name}"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("mcp_apply_failed", error=str(task.exception()))
