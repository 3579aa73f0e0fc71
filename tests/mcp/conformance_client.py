"""chinwag's MCP client as the official conformance suite drives a client: the suite runs
`python conformance_client.py URL` per scenario (`MCP_CONFORMANCE_SCENARIO` says which).

It does what the server does with an MCP server: connect (`McpConnection`), list the
tools, then call each as a chinwag tool would (`McpTool`: arguments checked against the
server's schema, the result mapped), with arguments made from the schema's types.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from server.config.settings import McpServerSettings
from server.errors import ChinwagError
from server.mcp.connection import McpConnection
from server.mcp.tools import McpTool

SAMPLES: dict[str, Any] = {"number": 5, "integer": 3, "boolean": True, "string": "conformance", "array": [], "object": {}}


def arguments_for(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    return {name: SAMPLES.get(spec.get("type", "string"), "conformance") for name, spec in properties.items()}


async def main(url: str) -> int:
    connection = McpConnection("conformance", McpServerSettings(url=url), on_change=lambda _: None)
    connection.start()
    try:
        if not await connection.ready(20):
            print(f"not connected: {connection.error}", file=sys.stderr)
            return 1
        for tool in connection.tools:
            handler = McpTool(connection, tool)
            try:
                result = await handler(None, handler.validate(arguments_for(handler.input_schema)))
                print(f"{handler.name}: {str(result)[:200]}")
            except ChinwagError as exc:
                print(f"{handler.name} failed: {exc.message}")
        return 0
    finally:
        await connection.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[-1])))
