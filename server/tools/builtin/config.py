"""`config` shows the effective configuration; `config_set` changes what reloads live.

Secrets are masked the same way `chinwag config show` masks them. A change made with
`config_set` lasts until the next restart or reload of the config file: the file stays the
source of truth.
"""

from __future__ import annotations

import msgspec

from server.errors import BadRequest, ConfigError
from server.tools import ToolContext, tool


class ConfigChange(msgspec.Struct):
    applied: dict[str, object]
    settings: dict[str, object]


@tool(roles=("admin",), idempotent=True)
async def config(ctx: ToolContext, prefix: str = "") -> dict[str, object]:
    """Show the server's effective settings, secrets masked.

    Args:
        prefix: only settings whose name starts with this, e.g. "routing" or "tools.".
    """
    settings = ctx.settings.masked()
    return {key: value for key, value in settings.items() if key.startswith(prefix)}


@tool(policy="ask", roles=("admin",))
async def config_set(ctx: ToolContext, changes: dict[str, str]) -> ConfigChange:
    """Change settings that take effect without a restart (admins only; asks first).

    Args:
        changes: setting name to new value, written as in chinwag.toml, e.g. {"routing.default": "\\"claude\\""}.
    """
    if not changes:
        raise BadRequest("no changes given", details={"path": "$.args.changes"})
    try:
        settings = ctx.settings.change(changes, source="config_set")
    except ConfigError as exc:
        raise BadRequest(str(exc), details={"path": f"$.args.changes.{exc.key}"}) from None
    ctx.log.info("config_changed", keys=sorted(changes), by=ctx.user.id)
    return ConfigChange(
        applied={key: settings.get(key) for key in changes},
        settings={key: settings[key] for key in sorted(changes) if key in settings},
    )
