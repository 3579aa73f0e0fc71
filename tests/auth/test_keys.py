"""API keys and the credential modes: shown once, stored hashed, Bearer or `token` in hello,
a wrong key is 4004, and the embedded default stays without login."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.auth.helpers import add_key, add_user, bearer, cli
from tests.support.inproc import connected, make_config, running_app


def test_open_mode_is_local_admin_without_credentials(tmp_path):
    with running_app(make_config(tmp_path)) as client, connected(client, hello={}) as socket:
        assert socket.welcome["user"] == {"id": "local", "name": "local", "role": "admin"}


def test_bearer_header_and_hello_token_both_authenticate(tmp_path):
    config = make_config(tmp_path)
    user = add_user(config, "robot", role="bot")
    key = add_key(config, "robot")
    with running_app(config) as client:
        with connected(client, hello={}, headers=bearer(key)) as socket:
            assert socket.welcome["user"] == {"id": user.id, "name": "robot", "role": "bot"}
        with connected(client, hello={"token": key}) as socket:
            assert socket.welcome["user"]["id"] == user.id


@pytest.mark.parametrize("hello, headers", [
    ({}, {}),  # no credentials once a user exists
    ({"token": "cw_not-a-real-key-at-all-0000000000000000000"}, {}),
    ({}, {"Authorization": "Bearer cw_wrongwrongwrongwrongwrongwrongwrongwrongwro"}),
    ({}, {"Authorization": "Bearer something-else"}),
])
def test_missing_or_wrong_credentials_close_4004(tmp_path, hello, headers):
    config = make_config(tmp_path)
    add_user(config, "robot", role="bot")
    add_key(config, "robot")
    with running_app(config) as client, client.websocket_connect("/ws", headers=headers) as ws:
        ws.send_json({"type": "hello", **hello})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4004


def test_a_key_whose_prefix_matches_but_rest_differs_is_refused(tmp_path):
    config = make_config(tmp_path)
    add_user(config, "robot", role="bot")
    key = add_key(config, "robot")
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with running_app(config) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "hello", "token": forged})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4004


def test_auth_required_setting_without_any_user_refuses_anonymous(tmp_path):
    config = make_config(tmp_path, "auth.required=true")
    with running_app(config) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "hello"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4004


def test_http_routes_answer_401_without_credentials(tmp_path):
    config = make_config(tmp_path)
    add_user(config, "robot", role="bot")
    key = add_key(config, "robot")
    with running_app(config) as client:
        response = client.get("/api/conversations/c_whatever/export")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        # With the key: authenticated, and someone else's (or no) conversation is not_found.
        assert client.get("/api/conversations/c_whatever/export", headers=bearer(key)).status_code == 404


def test_cli_shows_the_key_once_stores_only_its_hash_and_never_lists_it(tmp_path):
    assert cli(tmp_path, "users", "add", "robot", "--role", "bot").returncode == 0
    created = cli(tmp_path, "keys", "create", "--user", "robot", "--name", "ci bot")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("cw_") and len(key) > 40 and "\n" not in key
    assert "only time" in created.stderr

    listed = cli(tmp_path, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert key not in listed.stdout and key not in listed.stderr
    assert key[:12] in listed.stdout and "ci bot" in listed.stdout and "never" in listed.stdout
    assert key[12:] not in listed.stdout  # not even the secret part

    for path in tmp_path.iterdir():  # the database, its WAL, the secret file: no key anywhere
        if path.is_file():
            data = path.read_bytes()
            assert key.encode() not in data and key[12:].encode() not in data, path

    users = cli(tmp_path, "users", "list")
    assert "robot" in users.stdout and "bot" in users.stdout


def test_cli_revoke_by_prefix_and_unknown_key(tmp_path):
    cli(tmp_path, "users", "add", "robot", "--role", "bot")
    key = cli(tmp_path, "keys", "create", "--user", "robot").stdout.strip()
    revoked = cli(tmp_path, "keys", "revoke", key[:12])
    assert revoked.returncode == 0, revoked.stderr
    listed = cli(tmp_path, "keys", "list", "--user", "robot").stdout
    assert "never" in listed and listed.strip().splitlines()[-1].split()[-1] != "-"  # revoked time
    missing = cli(tmp_path, "keys", "revoke", "cw_nope")
    assert missing.returncode == 1 and "no API key" in missing.stderr
    no_user = cli(tmp_path, "keys", "create", "--user", "nobody")
    assert no_user.returncode == 1 and "no user named" in no_user.stderr and not no_user.stdout


def test_cli_user_with_password_from_stdin_and_duplicate_names(tmp_path):
    added = cli(tmp_path, "users", "add", "ann", "--password-stdin", stdin="correct horse\n")
    assert added.returncode == 0, added.stderr
    again = cli(tmp_path, "users", "add", "ann")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert cli(tmp_path, "users", "add", "local").returncode == 1  # the built-in name
    database = (tmp_path / "chinwag.db").read_bytes()
    assert b"correct horse" not in database


def test_a_keys_use_is_recorded_once_a_minute_off_the_requests_path(tmp_path):
    """`last_used_at` is written in the background, at most once a minute per key: each
    request authenticated with a key (every OpenAI-API call) does not wait for a write."""
    import time

    from server.cli.offline import run_with_store

    config = make_config(tmp_path)
    add_user(config, "robot", role="bot")
    key = add_key(config, "robot")

    def last_used() -> str | None:
        (record,) = run_with_store(config, lambda store: store.list_api_keys("robot"))
        return record.last_used_at

    assert last_used() is None
    with running_app(config) as client:
        with connected(client, hello={"token": key}):
            pass
        deadline = time.monotonic() + 5
        while (first := last_used()) is None:
            assert time.monotonic() < deadline, "the key's use was never recorded"
            time.sleep(0.02)
        time.sleep(0.01)
        with connected(client, hello={"token": key}):
            pass
        time.sleep(0.2)
        assert last_used() == first  # within the minute: not written again
