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
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIASGIMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from server import protocol
from server.auth import revocation
from server.auth.identity import Authenticator
from server.auth.login import Logins
from server.bus.local import LocalBus
from server.config.settings import Config
from server.gateway.connection import websocket_endpoint
from server.gateway.parts import GatewayParts
from server.http import export_route, probes
from server.http.body_limit import BodyLimitMiddleware
from server.http.rate_limits import OneResponseStart, build_http_limiter, rate_limited_handler
from server.http.security import SecurityMiddleware
from server.models import close_providers
from server.models.base import Provider
from server.observability.health import Readiness
from server.openai_api import chat as openai_chat
from server.openai_api import responses as openai_responses
from server.openai_api.turns import ApiParts
from server.protocol import CloseCode
from server.runtime import Runtime
from server.store.base import Store
from server.store.open import store_for

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
        store=store or store_for(config),
        providers=providers,
        authenticator=authenticator,
        registry=registry,
    )
    runtime.prompts.load()  # a broken template stops start-up here, naming file and line

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.store.open()
        runtime.metrics.watch_store(runtime.store)
        await _share_cookie_secret(runtime)
        await runtime.bus.start()
        await runtime.mcp.start()  # before interrupted turns continue: they may call its tools
        if runtime.bus.recovers_at_start:  # one process: whatever was streaming was ours
            await runtime.interruptions.recover_at_start()
        sweeper = asyncio.create_task(_sweep_sessions(runtime))
        revocations = asyncio.create_task(revocation.watch(runtime.live, runtime.store, runtime.sessions))  # keys revoked, logins ended
        from server.config.reload import Reloader

        reloader = Reloader.from_origin(runtime.live, runtime.prompts, runtime.apply_config) if runtime.config.reload.enabled else None
        if reloader is not None:
            reloader.start()
        if runtime.shared_breakers is not None:
            runtime.shared_breakers.start()  # circuits opened on other nodes, and ours to them
        log.info("server_started", models=runtime.selector.model_names())
        try:
            yield
        finally:
            sweeper.cancel()
            revocations.cancel()
            if reloader is not None:
                await reloader.stop()
            await drain(runtime)
            await runtime.mcp.stop()
            if runtime.shared_breakers is not None:
                await runtime.shared_breakers.stop()
            await runtime.store.close()
            await close_providers(runtime.selector.providers)

    api = api_parts(runtime)
    app = Starlette(
        routes=[
            Route("/", _index, methods=["GET"]),
            *probes.routes(Readiness(runtime.store, runtime.selector, lambda: runtime.draining, runtime.bus), runtime.metrics),
            WebSocketRoute("/ws", websocket_endpoint(gateway_parts(runtime))),
            *export_route.routes(runtime.store, runtime.authenticator),
            *openai_chat.routes(api),
            *openai_responses.routes(api),
            Mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.static_dir = static_dir
    _install_http_guards(app, runtime, static_dir)
    return app


def begin_drain(runtime: Runtime) -> None:
    """Stop taking work: tell every client to reconnect, and close sockets with 1012.

    Called by the server before it stops accepting connections (see `server.cli.main`), and again
    (a no-op then) by the lifespan for servers that do not call it."""
    if runtime.draining:
        return
    runtime.draining = True
    runtime.fanout.broadcast(protocol.Reconnect(reason="server shutting down"))
    if isinstance(runtime.bus, LocalBus):
        _close_sockets(runtime)  # the broadcast reached the sockets already
    else:
        # Through Redis the `reconnect` comes back on the node's channel: close after it.
        runtime.closing = asyncio.ensure_future(_close_after_settling(runtime))


async def _close_after_settling(runtime: Runtime) -> None:
    await runtime.bus.settle()
    _close_sockets(runtime)


def _close_sockets(runtime: Runtime) -> None:
    for session in list(runtime.sessions.sessions.values()):
        if session.outlet is not None:
            session.outlet.close(CloseCode.RESTARTING, "server restarting")


async def drain(runtime: Runtime) -> None:
    """Give running turns their grace period, then stop and checkpoint what is left."""
    begin_drain(runtime)
    if runtime.closing is not None:
        await runtime.closing
    await runtime.turns.drain(runtime.config.server.shutdown_grace_s)


async def _share_cookie_secret(runtime: Runtime) -> None:
    """On a shared store every process signs logins with the same secret, so a cookie made
    by one is good on all; `auth.secret_env`, when set, still wins."""
    if runtime.config.auth.secret_env:
        return
    shared = await runtime.store.shared_secret("cookie")
    if shared is not None:
        runtime.signer.provide(shared)


async def _sweep_sessions(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        runtime.sessions.expire()


async def _index(request: Request) -> Response:
    return FileResponse(request.app.state.static_dir / "index.html", media_type="text/html")


def _install_http_guards(app: Starlette, runtime: Runtime, static_dir: Path) -> None:
    """The login routes, HTTP rate limits (slowapi), body limits, and the Host/origin checks
    with security headers. Middleware order, outermost first: Host and origin checks and
    headers, then body limits, then rate limits, then the routes."""
    limiter = build_http_limiter(runtime.live)
    app.state.limiter = limiter  # where slowapi's middleware looks for it
    for route in app.routes:
        if isinstance(route, Route) and route.path in probes.PATHS:
            limiter.exempt(route.endpoint)  # probes must answer however often they ask
    logins = Logins(
        live=runtime.live,
        store=runtime.store,
        signer=runtime.signer,
        sessions=runtime.sessions,
        metrics=runtime.metrics,
        static_dir=static_dir,
    )
    app.router.routes[0:0] = logins.routes(limiter)
    app.add_exception_handler(RateLimitExceeded, rate_limited_handler(limiter, runtime.metrics))
    app.add_middleware(SlowAPIASGIMiddleware)
    app.add_middleware(OneResponseStart)  # slowapi repeats the start of streamed responses
    app.add_middleware(BodyLimitMiddleware, limit_for=lambda path: body_limit(runtime.config, path))
    app.add_middleware(
        SecurityMiddleware,
        host_allowed=runtime.host_allowed,
        origins=runtime.allowed_origins,
    )


def body_limit(config: Config, path: str) -> int:
    """A login carries a name and a password: a few KiB. Anything else: `limits.max_body_bytes`."""
    return config.limits.max_login_body_bytes if path.startswith("/auth/") else config.limits.max_body_bytes


def gateway_parts(runtime: Runtime) -> GatewayParts:
    """What the socket edge uses, out of everything the process runs on."""
    return GatewayParts(
        live=runtime.live,
        store=runtime.store,
        authenticator=runtime.authenticator,
        sessions=runtime.sessions,
        fanout=runtime.fanout,
        turns=runtime.turns,
        guard=runtime.guard,
        tools=runtime.tools,
        selector=runtime.selector,
        prompts=runtime.prompts,
        metrics=runtime.metrics,
        allowed_origins=runtime.allowed_origins,
        host_allowed=runtime.host_allowed,
    )


def api_parts(runtime: Runtime) -> ApiParts:
    """What the OpenAI-compatible routes use."""
    return ApiParts(
        authenticator=runtime.authenticator,
        store=runtime.store,
        turns=runtime.turns,
        guard=runtime.guard,
        selector=runtime.selector,
        fanout=runtime.fanout,
        draining=lambda: runtime.draining,
    )
