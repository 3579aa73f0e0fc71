"""`/healthz` says the process is alive; `/readyz` says whether to send it traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.app import begin_drain
from server.observability import health
from server.store.sqlite.store import SqliteStore
from tests.observability.helpers import scrape, value
from tests.support.inproc import make_config, running_app


class FlakyStore(SqliteStore):
    """A real store whose ping can be made to fail or to hang."""

    mode = "ok"

    async def ping(self) -> None:
        if self.mode == "raise":
            raise OSError("disk went away")
        if self.mode == "hang":
            await asyncio.Event().wait()
        await super().ping()


def _store(tmp_path: Path) -> FlakyStore:
    config = make_config(tmp_path)
    return FlakyStore(config.store.path, config.store)


def test_healthz_and_readyz_answer_when_all_is_well(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path)) as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_readyz_is_unready_while_draining(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path)) as client:
        client.portal.call(begin_drain, client.app.state.runtime)  # type: ignore[union-attr]
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "unready", "problems": ["draining"]})
        assert client.get("/healthz").status_code == 200  # alive: do not restart it
        assert value(scrape(client), "chinwag_ready") == 0


def test_readyz_is_unready_when_the_store_is_closed(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path)) as client:
        client.portal.call(client.app.state.runtime.store.close)  # type: ignore[union-attr]
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unready", "problems": ["store: RuntimeError"]}


def test_readyz_is_unready_when_the_store_ping_fails(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with running_app(make_config(tmp_path), store=store) as client:
        store.mode = "raise"
        assert client.get("/readyz").json()["problems"] == ["store: OSError"]
        store.mode = "ok"
        assert client.get("/readyz").status_code == 200


def test_a_hanging_store_costs_readyz_at_most_its_ping_timeout(tmp_path: Path) -> None:
    assert health.STORE_PING_TIMEOUT_S <= 0.05  # well under the 100 ms the probe has
    store = _store(tmp_path)
    with running_app(make_config(tmp_path), store=store) as client:
        store.mode = "hang"
        ready = client.get("/readyz")  # would never answer if the ping were not bounded
        assert ready.status_code == 503
        assert ready.json()["problems"] == ["store: no answer within 0.05 s"]
        assert value(scrape(client), "chinwag_ready") == 0  # /metrics is bounded the same way


def test_readyz_is_unready_when_every_models_circuit_is_open(tmp_path: Path) -> None:
    config = make_config(tmp_path, 'models.main.provider="echo"', "routing.breaker_failures=1")
    with running_app(config) as client:
        selector = client.app.state.runtime.selector
        selector.breaker("main").record_failure("down")
        assert client.get("/readyz").status_code == 200  # echo can still answer
        selector.breaker("echo").record_failure("down")
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["problems"] == ["models: every circuit is open (echo, main)"]
        samples = scrape(client)
        assert value(samples, "chinwag_circuit_state", model="main") == 2
        assert value(samples, "chinwag_ready") == 0
