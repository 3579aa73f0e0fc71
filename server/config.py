"""Typed settings: `chinwag.toml`, then `CHINWAG_SECTION__KEY` variables, then `--set`.

Every limit the server enforces is a named setting here with its default; the list with
explanations is `docs/configuration.md`. Later sources win: file < environment < `--set`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from server.errors import ConfigError


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: unknown keys are errors, not silently ignored."""


class ServerSettings(Section):
    name: str = "chinwag"
    host: str = "127.0.0.1"
    port: int = 8000
    # Empty means "the server's own origins" (see `effective_origins`).
    allowed_origins: list[str] = []
    public_url: str | None = None
    # Seconds running turns get to finish on SIGTERM before they are checkpointed.
    shutdown_grace_s: float = 10.0


class StoreSettings(Section):
    path: str = "conversations/chinwag.db"
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout_ms: int = 5000
    # How long the writer waits to gather more writes into one commit.
    group_commit_ms: float = 2.0
    group_commit_max: int = 256


class LimitsSettings(Section):
    max_frame_bytes: int = 65536
    frames_per_window: int = 120
    frame_window_s: float = 60.0
    bad_frames_per_window: int = 10
    bad_frame_window_s: float = 60.0
    max_text_chars: int = 32000
    # Outbound frames queued per socket before deltas are coalesced / the socket is closed.
    outbound_queue: int = 256


class SessionSettings(Section):
    ttl_s: float = 120.0
    replay_buffer: int = 4096
    heartbeat_s: float = 20.0
    hello_timeout_s: float = 10.0


class TurnSettings(Section):
    concurrent: Literal["queue", "reject"] = "queue"
    deadline_s: float = 300.0
    checkpoint_s: float = 1.0
    # Deltas produced within this many ms are sent as one frame.
    coalesce_ms: float = 0.0


class ModelSettings(Section):
    """One model a turn can be routed to."""

    provider: Literal["anthropic", "openai", "echo"]
    model_id: str = ""
    base_url: str | None = None
    # Name of the environment variable holding the API key; never the key itself.
    api_key_env: str | None = None
    context_window: int = 200_000
    max_output_tokens: int = 4096
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    # Seconds without a stream event before the call counts as hung.
    idle_timeout_s: float = 30.0


class RoutingSettings(Section):
    default: str = "echo"
    fallback: list[str] = []
    max_retries: int = 2
    backoff_base_s: float = 0.25
    backoff_max_s: float = 4.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0


class EchoSettings(Section):
    delay_ms: float = 10.0


SHIPPED_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


class PromptSettings(Section):
    # Folder of `*.md.j2` templates; empty means the templates shipped with chinwag.
    dir: str = ""
    default_template: str = "system"


class LogSettings(Section):
    level: str = "info"
    format: Literal["auto", "json", "console"] = "auto"
    content: bool = False


class Config(Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    session: SessionSettings = msgspec.field(default_factory=SessionSettings)
    turns: TurnSettings = msgspec.field(default_factory=TurnSettings)
    models: dict[str, ModelSettings] = msgspec.field(default_factory=dict)
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    echo: EchoSettings = msgspec.field(default_factory=EchoSettings)
    prompts: PromptSettings = msgspec.field(default_factory=PromptSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)

    def model_names(self) -> list[str]:
        return list(self.models)

    def effective_origins(self, port: int | None = None) -> set[str]:
        """The origins a browser handshake may come from; `port` is the one actually bound
        (it differs from the configured one when that is 0)."""
        if self.server.allowed_origins:
            return set(self.server.allowed_origins)
        port = port or self.server.port
        origins = {f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"}
        if self.server.public_url:
            origins.add(self.server.public_url.rstrip("/"))
        return origins


ENV_PREFIX = "CHINWAG_"

# The offline model every server has, so that it runs with no API key at all.
ECHO_MODEL = ModelSettings(provider="echo", model_id="echo", context_window=32_000)


def load_config(
    path: str | Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Config:
    """Build the effective config: file, then environment, then `--set key=value`."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(Path(path))
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            key = name[len(ENV_PREFIX):].lower().replace("__", ".")
            _assign(raw, key, _parse_scalar(value), f"environment variable {name}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(item, "expected key=value", "--set")
        _assign(raw, key.strip(), _parse_scalar(value.strip()), "--set")
    return _convert(raw, str(path) if path else "defaults")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None


def _assign(raw: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(dotted, f"{part} is not a section", source)
        node = child
    node[parts[-1]] = value


def _parse_scalar(text: str) -> Any:
    """Read a value the way TOML would (numbers, booleans, arrays, quoted strings), else text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _convert(raw: dict[str, Any], source: str) -> Config:
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        key, message = _split_validation_error(str(exc))
        raise ConfigError(key, message, source) from None
    _check_references(config, source)
    return config


def _split_validation_error(text: str) -> tuple[str, str]:
    """msgspec says "Expected `int`, got `str` - at `$.server.port`"; name the key first."""
    message, sep, where = text.rpartition(" - at ")
    if not sep:
        unknown = re.match(r"Object contains unknown field `([^`]+)`", text)
        return (unknown[1], "unknown setting") if unknown else ("config", text)
    key = where.strip("`").removeprefix("$").lstrip(".") or "config"
    key = key.replace("[", ".").replace("]", "").replace("'", "").replace('"', "")
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        return ".".join(filter(None, [key if key != "config" else "", unknown[1]])), "unknown setting"
    return key, message


def _check_references(config: Config, source: str) -> None:
    known = set(config.models) | {"echo"}
    if config.routing.default not in known:
        raise ConfigError("routing.default", f"no model named {config.routing.default!r}", source)
    for name in config.routing.fallback:
        if name not in known:
            raise ConfigError("routing.fallback", f"no model named {name!r}", source)


def prompts_dir(settings: PromptSettings) -> Path:
    return Path(settings.dir) if settings.dir else SHIPPED_PROMPTS
