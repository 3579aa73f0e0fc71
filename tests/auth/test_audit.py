"""The audit log: account and key changes from the CLI, tool calls that change things,
config changes; each a row in `audit_log` and an `audit` log line."""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from server.auth.binding import check_binding, is_loopback
from server.config.settings import load_config
from server.errors import ConfigError
from tests.auth.helpers import add_user, audit_entries, cli
from tests.support.inproc import connected, make_config, running_app


def test_cli_account_changes_are_audited(tmp_path):
    assert cli(tmp_path, "users", "add", "robot", "--role", "bot").returncode == 0
    created = cli(tmp_path, "keys", "create", "--user", "robot", "--name", "ci")
    key = created.stdout.strip()
    revoked = cli(tmp_path, "keys", "revoke", key[:12])
    assert '"audit"' in revoked.stderr or "audit" in revoked.stderr
    config = make_config(tmp_path)
    actions = [e.action for e in reversed(audit_entries(config))]
    assert actions == ["user_created", "key_created", "key_revoked"]
    for entry in audit_entries(config):
        assert entry.address == "cli" and entry.at
        assert key not in str(entry.details) and key[12:] not in str(entry.details)
    assert audit_entries(config, "key_created")[0].details == {"user": "robot", "label": "ci", "prefix": key[:12]}


def test_a_tool_that_changes_things_is_audited_with_its_config_change(tmp_path):
    config = make_config(tmp_path)
    with running_app(config) as client, connected(client, hello={}) as socket, capture_logs() as logs:
        reply = socket.request({"type": "tool", "name": "config_set",
                                "args": {"changes": {"turns.checkpoint_s": "2.0"}}})
        assert reply["type"] == "tool.result" and reply["ok"] is True, reply
        harmless = socket.request({"type": "tool", "name": "search", "args": {"query": "x"}})
        assert harmless["ok"] is True
        deadline = time.monotonic() + 5
        while len(audit_entries(config)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    entries = {e.action: e for e in audit_entries(config)}
    assert set(entries) == {"tool_call", "config_changed"}  # search (policy allow) is not audited
    assert entries["tool_call"].target == "config_set" and entries["tool_call"].actor_id == "local"
    assert entries["tool_call"].details["ok"] is True and "checkpoint_s" in entries["tool_call"].details["args"]
    assert entries["config_changed"].details == {"keys": ["turns.checkpoint_s"]}
    assert any(line["event"] == "audit" and line["action"] == "tool_call" for line in logs)


def test_binding_rule_units(tmp_path):
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com", ""):
        assert not is_loopback(host), host

    def config(*extra: str):
        return load_config(environ={}, overrides=[f'store.path="{tmp_path / "chinwag.db"}"', *extra])

    check_binding(config())  # loopback: fine without auth
    try:
        check_binding(config('server.host="0.0.0.0"'))
    except ConfigError as exc:
        assert exc.key == "server.host" and "chinwag users add" in str(exc)
    else:
        raise AssertionError("0.0.0.0 without auth must be refused")
    check_binding(config('server.host="0.0.0.0"', "auth.required=true"))
    add_user(config(), "ann", password="pw")
    check_binding(config('server.host="0.0.0.0"'))  # a user exists: credentials are required
