"""`chinwag mcp list`: each configured MCP server, whether it can be reached now, and its
tools with the policy each gets (connecting to each server once, as the server would)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from server.cli.options import add_config_options, config_from_args
from server.config.live import LiveConfig
from server.config.settings import Config
from server.mcp.servers import McpServers
from server.tools.executor import policy_of
from server.tools.registry import ToolRegistry

# Exit status when a configured, enabled server cannot be reached.
SOME_DOWN = 1


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    mcp = commands.add_parser("mcp", help="MCP servers: their state and tools")
    verbs = mcp.add_subparsers(dest="mcp_command", required=True)
    listing = verbs.add_parser("list", help="each configured MCP server, its state and its tools")
    add_config_options(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from server.observability.logs import configure_logging

    config = config_from_args(args)
    configure_logging(config.log)  # to stderr: stdout carries only the listing
    servers = asyncio.run(_survey(config))
    if args.json:
        json.dump(servers, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_table(servers))
    return SOME_DOWN if any(s["state"] == "down" for s in servers) else 0


async def _survey(config: Config) -> list[dict[str, Any]]:
    registry = ToolRegistry()
    manager = McpServers(registry, LiveConfig(config))
    await manager.start()
    try:
        found: list[dict[str, Any]] = []
        for name, settings in sorted(config.mcp.servers.items()):
            connection = manager.connections.get(name)
            state = "disabled" if connection is None else connection.state
            if state == "connecting":
                state = "down"  # no answer within mcp.startup_wait_s
            tools = [
                {"name": handler.name, "policy": policy_of(config.tools, handler, "user"), "description": handler.description}
                for tool_name, handler in sorted(registry.tools.items())
                if tool_name.startswith(f"{name}.")
            ]
            found.append({
                "name": name, "transport": "stdio" if settings.command else "http",
                "target": settings.command if settings.command else settings.url,
                "state": state, "error": connection.error if connection else None, "tools": tools,
            })
        return found
    finally:
        await manager.stop()


def _table(servers: list[dict[str, Any]]) -> str:
    if not servers:
        return "no MCP servers configured ([mcp.servers.NAME] in chinwag.toml)\n"
    lines: list[str] = []
    for server in servers:
        line = f"{server['name']}  {server['transport']}  {server['state']}  {server['target']}"
        if server["error"]:
            line += f"  ({server['error']})"
        lines.append(line)
        lines += [f"  {t['name']}  {t['policy']}  {t['description'].splitlines()[0] if t['description'] else ''}" for t in server["tools"]]
    return "\n".join(lines) + "\n"

