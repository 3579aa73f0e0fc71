"""Issue 15, as a client sees it: over the WebSocket, the real anthropic and openai SDKs
against the fake servers, and the answers as the SQLite store keeps them. One test (or
two) per point of the issue; each names its point."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.fakes import Fail, FakeAnthropic, FakeOpenAI, Hang, Raw, Reply, ToolCall
from tests.fakes.fake_openai import data
from tests.support.inproc import connected, make_config, running_app

KEY_ENV = "FAKE_MODEL_KEY"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "test-key")


@pytest.fixture
def claude_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def backup_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def model(name: str, fake: FakeAnthropic | FakeOpenAI, *extra: str, price_in: float = 3.0) -> list[str]:
    provider = "anthropic" if isinstance(fake, FakeAnthropic) else "openai"
    return [
        f'models.{name}.provider="{provider}"',
        f'models.{name}.model_id="{name}-id"',
        f'models.{name}.base_url="{fake.base_url}"',
        f'models.{name}.api_key_env="{KEY_ENV}"',
        f"models.{name}.price_input_per_mtok={price_in}",
        f"models.{name}.price_output_per_mtok=15.0",
        f"models.{name}.timeout_s=5.0",
        f"models.{name}.idle_timeout_s=5.0",
        *(f"models.{name}.{setting}" for setting in extra),
    ]


def routed(primary: str, *fallback: str, **routing: object) -> list[str]:
    settings = [f'routing.default="{primary}"', f"routing.fallback={json.dumps(list(fallback))}",
                "routing.max_retries=0", "routing.backoff_base_s=0.01"]
    return settings + [f"routing.{key}={value}" for key, value in routing.items()]


def stored(tmp_path: Path, message_id: str) -> sqlite3.Row:
    with sqlite3.connect(tmp_path / "chinwag.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT status, model, usage, cost FROM messages WHERE id = ?", (message_id,)).fetchone()


def chunk(delta: dict, finish: str | None = None) -> bytes:
    return data({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def text_of(events: list[dict]) -> str:
    return "".join(e["text"] for e in events if e["type"] == "delta")


# -- 1. a cut OpenAI-compatible stream is not a complete answer ------------------------------


def test_point1_a_cut_openai_stream_is_incomplete_and_an_empty_200_falls_back(
    tmp_path: Path, openai_fake: FakeOpenAI, backup_fake: FakeAnthropic
) -> None:
    openai_fake.script(
        Raw([chunk({"role": "assistant", "content": "The answer is "}), chunk({"content": "forty"})]),
        Raw([]),  # a 200 with an empty body
    )
    backup_fake.script(Reply("from the backup"))
    config = make_config(tmp_path, *model("local", openai_fake), *model("backup", backup_fake),
                         *routed("local", "backup"))
    with running_app(config) as client, connected(client, hello={}) as socket:
        _, cut = socket.chat("hi")
        _, empty = socket.chat("hi again")

    done = cut[-1]
    assert text_of(cut) == "The answer is forty"
    assert done["status"] == "failed" and done["model"] == "local"
    assert stored(tmp_path, done["message_id"])["status"] == "incomplete"
    assert backup_fake.calls == 1  # only for the empty body: output had started in the first
    done = empty[-1]
    assert (done["status"], done["model"], done["fallback_from"]) == ("complete", "backup", "local")


def test_point1_a_server_that_omits_finish_reason_but_ends_with_done_still_completes(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    openai_fake.script(Raw([chunk({"role": "assistant", "content": "Fine "}), chunk({"content": "here."}),
                            data("[DONE]")]))
    config = make_config(tmp_path, *model("local", openai_fake), *routed("local"))
    with running_app(config) as client, connected(client, hello={}) as socket:
        _, events = socket.chat("hi")
    assert (events[-1]["status"], text_of(events)) == ("complete", "Fine here.")
    assert stored(tmp_path, events[-1]["message_id"])["status"] == "complete"


# -- 2. usage is recorded for every answer, and counts against quotas ------------------------


def test_point2_a_cancelled_answer_keeps_its_input_tokens_and_counts_against_the_quota(
    tmp_path: Path, claude_fake: FakeAnthropic
) -> None:
    claude_fake.always(Reply("slow " * 200, input_tokens=700, delay_s=0.05))
    config = make_config(tmp_path, *model("claude", claude_fake), *routed("claude"),
                         "quotas.tokens_per_day=500")
    with running_app(config) as client, connected(client, hello={}) as socket:
        ack = socket.request({"type": "send", "client_msg_id": "c1", "text": "hi"})
        socket.until("delta")
        socket.request({"type": "cancel", "turn_id": ack["turn_id"]})
        done = socket.until("turn.completed")
        refused = socket.request({"type": "send", "client_msg_id": "c2", "text": "again"})

    assert done["status"] == "cancelled"
    assert done["usage"]["input_tokens"] == 700 and done["usage"]["output_tokens"] >= 1
    row = stored(tmp_path, done["message_id"])
    assert json.loads(row["usage"])["input_tokens"] == 700
    assert row["cost"] == pytest.approx((700 * 3.0 + done["usage"]["output_tokens"] * 15.0) / 1e6)
    assert refused["type"] == "error" and refused["code"] == "quota_exceeded"


def test_point2_a_server_that_ignores_include_usage_gets_an_estimate_marked_as_such(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    # llama.cpp's server: no usage chunk whatever stream_options says.
    openai_fake.always(Raw([chunk({"role": "assistant", "content": "x" * 400}), chunk({}, "stop"),
                            data("[DONE]")]))
    config = make_config(tmp_path, *model("gguf", openai_fake), *routed("gguf"),
                         "quotas.tokens_per_day=150")
    with running_app(config) as client, connected(client, hello={}) as socket:
        _, events = socket.chat("hi")
        refused = socket.request({"type": "send", "client_msg_id": "q2", "text": "again"})

    usage = events[-1]["usage"]
    assert usage["output_tokens"] == 100 and usage["input_tokens"] > 0 and usage["estimated"] is True
    assert json.loads(stored(tmp_path, events[-1]["message_id"])["usage"])["estimated"] is True
    assert refused["type"] == "error" and refused["code"] == "quota_exceeded"


# -- 3. a hung primary: the fallback answers within the first-token budget ------------------


@pytest.mark.parametrize("hang", [Hang(3600), Hang(3600, after_events=2)], ids=["no-headers", "after-start"])
def test_point3_a_hung_primary_hands_over_within_the_first_token_budget(
    tmp_path: Path, claude_fake: FakeAnthropic, openai_fake: FakeOpenAI, hang: Hang
) -> None:
    claude_fake.always(hang)
    openai_fake.always(Reply("awake"))
    config = make_config(
        tmp_path, *model("claude", claude_fake), *model("local", openai_fake),
        *routed("claude", "local", max_retries=2, first_token_timeout_s=1.0),
    )
    with running_app(config) as client, connected(client, hello={}) as socket:
        ack = socket.request({"type": "send", "client_msg_id": "h1", "text": "hi"})
        sent = time.monotonic()
        socket.until("delta")
        waited = time.monotonic() - sent
        done = socket.until("turn.completed")

    assert (done["status"], done["model"], done["fallback_from"]) == ("complete", "local", "claude")
    assert ack["turn_id"] == done["turn_id"]
    # The budget is 1 s over all retries; without it the 5 s read/idle timeouts (3 calls) apply.
    assert waited < 1.0 + 2.0
    assert claude_fake.calls == 1  # the budget was spent on the first call: no retry


# -- 4. a misconfigured primary falls back and shows up for the operator ---------------------


def test_point4_a_revoked_key_falls_back_opens_the_circuit_and_shows_in_readyz_and_metrics(
    tmp_path: Path, claude_fake: FakeAnthropic, openai_fake: FakeOpenAI
) -> None:
    claude_fake.always(Fail(401, message="invalid x-api-key"))
    openai_fake.always(Reply("the fallback"))
    config = make_config(tmp_path, *model("claude", claude_fake), *model("local", openai_fake),
                         *routed("claude", "local"))
    with running_app(config) as client, connected(client, hello={}) as socket:
        with capture_logs() as logs:
            answers = [socket.chat("hi")[1][-1] for _ in range(3)]
        ready = client.get("/readyz")
        metrics = client.get("/metrics").text

    assert [(a["status"], a["model"]) for a in answers] == [("complete", "local")] * 3
    assert claude_fake.calls == 1  # then its circuit is open
    assert [e["event"] for e in logs].count("model_misconfigured") == 1
    assert ready.status_code == 200  # the fallback answers: still ready
    assert "401" in ready.json()["misconfigured_models"]["claude"]
    assert 'chinwag_model_misconfigured{model="claude"} 1.0' in metrics
    assert 'chinwag_model_misconfigured{model="local"} 0.0' in metrics


# -- 5. the request's fault is not the model's; users get our words, operators the provider's


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (413, "too_large")])
def test_point5_a_rejected_request_is_the_requests_fault_not_the_models(
    tmp_path: Path, claude_fake: FakeAnthropic, backup_fake: FakeAnthropic, status: int, code: str
) -> None:
    claude_fake.always(Fail(status, message="prompt is too long: internal-shard-7"))
    config = make_config(tmp_path, *model("claude", claude_fake), *model("backup", backup_fake),
                         *routed("claude", "backup"))
    with running_app(config) as client, connected(client, hello={}) as socket:
        _, events = socket.chat("hi")
    error = events[-1]["error"]
    assert events[-1]["status"] == "failed" and error["code"] == code
    assert "internal-shard-7" not in error["message"] and str(status) in error["message"]
    assert backup_fake.calls == 0


def test_point5_provider_text_with_a_masked_key_reaches_the_log_not_the_user(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    openai_fake.always(Fail(401, message="Incorrect API key provided: sk-proj-****************abcd."))
    config = make_config(tmp_path, *model("gpt", openai_fake), *routed("gpt"))
    with running_app(config) as client, connected(client, hello={}) as socket, capture_logs() as logs:
        _, events = socket.chat("hi")
    error = events[-1]["error"]
    assert error["code"] == "model_unavailable" and "API key" in error["message"]
    assert "sk-proj" not in json.dumps(events)
    logged = [e for e in logs if e["event"] == "model_call_failed"]
    assert logged and "sk-proj-****************abcd" in logged[0]["error"]


# -- 6. a turn that fell back stays on its fallback; cost sums every round's model -----------


def test_point6_later_tool_rounds_stay_on_the_fallback_and_cost_sums_the_rounds(
    tmp_path: Path, claude_fake: FakeAnthropic, backup_fake: FakeAnthropic
) -> None:
    claude_fake.script(Reply("from the primary", input_tokens=100, output_tokens=10),
                       Fail(529), Fail(529))
    backup_fake.script(
        Reply("Searching.", tool_calls=[ToolCall("search", {"query": "walrus"})],
              input_tokens=1000, output_tokens=20),
        Reply("Found nothing.", input_tokens=2000, output_tokens=30),
    )
    config = make_config(
        tmp_path, *model("claude", claude_fake, price_in=3.0), *model("backup", backup_fake, price_in=1.0),
        *routed("claude", "backup", breaker_failures=10),
    )
    with running_app(config) as client, connected(client, hello={}) as socket:
        socket.chat("warm up")  # the primary answers one turn: its circuit is closed and clean
        _, events = socket.chat("find walrus")

    done = events[-1]
    assert (done["status"], done["model"], done["fallback_from"]) == ("complete", "backup", "claude")
    assert claude_fake.calls == 2  # the warm-up, and round 1's failure; round 2 stayed on backup
    assert backup_fake.calls == 2
    assert done["usage"] == {"input_tokens": 3000, "output_tokens": 50}
    row = stored(tmp_path, done["message_id"])
    assert row["cost"] == pytest.approx((3000 * 1.0 + 50 * 15.0) / 1e6)


def test_point6_cost_sums_each_rounds_own_model(
    tmp_path: Path, claude_fake: FakeAnthropic, backup_fake: FakeAnthropic
) -> None:
    # Round 1: the primary asks for a tool. Round 2: it is overloaded, the backup answers.
    claude_fake.script(Reply("Searching.", tool_calls=[ToolCall("search", {"query": "walrus"})],
                             input_tokens=100, output_tokens=10), Fail(529))
    backup_fake.script(Reply("Found nothing.", input_tokens=1000, output_tokens=20))
    config = make_config(
        tmp_path, *model("claude", claude_fake, price_in=3.0), *model("backup", backup_fake, price_in=1.0),
        *routed("claude", "backup"),
    )
    with running_app(config) as client, connected(client, hello={}) as socket:
        _, events = socket.chat("find walrus")

    done = events[-1]
    assert (done["model"], done["fallback_from"]) == ("backup", "claude")
    assert done["usage"] == {"input_tokens": 1100, "output_tokens": 30}
    row = stored(tmp_path, done["message_id"])
    assert row["cost"] == pytest.approx((100 * 3.0 + 10 * 15.0 + 1000 * 1.0 + 20 * 15.0) / 1e6)
