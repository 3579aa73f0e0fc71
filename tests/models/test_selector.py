"""The selector's policy, end to end: real SDKs, real HTTP, fake model servers.

Each test names the acceptance point of issue 4 it covers. Waits between retries go
through an injected `sleep` that returns at once; breakers run on a hand-moved clock.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from server.errors import ModelUnavailable, Timeout
from server.models.base import Finish, ProviderError, TextDelta, ToolUse, Usage
from server.models.selector import Selection
from tests.fakes import Fail, Hang, Reply, ToolCall
from tests.models.conftest import Clock, claude, collect, local, make_config, request


async def test_text_and_tool_use_arrive_as_events_with_usage(fake_anthropic, selector_for):
    fake_anthropic.script(Reply(
        "Let me look.", tool_calls=[ToolCall("search", {"query": "cats"}, id="toolu_1")],
        input_tokens=42, output_tokens=17,
    ))
    selector = selector_for(make_config({"claude": claude(fake_anthropic)}))

    events, selection = await collect(selector, "claude", req=request(tools=True))

    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("Let "), TextDelta("me "), TextDelta("look.")]
    assert ToolUse(id="toolu_1", name="search", input={"query": "cats"}) in events
    assert events[-2:] == [Usage(input_tokens=42, output_tokens=17), Finish("tool_use")]
    assert (selection.model, selection.fallback_from) == ("claude", None)
    assert selector.cost("claude", Usage(42, 17)) == pytest.approx((42 * 3 + 17 * 15) / 1e6)
    body = fake_anthropic.requests[0].body
    assert body["tools"][0]["name"] == "search" and body["system"] == "You are terse."


async def test_primary_529_on_every_call_fallback_answers(fake_anthropic, fake_openai, selector_for):
    fake_anthropic.always(Fail(529, retry_after=0.2))
    fake_openai.script(Reply("from the fallback"))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], max_retries=2,
    )
    selector = selector_for(config)

    events, selection = await collect(selector, "claude")

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "from the fallback"
    assert (selection.model, selection.fallback_from) == ("local", "claude")
    assert fake_anthropic.calls == 3  # the first call and max_retries retries
    # Jittered backoff (rand=0.5: 0.125, 0.25) never shorter than the server's retry-after.
    assert selector.sleep.waits == [0.2, 0.25]


async def test_retryable_failure_then_success_stays_on_primary(fake_anthropic, fake_openai, selector_for):
    fake_anthropic.script(Fail(503), Reply("second time lucky"))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], max_retries=1,
    )
    selector = selector_for(config)

    _, selection = await collect(selector, "claude")

    assert (selection.model, selection.fallback_from) == ("claude", None)
    assert (fake_anthropic.calls, fake_openai.calls) == (2, 0)


async def test_long_retry_after_moves_to_fallback_without_waiting(fake_anthropic, fake_openai, selector_for):
    fake_anthropic.always(Fail(429, retry_after=60))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], max_retries=3, backoff_max_s=4.0,
    )
    selector = selector_for(config)

    _, selection = await collect(selector, "claude")

    assert selection.model == "local"
    assert fake_anthropic.calls == 1 and selector.sleep.waits == []


async def test_primary_hangs_fallback_answers_within_timeouts(fake_anthropic, fake_openai, selector_for):
    # One call hangs before its headers (bounded by timeout_s), the retry after its first
    # events (bounded by idle_timeout_s); then the fallback answers.
    fake_anthropic.script(Hang(60), Hang(60, after_events=2))
    fake_openai.script(Reply("I am awake"))
    config = make_config(
        {"claude": claude(fake_anthropic, timeout_s=0.5, idle_timeout_s=0.5), "local": local(fake_openai)},
        fallback=["local"], max_retries=1,
    )
    selector = selector_for(config)
    started = time.monotonic()

    _, selection = await collect(selector, "claude", deadline=started + 10)

    assert (selection.model, selection.fallback_from) == ("local", "claude")
    assert time.monotonic() - started < 5  # two 0.5 s timeouts, generously bounded
    assert fake_anthropic.calls == 2
    assert await fake_anthropic.wait_for(
        lambda: all(r.disconnected_at is not None for r in fake_anthropic.requests), timeout=2
    )


async def test_breaker_opens_after_n_failures_then_one_probe_after_cooldown(
    fake_anthropic, fake_openai, selector_for
):
    fake_anthropic.always(Fail(529))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], breaker_failures=3, breaker_cooldown_s=30.0,
    )
    clock = Clock()
    selector = selector_for(config, clock=clock)

    for _ in range(3):
        await collect(selector, "claude")
    assert fake_anthropic.calls == 3
    assert selector.status()["claude"]["state"] == "open"

    clock.advance(29)
    for _ in range(3):  # within the cool-down: the primary gets no call at all
        _, selection = await collect(selector, "claude")
        assert (selection.model, selection.fallback_from) == ("local", "claude")
    assert fake_anthropic.calls == 3

    clock.advance(2)  # half-open: exactly one probe, which fails and re-opens the circuit
    await collect(selector, "claude")
    await collect(selector, "claude")
    assert fake_anthropic.calls == 4
    assert selector.status()["claude"]["state"] == "open"

    fake_anthropic.always(Reply("back again"))
    clock.advance(31)  # the next probe succeeds and closes the circuit
    _, selection = await collect(selector, "claude")
    assert (selection.model, selection.fallback_from) == ("claude", None)
    status = selector.status()["claude"]
    assert status["state"] == "closed" and status["consecutive_failures"] == 0
    assert "529" in status["last_error"]


async def test_half_open_lets_exactly_one_concurrent_probe(fake_anthropic, fake_openai, selector_for):
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], breaker_failures=1, breaker_cooldown_s=10.0,
    )
    clock = Clock()
    selector = selector_for(config, clock=clock)
    fake_anthropic.script(Fail(500))
    await collect(selector, "claude")
    clock.advance(11)
    fake_anthropic.always(Reply("probe answer", delay_s=0.05))

    results = await asyncio.gather(*(collect(selector, "claude") for _ in range(4)))

    assert fake_anthropic.calls == 2  # the failure, then one probe among four turns
    assert sorted(s.model for _, s in results) == ["claude", "local", "local", "local"]


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (413, "too_large"), (422, "bad_request")])
async def test_a_rejected_request_is_raised_without_retry_or_fallback(
    status, code, fake_anthropic, fake_openai, selector_for
):
    fake_anthropic.always(Fail(status, message="your request is wrong"))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], max_retries=3,
    )
    selector = selector_for(config)

    with pytest.raises(ProviderError) as caught:
        await collect(selector, "claude")

    assert (caught.value.retryable, caught.value.status, caught.value.code) == (False, status, code)
    assert "your request is wrong" not in caught.value.message  # the provider's words stay in the log
    assert "your request is wrong" in caught.value.detail
    assert (fake_anthropic.calls, fake_openai.calls) == (1, 0)
    assert selector.status()["claude"]["state"] == "closed"


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_misconfigured_primary_falls_back_and_opens_its_circuit(
    status, fake_anthropic, fake_openai, selector_for
):
    fake_anthropic.always(Fail(status, message="invalid x-api-key sk-ant-***1234"))
    fake_openai.always(Reply("from the fallback"))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], max_retries=3, breaker_failures=5,
    )
    selector = selector_for(config, clock=Clock())

    with capture_logs() as logs:
        for _ in range(3):
            _, selection = await collect(selector, "claude")
            assert (selection.model, selection.fallback_from) == ("local", "claude")

    assert fake_anthropic.calls == 1  # not retried; then its circuit is open
    status_now = selector.status()["claude"]
    assert status_now["state"] == "open" and str(status) in status_now["misconfigured"]
    assert "sk-ant" not in status_now["misconfigured"]
    errors = [e for e in logs if e["event"] == "model_misconfigured"]
    assert len(errors) == 1 and errors[0]["log_level"] == "error"
    assert "sk-ant-***1234" in errors[0]["error"]  # the operator sees the provider's words
    assert list(selector.misconfigured()) == ["claude"]


async def test_a_fixed_model_is_logged_as_recovered_and_leaves_the_list(
    fake_anthropic, fake_openai, selector_for, monkeypatch
):
    monkeypatch.setenv("WRONG_KEY", "not-the-key")
    config = make_config(
        {"claude": claude(fake_anthropic, api_key_env="WRONG_KEY"), "local": local(fake_openai)},
        fallback=["local"], breaker_cooldown_s=30.0,
    )
    clock = Clock()
    selector = selector_for(config, clock=clock)
    _, selection = await collect(selector, "claude")
    assert selection.model == "local" and selector.status()["claude"]["state"] == "open"

    monkeypatch.setenv("WRONG_KEY", "test-key")  # the operator fixes the key
    clock.advance(31)  # the probe after the cool-down succeeds
    with capture_logs() as logs:
        _, selection = await collect(selector, "claude")

    assert selection.model == "claude" and selector.misconfigured() == {}
    assert [e["event"] for e in logs if e["event"].startswith("model_")] == ["model_recovered"]


async def test_spend_limit_429_is_not_retried(fake_openai, fake_anthropic, selector_for):
    fake_openai.always(Fail(429, error_type="insufficient_quota",
                            message="You exceeded your current quota, check your billing."))
    config = make_config(
        {"local": local(fake_openai), "claude": claude(fake_anthropic)},
        fallback=["claude"], max_retries=3,
    )
    selector = selector_for(config)

    with pytest.raises(ProviderError) as caught:
        await collect(selector, "local")

    assert caught.value.status == 429 and not caught.value.retryable
    assert (fake_openai.calls, fake_anthropic.calls) == (1, 0)


async def test_error_mid_stream_yields_partial_then_raises_without_fallback(
    fake_anthropic, fake_openai, selector_for
):
    # message_start, ping, content_block_start, then two text deltas: then the error event.
    fake_anthropic.script(Reply("one two three four", fail_after=5, error_type="overloaded_error"))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], max_retries=3,
    )
    selector = selector_for(config)
    selection = Selection(model="claude")
    received = []

    with pytest.raises(ProviderError) as caught:
        async for event in selector.stream("claude", request(), selection):
            received.append(event)

    assert received == [TextDelta("one "), TextDelta("two ")]
    assert caught.value.retryable and caught.value.status == 529
    assert selection.model == "claude"
    assert (fake_anthropic.calls, fake_openai.calls) == (1, 0)


async def test_both_providers_down_fail_clearly_within_deadline_then_recover(
    fake_anthropic, fake_openai, selector_for
):
    fake_anthropic.always(Fail(529))
    fake_openai.always(Fail(503))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], max_retries=2, breaker_failures=100,
    )
    selector = selector_for(config, sleep=asyncio.sleep)  # real waits, bounded by the deadline
    started = time.monotonic()

    with pytest.raises(ModelUnavailable) as caught:
        await collect(selector, "claude", deadline=started + 5)

    assert time.monotonic() - started < 5
    message = caught.value.message
    assert "claude (3 attempts" in message and "local (3 attempts" in message
    assert [t["model"] for t in caught.value.details["tried"]] == ["claude", "local"]

    fake_openai.always(Reply("I'm back"))
    events, selection = await collect(selector, "claude", deadline=time.monotonic() + 5)
    assert (selection.model, selection.fallback_from) == ("local", "claude")
    assert TextDelta("back") in events


async def test_deadline_bounds_a_hung_stream(fake_anthropic, selector_for):
    fake_anthropic.always(Hang(60, after_events=3))
    config = make_config({"claude": claude(fake_anthropic, idle_timeout_s=30.0)})
    selector = selector_for(config)
    started = time.monotonic()

    with pytest.raises(Timeout) as caught:
        await collect(selector, "claude", deadline=started + 0.5)

    assert time.monotonic() - started < 3
    assert "claude" in caught.value.message
    assert await fake_anthropic.wait_for(lambda: fake_anthropic.requests[0].disconnected_at is not None, 2)


async def test_all_circuits_open_fails_fast_naming_them(fake_anthropic, fake_openai, selector_for):
    fake_anthropic.always(Fail(529))
    fake_openai.always(Fail(529))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], breaker_failures=1, breaker_cooldown_s=20.0,
    )
    clock = Clock()
    selector = selector_for(config, clock=clock)
    with pytest.raises(ModelUnavailable):
        await collect(selector, "claude")
    clock.advance(5)

    with pytest.raises(ModelUnavailable) as caught:
        await collect(selector, "claude")

    assert "every circuit is open" in caught.value.message
    assert caught.value.details["open_circuits"] == ["claude", "local"]
    assert caught.value.retry_after == pytest.approx(15.0)
    assert (fake_anthropic.calls, fake_openai.calls) == (1, 1)


@pytest.mark.parametrize("which", ["anthropic", "openai"])
async def test_cancelling_the_consumer_closes_the_upstream_stream(
    which, fake_anthropic, fake_openai, selector_for
):
    fake = fake_anthropic if which == "anthropic" else fake_openai
    fake.always(Reply("slow " * 200, delay_s=0.05))
    settings = claude(fake_anthropic) if which == "anthropic" else local(fake_openai)
    selector = selector_for(make_config({"m": settings}))
    first = asyncio.Event()

    async def consume() -> None:
        async for event in selector.stream("m", request(), Selection(model="m")):
            if isinstance(event, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    cancelled_at = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await fake.wait_for(lambda: fake.requests[0].disconnected_at is not None, timeout=1.0)
    assert fake.requests[0].disconnected_at - cancelled_at < 1.0
    assert selector.status()["m"]["state"] == "closed"


async def test_unknown_primary_is_a_bad_request(selector_for, fake_anthropic):
    from server.errors import BadRequest

    selector = selector_for(make_config({"claude": claude(fake_anthropic)}))
    with pytest.raises(BadRequest):
        await collect(selector, "nope")
    assert fake_anthropic.calls == 0


async def test_echo_is_always_available(selector_for, fake_anthropic):
    selector = selector_for(make_config({"claude": claude(fake_anthropic)}))
    assert "echo" in selector.model_names()
    events, selection = await collect(selector, "echo", req=request("a b"))
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("a "), TextDelta("b")]
    assert selection.model == "echo" and selector.status()["echo"]["state"] == "closed"


async def test_first_token_budget_spans_retries_and_spares_the_last_candidate(
    fake_anthropic, fake_openai, selector_for
):
    """Issue 15 point 3: the primary gets one budget for all its retries; the last
    candidate, with nobody to hand over to, is not cut by it."""
    fake_anthropic.always(Hang(60))
    fake_openai.always(Hang(1.5, then=Reply("slow but there")))
    config = make_config(
        {"claude": claude(fake_anthropic), "local": local(fake_openai)},
        fallback=["local"], max_retries=3, first_token_timeout_s=0.5,
    )
    selector = selector_for(config)

    events, selection = await collect(selector, "claude", deadline=time.monotonic() + 20)

    assert (selection.model, selection.fallback_from) == ("local", "claude")
    assert TextDelta("there") in events
    assert fake_anthropic.calls == 1 and fake_openai.calls == 1
    assert selector.status()["claude"]["consecutive_failures"] == 1
