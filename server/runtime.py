"""The composition root: everything one server process runs on, built once from config.

Each component is given exactly the collaborators it uses; none takes this object. Only the
app (`server.app`) and the process (`server.serving`) hold it, to wire routes and shutdown.
Tests build it with their own store or providers (`create_app(config, store=..., providers=...)`);
nothing in chinwag reaches for a global.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import CollectorRegistry

from server.auth.cookies import CookieSigner, load_secret
from server.auth.identity import Authenticator, StoreAuthenticator
from server.bus.base import Publisher, SessionDirectory
from server.bus.local import LocalBus
from server.bus.open import bus_for
from server.config.changes import keep_restart_settings
from server.config.live import LiveConfig
from server.config.settings import Config, prompts_dir
from server.errors import ConfigError, NotFound
from server.mcp.servers import McpServers
from server.models import build_providers
from server.models.base import Provider
from server.models.selector import Selector
from server.models.shared_breakers import shared_breakers_for
from server.observability import audit, logs
from server.observability.metrics import Metrics
from server.prompts.library import PromptLibrary
from server.store.base import Store, UserRecord
from server.tools.audited import AuditedToolExecutor
from server.tools.capabilities import ServerStatus
from server.tools.registry import ToolRegistry
from server.turns.guard import TurnGuard
from server.turns.interruptions import Interruptions
from server.turns.runner import TurnRunner


class Runtime:
    """The composition root's result: each component built once, with exactly the
    collaborators it uses. Only the edges (the app's routes and the socket endpoint) hold
    this; no component takes it."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store,
        providers: dict[str, Provider] | None = None,
        authenticator: Authenticator | None = None,
        registry: CollectorRegistry | None = None,
    ):
        self.live = LiveConfig(config)
        self.store = store
        self.started_at = time.time()
        self.draining = False
        self.closing: asyncio.Future[None] | None = None  # sockets closing after a drain began
        self.bound_port: int | None = None  # set once the server listens
        self.metrics = Metrics(registry)  # its own registry unless given one
        logs.set_content_logging(config.log.content)
        # The cookie-signing secret is loaded when first needed (see `auth.cookies.load_secret`).
        self.signer = CookieSigner(lambda: load_secret(self.live.current))
        self.authenticator = authenticator or StoreAuthenticator(store, lambda: self.live.current, self.signer)
        self.prompts = PromptLibrary(
            prompts_dir(config.prompts),
            max_chars=config.prompts.max_chars,
            render_timeout_s=config.prompts.render_timeout_s,
        )
        # With a bus, an open circuit on one node spares the others (None: no bus).
        self.shared_breakers = shared_breakers_for(config, lambda name: self.selector.breaker(name))
        self.selector = Selector(
            self.live, providers or build_providers(config), metrics=self.metrics,
            on_breaker_change=self.shared_breakers.changed if self.shared_breakers else None,
        )
        # Sessions, fan-out and turn routing: in memory, or shared through Redis (`bus.url`).
        self.bus = bus_for(self.live, store)
        self.sessions: SessionDirectory = self.bus.sessions
        self.fanout: Publisher = self.bus.fanout
        self.tool_registry = load_tools(config)
        # MCP servers' tools join the registry as each server connects (`lifespan`).
        self.mcp = McpServers(self.tool_registry, self.live)
        self.tools = AuditedToolExecutor(
            self.tool_registry,
            config=self.live,
            store=store,
            metrics=self.metrics,
            apply_config=self.apply_config,
            report=self.status_for,
            calls=self.bus.calls,
        )
        self.turns = TurnRunner(
            config=self.live,
            store=store,
            selector=self.selector,
            prompts=self.prompts,
            fanout=self.fanout,
            tools=self.tools,
            metrics=self.metrics,
            directory=self.bus.turns,
        )
        self.interruptions = Interruptions(self.live, store, self.turns)
        if not isinstance(self.bus, LocalBus):  # what a cancel or approve from elsewhere does
            self.bus.node.cancel = self.turns.cancel_here
            self.bus.node.decide = self._decide_quietly
            self.bus.node.reregister = self.turns.register_running
            self.bus.node.running_turns = lambda: list(self.turns.running)
            self.bus.recovery.take_up = self.interruptions.continue_here
        self.metrics.watch(self)
        self.guard = TurnGuard(self.live, store, self.metrics)  # turns per minute, daily token quotas

    @property
    def config(self) -> Config:
        return self.live.current

    def _decide_quietly(self, user_id: str, call_id: str, decision: str) -> None:
        """An approval routed here by another node; one that stopped waiting is no error."""
        if decision in ("allow", "deny"):
            with contextlib.suppress(NotFound):
                self.tools.approvals.decide(user_id, call_id, decision)  # type: ignore[arg-type]

    def allowed_origins(self) -> set[str]:
        """The browser origins the socket and the HTTP routes accept (live config, bound port)."""
        return self.config.effective_origins(self.bound_port)

    def host_allowed(self, host: str) -> bool:
        """Whether `Host` names this server, by the same rule as the origins."""
        return self.config.host_allowed(host, self.bound_port)

    def status_for(self, user: UserRecord | None) -> ServerStatus:
        """The server's state for `user` (their own sessions, sockets and turns, and model
        states without error text), or server-wide for None (an admin's view)."""
        models = self.selector.status()
        if user is None:
            sessions = list(self.sessions.sessions.values())
            turns = len(self.turns.running)
        else:
            sessions = list(self.sessions.of_user(user.id))
            turns = sum(1 for turn in self.turns.running.values() if turn.request.user.id == user.id)
            models = {name: {"state": info.get("state")} for name, info in models.items()}
        return ServerStatus(
            scope="server" if user is None else "user",
            uptime_s=round(time.time() - self.started_at, 1),
            draining=self.draining,
            models=models,
            sessions=len(sessions),
            sockets=sum(1 for session in sessions if session.outlet is not None),
            running_turns=turns,
        )

    def apply_config(self, new: Config) -> list[str]:
        """Make `new` the live config from the next read on; no socket is touched.
        Settings that need a restart keep their old values: their keys are returned.
        Raises `ConfigError` (changing nothing) if `new` cannot be used."""
        old = self.live.current
        merged, held = keep_restart_settings(old, new)
        if merged.prompts.default_template not in self.prompts.templates:
            raise ConfigError(
                "prompts.default_template", f"no template named {merged.prompts.default_template!r}"
            )
        audit.config_changed(self.store, old, merged)
        # Every component reads the live config per use: this one assignment is the change.
        self.live.replace(merged)
        logs.set_content_logging(merged.log.content)
        self._refresh_providers(old, merged)
        if merged.mcp != old.mcp:
            self.mcp.schedule_apply()
        return held

    def _refresh_providers(self, old: Config, new: Config) -> None:
        """A provider kind that appears gets built; echo is rebuilt when its settings change
        (SDK providers make their clients lazily, so building is cheap)."""
        fresh = build_providers(new)
        for kind, provider in fresh.items():
            if kind not in self.selector.providers or (kind == "echo" and new.echo != old.echo):
                self.selector.providers[kind] = provider


def load_tools(config: Config) -> ToolRegistry:
    """Built-in and third-party tools alike: entry points first, then configured folders.
    A name defined twice stops start-up with `ToolConflict` naming both sources."""
    registry = ToolRegistry()
    registry.load_entry_points()
    for folder in config.tools.folders:
        registry.load_folder(folder)
    return registry
