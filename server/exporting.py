"""A conversation as Markdown, JSON, CSV or HTML; and JSON read back in.

The JSON form is the lossless one (`chinwag import` takes it back); the others are for
people. HTML is escaped throughout: exported text is data, never markup.
"""

from __future__ import annotations

import csv
import html
import io
from typing import Any, Literal

import msgspec

from server.errors import BadRequest
from server.protocol import Conversation, Message
from server.store.base import Store

Format = Literal["md", "json", "csv", "html"]
FORMATS: dict[str, tuple[str, str]] = {  # format: (media type, file extension)
    "md": ("text/markdown; charset=utf-8", "md"),
    "json": ("application/json", "json"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "html": ("text/html; charset=utf-8", "html"),
}
EXPORT_KIND = "chinwag.conversation"
EXPORT_VERSION = 1
PAGE = 200
# A cell starting with one of these is run as a formula by spreadsheets (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Exported(msgspec.Struct):
    body: str
    media_type: str
    filename: str


async def export_conversation(store: Store, user_id: str, conversation_id: str, fmt: str) -> Exported:
    if fmt not in FORMATS:
        raise BadRequest(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    conversation = await store.get_conversation(user_id, conversation_id)
    messages = await store.context_messages(user_id, conversation_id)
    render = {"md": to_markdown, "json": to_json, "csv": to_csv, "html": to_html}[fmt]
    media_type, extension = FORMATS[fmt]
    return Exported(render(conversation, messages), media_type, f"{_slug(conversation.title)}.{extension}")


def to_json(conversation: Conversation, messages: list[Message]) -> str:
    document = {
        "kind": EXPORT_KIND,
        "version": EXPORT_VERSION,
        "conversation": msgspec.to_builtins(conversation),
        "messages": [msgspec.to_builtins(m) for m in messages],
    }
    return msgspec.json.format(msgspec.json.encode(document).decode(), indent=2)


def to_markdown(conversation: Conversation, messages: list[Message]) -> str:
    lines = [f"# {conversation.title}", "", f"_Exported from chinwag; started {conversation.created_at}._", ""]
    for message in messages:
        who = {"user": "You", "assistant": f"Assistant ({message.model or 'model'})"}.get(message.role, "Tool")
        status = "" if message.status == "complete" else f" _({message.status})_"
        lines += [f"## {who}{status}", "", _block_text(message), ""]
    return "\n".join(lines)


def to_csv(conversation: Conversation, messages: list[Message]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["created_at", "role", "status", "model", "text"])
    for message in messages:
        cells = [message.created_at, message.role, message.status, message.model or "", _block_text(message)]
        writer.writerow([_inert_cell(cell) for cell in cells])
    return out.getvalue()


def _inert_cell(value: str) -> str:
    """A leading `'` makes a spreadsheet show the cell as text instead of running it
    (OWASP's advice for CSV injection); the text after it is unchanged."""
    return f"'{value}" if value.startswith(FORMULA_START) else value


def to_html(conversation: Conversation, messages: list[Message]) -> str:
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(conversation.title)}</title>",
        (
            "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}"
            ".m{margin:1rem 0;padding:.75rem 1rem;border-radius:.5rem;background:#f4f4f5}"
            ".user{background:#e0ecff}pre{white-space:pre-wrap;margin:0;font:inherit}</style>"
        ),
        f"</head><body><h1>{esc(conversation.title)}</h1>",
    ]
    for message in messages:
        parts.append(
            f'<div class="m {esc(message.role)}"><strong>{esc(message.role)}</strong>'
            f" <small>{esc(message.created_at)} {esc(message.status)}</small>"
            f"<pre>{esc(_block_text(message))}</pre></div>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def parse_json_export(raw: str | bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check an exported document and return its conversation and messages."""
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("kind") != EXPORT_KIND:
        raise BadRequest(f"not a chinwag conversation export (kind must be {EXPORT_KIND!r})")
    if document.get("version") != EXPORT_VERSION:
        raise BadRequest(f"unsupported export version {document.get('version')!r}")
    conversation, messages = document.get("conversation"), document.get("messages")
    if not isinstance(conversation, dict) or not isinstance(messages, list):
        raise BadRequest("an export needs a conversation object and a messages list")
    return conversation, [m for m in messages if isinstance(m, dict)]


def _block_text(message: Message) -> str:
    """Text blocks as they are; tool calls and results as short readable lines."""
    parts: list[str] = []
    for block in message.content:
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            args = msgspec.json.encode(block.get("input", {})).decode()
            parts.append(f"[tool call {block.get('name')} {args}]")
        elif kind == "tool_result":
            parts.append(f"[tool result{' (error)' if block.get('is_error') else ''}: {block.get('content')}]")
    return "\n\n".join(parts)


def _slug(title: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned[:60] or "conversation"
