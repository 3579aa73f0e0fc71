"""The plugin's own tests: the tools called the way chinwag calls them, with no server.

`handler.validate(args)` checks arguments against the tool's schema exactly as chinwag
does before a call; `await handler(ctx, arguments)` runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from chinwag_weather.tools import TABLE, save_favourite, weather

from server.errors import NotFound
from server.store.base import UserRecord
from server.tools import ToolContext, ToolRegistry


def context(user_id: str = "ada") -> ToolContext:
    # The weather tools use only the user and the logger; a test passes nothing else.
    return ToolContext(
        user=UserRecord(id=user_id, name=user_id, role="user"),
        conversation_id=None,
        call_id="tc_test",
        log=structlog.get_logger("test"),
        data=None,  # type: ignore[arg-type]
        settings=None,  # type: ignore[arg-type]
        server=None,  # type: ignore[arg-type]
    )


async def call(handler: Any, args: dict[str, Any], user_id: str = "ada") -> Any:
    return msgspec.to_builtins(await handler(context(user_id), handler.validate(args)))


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHINWAG_WEATHER_HOME", str(tmp_path))
    return tmp_path


def test_registered_through_the_entry_point() -> None:
    registry = ToolRegistry()
    registry.load_entry_points()
    assert registry.get("weather") is weather
    assert registry.get("save_favourite") is save_favourite
    assert registry.sources["weather"] == "entry point chinwag.tools:weather (chinwag_weather.tools)"


def test_weather_schema() -> None:
    assert weather.description == "The current weather in a city."
    assert weather.policy == "allow"
    assert weather.input_schema == {
        "type": "object",
        "properties": {
            "city": {
                "type": "string", "minLength": 1, "maxLength": 80,
                "description": 'the city\'s name, such as "Oslo".',
            },
            "unit": {
                "enum": ["c", "f"], "default": "c",
                "description": '"c" for degrees Celsius, "f" for Fahrenheit.',
            },
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_save_favourite_asks_first() -> None:
    assert save_favourite.policy == "ask"
    assert save_favourite.timeout_s == 5
    assert save_favourite.input_schema["required"] == ["city"]


async def test_weather_in_both_units() -> None:
    assert await call(weather, {"city": "Oslo"}) == {"city": "Oslo", "temperature": -3.0, "unit": "c", "sky": "snow"}
    assert await call(weather, {"city": " oslo ", "unit": "f"}) == {
        "city": "Oslo", "temperature": 26.6, "unit": "f", "sky": "snow",
    }


async def test_every_city_in_the_table_answers() -> None:
    for city in TABLE:
        assert (await call(weather, {"city": city}))["city"].lower() == city


async def test_unknown_city_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(NotFound, match="known cities: amsterdam, cairo"):
        await call(weather, {"city": "Atlantis"})


def test_bad_arguments_are_refused_before_the_call() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.unit"):
        weather.validate({"city": "Oslo", "unit": "kelvin"})
    with pytest.raises(msgspec.ValidationError, match="city"):
        weather.validate({})


async def test_favourites_are_saved_per_user(home: Path) -> None:
    assert await call(save_favourite, {"city": "oslo"}, "ada") == ["Oslo"]
    assert await call(save_favourite, {"city": "Lima"}, "ada") == ["Oslo", "Lima"]
    assert await call(save_favourite, {"city": "Oslo"}, "ada") == ["Oslo", "Lima"]
    assert await call(save_favourite, {"city": "Cairo"}, "grace") == ["Cairo"]
    assert json.loads((home / "favourites-ada.json").read_text()) == ["Oslo", "Lima"]
    assert json.loads((home / "favourites-grace.json").read_text()) == ["Cairo"]


async def test_an_unknown_city_is_not_saved(home: Path) -> None:
    with pytest.raises(NotFound):
        await call(save_favourite, {"city": "Atlantis"})
    assert list(home.iterdir()) == []
