"""HTTP routes beside the WebSocket: conversation export (downloads)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth.identity import Authenticator
from server.errors import ChinwagError
from server.exporting import export_conversation
from server.http.errors import from_exception
from server.store.base import Store


def routes(store: Store, authenticator: Authenticator) -> list[Route]:
    """`GET /api/conversations/{id}/export?format=md|json|csv|html`: the caller's own only."""

    async def export(request: Request) -> Response:
        try:
            user = await authenticator.authenticate(request.headers, None)
            exported = await export_conversation(
                store,
                user.id,
                request.path_params["conversation_id"],
                request.query_params.get("format", "md"),
            )
        except ChinwagError as exc:
            return from_exception(exc)
        return download(exported.body, exported.media_type, exported.filename)

    return [Route("/api/conversations/{conversation_id}/export", export, methods=["GET"])]


def download(body: str, media_type: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": content_disposition(filename),
            "Cache-Control": "no-store",
        },
    )


def content_disposition(filename: str) -> str:
    """An attachment header for any file name (RFC 6266): a plain ASCII `filename` for old
    clients, and the exact name UTF-8 percent-encoded in `filename*` (RFC 5987), which
    clients that know it prefer. Header values must be Latin-1; this one is ASCII."""
    return f"attachment; filename=\"{_ascii_name(filename)}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _ascii_name(filename: str) -> str:
    """`café.md` becomes `cafe.md`; a name in another script becomes `conversation.md`."""
    stem, dot, extension = filename.rpartition(".") if "." in filename else (filename, "", "")
    letters = "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", letters).strip("-.") if letters.isascii() else ""
    return f"{slug or 'conversation'}{dot}{re.sub(r'[^A-Za-z0-9]', '', extension)}"
