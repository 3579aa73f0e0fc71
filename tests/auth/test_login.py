"""Browser login: the cookie (signed, HttpOnly, SameSite, Secure behind https), tampering,
logout closing the login's sockets with 4004, the audit trail, and the page's headers."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from server.http.security import CONTENT_SECURITY_POLICY
from tests.auth.helpers import add_user, audit_entries
from tests.support.inproc import connected, make_config, running_app

ORIGIN = {"Origin": "http://127.0.0.1:8000"}


def _login(client, name="ann", password="correct horse"):
    return client.post("/auth/login", json={"username": name, "password": password}, headers=ORIGIN)


def _set_cookie(response) -> str:
    return response.headers["set-cookie"]


def test_login_sets_a_signed_httponly_samesite_cookie(tmp_path):
    config = make_config(tmp_path)
    user = add_user(config, "ann", password="correct horse")
    with running_app(config) as client:
        response = _login(client)
        assert response.status_code == 200, response.text
        assert response.json()["user"] == {"id": user.id, "name": "ann", "role": "user"}
        cookie = _set_cookie(response)
        assert cookie.startswith("chinwag_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        with connected(client, hello={}) as socket:  # the TestClient sends the cookie back
            assert socket.welcome["user"]["id"] == user.id
    assert [e.actor_id for e in audit_entries(config, "login")] == [user.id]


def test_cookie_is_secure_when_the_public_url_is_https(tmp_path):
    config = make_config(tmp_path, 'server.public_url="https://chat.example.com"')
    add_user(config, "ann", password="correct horse")
    with running_app(config) as client:
        response = client.post(
            "/auth/login", json={"username": "ann", "password": "correct horse"},
            headers={"Origin": "https://chat.example.com"},
        )
        assert response.status_code == 200
        assert "Secure" in _set_cookie(response)


@pytest.mark.parametrize("name, password", [("ann", "wrong"), ("nobody", "correct horse"), ("local", "x")])
def test_wrong_name_or_password_is_401_and_audited(tmp_path, name, password):
    config = make_config(tmp_path)
    add_user(config, "ann", password="correct horse")
    add_user(config, "nopass")  # a user without a password cannot log in either
    with running_app(config) as client:
        response = _login(client, name, password)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert "set-cookie" not in response.headers
        assert _login(client, "nopass", "").status_code == 401
    failed = audit_entries(config, "login_failed")
    assert failed and failed[-1].target == name


def test_tampered_cookie_is_401_and_4004(tmp_path):
    config = make_config(tmp_path)
    add_user(config, "ann", password="correct horse")
    with running_app(config) as client:
        good = _login(client).cookies["chinwag_session"]
        login_id, _, mac = good.rpartition(".")
        tampered = [
            f"{login_id}.{mac[:-2]}{'AA' if not mac.endswith('AA') else 'BB'}",
            f"{login_id[:-1]}{'x' if not login_id.endswith('x') else 'y'}.{mac}",
            login_id,
            "",
        ]
        for value in tampered:
            client.cookies.clear()
            client.cookies.set("chinwag_session", value)
            assert client.get("/api/conversations/c_x/export").status_code == 401, value
            with client.websocket_connect("/ws") as ws:
                ws.send_json({"type": "hello"})
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                assert closed.value.code == 4004
        client.cookies.clear()
        client.cookies.set("chinwag_session", good)
        assert client.get("/api/conversations/c_x/export").status_code == 404  # authenticated


def test_logout_ends_the_login_and_closes_its_sockets_with_4004(tmp_path):
    config = make_config(tmp_path)
    user = add_user(config, "ann", password="correct horse")
    with running_app(config) as client:
        cookie = _login(client).cookies["chinwag_session"]
        with connected(client, hello={}) as socket:
            assert socket.welcome["user"]["id"] == user.id
            response = client.post("/auth/logout", headers=ORIGIN)
            assert response.status_code == 200
            assert "chinwag_session=" in _set_cookie(response) and "Max-Age=0" in _set_cookie(response)
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    socket.recv()
            assert closed.value.code == 4004
        # The old cookie, replayed, no longer works: the login ended on the server.
        client.cookies.set("chinwag_session", cookie)
        assert client.get("/api/conversations/c_x/export").status_code == 401
    assert [e.actor_id for e in audit_entries(config, "logout")] == [user.id]


def test_login_and_logout_from_a_foreign_origin_are_refused_before_anything(tmp_path):
    config = make_config(tmp_path)
    add_user(config, "ann", password="correct horse")
    with running_app(config) as client:
        for origin in ("https://evil.example", "null", "http://127.0.0.1:8001", "https://127.0.0.1:8000"):
            response = client.post(
                "/auth/login", json={"username": "ann", "password": "correct horse"}, headers={"Origin": origin}
            )
            assert response.status_code == 403, origin
            assert "set-cookie" not in response.headers
            assert client.post("/auth/logout", headers={"Origin": origin}).status_code == 403
    assert audit_entries(config, "login") == [] and audit_entries(config, "login_failed") == []


def test_html_routes_carry_the_security_headers(tmp_path):
    with running_app(make_config(tmp_path)) as client:
        for path in ("/", "/login", "/static/index.html", "/static/login.html"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
            assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["x-frame-options"] == "DENY"
        assert client.get("/healthz").headers["x-content-type-options"] == "nosniff"


def test_an_expired_login_closes_its_socket_with_4004(tmp_path):
    config = make_config(tmp_path, "auth.login_ttl_s=1", "auth.revocation_poll_s=0.1")
    add_user(config, "ann", password="correct horse")
    with running_app(config) as client:
        assert _login(client).status_code == 200
        with connected(client, hello={}) as socket:
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    socket.recv()
            assert closed.value.code == 4004
