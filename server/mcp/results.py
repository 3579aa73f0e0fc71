"""What an MCP tool call returned, as a chinwag tool result.

A result that is only text is that text (what the model reads best). Anything richer is
an object: `content`, a list of parts (`text`, `image` and `audio` with their MIME type and
base64 data, `resource_link` with its URI, `resource` with the embedded text or the size
of its blob), and `structured`, the server's structured content when it sent some. The
page shows either; the model gets it as JSON. A result flagged `isError` is the tool's
failure: its text becomes the error the model and the page see.
"""

from __future__ import annotations

from typing import Any

import mcp_types

from server.errors import ChinwagError


class ToolFailed(ChinwagError):
    """The MCP server ran the call and said it failed (`isError`)."""

    code = "tool_failed"


def from_call(result: mcp_types.CallToolResult) -> Any:
    parts = [_part(block) for block in result.content]
    if result.is_error:
        text = " ".join(p["text"] for p in parts if p["type"] == "text") or "the tool reported an error"
        raise ToolFailed(text)
    if result.structured_content is None and all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    shaped: dict[str, Any] = {"content": parts}
    if result.structured_content is not None:
        shaped["structured"] = result.structured_content
    return shaped


def _part(block: Any) -> dict[str, Any]:
    kind = getattr(block, "type", "")
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind in ("image", "audio"):
        return {"type": kind, "mime_type": block.mime_type, "data": block.data}
    if kind == "resource_link":
        return {"type": "resource_link", "uri": str(block.uri), "name": block.name, "mime_type": block.mime_type}
    if kind == "resource":
        resource = block.resource
        embedded: dict[str, Any] = {"type": "resource", "uri": str(resource.uri), "mime_type": resource.mime_type}
        if getattr(resource, "text", None) is not None:
            embedded["text"] = resource.text
        else:
            embedded["bytes"] = len(getattr(resource, "blob", "") or "") * 3 // 4  # base64 → bytes
        return embedded
    return {"type": kind or "unknown"}
