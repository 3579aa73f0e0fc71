"""One configured MCP server: connected in a task of its own, its tools listed, kept alive.

The task opens the session (a child process over stdio, or streamable HTTP), lists the
server's tools, then asks for them again every `ping_s`. When the server goes away (the process
exits, the connection drops, the tool list asked for every `ping_s` does not come) the connection is `down`: its tools are not
offered, and a call that still arrives gets an error naming the server and why. It tries
again after 1, 2, 4 ... seconds, up to `mcp.reconnect_max_s`. Calls run in the callers'
tasks (a turn's), so cancelling a turn cancels its call, which the SDK tells the server
with `notifications/cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx2
import mcp_types
import structlog
from mcp import Client
from mcp.client.caching import CacheMode
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from server.config.settings import McpServerSettings
from server.errors import Unavailable
from server.mcp.results import ToolFailed

log = structlog.get_logger("chinwag.mcp")

FIRST_RETRY_S = 1.0
State = Literal["connecting", "ready", "down", "stopped"]


class McpConnection:
    def __init__(
        self,
        name: str,
        settings: McpServerSettings,
        *,
        on_change: Callable[[McpConnection], None],
        reconnect_max_s: float = 30.0,
        environ: Mapping[str, str] | None = None,
    ):
        self.name = name
        self.settings = settings
        self.state: State = "connecting"
        self.error: str | None = None
        self.tools: list[mcp_types.Tool] = []
        self._on_change = on_change
        self._reconnect_max_s = reconnect_max_s
        self._environ = os.environ if environ is None else environ
        self._client: Client | None = None
        self._stopping = asyncio.Event()
        self._check_now = asyncio.Event()  # a call failed: check the server without waiting
        self._task: asyncio.Task[None] | None = None

    @property
    def transport(self) -> str:
        return "stdio" if self.settings.command else "http"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mcp {self.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.state, self._client = "stopped", None

    async def ready(self, timeout_s: float) -> bool:
        """Wait until the first connection attempt has an outcome; True when connected."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.state == "connecting":
                    await asyncio.sleep(0.02)
        return self.state == "ready"

    async def call(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        """Call a tool. The server's refusal (a JSON-RPC error) is the tool's failure; a
        transport that breaks is the server's, and the next liveness check comes at once."""
        client = self._client
        if client is None or self.state != "ready":
            raise Unavailable(f"MCP server {self.name!r} is unavailable: {self.error or self.state}")
        try:
            return await client.call_tool(tool, arguments)
        except MCPError as exc:
            raise ToolFailed(exc.error.message) from None
        except Exception as exc:  # noqa: BLE001 - any transport failure: the server's
            self._check_now.set()
            raise Unavailable(f"MCP server {self.name!r} failed during the call: {_describe(exc)}") from None

    # -- the connection's task -------------------------------------------------------------

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        while not self._stopping.is_set():
            try:
                async with contextlib.AsyncExitStack() as stack:
                    async with asyncio.timeout(self.settings.connect_timeout_s):
                        client = await stack.enter_async_context(Client(self._transport(stack), mode="auto"))
                        tools = await self._list_tools(client)
                    self._client, self.tools, self.state, self.error = client, tools, "ready", None
                    delay = FIRST_RETRY_S
                    log.info("mcp_connected", server=self.name, tools=len(tools), protocol=client.protocol_version)
                    self._on_change(self)
                    await self._keep_alive(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever the transport says, it is down
                self.error = _describe(exc)
            self._client = None
            if self._stopping.is_set():
                return
            self.state = "down"
            log.warning("mcp_down", server=self.name, error=self.error, retry_in_s=delay)
            self._on_change(self)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, self._reconnect_max_s)

    def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        settings = self.settings
        if settings.command:
            env = {child: self._secret(name, f"env.{child}") for child, name in settings.env.items()}
            return StdioServerParameters(command=settings.command, args=settings.args, env=env or None, cwd=settings.cwd)
        headers = dict(settings.headers)
        headers.update({header: self._secret(name, f"headers_env.{header}") for header, name in settings.headers_env.items()})
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
        stack.push_async_callback(http.aclose)
        assert settings.url is not None  # the config requires `command` or `url`
        return streamable_http_client(settings.url, http_client=http)

    def _secret(self, variable: str, key: str) -> str:
        value = self._environ.get(variable)
        if value is None:
            raise LookupError(f"environment variable {variable} (mcp.servers.{self.name}.{key}) is not set")
        return value

    async def _list_tools(self, client: Client, cache_mode: CacheMode = "use") -> list[mcp_types.Tool]:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor, cache_mode=cache_mode)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def _keep_alive(self, client: Client) -> None:
        """Ask a quiet server for its tools every `ping_s`: that it answers says it is
        still there (protocol 2026-07-28 has no `ping`), and a changed list is taken."""
        while not self._stopping.is_set():
            waits = {asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._check_now.wait())}
            _, pending = await asyncio.wait(waits, timeout=self.settings.ping_s, return_when=asyncio.FIRST_COMPLETED)
            for waiting in pending:
                waiting.cancel()
            if self._stopping.is_set():
                return
            self._check_now.clear()
            async with asyncio.timeout(self.settings.connect_timeout_s):
                tools = await self._list_tools(client, cache_mode="bypass")
            if [t.model_dump() for t in tools] != [t.model_dump() for t in self.tools]:
                self.tools = tools
                log.info("mcp_tools_changed", server=self.name, tools=len(tools))
                self._on_change(self)


def _describe(exc: BaseException) -> str:
    """The innermost cause, readably: task groups wrap a transport's error in groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
