"""HTTP routes beside the WebSocket: conversation export (downloads)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.errors import ChinwagError
from server.exporting import export_conversation
from server.runtime import Runtime

STATUS = {"bad_request": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404}


async def export(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        user = await runtime.authenticator.authenticate(request.headers, None)
        exported = await export_conversation(
            runtime.store,
            user.id,
            request.path_params["conversation_id"],
            request.query_params.get("format", "md"),
        )
    except ChinwagError as exc:
        return _error(exc)
    return Response(
        exported.body,
        media_type=exported.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{exported.filename}"',
            "Cache-Control": "no-store",
        },
    )


def _error(exc: ChinwagError) -> Response:
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, status_code=STATUS.get(exc.code, 500)
    )


routes = [Route("/api/conversations/{conversation_id}/export", export, methods=["GET"])]
