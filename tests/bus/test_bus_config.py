"""`[bus]` settings are checked at load time, naming the key; the composition root picks
the bus the config asks for."""

from __future__ import annotations

import pytest

from server.bus.local import LocalBus
from server.bus.open import bus_for
from server.bus.redis.bus import RedisBus
from server.config.live import LiveConfig
from server.config.settings import load_config
from server.errors import ConfigError


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ('bus.url="http://cache:6379"', "bus.url", "redis://"),
        ('bus.url="cache:6379"', "bus.url", "redis://"),
        ("bus.lease_s=1.5", "bus.lease_s", "twice bus.heartbeat_s"),
        ("bus.heartbeat_s=0", "bus.lease_s", "above 0"),
        ('bus.prefix=""', "bus.prefix", "non-empty"),
        ('bus.prefix="two words"', "bus.prefix", "without spaces"),
    ],
)
def test_a_bad_bus_setting_is_refused_by_name(override: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(environ={}, overrides=[override])
    assert refused.value.key == key and words in str(refused.value)


def test_the_url_may_come_from_the_environment() -> None:
    config = load_config(environ={"CHINWAG_BUS__URL": "rediss://:pw@cache:6380/2"}, overrides=[])
    assert config.bus.url == "rediss://:pw@cache:6380/2"


async def test_the_bus_is_in_process_unless_a_url_is_set(tmp_path) -> None:
    plain = load_config(environ={}, overrides=[])
    assert isinstance(bus_for(LiveConfig(plain), store=None), LocalBus)  # type: ignore[arg-type]
    shared = load_config(environ={}, overrides=['bus.url="redis://127.0.0.1:1/0"'])
    bus = bus_for(LiveConfig(shared), store=None)  # type: ignore[arg-type]
    assert isinstance(bus, RedisBus)
    await bus.client.aclose()
