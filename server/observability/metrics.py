"""Prometheus metrics: everything chinwag counts, as attributes of one `Metrics` object.

The runtime owns one `Metrics`, and with it one `CollectorRegistry` (never the process-wide
default registry), so every app built in a test process has its own counts. Components get
the object through their constructors and count with one-line hooks
(`metrics.turns.labels(model, status).inc()`); a component built without one counts into a
private registry nobody scrapes.

State that already lives somewhere (live sessions, circuit breakers, running turns) is not
mirrored into gauges by hooks: `watch()` registers a collector that reads it at scrape time.
`docs/operations.md` lists every metric with what it means.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from server.models.base import Usage

__all__ = ["CIRCUIT_STATES", "CONTENT_TYPE", "Metrics"]

# The value of `chinwag_circuit_state`: higher is worse, so `max()` over models means something.
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}

# Rate-limit kinds, reported from start-up (at 0) so that alerts need no `absent()`.
RATE_LIMIT_KINDS = ("frames", "turns", "http")

# Seconds. A turn streams for seconds to minutes; the first token should come within a few
# seconds; a group commit takes a few milliseconds (its window plus one fsync).
TURN_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30)
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """Every metric of one server process (see the module doc)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sockets_open = Gauge(
            "chinwag_sockets_open", "WebSocket connections open now (accepted, not yet closed).",
            registry=r,
        )
        self.socket_closes = Counter(
            "chinwag_socket_closes_total",
            "WebSocket connections closed, by close code (4009: slow consumer; none: no code).",
            ["code"], registry=r,
        )
        self.turns = Counter(
            "chinwag_turns_total",
            "Turns ended, by the model that answered and status (complete, cancelled, failed).",
            ["model", "status"], registry=r,
        )
        self.turn_duration = Histogram(
            "chinwag_turn_duration_seconds",
            "From a turn starting (after any queueing) to its answer being committed.",
            ["model"], buckets=TURN_BUCKETS, registry=r,
        )
        self.time_to_first_token = Histogram(
            "chinwag_time_to_first_token_seconds",
            "From a turn starting to the model's first text or tool call.",
            ["model"], buckets=FIRST_TOKEN_BUCKETS, registry=r,
        )
        self.tokens = Counter(
            "chinwag_tokens_total",
            "Model tokens, by model and direction (input: prompt, output: generated).",
            ["model", "direction"], registry=r,
        )
        self.cost = Counter(
            "chinwag_cost_total",
            "What turns cost, by model, from the configured prices per million tokens.",
            ["model"], registry=r,
        )
        self.tool_calls = Counter(
            "chinwag_tool_calls_total",
            "Tool calls, by tool and outcome (ok, error, timeout, invalid_args, denied, "
            "rejected, approval_timeout, unknown_tool).",
            ["tool", "outcome"], registry=r,
        )
        self.fallbacks = Counter(
            "chinwag_fallbacks_total",
            "Model calls answered by a fallback model instead of the turn's primary model.",
            ["from_model", "to_model"], registry=r,
        )
        self.rate_limited = Counter(
            "chinwag_rate_limited_total",
            "Requests refused by a rate limit, by kind (frames, turns, http).",
            ["kind"], registry=r,
        )
        for kind in RATE_LIMIT_KINDS:
            self.rate_limited.labels(kind)
        self.store_write_seconds = Histogram(
            "chinwag_store_write_seconds",
            "One store write, from being queued to its group's COMMIT returning.",
            buckets=STORE_BUCKETS, registry=r,
        )
        self.replayed_events = Counter(
            "chinwag_replayed_events_total",
            "Events sent again to a client that resumed its session.",
            registry=r,
        )
        self.ready = Gauge(
            "chinwag_ready",
            "1 if the readiness check passed when this scrape ran, else 0.",
            registry=r,
        )

    # -- hooks that take more than one line ------------------------------------------------

    def turn_ended(
        self,
        model: str,
        status: str,
        usage: Usage,
        *,
        cost: float,
        started: float | None,
        first_token: float | None,
    ) -> None:
        """Count one ended turn; `started` and `first_token` are `time.monotonic()` values
        (None when the turn never started, or no token came)."""
        self.turns.labels(model, status).inc()
        self.tokens.labels(model, "input").inc(usage.input_tokens)
        self.tokens.labels(model, "output").inc(usage.output_tokens)
        self.cost.labels(model).inc(cost)
        if started is not None:
            self.turn_duration.labels(model).observe(time.monotonic() - started)
            if first_token is not None:
                self.time_to_first_token.labels(model).observe(first_token - started)

    @contextlib.contextmanager
    def store_write(self) -> Iterator[None]:
        """Time one store write (see `GroupCommitWriter.submit`)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.store_write_seconds.observe(time.perf_counter() - started)

    # -- state read at scrape time ---------------------------------------------------------

    def watch(self, runtime: Any) -> None:
        """Report `runtime`'s sessions, running turns and circuit states at each scrape."""
        self.registry.register(_RuntimeCollector(runtime))

    def watch_store(self, store: Any) -> None:
        """Time the writes of an opened store that has a group-commit writer (SQLite);
        any other store is left alone."""
        try:
            writer = store.writer
        except (AttributeError, RuntimeError):  # no writer, or not open
            return
        writer.metrics = self

    def exposition(self) -> bytes:
        """The text exposition format, for `GET /metrics`."""
        return generate_latest(self.registry)


class _RuntimeCollector:
    """Gauges computed from the runtime's own state when Prometheus scrapes: no polling,
    and never out of date."""

    def __init__(self, runtime: Any):
        self.runtime = runtime

    def describe(self) -> list[GaugeMetricFamily]:
        return self._families()

    def collect(self) -> list[GaugeMetricFamily]:
        sessions, running, circuits, misconfigured, bus_queued = self._families()
        attached = self.runtime.sessions.attached_count()
        sessions.add_metric(["attached"], attached)
        sessions.add_metric(["detached"], len(self.runtime.sessions.sessions) - attached)
        running.add_metric([], len(self.runtime.turns.running))
        for model, status in self.runtime.selector.status().items():
            circuits.add_metric([model], CIRCUIT_STATES.get(status["state"], 2))
            misconfigured.add_metric([model], 1 if status.get("misconfigured") else 0)
        bus_queued.add_metric([], self.runtime.bus.queued())
        return [sessions, running, circuits, misconfigured, bus_queued]

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "chinwag_sessions",
                "Live sessions: attached to a socket, or detached and resumable within the TTL.",
                labels=["state"],
            ),
            GaugeMetricFamily("chinwag_turns_running", "Turns running or queued now."),
            GaugeMetricFamily(
                "chinwag_circuit_state",
                "Circuit breaker of each model: 0 closed, 1 half-open, 2 open.",
                labels=["model"],
            ),
            GaugeMetricFamily(
                "chinwag_model_misconfigured",
                "1 for a model whose last call said it is misconfigured (401, 403, 404, no key).",
                labels=["model"],
            ),
            GaugeMetricFamily(
                "chinwag_bus_queued",
                "Commands waiting to reach the session bus (Redis): grows while it is away.",
            ),
        ]
