"""Live settings: one source that every component reads per use.

A reload (or `config_set`) replaces the config in one place, `LiveConfig`; these tests show
that every component reads that place, that every setting the docs call live reaches it,
and that the two settings which were once held at their start-up values (`tools.max_rounds`
in the round runner, `turns.deadline_s` half of it) now change a turn without a restart.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from server.config.changes import RESTART_REQUIRED, flatten
from server.config.settings import Config, with_changes
from tests.config.test_docs import documented
from tests.support.scripted import ScriptedProvider, answer, tool_round
from tests.tools.helpers import by_type, connect, make_config, running


def _live_keys() -> list[str]:
    """Settings whose docs row ends in "live" (including "live (sweeps)"); tables
    (`quotas.per_user`, ...) are changed by the entry given in VALID_CHANGES."""
    defaults = flatten(Config())
    keys = []
    for key, row in documented().items():
        last = row.rstrip(" |").rsplit("|", 1)[-1].strip()
        if last.startswith("live") and not key.startswith("models.") and (
            key in VALID_CHANGES or not isinstance(defaults.get(key), dict)
        ):
            keys.append(key)
    return sorted(keys)


VALID_CHANGES = {
    "turns.concurrent": '"reject"',
    "log.content": "true",
    "prompts.default_template": '"system"',
    "routing.default": '"echo"',
    "tools.policy": '{ health = "deny" }',
    "tools.role_policy": '{ user = { search = "ask" } }',
    "quotas.per_role": "{ bot = 50 }",
    "quotas.per_user": "{ ann = 1000 }",
}


LIVE = _live_keys()


def _changed(value: object) -> str:
    """A different, valid TOML value of the same type."""
    if isinstance(value, bool):
        return "false" if value else "true"
    if isinstance(value, int):
        return str(value + 1)
    if isinstance(value, float):
        return repr(value + 1.5)
    if isinstance(value, list):
        return '["http://example.test"]'
    if isinstance(value, str) or value is None:
        return '"https://chat.example.test"' if value is None else f'"{value}"'
    raise AssertionError(f"no changed value for {value!r}")




def _value(config: Config, key: str) -> object:
    """The setting at dotted `key` (a table as a whole, not flattened into its entries)."""
    section, name = key.split(".", 1)
    return msgspec.to_builtins(getattr(getattr(config, section), name))


def test_the_docs_name_live_settings_and_none_of_them_needs_a_restart() -> None:
    assert len(LIVE) > 10
    for key in LIVE:
        assert not any(key == n or key.startswith(n + ".") for n in RESTART_REQUIRED), key


@pytest.mark.parametrize("key", LIVE)
def test_each_live_setting_reaches_every_component(tmp_path: Path, key: str) -> None:
    config = make_config(tmp_path)
    current = flatten(config)[key]
    value = VALID_CHANGES[key] if key in VALID_CHANGES else _changed(current)
    with running(config) as client:
        runtime = client.app.state.runtime
        held = runtime.apply_config(with_changes(runtime.config, {key: value}, source="test"))
        assert held == []
        expected = _value(runtime.config, key)
        # Whatever reads config reads the one live source: no holder kept a copy.
        readers: list[Config] = [
            runtime.selector.config,
            runtime.turns.config,
            runtime.turns.rounds.config,
            runtime.tools.config,
            runtime.guard._live.current,
        ]
        for seen in readers:
            assert _value(seen, key) == expected, key
        if key.startswith("session."):
            field = key.removeprefix("session.")
            assert getattr(runtime.sessions._settings(), field) == expected, key


def test_max_rounds_changes_without_a_restart(tmp_path: Path) -> None:
    always_a_tool = tool_round(("health", {}))
    provider = ScriptedProvider(default=always_a_tool)
    config = make_config(tmp_path, "tools.max_rounds=3")
    with running(config, provider) as client, connect(client) as conn:
        conn.chat("check twice")
        before = len(provider.requests)
        runtime = client.app.state.runtime
        runtime.apply_config(with_changes(runtime.config, {"tools.max_rounds": "1"}, source="test"))
        conn.chat("check once")
        after = len(provider.requests) - before
    # 3 rounds of tools then the last model call; then 1 round and the last call.
    assert (before, after) == (4, 2)


def test_deadline_changes_without_a_restart(tmp_path: Path) -> None:
    slow = ScriptedProvider(default=answer(" ".join(["word"] * 5)))
    config = make_config(tmp_path)
    with running(config, slow) as client, connect(client) as conn:
        _, events = conn.chat("hello")
        assert by_type(events, "turn.completed")[0]["status"] == "complete"
        runtime = client.app.state.runtime
        runtime.apply_config(with_changes(runtime.config, {"turns.deadline_s": "0.0"}, source="test"))
        _, events = conn.chat("hello again")
    done = by_type(events, "turn.completed")[0]
    assert done["status"] != "complete", done
