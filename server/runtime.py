"""Everything one server process runs on, built once from config and passed around.

Tests build it with their own store or providers (`create_app(config, store=..., providers=...)`);
nothing in chinwag reaches for a global.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from server.auth.cookies import CookieSigner, load_secret
from server.auth.identity import Authenticator, StoreAuthenticator
from server.config.changes import keep_restart_settings
from server.config.settings import Config, prompts_dir
from server.errors import ConfigError
from server.observability.metrics import Metrics
from server.models import build_providers
from server.models.base import Provider
from server.models.selector import Selector
from server.observability import audit, logs
from server.prompts import PromptLibrary
from server.sessions.fanout import Fanout
from server.sessions.registry import SessionRegistry
from server.store.base import Store
from server.tools.audited import AuditedToolExecutor
from server.tools.registry import ToolRegistry
from server.turns.guard import TurnGuard
from server.turns.runner import TurnRunner


class Runtime:
    def __init__(
        self,
        config: Config,
        *,
        store: Store,
        providers: dict[str, Provider] | None = None,
        authenticator: Authenticator | None = None,
        registry: CollectorRegistry | None = None,
    ):
        self.config = config
        self.store = store
        self.started_at = time.time()
        self.draining = False
        self.bound_port: int | None = None  # set once the server listens
        self.metrics = Metrics(registry)  # its own registry unless given one
        logs.set_content_logging(config.log.content)
        # The cookie-signing secret is loaded when first needed (see `auth.load_secret`).
        self.signer = CookieSigner(lambda: load_secret(self.config))
        self.authenticator = authenticator or StoreAuthenticator(store, lambda: self.config, self.signer)
        self.prompts = PromptLibrary(prompts_dir(config.prompts))
        self.selector = Selector(config, providers or build_providers(config), metrics=self.metrics)
        self.sessions = SessionRegistry(
            ttl_s=config.session.ttl_s, buffer_size=config.session.replay_buffer
        )
        self.fanout = Fanout(self.sessions)
        self.tool_registry = load_tools(config)
        self.tools = AuditedToolExecutor(self.tool_registry, self)
        self.turns = TurnRunner(
            config=config,
            store=store,
            selector=self.selector,
            prompts=self.prompts,
            fanout=self.fanout,
            tools=self.tools,
            metrics=self.metrics,
        )
        self.metrics.watch(self)
        self.guard = TurnGuard(self)  # turns per minute, daily token quotas

    def allowed_origins(self) -> set[str]:
        return self.config.effective_origins(self.bound_port)

    def apply_config(self, new: Config) -> list[str]:
        """Make `new` the live config from the next turn and the next connection on; no
        socket is touched. Settings that need a restart keep their old values: their keys
        are returned. Raises `ConfigError` (changing nothing) if `new` cannot be used."""
        merged, held = keep_restart_settings(self.config, new)
        if merged.prompts.default_template not in self.prompts.templates:
            raise ConfigError(
                "prompts.default_template", f"no template named {merged.prompts.default_template!r}"
            )
        echo_changed = merged.echo != self.config.echo
        # Everything that holds the config reads it per use, so swapping the reference is
        # the whole change; each assignment is atomic for the single event loop.
        audit.config_changed(self, self.config, merged)
        self.config = merged
        logs.set_content_logging(merged.log.content)
        self.selector.config = merged
        self.turns.config = merged
        self.sessions.ttl_s = merged.session.ttl_s  # applies to sessions from now on
        self.sessions.buffer_size = merged.session.replay_buffer
        fresh = build_providers(merged)  # SDK providers make their clients lazily: cheap
        for kind, provider in fresh.items():
            if kind not in self.selector.providers or (kind == "echo" and echo_changed):
                self.selector.providers[kind] = provider
        return held


def load_tools(config: Config) -> ToolRegistry:
    """Built-in and third-party tools alike: entry points first, then configured folders.
    A name defined twice stops start-up with `ToolConflict` naming both sources."""
    registry = ToolRegistry()
    registry.load_entry_points()
    for folder in config.tools.folders:
        registry.load_folder(folder)
    return registry
