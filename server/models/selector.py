"""The model selector: which model answers a turn, and what happens when it fails.

Order of choice: the turn's explicit `model`, else the conversation's, else the template's
hint, else `routing.default`. The turn runner asks `choose()` for the primary model, then
iterates `stream()`; `Selection` tells it afterwards which model answered.

What `stream()` does when a call fails:

- Candidates are the primary, then `routing.fallback` in order, without duplicates.
- A model whose circuit is open is skipped. If every candidate's circuit is open, the turn
  fails at once with `ModelUnavailable` naming them and `retry_after` set to the earliest
  probe time: an open circuit means "do not call", and a call we expect to fail would only
  make the user wait.
- A retryable failure (`ProviderError.retryable`) is retried on the same model up to
  `routing.max_retries` times with full-jitter exponential backoff, waiting at least the
  server's `retry-after`; then the next candidate is tried. A `retry-after` longer than
  `routing.backoff_max_s` moves on to the next candidate at once when there is one.
- A misconfigured model (401, 403, 404, a missing key variable) is not retried: its
  circuit opens at once, the operator gets one `model_misconfigured` error log per change,
  and the next candidate is tried.
- Any other non-retryable failure (400, 413, 422, ...: the request itself is wrong) is
  raised at once: no retry, no fallback. It does not count against the circuit.
- A candidate with a next one to move to gets `routing.first_token_timeout_s` (or its own
  `first_token_timeout_s`), over all its retries, to send its first text or tool call;
  then the next candidate is tried. Once output started, only the idle timeout applies.
- Fallback happens only before the first output went out. Once the caller has seen text, a
  tool call or the finish, a failure is raised to it (it keeps the partial answer as
  incomplete). `Usage` is reconciled here (`UsageMeter`) and yielded just before `Finish`.
- Every call's usage, even of a call cancelled or cut off, is charged to `selection`.
- A later round of the same turn (the same `selection`) stays on the fallback that answered
  the round before, unless the primary's circuit has closed again since.
- With a `deadline` (a `time.monotonic()` value), no wait, retry or stream read runs past
  it: `server.errors.Timeout` is raised instead, naming what was tried.
- When every candidate failed, `ModelUnavailable` lists each model and why.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import msgspec
import structlog

from server.config.live import LiveConfig, as_live
from server.config.settings import ECHO_MODEL, Config, ModelSettings
from server.errors import BadRequest, ChinwagError, ModelUnavailable, Timeout
from server.models.base import Finish, ModelEvent, ModelRequest, Provider, ProviderError, Usage
from server.models.breaker import CircuitBreaker, backoff_delay
from server.models.errors import timed_out
from server.models.usage import UsageMeter
from server.observability.metrics import Metrics

log = structlog.get_logger("chinwag.models")


class Selection(msgspec.Struct):
    """Filled in while a turn streams, over all its rounds: the model that answered, the
    one it replaced, and what each call used (by model, known or estimated), so that the
    turn's cost is the sum over the models that worked on it."""

    model: str
    fallback_from: str | None = None
    charges: list[tuple[str, Usage]] = []

    def charge(self, model: str, usage: Usage) -> None:
        if usage.input_tokens or usage.output_tokens:
            self.charges.append((model, usage))

    def usage(self) -> Usage:
        return sum((usage for _, usage in self.charges), Usage())


class _DeadlineReached(Exception):
    """The turn's deadline passed while waiting on a model (internal signal)."""


class _Tried:
    """What a turn has tried so far, for the error that ends it."""

    def __init__(self) -> None:
        self.failures: dict[str, tuple[int, ProviderError]] = {}
        self.open: dict[str, float | None] = {}

    def failed(self, name: str, error: ProviderError) -> None:
        count = self.failures.get(name, (0, error))[0]
        self.failures[name] = (count + 1, error)

    def summary(self) -> str:
        parts = [
            f"{name} ({count} attempt{'s' * (count > 1)}, last: {error.message})"
            for name, (count, error) in self.failures.items()
        ]
        parts += [
            f"{name} (circuit open{f', next probe in {wait:.1f} s' if wait else ''})"
            for name, wait in self.open.items()
        ]
        return "; ".join(parts) or "nothing"

    def details(self) -> dict[str, Any]:
        return {
            "tried": [
                {"model": name, "attempts": count, "status": error.status, "error": error.message}
                for name, (count, error) in self.failures.items()
            ],
            "open_circuits": list(self.open),
        }

    def retry_after(self) -> float | None:
        waits = [w for w in self.open.values() if w] + [
            e.retry_after for _, e in self.failures.values() if e.retry_after
        ]
        return min(waits) if waits else None


