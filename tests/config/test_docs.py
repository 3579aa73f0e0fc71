"""docs/configuration.md lists every setting, and the restart-only ones as such."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from server.config.changes import RESTART_REQUIRED, flatten
from server.config.settings import Config, McpServerSettings, ModelSettings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def documented() -> dict[str, str]:
    """{dotted key: its table row} from the `### [section]` tables of the page."""
    rows: dict[str, str] = {}
    section = ""
    for line in DOC.splitlines():
        if heading := re.match(r"### `\[([^\]]+)\]`", line):
            section = heading[1].replace(".NAME", "")
        elif row := re.match(r"\| `([a-z_]+)` \|", line):
            rows[f"{section}.{row[1]}"] = line
    return rows


SETTINGS = [k for k in flatten(Config()) if k != "models"] + [
    f"models.{f.name}" for f in msgspec.structs.fields(ModelSettings)
] + [f"mcp.servers.{f.name}" for f in msgspec.structs.fields(McpServerSettings)]


@pytest.mark.parametrize("key", SETTINGS)
def test_every_setting_is_documented(key):
    assert key in documented()


@pytest.mark.parametrize("key", [k for k in SETTINGS if not k.startswith(("models.", "mcp.servers."))])
def test_defaults_match(key):
    default = flatten(Config())[key]
    row = documented()[key]
    if default is None:
        shown = "not set"
    else:  # TOML and JSON agree for these values: `8000`, `"FULL"`, `true`, `[]`
        shown = f"`{msgspec.json.encode(default).decode()}`".replace(",", ", ")
    assert shown in row


@pytest.mark.parametrize("key", SETTINGS)
def test_restart_only_settings_say_so(key):
    row = documented()[key]
    needs = any(key == n or key.startswith(n + ".") for n in RESTART_REQUIRED)
    section = key.split(".")[0]
    if section in ("store", "bus"):
        assert needs  # the whole table says "Every key here needs a restart"
    elif section not in ("models", "routing"):
        assert row.rstrip(" |").endswith("restart") == needs
