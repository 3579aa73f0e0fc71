"""What the socket edge uses, and nothing else: built once by the app (`create_app`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.config.live import LiveConfig
from server.config.settings import Config

if TYPE_CHECKING:
    from server.auth.identity import Authenticator
    from server.bus.base import Publisher, SessionDirectory
    from server.models.selector import Selector
    from server.observability.metrics import Metrics
    from server.prompts.library import PromptLibrary
    from server.store.base import Store
    from server.tools.executor import ToolExecutor
    from server.turns.guard import TurnGuard
    from server.turns.runner import TurnRunner


@dataclass(frozen=True)
class GatewayParts:
    live: LiveConfig
    store: Store
    authenticator: Authenticator
    sessions: SessionDirectory
    fanout: Publisher
    turns: TurnRunner
    guard: TurnGuard
    tools: ToolExecutor
    selector: Selector
    prompts: PromptLibrary
    metrics: Metrics
    # The browser origins and `Host` names this server answers to, read live (with the
    # port actually listened on): the same rule as the HTTP edge's (`Runtime`).
    allowed_origins: Callable[[], set[str]]
    host_allowed: Callable[[str], bool]

    @property
    def config(self) -> Config:
        return self.live.current
