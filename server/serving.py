"""Running the app under uvicorn, with chinwag's shutdown order.

On SIGTERM clients first get `reconnect` and a close with 1012 (so they resume elsewhere),
then uvicorn stops accepting, then the lifespan gives running turns their grace period.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import uvicorn

from server.config.settings import Config
from server.uvicorn_bridge import DeadPeerAwareProtocol, abort_client_connection


def uvicorn_config(app: object, config: Config) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=config.server.host,
        port=config.server.port,
        ws=DeadPeerAwareProtocol,
        ws_max_size=config.limits.max_frame_bytes,  # a bigger frame is closed with 1009
        ws_ping_interval=config.session.heartbeat_s,
        ws_ping_timeout=config.session.heartbeat_s,
        ws_per_message_deflate=False,
        # X-Forwarded-For / -Proto only from the proxies the operator names. uvicorn's own
        # default believes them from 127.0.0.1, so anything on the machine could spoof its
        # address past the login limits and into the audit log.
        proxy_headers=bool(config.server.trusted_proxies),
        forwarded_allow_ips=list(config.server.trusted_proxies),
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(config.server.shutdown_grace_s) + 5,
    )


class DrainingServer(uvicorn.Server):
    """uvicorn, but clients hear `reconnect` and close 1012 before it stops accepting."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        on_shutdown: Callable[[], None] = lambda: None,
        on_listening: Callable[[int], None] = lambda port: None,
    ):
        super().__init__(config)
        self.on_shutdown = on_shutdown
        self.on_listening = on_listening

    async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                self.on_listening(port)
                # A machine-readable line, so that scripts and tests can use --port 0.
                print(f"chinwag listening on http://{host}:{port}", file=sys.stderr, flush=True)

    def abort_connection(self, client: tuple[str, int]) -> bool:
        """Reset the connection from `client` (host, port). ASGI can only close a socket
        politely, and a polite close waits behind unread bytes for a peer that stopped
        reading; this frees it. False when no such connection is open."""
        return abort_client_connection(self.server_state, client)

    async def shutdown(self, sockets=None):  # type: ignore[no-untyped-def]
        self.on_shutdown()
        await asyncio.sleep(0.05)  # let the writers put the reconnect frames on the wire
        await super().shutdown(sockets)


def serve(config: Config) -> None:
    from server.app import begin_drain, create_app
    from server.auth.binding import check_binding
    from server.observability.logs import configure_logging

    check_binding(config)  # ConfigError (exit code 2) beyond loopback without authentication
    configure_logging(config.log)
    check_store(config)  # exit code 3 with one line if the database cannot be used
    app = create_app(config)
    runtime = app.state.runtime
    server = DrainingServer(
        uvicorn_config(app, config),
        on_shutdown=lambda: begin_drain(runtime),
        on_listening=lambda port: setattr(runtime, "bound_port", port),
    )
    app.state.abort_connection = server.abort_connection
    asyncio.run(server.serve())


# `chinwag serve`'s exit code when the database cannot be used (uvicorn's for a failed start).
STORE_EXIT_CODE = 3


def check_store(config: Config) -> None:
    """Open (create, check, migrate) and close the database before serving, so that a file
    that cannot be used stops start-up with one line naming it and what to do, instead of
    a traceback from inside the server's start-up."""
    from server.store.base import StoreOpenError
    from server.store.open import store_for

    async def open_and_close() -> None:
        store = store_for(config, readers=1)
        await store.open()
        await store.close()

    try:
        asyncio.run(open_and_close())
    except StoreOpenError as exc:
        print(f"chinwag: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(STORE_EXIT_CODE) from None
