"""The effective configuration as people and tools may see it: secrets masked, sources named.

Used by `chinwag config show` and by the built-in `config` tool, so both follow one rule.
"""

from __future__ import annotations

import json
import os
import re

from server.config.changes import flatten
from server.config.settings import Config, Resolved

# A setting whose name says it may hold a secret is never printed. `api_key_env` names an
# environment variable (not a secret): it is shown, with whether that variable is set, and
# the variable's value never is.
SECRET_NAME = re.compile(r"key|secret|token|password", re.IGNORECASE)
MASK = "********"


def shown_settings(resolved: Resolved) -> list[tuple[str, object, str]]:
    """(key, value safe to print, source) for every setting, in config order."""
    rows = []
    for key, value in flatten(resolved.config).items():
        source = resolved.source_of(key)
        if key.endswith(".api_key_env") and value:
            source += f"; ${value} is {'set' if os.environ.get(str(value)) else 'not set'}"
        rows.append((key, masked(key, value), source))
    return rows


def masked(key: str, value: object) -> object:
    """`value`, or a mask when the setting's name says it may hold a secret."""
    name = key.rsplit(".", 1)[-1]
    if name == "api_key_env" or value in (None, "", [], {}):
        return value
    return MASK if SECRET_NAME.search(name) else value


def render_json(resolved: Resolved) -> str:
    settings = {key: {"value": value, "source": source} for key, value, source in shown_settings(resolved)}
    return json.dumps(settings, indent=2) + "\n"


def render_toml(resolved: Resolved) -> str:
    """TOML-like: one table per section, each value followed by its source as a comment."""
    lines: list[str] = []
    table = None
    for key, value, source in shown_settings(resolved):
        section, _, name = key.rpartition(".")
        if section != table:
            lines.append(f"{'' if table is None else chr(10)}[{section}]" if section else "")
            table = section
        if value is None:
            lines.append(f"# {name} is not set  # {source}")
        else:
            lines.append(f"{name} = {json.dumps(value)}  # {source}")
    return "\n".join(lines) + "\n"


def masked_settings(config: Config) -> dict[str, object]:
    """Every setting of a live config, with secrets masked (no sources: those belong to files)."""
    return {key: masked(key, value) for key, value in flatten(config).items()}
