"""Limits: frame floods (4008), turns per user per minute, daily token quotas with an
injected clock across UTC midnight, and slowapi on HTTP routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.websockets import WebSocketDisconnect

from server.config.settings import load_config
from server.store.base import UserRecord
from server.turns.guard import TurnGuard
from tests.auth.helpers import add_key, add_user, bearer
from tests.support.inproc import connected, make_config, running_app


def test_a_frame_flood_closes_4008(tmp_path):
    config = make_config(tmp_path, "limits.frames_per_window=5", "limits.frame_window_s=60")
    with running_app(config) as client, connected(client, hello={}) as socket:
        with pytest.raises(WebSocketDisconnect) as closed:
            for number in range(20):
                socket.send({"type": "ping", "ref": number})
                socket.recv()
        assert closed.value.code == 4008


def test_turns_per_minute_refuse_with_retry_after_and_resends_still_ack(tmp_path):
    config = make_config(tmp_path, "limits.turns_per_minute=2")
    add_user(config, "robot", role="bot")
    key = add_key(config, "robot")
    with running_app(config) as client, connected(client, hello={}, headers=bearer(key)) as socket:
        first, _ = socket.chat("one")
        socket.chat("two")
        refused = socket.request({"type": "send", "client_msg_id": "third", "text": "three"})
        assert refused["type"] == "error" and refused["code"] == "rate_limited"
        assert 0 < refused["retry_after"] <= 60
        # A resend of an acknowledged message is not a new turn: it gets its ack again.
        again = socket.request({"type": "send", "client_msg_id": first["client_msg_id"], "text": "one"})
        assert again["type"] == "ack" and again["message_id"] == first["message_id"]
        history = socket.request({"type": "history", "conversation_id": first["conversation_id"]})
        assert "three" not in str(history)
        metrics = client.get("/metrics").text
        assert 'chinwag_rate_limited_total{kind="turns"} 1.0' in metrics


def test_local_user_is_not_turn_limited(tmp_path):
    config = make_config(tmp_path, "limits.turns_per_minute=1")
    with running_app(config) as client, connected(client, hello={}) as socket:
        for text in ("a", "b", "c"):
            socket.chat(text)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_daily_quota_refuses_the_turn_that_would_exceed_it_and_resets_at_utc_midnight(tmp_path):
    # echo counts words as tokens: each turn here costs a few tokens (input + output).
    config = make_config(tmp_path, "quotas.tokens_per_day=10")
    add_user(config, "ann")
    key = add_key(config, "ann")
    with running_app(config) as client:
        clock = Clock(datetime.now(UTC))
        client.app.state.runtime.guard.clock = clock
        with connected(client, hello={}, headers=bearer(key)) as socket:
            ack, _ = socket.chat("alpha beta gamma")
            conversation = ack["conversation_id"]
            accepted = 1
            while True:
                reply = socket.request({
                    "type": "send", "client_msg_id": f"q{accepted}", "text": "alpha beta gamma",
                    "conversation_id": conversation,
                })
                if reply["type"] == "error":
                    break
                socket.until("turn.completed")
                accepted += 1
                assert accepted < 10
            assert reply["code"] == "quota_exceeded"
            assert reply["retry_after"] > 0
            stored = socket.request({"type": "history", "conversation_id": conversation})["messages"]
            assert len([m for m in stored if m["role"] == "user"]) == accepted  # refused: not stored

            today = clock.now.replace(hour=0, minute=0, second=0, microsecond=0)
            clock.now = today + timedelta(days=1) - timedelta(seconds=1)  # 23:59:59 the same day
            late = socket.request({"type": "send", "client_msg_id": "late", "text": "x", "conversation_id": conversation})
            assert late["code"] == "quota_exceeded" and late["retry_after"] == 1

            clock.now = today + timedelta(days=1, seconds=1)  # past UTC midnight: a new day
            fresh = socket.request({"type": "send", "client_msg_id": "fresh", "text": "x", "conversation_id": conversation})
            assert fresh["type"] == "ack"


def test_quota_precedence_per_user_then_role_then_default(tmp_path):
    config = load_config(environ={}, overrides=[
        f'store.path="{tmp_path / "db"}"', "quotas.tokens_per_day=100",
        "quotas.per_role.bot=50", "quotas.per_user.vip=1000",
    ])

    guard = TurnGuard(config, store=None, metrics=None)  # type: ignore[arg-type]  # quota_for reads config only
    assert guard.quota_for(UserRecord(id="u1", name="vip", role="bot")) == 1000
    assert guard.quota_for(UserRecord(id="u2", name="r2", role="bot")) == 50
    assert guard.quota_for(UserRecord(id="u3", name="ann", role="user")) == 100


def test_http_routes_are_rate_limited_per_address_with_retry_after(tmp_path):
    config = make_config(tmp_path, "limits.http_per_minute=3")
    with running_app(config) as client:
        statuses = [client.get("/login").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/login")
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 0 < limited.json()["error"]["retry_after"] <= 60
        assert int(limited.headers["retry-after"]) > 0
        assert all(client.get("/healthz").status_code == 200 for _ in range(10))  # probes exempt
        assert client.get("/static/style.css").status_code == 200  # static files exempt
        assert 'chinwag_rate_limited_total{kind="http"} 2.0' in client.get("/metrics").text


def test_login_attempts_are_limited_per_address(tmp_path):
    config = make_config(tmp_path, "limits.logins_per_minute=2")
    add_user(config, "ann", password="right")
    with running_app(config) as client:
        codes = [
            client.post("/auth/login", json={"username": "ann", "password": "wrong"}).status_code
            for _ in range(3)
        ]
        assert codes == [401, 401, 429]
        # Even the right password waits: guessing cannot go faster than the limit.
        assert client.post("/auth/login", json={"username": "ann", "password": "right"}).status_code == 429
