"""The model selector: which model answers a turn, and what happens when it fails.

Order of choice: the turn's explicit `model`, else the conversation's, else the template's
hint, else `routing.default`. The turn runner asks `choose()` for the primary model, then
iterates `stream()`; `Selection` tells it afterwards which model answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from server.config import ECHO_MODEL, Config, ModelSettings
from server.errors import BadRequest
from server.models.base import ModelEvent, ModelRequest, Provider


class Selection(msgspec.Struct):
    """Filled in while a turn streams: the model that answered, and the one it replaced."""

    model: str
    fallback_from: str | None = None


class Selector:
    def __init__(self, config: Config, providers: dict[str, Provider]):
        self.config = config
        self.providers = providers

    def model_names(self) -> list[str]:
        names = list(self.config.models)
        return names if "echo" in names else [*names, "echo"]

    def settings(self, name: str) -> ModelSettings:
        if name in self.config.models:
            return self.config.models[name]
        if name == "echo":
            return ECHO_MODEL
        raise BadRequest(f"unknown model {name!r}", details={"model": name})

    def choose(
        self,
        *,
        explicit: str | None = None,
        conversation: str | None = None,
        template_hint: str | None = None,
    ) -> str:
        """The primary model for a turn. An explicit unknown model is the caller's error."""
        if explicit:
            self.settings(explicit)
            return explicit
        for name in (conversation, template_hint):
            if name and (name in self.config.models or name == "echo"):
                return name
        return self.config.routing.default

    async def stream(
        self, primary: str, request: ModelRequest, selection: Selection
    ) -> AsyncIterator[ModelEvent]:
        settings = self.settings(primary)
        provider = self.providers[settings.provider]
        selection.model = primary
        async for event in provider.stream(settings, request):
            yield event
