"""Model providers and the selector. See `base.py` for the contract every provider keeps."""

from __future__ import annotations

from server.config import Config
from server.models.base import Provider
from server.models.echo import EchoProvider


def build_providers(config: Config) -> dict[str, Provider]:
    """One provider per kind named in config; `echo` is always there."""
    providers: dict[str, Provider] = {"echo": EchoProvider(config.echo.delay_ms)}
    return providers
