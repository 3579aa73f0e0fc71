"""Forwarded headers and failed logins, against a real server (uvicorn's own proxy-header
handling is part of what is tested).

By default no proxy is trusted: `X-Forwarded-For` from anywhere, loopback included, changes
nothing, so rotating it neither escapes the login limit nor writes a made-up address into
the audit log. With `server.trusted_proxies`, the address the proxy reports is the one used.
Failed logins are also counted per account, so that one address cannot guess on and on,
and yet cannot lock the owner out of the right password."""

from __future__ import annotations

import httpx
import pytest

from server.config.settings import load_config
from server.errors import ConfigError
from tests.auth.helpers import add_user, audit_entries
from tests.support.inproc import make_config
from tests.support.live import LiveServer

PASSWORD = "correct horse battery staple"


def login(server: LiveServer, name: str, password: str, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return httpx.post(
        f"{server.url}/auth/login", json={"username": name, "password": password}, headers=headers, timeout=10
    )


@pytest.fixture
def ann(tmp_path):
    add_user(make_config(tmp_path), "ann", password=PASSWORD)
    return tmp_path


def test_forwarded_for_is_ignored_by_default_even_from_loopback(ann):
    with LiveServer(ann, "limits.logins_per_minute=3") as server:
        codes = [login(server, "ann", "wrong", f"203.0.113.{i}").status_code for i in range(1, 5)]
    assert codes == [401, 401, 401, 429]  # rotating the header does not reset the limit
    failures = audit_entries(make_config(ann), "login_failed")
    assert len(failures) == 3 and {entry.address for entry in failures} == {"127.0.0.1"}


def test_a_trusted_proxys_forwarded_address_is_used(ann):
    with LiveServer(ann, 'server.trusted_proxies=["127.0.0.1"]', "limits.logins_per_minute=2") as server:
        # nginx appends the peer to what the client sent: the rightmost untrusted entry counts.
        chain = "198.51.100.99, 203.0.113.7"
        first = [login(server, "ann", "wrong", chain).status_code for _ in range(3)]
        other = login(server, "ann", "wrong", "203.0.113.8").status_code
        ok = login(server, "ann", PASSWORD, "203.0.113.9")
    assert first == [401, 401, 429] and other == 401 and ok.status_code == 200
    assert {e.address for e in audit_entries(make_config(ann), "login_failed")} == {"203.0.113.7", "203.0.113.8"}
    (success,) = audit_entries(make_config(ann), "login")
    assert success.address == "203.0.113.9"


FAILURE_LIMITS = (
    'server.trusted_proxies=["127.0.0.1"]',
    "limits.logins_per_minute=1000",  # out of the way: these tests are about failures
    "limits.login_failures_per_address=3",
    "limits.login_failures_per_account=6",
)


def test_a_flood_from_one_address_stops_that_address_but_not_the_owner(ann):
    with LiveServer(ann, *FAILURE_LIMITS) as server:
        flood = [login(server, "ann", f"guess {i}", "203.0.113.66") for i in range(20)]
        right_from_flooder = login(server, "ann", PASSWORD, "203.0.113.66")
        other_account = login(server, "bob", "guess", "203.0.113.66")
        owner_elsewhere = login(server, "ann", PASSWORD, "198.51.100.5")
    assert [r.status_code for r in flood] == [401] * 3 + [429] * 17
    assert flood[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(flood[-1].headers["Retry-After"]) <= 900
    assert right_from_flooder.status_code == 429  # no password is checked for that pair now
    assert other_account.status_code == 401  # the lock is per account, not for the address
    assert owner_elsewhere.status_code == 200  # one address alone cannot lock the account


def test_many_addresses_lock_the_account_only_for_addresses_it_never_logged_in_from(ann):
    with LiveServer(ann, *FAILURE_LIMITS) as server:
        assert login(server, "ann", PASSWORD, "198.51.100.5").status_code == 200  # her usual address
        for attacker in ("203.0.113.1", "203.0.113.2"):
            assert [login(server, "ann", "guess", attacker).status_code for _ in range(3)] == [401] * 3
        stranger = login(server, "ann", PASSWORD, "192.0.2.44")
        known_wrong = login(server, "ann", "typo", "198.51.100.5")
        known_right = login(server, "ann", PASSWORD, "198.51.100.5")
        # A name that does not exist is counted the same way: a 429 tells no name apart.
        for attacker in ("203.0.113.1", "203.0.113.2"):
            assert [login(server, "nobody", "guess", attacker).status_code for _ in range(3)] == [401] * 3
        nobody = login(server, "nobody", "guess", "192.0.2.44")
    assert stranger.status_code == 429
    assert known_wrong.status_code == 401 and known_right.status_code == 200
    assert nobody.status_code == 429
    reasons = [e.details.get("reason") for e in audit_entries(make_config(ann), "login_failed")]
    assert reasons.count("too many failures") == 2


def test_a_success_clears_that_addresss_failures(ann):
    with LiveServer(ann, *FAILURE_LIMITS) as server:
        typos = [login(server, "ann", "typo", "198.51.100.5").status_code for _ in range(2)]
        assert login(server, "ann", PASSWORD, "198.51.100.5").status_code == 200
        later = [login(server, "ann", "typo", "198.51.100.5").status_code for _ in range(4)]
    assert typos == [401, 401] and later == [401, 401, 401, 429]


@pytest.mark.parametrize("entry", ["nginx", "10.0.0.1/8", "*", ""])
def test_a_trusted_proxy_must_be_an_address_or_network(entry):
    with pytest.raises(ConfigError) as refused:
        load_config(environ={}, overrides=[f'server.trusted_proxies=["10.0.0.0/8", "{entry}"]'])
    assert refused.value.key == "server.trusted_proxies" and repr(entry) in str(refused.value)
