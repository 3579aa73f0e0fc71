"""Two tools: `weather` (reads, runs freely) and `save_favourite` (changes a file, so it asks).

The weather comes from a small table in this file: the example works offline, and its
answers are the same every time, which keeps its tests exact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from server.errors import NotFound
from server.tools import ToolContext, tool

# city: (temperature in °C, sky)
TABLE: dict[str, tuple[float, str]] = {
    "amsterdam": (11.0, "rain"),
    "cairo": (29.0, "sun"),
    "lima": (19.0, "cloud"),
    "oslo": (-3.0, "snow"),
    "sydney": (22.0, "sun"),
    "tokyo": (16.0, "cloud"),
}

City = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]


class Weather(msgspec.Struct):
    city: str
    temperature: float
    unit: Literal["c", "f"]
    sky: str


@tool
async def weather(ctx: ToolContext, city: City, unit: Literal["c", "f"] = "c") -> Weather:
    """The current weather in a city.

    Args:
        city: the city's name, such as "Oslo".
        unit: "c" for degrees Celsius, "f" for Fahrenheit.
    """
    key = city.strip().lower()
    if key not in TABLE:
        # A ChinwagError's message is what the model (or the client) reads as the error.
        raise NotFound(f"no weather for {city!r}; known cities: {', '.join(sorted(TABLE))}")
    celsius, sky = TABLE[key]
    temperature = celsius if unit == "c" else round(celsius * 9 / 5 + 32, 1)
    ctx.log.info("weather_looked_up", city=key)
    return Weather(city=key.title(), temperature=temperature, unit=unit, sky=sky)


@tool(policy="ask", timeout_s=5)
async def save_favourite(ctx: ToolContext, city: City) -> list[str]:
    """Add a city to the user's favourite cities, and return them all.

    Args:
        city: the city to add.
    """
    if city.strip().lower() not in TABLE:
        raise NotFound(f"no weather for {city!r}, so it cannot be a favourite")
    path = favourites_file(ctx.user.id)
    favourites = read_favourites(path)
    name = city.strip().title()
    if name not in favourites:
        favourites.append(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(favourites), encoding="utf-8")
    return favourites


def favourites_file(user_id: str) -> Path:
    """One file per user: a tool keeps each user's data apart, as chinwag's own tools do."""
    home = os.environ.get("CHINWAG_WEATHER_HOME") or Path.home() / ".config" / "chinwag-weather"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in user_id)
    return Path(home) / f"favourites-{safe}.json"


def read_favourites(path: Path) -> list[str]:
    if not path.exists():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")))
