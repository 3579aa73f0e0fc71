"""`GET /metrics` after a scripted set of turns reports exactly what the script caused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from prometheus_client import REGISTRY, CollectorRegistry
from starlette.websockets import WebSocketDisconnect

from server.config.settings import SessionSettings, load_config
from server.models.base import ProviderError
from server.models.selector import Selector
from server.observability.metrics import Metrics
from server.sessions.registry import SessionRegistry
from tests.observability.helpers import (
    HANG,
    ScriptProvider,
    answer,
    cancel_turn,
    family,
    labels,
    scrape,
    tools,
    value,
)
from tests.support.inproc import connected, make_config, running_app

# `main` (priced so that cost = input tokens + 2 x output tokens) falls back to `backup`.
MODELS = (
    'models.main.provider="anthropic"',
    'models.main.model_id="main-1"',
    "models.main.price_input_per_mtok=1000000",
    "models.main.price_output_per_mtok=2000000",
    'models.backup.provider="openai"',
    'models.backup.model_id="backup-1"',
    'routing.default="main"',
    'routing.fallback=["backup"]',
    "routing.max_retries=0",
)


def _providers(provider: ScriptProvider) -> dict[str, ScriptProvider]:
    return {"anthropic": provider, "openai": provider, "echo": provider}


def test_metrics_count_exactly_what_a_script_of_turns_did(tmp_path: Path) -> None:
    provider = ScriptProvider(
        answer("hello there", usage=(5, 2)),  # A: complete on main
        tools(("health", {}), ("no_such_tool", {}), usage=(7, 3)),  # B: two tool calls...
        answer("done", usage=(11, 1)),  # ...then the answer
        ProviderError("overloaded", retryable=True, status=529),  # C: main fails...
        answer("from backup", usage=(3, 1)),  # ...backup answers
        ProviderError("bad request", retryable=False, status=400),  # D: fails, no fallback
        HANG,  # E: cancelled after its first delta
    )
    config = make_config(tmp_path, *MODELS)
    with running_app(config, providers=_providers(provider)) as client:
        runtime = client.app.state.runtime
        with connected(client, hello={}) as socket:
            welcome = socket.welcome  # type: ignore[attr-defined]
            outcomes = [socket.chat(text)[1][-1] for text in ("a", "b", "c", "d")]
            ack = socket.request({"type": "send", "client_msg_id": "e", "text": "e"})
            outcomes.append(cancel_turn(socket, ack))
        assert [(o["status"], o["model"]) for o in outcomes] == [
            ("complete", "main"),
            ("complete", "main"),
            ("complete", "backup"),
            ("failed", "main"),
            ("cancelled", "main"),
        ]
        assert provider.calls == ["main-1", "main-1", "main-1", "main-1", "backup-1", "main-1", "main-1"]
        last_seq = outcomes[-1]["seq"]
        resume = {"session_id": welcome["session_id"], "resume_token": welcome["resume_token"],
                  "last_seq": last_seq - 4}
        with connected(client, hello={"resume": resume}) as socket:
            assert socket.welcome["resumed"] is True  # type: ignore[attr-defined]
            assert [socket.recv()["seq"] for _ in range(4)] == list(range(last_seq - 3, last_seq + 1))
            samples = scrape(client)
            writes = runtime.store.writer.stats.operations

    assert family(samples, "chinwag_turns_total") == {
        labels(model="main", status="complete"): 2,
        labels(model="backup", status="complete"): 1,
        labels(model="main", status="failed"): 1,
        labels(model="main", status="cancelled"): 1,
    }
    # E was cancelled before the provider reported usage: it counts an estimate (issue 15).
    cut = outcomes[-1]["usage"]
    assert cut["estimated"] is True and cut["input_tokens"] > 0 and cut["output_tokens"] > 0
    assert family(samples, "chinwag_tokens_total") == {
        labels(model="main", direction="input"): 5 + 7 + 11 + cut["input_tokens"],
        labels(model="main", direction="output"): 2 + 3 + 1 + cut["output_tokens"],
        labels(model="backup", direction="input"): 3,
        labels(model="backup", direction="output"): 1,
    }
    assert family(samples, "chinwag_cost_total") == {
        labels(model="main"): 23 + cut["input_tokens"] + 2 * (6 + cut["output_tokens"]),
    }
    assert family(samples, "chinwag_tool_calls_total") == {
        labels(tool="health", outcome="ok"): 1,
        labels(tool="(unknown)", outcome="unknown_tool"): 1,
    }
    assert family(samples, "chinwag_fallbacks_total") == {
        labels(from_model="main", to_model="backup"): 1,
    }
    # Every turn that started is timed; the failed one produced no token.
    assert family(samples, "chinwag_turn_duration_seconds_count") == {
        labels(model="main"): 4, labels(model="backup"): 1,
    }
    assert family(samples, "chinwag_time_to_first_token_seconds_count") == {
        labels(model="main"): 3, labels(model="backup"): 1,
    }
    assert value(samples, "chinwag_replayed_events_total") == 4
    # Measured while the second socket was open, the first one closed (by the client: 1000).
    assert value(samples, "chinwag_sockets_open") == 1
    assert family(samples, "chinwag_socket_closes_total") == {labels(code="1000"): 1}
    assert value(samples, "chinwag_sessions", state="attached") == 1
    assert value(samples, "chinwag_sessions", state="detached") == 0
    assert value(samples, "chinwag_turns_running") == 0
    assert {m: value(samples, "chinwag_circuit_state", model=m) for m in ("main", "backup", "echo")} == {
        "main": 0, "backup": 0, "echo": 0,
    }
    assert ("chinwag_circuit_state", labels(model="main")) in samples
    assert family(samples, "chinwag_rate_limited_total") == {}
    assert value(samples, "chinwag_ready") == 1
    # Every write the group-commit writer committed was timed, and nothing else.
    assert value(samples, "chinwag_store_write_seconds_count") == writes > 0


def test_frame_rate_limit_refusals_and_close_codes_are_counted(tmp_path: Path) -> None:
    config = make_config(tmp_path, "limits.frames_per_window=3")
    with running_app(config) as client:
        with connected(client, hello={}) as socket:
            socket.send({"type": "ping", "ref": 1})
            assert socket.recv()["type"] == "pong"
            socket.send({"type": "ping", "ref": 2})
            assert socket.recv()["type"] == "pong"
            socket.send({"type": "ping", "ref": 3})  # the fourth frame, hello included
            try:
                while True:
                    socket.recv()
            except WebSocketDisconnect as exc:  # the server closed the socket
                assert getattr(exc, "code", None) == 4008, exc
        samples = scrape(client)
    assert family(samples, "chinwag_rate_limited_total") == {labels(kind="frames"): 1}
    # Every kind is exported from the start, so alert expressions need no absent().
    assert {("chinwag_rate_limited_total", labels(kind=k)) for k in ("frames", "turns", "http")} <= set(samples)
    assert family(samples, "chinwag_socket_closes_total") == {labels(code="4008"): 1}
    assert value(samples, "chinwag_sockets_open") == 0


def test_circuit_states_are_read_from_the_selector_at_scrape_time() -> None:
    config = load_config(environ={}, overrides=[
        *(f'models.{m}.provider="echo"' for m in ("closed", "opened", "probing")),
        "routing.breaker_failures=1", "routing.breaker_cooldown_s=10",
    ])
    now = [100.0]
    selector = Selector(config, {}, clock=lambda: now[0])
    runtime = SimpleNamespace(
        selector=selector,
        sessions=SessionRegistry(SessionSettings(ttl_s=60, replay_buffer=10)),
        turns=SimpleNamespace(running={}),
        bus=SimpleNamespace(queued=lambda: 0),
    )
    metrics = Metrics()
    metrics.watch(runtime)
    selector.breaker("probing").record_failure("down")
    now[0] += 10  # the probe's cool-down is over: half-open
    selector.breaker("opened").record_failure("down")

    def state(model: str) -> float | None:
        return metrics.registry.get_sample_value("chinwag_circuit_state", {"model": model})

    assert (state("closed"), state("probing"), state("opened"), state("echo")) == (0, 1, 2, 0)
    selector.breaker("opened").record_success()  # no polling: the next scrape sees it
    assert state("opened") == 0


def test_each_app_counts_into_its_own_registry(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    first = make_config(tmp_path / "one")
    with running_app(first, registry=registry) as client:
        with connected(client, hello={}) as socket:
            socket.chat("hi")
        with running_app(make_config(tmp_path / "two")) as other:
            assert value(scrape(other), "chinwag_turns_total", model="echo", status="complete") == 0
        assert value(scrape(client), "chinwag_turns_total", model="echo", status="complete") == 1
    assert registry.get_sample_value("chinwag_turns_total", {"model": "echo", "status": "complete"}) == 1
    assert REGISTRY.get_sample_value("chinwag_turns_total", {"model": "echo", "status": "complete"}) is None
