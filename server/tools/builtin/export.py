"""`export`: one of the user's conversations as Markdown, JSON, CSV or HTML text."""

from __future__ import annotations

from typing import Literal

import msgspec

from server.errors import BadRequest
from server.tools import ToolContext, tool


class ExportResult(msgspec.Struct):
    filename: str
    media_type: str
    content: str
    download_url: str


@tool(idempotent=True)
async def export(
    ctx: ToolContext,
    format: Literal["md", "json", "csv", "html"] = "md",
    conversation_id: str | None = None,
) -> ExportResult:
    """Export a conversation (by default the current one) as a document.

    Args:
        format: md (Markdown), json (lossless, can be imported back), csv or html.
        conversation_id: the conversation to export; defaults to the current one.
    """
    target = conversation_id or ctx.conversation_id
    if target is None:
        raise BadRequest("no conversation to export: pass conversation_id", details={"path": "$.args.conversation_id"})
    exported = await ctx.data.export(target, format)  # type: ignore[arg-type]
    return ExportResult(
        filename=exported.filename,
        media_type=exported.media_type,
        content=exported.body,
        download_url=f"/api/conversations/{target}/export?format={format}",
    )

