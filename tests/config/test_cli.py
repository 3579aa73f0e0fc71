"""`chinwag config show | validate | schema`, run through `server.cli.main.main`."""

from __future__ import annotations

import json

import msgspec
import pytest

from server.cli.main import main
from server.config.settings import Config
from server.config.view import MASK, masked, secret_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No CHINWAG_* variables from the test runner, and no ./chinwag.toml picked up."""
    import os

    for name in [n for n in os.environ if n.startswith("CHINWAG_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_ok(capsys, tmp_path):
    path = tmp_path / "good.toml"
    path.write_text("[server]\nport = 9000\n")
    assert run(capsys, "config", "validate", str(path)) == (0, "ok\n", "")


def test_validate_names_key_and_line(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = 9000\n\n[session]\nttl_s = 'long'\n")
    code, out, err = run(capsys, "config", "validate", str(path))
    assert code == 2 and out == ""
    assert "session.ttl_s" in err and f"{path}:5" in err


def test_validate_ignores_the_environment(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CHINWAG_SERVER__PORT", "not a port")
    path = tmp_path / "good.toml"
    path.write_text("")
    assert run(capsys, "config", "validate", str(path))[0] == 0


def test_validate_checks_the_prompts_folder(capsys, tmp_path):
    (tmp_path / "prompts").mkdir()
    path = tmp_path / "c.toml"
    path.write_text(f"[prompts]\ndir = '{tmp_path / 'prompts'}'\n")
    code, _, err = run(capsys, "config", "validate", str(path))
    assert code == 2 and "system.md.j2" in err


def test_schema_is_the_json_schema_of_config(capsys):
    code, out, _ = run(capsys, "config", "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema == json.loads(msgspec.json.encode(msgspec.json.schema(Config)))
    config = schema["$defs"]["Config"]
    assert {"server", "models", "routing", "prompts", "reload"} <= set(config["properties"])
    assert config["additionalProperties"] is False


def test_show_json_gives_every_value_and_its_source(capsys, tmp_path, monkeypatch):
    path = tmp_path / "chinwag.toml"
    path.write_text("[server]\nname = 'mine'\n")
    monkeypatch.setenv("CHINWAG_SESSION__TTL_S", "300")
    code, out, _ = run(capsys, "config", "show", "--json", "--set", "turns.deadline_s=60")
    assert code == 0
    shown = json.loads(out)
    assert shown["server.name"] == {"value": "mine", "source": "chinwag.toml:2"}
    assert shown["session.ttl_s"] == {"value": 300.0, "source": "environment variable CHINWAG_SESSION__TTL_S"}
    assert shown["turns.deadline_s"] == {"value": 60.0, "source": "--set"}
    assert shown["server.port"] == {"value": 8000, "source": "default"}
    assert shown["reload.debounce_ms"]["source"] == "default"


def test_show_toml_groups_by_table(capsys, tmp_path):
    code, out, _ = run(capsys, "config", "show", "--set", "models.fast={provider='echo'}")
    assert code == 0
    assert "[server]\n" in out and "port = 8000  # default\n" in out
    assert "[models.fast]\n" in out and 'provider = "echo"  # --set\n' in out
    assert "# public_url is not set  # default" in out


def test_show_never_prints_a_secret(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    path = tmp_path / "chinwag.toml"
    path.write_text("[models.claude]\nprovider = 'anthropic'\napi_key_env = 'ANTHROPIC_API_KEY'\n")
    for form in ([], ["--json"]):
        code, out, _ = run(capsys, "config", "show", "--config", str(path), *form)
        assert code == 0
        assert "sk-ant-very-secret" not in out
        assert "ANTHROPIC_API_KEY" in out and "is set" in out


def test_the_declared_secrets():
    assert secret_settings() == {
        ("bus", "url"), ("limits", "storage_uri"), ("models", "*", "base_url"), ("store", "url"),
    }


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("limits.storage_uri", "redis://:hunter2@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("limits.storage_uri", "redis://ann:hunter2@cache", f"redis://ann:{MASK}@cache"),
        ("limits.storage_uri", "memory://", "memory://"),
        ("store.url", "postgresql://ann:hunter2@db:5432/chinwag", f"postgresql://ann:{MASK}@db:5432/chinwag"),
        ("bus.url", "redis://:hunter2@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("models.m.base_url", "http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
        ("models.m.base_url", "hunter2", MASK),
        ("models.odd.name.base_url", "http://u:hunter2@h/v1", f"http://u:{MASK}@h/v1"),
    ],
)
def test_declared_secrets_are_masked(key, value, shown):
    assert masked(key, value) == shown


@pytest.mark.parametrize(
    "key", ["models.m.api_key_env", "auth.secret_env", "quotas.tokens_per_day", "models.m.max_output_tokens"]
)
def test_a_name_says_nothing(key):
    assert masked(key, "value") == "value"


def test_show_reports_a_bad_config(capsys, tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("[server]\nprot = 1\n")
    code, _, err = run(capsys, "config", "show", "--config", str(path))
    assert code == 2 and "server.prot" in err and f"{path}:2" in err
