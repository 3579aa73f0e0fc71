"""Comparing configs, and the settings a reload may not change (they need a restart)."""

from __future__ import annotations

from typing import Any

import msgspec

from server.config.settings import Config

# Settings read once at start-up. A reload that changes one of them keeps the old value and
# logs `config_restart_required`; a whole section listed here means every key in it.
RESTART_REQUIRED = (
    "server.host",
    "server.port",
    "server.trusted_proxies",
    "server.shutdown_grace_s",
    "store",
    "bus",
    "limits.max_frame_bytes",
    "limits.storage_uri",
    "auth.secret_env",
    "session.heartbeat_s",
    "prompts.dir",
    "prompts.max_chars",
    "prompts.render_timeout_s",
    "tools.folders",
    "mcp.startup_wait_s",
    "log.level",
    "log.format",
    "reload",
)


def flatten(config: Config) -> dict[str, Any]:
    """Every setting as `{"server.port": 8000, "models.claude.provider": "anthropic", ...}`."""
    return _flatten(msgspec.to_builtins(config), "")


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and (value or not prefix):
        items: dict[str, Any] = {}
        for name, child in value.items():
            items.update(_flatten(child, f"{prefix}{name}."))
        return items
    return {prefix.rstrip("."): value}


def changed_keys(old: Config, new: Config) -> list[str]:
    before, after = flatten(old), flatten(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def needs_restart(key: str) -> bool:
    return any(key == name or key.startswith(name + ".") for name in RESTART_REQUIRED)


def keep_restart_settings(old: Config, new: Config) -> tuple[Config, list[str]]:
    """`new`, with every restart-only setting put back to its `old` value; also the keys
    whose change was held back (to be logged: they take effect at the next start)."""
    held = [key for key in changed_keys(old, new) if needs_restart(key)]
    merged = new
    for name in RESTART_REQUIRED:
        if any(key == name or key.startswith(name + ".") for key in held):
            merged = _replace_path(merged, name.split("."), _get_path(old, name.split(".")))
    return merged, held


def _get_path(node: Any, parts: list[str]) -> Any:
    for part in parts:
        node = getattr(node, part)
    return node


def _replace_path(node: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    child = _replace_path(getattr(node, parts[0]), parts[1:], value)
    return msgspec.structs.replace(node, **{parts[0]: child})
