"""The operator's routes: `/healthz` (alive), `/readyz` (should get traffic), `/metrics`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.observability import metrics as metrics_module

if TYPE_CHECKING:
    from server.observability.health import Readiness
    from server.observability.metrics import Metrics

PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def routes(readiness: Readiness, metrics: Metrics) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        problems = await readiness.problems()
        details = readiness.details()
        if problems:
            return JSONResponse({"status": "unready", "problems": problems, **details}, status_code=503)
        return JSONResponse({"status": "ready", **details})

    async def scrape(request: Request) -> Response:
        metrics.ready.set(0 if await readiness.problems() else 1)
        return Response(metrics.exposition(), media_type=metrics_module.CONTENT_TYPE)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]
