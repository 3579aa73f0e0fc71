"""Hot reload: watch `prompts.dir` and the config file, apply valid changes between turns.

A valid change takes effect for the next turn; no socket is dropped, and a turn already
running finishes on the versions it started with. An invalid change is refused: the previous
templates or config stay live and the error is logged with its location
(`prompts_reload_failed`, `config_reload_failed`). A changed setting that only takes effect
at start-up (see `server.config.settings.RESTART_REQUIRED`) keeps its old value and is named in a
`config_restart_required` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import watchfiles

from server.config.changes import changed_keys
from server.config.live import LiveConfig
from server.config.settings import Config, config_origin, resolve_config
from server.errors import ConfigError
from server.prompts.library import SUFFIX, PromptError

if TYPE_CHECKING:
    from server.prompts.library import PromptLibrary

# Validates and applies a new config, returning the keys held back for a restart.
Apply = Callable[[Config], list[str]]

log = structlog.get_logger("chinwag.reload")


class Reloader:
    """Re-reads templates into `prompts` and the config through `apply`. `reload_*` are
    plain methods that tests call directly; `start()` runs them from a `watchfiles` watcher."""

    def __init__(
        self,
        live: LiveConfig,
        prompts: PromptLibrary,
        apply: Apply,
        *,
        config_path: str | Path | None = None,
        overrides: Iterable[str] = (),
        environ: dict[str, str] | None = None,
    ):
        self.live = live
        self.prompts = prompts
        self._apply = apply
        self.config_path = Path(config_path).resolve() if config_path else None
        self.overrides = tuple(overrides)
        self.environ = environ
        self.prompts_dir = prompts.directory.resolve()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_origin(cls, live: LiveConfig, prompts: PromptLibrary, apply: Apply) -> Reloader:
        """A reloader that rebuilds the config from the file and `--set`s it was loaded from."""
        origin = config_origin(live.current)
        if origin is None:
            return cls(live, prompts, apply)
        return cls(live, prompts, apply, config_path=origin.path, overrides=origin.overrides)

    # -- applying changes --------------------------------------------------------------------

    def reload_prompts(self) -> bool:
        """Recompile every template; on an error keep the live set and log where it is."""
        try:
            self.prompts.load(require=self.live.current.prompts.default_template)
        except PromptError as exc:
            location = str(exc).split(": ", 1)[0]
            log.error("prompts_reload_failed", location=str(self.prompts_dir / location), error=str(exc))
            return False
        log.info("prompts_reloaded", templates=self.prompts.names())
        return True

    def reload_config(self) -> bool:
        """Rebuild the config from its file, the environment and `--set`; apply it if valid."""
        try:
            new = resolve_config(
                self.config_path,
                environ=dict(os.environ) if self.environ is None else self.environ,
                overrides=self.overrides,
            ).config
            old = self.live.current
            held = self._apply(new)
        except ConfigError as exc:
            log.error("config_reload_failed", key=exc.key, location=exc.source, error=str(exc))
            return False
        if held:
            log.warning("config_restart_required", keys=held)
        log.info("config_reloaded", changed=changed_keys(old, self.live.current))
        return True

    # -- watching ----------------------------------------------------------------------------

    def watched(self) -> list[Path]:
        """The prompts folder, and the folder of the config file: editors that save by
        renaming a new file over the old one would lose a watch on the file itself."""
        paths = [self.prompts_dir]
        if self.config_path is not None and self.config_path.parent != self.prompts_dir:
            paths.append(self.config_path.parent)
        return paths

    def is_template(self, name: str) -> bool:
        path = Path(name).resolve()
        return path.parent == self.prompts_dir and path.name.endswith(SUFFIX)

    def is_config(self, name: str) -> bool:
        return self.config_path is not None and Path(name).resolve() == self.config_path

    def relevant(self, change: watchfiles.Change, name: str) -> bool:
        """Only templates and the config file wake the watcher (not, say, a database
        that shares the config file's folder)."""
        return self.is_template(name) or self.is_config(name)

    def classify(self, changes: Iterable[tuple[watchfiles.Change, str]]) -> tuple[bool, bool]:
        """(templates changed, config file changed) for one batch of file events."""
        names = [name for _, name in changes]
        return any(map(self.is_template, names)), any(map(self.is_config, names))

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._watch(), name="chinwag reload watcher")

    async def stop(self) -> None:
        """Stop watching; returns once the watcher has let go of its files."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        debounce_ms = self.live.current.reload.debounce_ms
        log.info("reload_watching", paths=[str(p) for p in self.watched()])
        try:
            async for changes in watchfiles.awatch(
                *self.watched(),
                watch_filter=self.relevant,
                debounce=debounce_ms,
                step=min(50, max(debounce_ms, 1)),
                stop_event=self._stop,
                recursive=False,
            ):
                self.apply(changes)
        except Exception:  # a watcher that dies must say so, and must not take the app down
            log.exception("reload_watcher_failed")

    def apply(self, changes: Iterable[tuple[watchfiles.Change, str]]) -> None:
        prompts, config = self.classify(changes)
        if prompts:  # templates first: a new config may name a new default template
            self.reload_prompts()
        if config:
            self.reload_config()
