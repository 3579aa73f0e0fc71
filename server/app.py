"""`create_app(config, ...)`: the Starlette application, its routes and its lifespan.

Collaborators are passed in (a store, providers, an authenticator) so tests build an app
with a fake provider instead of patching globals; anything not given is built from config.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from server import protocol
from server.auth import revocation
from server.auth.identity import Authenticator
from server.config.settings import Config
from server.gateway.connection import websocket_endpoint
from server.http import export_route, security
from server.models import close_providers
from server.models.base import Provider
from server.observability import health, metrics
from server.runtime import Runtime
from server.store.base import Store
from server.store.sqlite.store import SqliteStore

log = structlog.get_logger("chinwag.app")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWEEP_INTERVAL_S = 5.0


def create_app(
    config: Config,
    *,
    store: Store | None = None,
    providers: dict[str, Provider] | None = None,
    authenticator: Authenticator | None = None,
    registry: CollectorRegistry | None = None,
    static_dir: Path = STATIC_DIR,
) -> Starlette:
    runtime = Runtime(
        config,
        store=store or SqliteStore(config.store.path, config.store),
        providers=providers,
        authenticator=authenticator,
        registry=registry,
    )
    runtime.prompts.load()  # a broken template stops start-up here, naming file and line

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.store.open()
        runtime.metrics.watch_store(runtime.store)
        recovered = await runtime.store.recover()
        if recovered:
            log.warning("recovered_interrupted_answers", count=recovered)
        sweeper = asyncio.create_task(_sweep_sessions(runtime))
        revocations = asyncio.create_task(revocation.watch(runtime))  # keys revoked, logins ended
        from server.config.reload import Reloader

        reloader = Reloader.for_runtime(runtime) if runtime.config.reload.enabled else None
        if reloader is not None:
            reloader.start()
        log.info("server_started", models=runtime.selector.model_names())
        try:
            yield
        finally:
            sweeper.cancel()
            revocations.cancel()
            if reloader is not None:
                await reloader.stop()
            await drain(runtime)
            await runtime.store.close()
            await close_providers(runtime.selector.providers)

    app = Starlette(
        routes=[
            Route("/", _index, methods=["GET"]),
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz, methods=["GET"]),
            Route("/metrics", _metrics, methods=["GET"]),
            WebSocketRoute("/ws", websocket_endpoint),
            *export_route.routes,
            Mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.static_dir = static_dir
    security.install(app, runtime)  # login routes, origin checks, headers, HTTP rate limits
    return app


def begin_drain(runtime: Runtime) -> None:
    """Stop taking work: tell every client to reconnect, and close sockets with 1012.

    Called by the server before it stops accepting connections (see `server.cli.main`), and again
    (a no-op then) by the lifespan for servers that do not call it."""
    if runtime.draining:
        return
    runtime.draining = True
    runtime.fanout.broadcast(protocol.Reconnect(reason="server shutting down"))
    for session in list(runtime.sessions.sessions.values()):
        if session.outlet is not None:
            session.outlet.close(1012, "server restarting")


async def drain(runtime: Runtime) -> None:
    """Give running turns their grace period, then stop and checkpoint what is left."""
    begin_drain(runtime)
    await runtime.turns.drain(runtime.config.server.shutdown_grace_s)


async def _sweep_sessions(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        runtime.sessions.expire()


async def _index(request: Request) -> Response:
    return FileResponse(request.app.state.static_dir / "index.html", media_type="text/html")


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "alive"})


async def _readyz(request: Request) -> Response:
    problems = await health.readiness_problems(request.app.state.runtime)
    if problems:
        return JSONResponse({"status": "unready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


async def _metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    runtime.metrics.ready.set(0 if await health.readiness_problems(runtime) else 1)
    return Response(runtime.metrics.exposition(), media_type=metrics.CONTENT_TYPE)