class Selector:
    """Chooses models and streams answers with retries, fallback and circuit breakers.

    `clock` drives the breakers, `rand` the jitter and `sleep` the waits between retries;
    tests inject their own. Deadlines are always `time.monotonic()` values.
    `on_breaker_change(model, breaker)` hears each circuit this selector opens or closes
    (to share it with other nodes: `server.models.shared_breakers`); it must not block.
    """

    def __init__(
        self,
        config: Config | LiveConfig,
        providers: dict[str, Provider],
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        metrics: Metrics | None = None,
        on_breaker_change: Callable[[str, CircuitBreaker], None] | None = None,
    ):
        self._live = as_live(config)
        self.providers = providers
        self.clock = clock
        self.rand = rand
        self.sleep = sleep
        self.metrics = metrics or Metrics()
        self.on_breaker_change = on_breaker_change
        self._breakers: dict[str, CircuitBreaker] = {}
        self._misconfigured: dict[str, str] = {}  # model → the error last logged for it

    @property
    def config(self) -> Config:
        """The live config, read per use: a reload takes effect from the next read."""
        return self._live.current

    # -- choosing ------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        names = list(self.config.models)
        return names if "echo" in names else [*names, "echo"]

    def settings(self, name: str) -> ModelSettings:
        if name in self.config.models:
            return self.config.models[name]
        if name == "echo":
            return ECHO_MODEL
        raise BadRequest(f"unknown model {name!r}", details={"model": name})

    def choose(
        self,
        *,
        explicit: str | None = None,
        conversation: str | None = None,
        template_hint: str | None = None,
        template: str = "",
        role: str = "",
        chars: int = 0,
    ) -> str:
        """The primary model for a turn: the turn's own choice, the conversation's, the
        template's hint, the first routing rule matching the template, the user's role and
        the message's length in characters, else `routing.default`. An explicit unknown
        model is the caller's error."""
        if explicit:
            self.settings(explicit)
            return explicit
        for name in (conversation, template_hint):
            if name and (name in self.config.models or name == "echo"):
                return name
        for rule in self.config.routing.rules:
            if rule.matches(template=template, role=role, chars=chars):
                return rule.model
        return self.config.routing.default

    def candidates(self, primary: str) -> list[str]:
        """The primary, then the configured fallbacks, each once."""
        names = [primary, *self.config.routing.fallback]
        return [n for i, n in enumerate(names) if n not in names[:i]]

    # -- health and cost -----------------------------------------------------------------

    def breaker(self, name: str) -> CircuitBreaker:
        if name not in self._breakers:
            routing = self.config.routing
            hook = self.on_breaker_change
            self._breakers[name] = CircuitBreaker(
                routing.breaker_failures, routing.breaker_cooldown_s, clock=self.clock,
                on_change=None if hook is None else functools.partial(hook, name),
            )
        return self._breakers[name]

    def status(self) -> dict[str, dict[str, Any]]:
        """Per model: circuit state, consecutive failures, last error and when (epoch s)."""
        return {
            name: {"provider": self.settings(name).provider, **self.breaker(name).status()}
            for name in self.model_names()
        }

    def cost(self, model_name: str, usage: Usage) -> float:
        """What `usage` cost on `model_name`, from its prices per million tokens."""
        settings = self.settings(model_name)
        return (
            usage.input_tokens * settings.price_input_per_mtok
            + usage.output_tokens * settings.price_output_per_mtok
        ) / 1_000_000

    # -- streaming -----------------------------------------------------------------------

    async def stream(
        self,
        primary: str,
        request: ModelRequest,
        selection: Selection,
        *,
        deadline: float | None = None,
    ) -> AsyncGenerator[ModelEvent, None]:
        """Stream the answer of the first candidate that gives one; see the module doc."""
        self.settings(primary)
        tried = _Tried()
        names = self._route(primary, selection)
        for position, name in enumerate(names):
            more = position + 1 < len(names)
            first_by = self._first_token_by(name) if more else None
            attempt = 0
            while True:
                breaker = self.breaker(name)
                if not breaker.acquire():
                    if name not in tried.failures:
                        tried.open[name] = breaker.retry_in()
                    break
                meter, started, finished = UsageMeter(request), False, False
                try:
                    async with aclosing(self._call(name, request, deadline, first_by)) as events:
                        async for event in events:
                            meter.saw(event)
                            if isinstance(event, Usage):
                                continue  # reconciled by the meter, yielded before Finish
                            if not started:
                                started = True
                                self._answered_by(name, primary, selection)
                            if isinstance(event, Finish):
                                finished = True
                                yield meter.usage(finished=True)
                            yield event
                except ProviderError as exc:
                    selection.charge(name, meter.usage(finished=False))
                    self._record(name, breaker, exc)
                    if started or not (exc.retryable or exc.misconfigured):
                        raise
                    tried.failed(name, exc)
                    wait = self._retry_wait(attempt, exc, deadline, more, first_by)
                    if wait is None:
                        break
                    await self.sleep(wait)
                    attempt += 1
                    continue
                except _DeadlineReached:
                    selection.charge(name, meter.usage(finished=False))
                    breaker.release()
                    raise Timeout(
                        f"turn deadline reached waiting for {name}; tried: {tried.summary()}",
                        details=tried.details(),
                    ) from None
                except BaseException:
                    selection.charge(name, meter.usage(finished=finished))
                    breaker.release()  # cancelled or closed: no verdict on the model
                    raise
                selection.charge(name, meter.usage(finished=True))
                self._succeeded(name, breaker)
                return
        raise self._exhausted(tried, deadline)

    def _route(self, primary: str, selection: Selection) -> list[str]:
        """The candidates in order. A later round of a turn whose earlier round a fallback
        answered starts from that fallback, unless the primary's circuit has closed since."""
        names = self.candidates(primary)
        answered = selection.model
        if selection.fallback_from == primary and answered in names and not self._recovered(primary):
            return [answered, *(n for n in names if n != answered)]
        selection.model, selection.fallback_from = primary, None
        return names

    def _recovered(self, name: str) -> bool:
        breaker = self._breakers.get(name)
        return breaker is None or (breaker.state == "closed" and breaker.consecutive_failures == 0)

    def _answered_by(self, name: str, primary: str, selection: Selection) -> None:
        selection.model = name
        selection.fallback_from = primary if name != primary else None
        if name != primary:
            self.metrics.fallbacks.labels(primary, name).inc()

    def _first_token_by(self, name: str) -> float | None:
        """When `name` must have sent its first output (None: no budget)."""
        budget = self.settings(name).first_token_timeout_s
        if budget is None:
            budget = self.config.routing.first_token_timeout_s
        return time.monotonic() + budget if budget > 0 else None

    async def _call(
        self, name: str, request: ModelRequest, deadline: float | None, first_by: float | None
    ) -> AsyncGenerator[ModelEvent, None]:
        """One call to one model; every read is bounded by the deadline, and reads before
        the first output also by `first_by` (a retryable timeout when it passes)."""
        if deadline is not None and time.monotonic() >= deadline:
            raise _DeadlineReached
        settings = self.settings(name)
        provider = self.providers.get(settings.provider)
        if provider is None:
            raise ProviderError(f"{name}: no provider {settings.provider!r}", retryable=False)
        events = provider.stream(settings, request)
        try:
            while True:
                budget_first = first_by is not None and (deadline is None or first_by < deadline)
                try:
                    async with asyncio.timeout(_remaining(first_by if budget_first else deadline)) as scope:
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if not scope.expired():
                        raise
                    if not budget_first:
                        raise _DeadlineReached from None
                    raise timed_out(settings.model_id, "no first token within first_token_timeout_s") from None
                if not isinstance(event, Usage):
                    first_by = None  # output has started: only the idle timeout applies now
                yield event
        finally:
            # Close the provider's stream (and so its HTTP response) however we leave.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def _record(self, name: str, breaker: CircuitBreaker, error: ProviderError) -> None:
        """Charge the breaker, and tell the operator the provider's own words."""
        log.warning(
            "model_call_failed", model=name, status=error.status, retryable=error.retryable,
            misconfigured=error.misconfigured, error=error.detail,
        )
        if error.misconfigured:
            breaker.record_misconfigured(error.message)
            if self._misconfigured.get(name) != error.detail:
                self._misconfigured[name] = error.detail
                log.error("model_misconfigured", model=name, status=error.status, error=error.detail)
        elif error.retryable:
            breaker.record_failure(error.message)
        else:
            self._succeeded(name, breaker)  # the endpoint is up; the request was at fault

    def _succeeded(self, name: str, breaker: CircuitBreaker) -> None:
        breaker.record_success()
        if self._misconfigured.pop(name, None) is not None:
            log.info("model_recovered", model=name)

    def misconfigured(self) -> dict[str, str]:
        """Models whose last call said they cannot work as configured, with the reason."""
        return {
            name: breaker.misconfigured
            for name, breaker in self._breakers.items()
            if breaker.misconfigured is not None
        }

    def _retry_wait(
        self,
        attempt: int,
        error: ProviderError,
        deadline: float | None,
        more: bool,
        first_by: float | None = None,
    ) -> float | None:
        """Seconds to wait before retrying the same model, or None to move on."""
        routing = self.config.routing
        if attempt >= routing.max_retries or not error.retryable:
            return None
        hint = error.retry_after or 0.0
        if hint > routing.backoff_max_s and (more or deadline is None):
            return None  # the model asks for a long pause: try the next one instead
        wait = max(backoff_delay(attempt, routing.backoff_base_s, routing.backoff_max_s, self.rand), hint)
        for limit in (deadline, first_by):  # first_by: its budget for a first token is spent
            if limit is not None and time.monotonic() + wait >= limit:
                return None
        return wait

    def _exhausted(self, tried: _Tried, deadline: float | None) -> ChinwagError:
        if not tried.failures:
            message = f"no model available, every circuit is open: {tried.summary()}"
        elif deadline is not None and time.monotonic() >= deadline:
            return Timeout(f"turn deadline reached; tried: {tried.summary()}", details=tried.details())
        else:
            message = f"no model could answer; tried: {tried.summary()}"
        return ModelUnavailable(message, details=tried.details(), retry_after=tried.retry_after())


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)
