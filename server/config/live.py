"""The running config: one holder that every component reads per use.

A reload validates the new config, then `replace`s it here: one assignment, atomic for the
single event loop, so no component holds a stale copy and none needs to be told.
Components take `Config | LiveConfig`: a plain `Config` (tests, one-off commands) is a
config that never changes.
"""

from __future__ import annotations

from server.config.settings import Config


class LiveConfig:
    def __init__(self, config: Config):
        self._current = config

    @property
    def current(self) -> Config:
        return self._current

    def replace(self, new: Config) -> None:
        self._current = new


def as_live(config: Config | LiveConfig) -> LiveConfig:
    return config if isinstance(config, LiveConfig) else LiveConfig(config)
