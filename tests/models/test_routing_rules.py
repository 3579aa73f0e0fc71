"""Routing rules: the first rule whose conditions all hold picks the model."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from server.config.settings import load_config
from server.errors import ConfigError
from server.models.selector import Selector

RULES = """
[models.big]
provider = "echo"
[models.local]
provider = "echo"

[[routing.rules]]
model = "big"
min_chars = 100

[[routing.rules]]
model = "local"
templates = ["tools"]
roles = ["bot"]

[routing]
default = "echo"
"""


@pytest.fixture
def selector(tmp_path: Path) -> Selector:
    path = tmp_path / "chinwag.toml"
    path.write_text(RULES)
    return Selector(load_config(path, environ={}), providers={})


def test_the_first_matching_rule_wins(selector: Selector) -> None:
    assert selector.choose(template="system", role="user", chars=100) == "big"
    assert selector.choose(template="tools", role="bot", chars=5000) == "big"  # first rule first
    assert selector.choose(template="tools", role="bot", chars=10) == "local"


def test_every_condition_of_a_rule_must_hold(selector: Selector) -> None:
    assert selector.choose(template="tools", role="user", chars=10) == "echo"
    assert selector.choose(template="system", role="bot", chars=10) == "echo"
    assert selector.choose(template="system", role="user", chars=99) == "echo"


def test_turn_conversation_and_template_choices_come_before_rules(selector: Selector) -> None:
    assert selector.choose(explicit="echo", template="tools", role="bot", chars=10) == "echo"
    assert selector.choose(conversation="echo", chars=500) == "echo"
    assert selector.choose(template_hint="local", chars=500) == "local"


def test_max_chars_bounds_a_rule(tmp_path: Path) -> None:
    path = tmp_path / "chinwag.toml"
    path.write_text('[models.small]\nprovider = "echo"\n[[routing.rules]]\nmodel = "small"\nmax_chars = 20\n')
    selector = Selector(load_config(path, environ={}), providers={})
    assert selector.choose(chars=20) == "small"
    assert selector.choose(chars=21) == "echo"


def test_a_rule_naming_an_undeclared_model_is_refused_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "chinwag.toml"
    path.write_text('[[routing.rules]]\nmodel = "ghost"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert refused.value.key == "routing.rules.0.model" and "ghost" in str(refused.value)


def test_the_example_in_the_models_guide_is_valid() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text()
    example = next(block for block in re.findall(r"```toml\n(.*?)```", guide, re.DOTALL) if "routing.rules" in block)
    parsed = tomllib.loads(example)
    assert [rule["model"] for rule in parsed["routing"]["rules"]] == ["claude", "local"]
