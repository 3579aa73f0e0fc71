"""HTTP request rates shared by nodes: two apps (two processes) on one real Redis count a
caller's requests into one window; without Redis each app still limits on its own."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from server.config.settings import Config
from server.limits_storage import storage_options, storage_uri
from tests.support.inproc import make_config, running_app
from tests.support.services import free_port


def node_config(tmp_path: Path, name: str, *overrides: str) -> Config:
    folder = tmp_path / name
    folder.mkdir()
    return make_config(folder, *overrides)


def statuses_over(configs: list[Config], count: int) -> list[int]:
    """`count` requests for `/login` from one address, spread over one app per config."""
    with ExitStack() as stack:
        clients = [stack.enter_context(running_app(config)) for config in configs]
        return [clients[n % len(clients)].get("/login").status_code for n in range(count)]


def test_two_apps_share_one_window_of_requests(tmp_path, redis_url):
    limits = (f'bus.url="{redis_url}"', "limits.http_per_minute=3")
    configs = [node_config(tmp_path, name, *limits) for name in ("a", "b")]

    assert statuses_over(configs, 3 + 2) == [200, 200, 200, 429, 429]


def test_an_unreachable_redis_leaves_each_app_limiting_on_its_own(tmp_path):
    # Set as the storage, not as `bus.url`: the app's bus would refuse to start without it.
    nowhere = f'limits.storage_uri="redis://127.0.0.1:{free_port()}/0"'
    config = node_config(tmp_path, "a", nowhere, "limits.http_per_minute=2")

    assert statuses_over([config], 3) == [200, 200, 429]


def test_the_storage_is_redis_at_the_bus_unless_set_explicitly(tmp_path):
    bus = 'bus.url="redis://cache:6379/0"'
    plain = make_config(tmp_path)
    shared = make_config(tmp_path, bus, 'bus.prefix="blue"')
    explicit = make_config(tmp_path, bus, 'limits.storage_uri="redis://limits:6379/1"')

    assert storage_uri(plain) == "memory://" and storage_options(plain, "memory://") == {}
    assert storage_uri(shared) == "redis://cache:6379/0"
    assert storage_options(shared, storage_uri(shared))["key_prefix"] == "blue:limits"
    assert storage_uri(explicit) == "redis://limits:6379/1"
