"""Loading config: precedence, sources, and errors that name the key and the file line."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config.changes import keep_restart_settings
from server.config.errors import toml_key_lines
from server.config.settings import Config, ConfigOrigin, config_origin, load_config, resolve_config
from server.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chinwag.toml"
    path.write_text(text)
    return path


def error(path: Path | None, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        resolve_config(path, environ=kwargs.pop("environ", {}), **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_defaults_with_no_file_and_no_environment():
    resolved = resolve_config(None, environ={})
    assert resolved.config == Config()
    assert resolved.sources == {}
    assert resolved.source_of("server.port") == "default"


def test_precedence_is_file_then_environment_then_set(tmp_path):
    path = write(tmp_path, "[server]\nport = 1\nname = 'file'\n\n[session]\nttl_s = 5\n")
    resolved = resolve_config(
        path,
        environ={"CHINWAG_SERVER__PORT": "2", "CHINWAG_SESSION__TTL_S": "6", "HOME": "/x"},
        overrides=["session.ttl_s=7"],
    )
    config = resolved.config
    assert (config.server.name, config.server.port, config.session.ttl_s) == ("file", 2, 7.0)
    assert resolved.sources == {
        "server.port": "environment variable CHINWAG_SERVER__PORT",
        "server.name": f"{path}:3",
        "session.ttl_s": "--set",
    }


def test_values_are_read_as_toml_scalars_else_as_text():
    config = load_config(environ={
        "CHINWAG_SERVER__HOST": "0.0.0.0",
        "CHINWAG_SERVER__ALLOWED_ORIGINS": '["https://a.example"]',
        "CHINWAG_RELOAD__ENABLED": "false",
    })
    assert config.server.host == "0.0.0.0"
    assert config.server.allowed_origins == ["https://a.example"]
    assert config.reload.enabled is False


def test_unknown_key_names_full_key_and_line(tmp_path):
    path = write(tmp_path, "# comment\n[server]\nhost = '127.0.0.1'\nprot = 8000\n")
    exc = error(path)
    assert exc.key == "server.prot"
    assert exc.source == f"{path}:4"
    assert "unknown setting" in str(exc)


def test_unknown_section_names_its_line(tmp_path):
    path = write(tmp_path, "[server]\nport = 1\n\n[sever]\nport = 2\n")
    exc = error(path)
    assert (exc.key, exc.source) == ("sever", f"{path}:4")


def test_wrong_type_names_full_key_and_line(tmp_path):
    path = write(tmp_path, "[server]\nname = 'x'\n\n[store]\nbusy_timeout_ms = 'soon'\n")
    exc = error(path)
    assert (exc.key, exc.source) == ("store.busy_timeout_ms", f"{path}:5")
    assert "Expected `int`" in str(exc)


def test_wrong_choice_names_key_and_line(tmp_path):
    path = write(tmp_path, "[store]\nsynchronous = 'SOMETIMES'\n")
    assert (error(path).key, error(path).source) == ("store.synchronous", f"{path}:2")


def test_model_errors_name_the_model(tmp_path):
    path = write(tmp_path, (
        "[models.claude]\nprovider = 'anthropic'\n\n"
        "[models.local]\nprovider = 'openai'\ncontext_window = 'big'\n"
    ))
    exc = error(path)
    assert (exc.key, exc.source) == ("models.local.context_window", f"{path}:6")


def test_missing_required_model_field_points_at_its_table(tmp_path):
    path = write(tmp_path, "[routing]\ndefault = 'echo'\n\n[models]\nmine = { model_id = 'x' }\n")
    exc = error(path)
    assert (exc.key, exc.source) == ("models.mine.provider", f"{path}:5")
    assert "missing" in str(exc)


def test_dotted_keys_and_inline_tables_find_their_lines(tmp_path):
    path = write(tmp_path, "server.name = 'a'\nsession = { ttl_s = 'long' }\n")
    exc = error(path)
    assert (exc.key, exc.source) == ("session.ttl_s", f"{path}:2")


def test_dict_of_choices_names_the_entry(tmp_path):
    path = write(tmp_path, "[tools.policy]\nsearch = 'allow'\nexport = 'maybe'\n")
    exc = error(path)
    assert (exc.key, exc.source) == ("tools.policy.export", f"{path}:3")


def test_bad_reference_names_key_and_line(tmp_path):
    path = write(tmp_path, "[routing]\nfallback = []\ndefault = 'nobody'\n")
    exc = error(path)
    assert (exc.key, exc.source) == ("routing.default", f"{path}:3")


def test_invalid_toml_names_the_line(tmp_path):
    path = write(tmp_path, "[server]\nport = 1\n[store\n")
    exc = error(path)
    assert exc.source == f"{path}:3"
    assert "not valid TOML" in str(exc)


def test_missing_file_is_an_error(tmp_path):
    assert "not found" in str(error(tmp_path / "nope.toml"))


def test_environment_error_names_the_variable():
    exc = error(None, environ={"CHINWAG_SERVER__PORT": "eighty"})
    assert (exc.key, exc.source) == ("server.port", "environment variable CHINWAG_SERVER__PORT")


def test_set_errors_name_set():
    assert error(None, overrides=["limits.nonsense=1"]).source == "--set"
    assert error(None, overrides=["limits.max_text_chars"]).source == "--set"
    exc = error(None, overrides=["server.port=1", "server.port.deep=2"])
    assert exc.key == "server.port"


def test_set_replacing_a_table_forgets_the_table_sources(tmp_path):
    path = write(tmp_path, "[echo]\ndelay_ms = 5\n")
    resolved = resolve_config(path, environ={}, overrides=["echo={delay_ms=1}"])
    assert resolved.config.echo.delay_ms == 1
    assert resolved.sources == {"echo.delay_ms": "--set"}


def test_origin_is_remembered_for_reload(tmp_path):
    path = write(tmp_path, "")
    config = load_config(path, environ={}, overrides=["server.port=0"])
    assert config_origin(config) == ConfigOrigin(str(path), ("server.port=0",))
    assert config_origin(Config()) is None


def test_toml_key_lines():
    text = "a = 1\n[b]\nc.d = 2\n'e f' = 3\n[[g]]\nh = [\n  1,\n]\n"
    assert toml_key_lines(text) == {"a": 1, "b": 2, "b.c.d": 3, "b.e f": 4, "g": 5, "g.h": 6}


def test_restart_settings_keep_their_old_values():
    old = load_config(environ={})
    new = load_config(environ={}, overrides=[
        "server.port=9", "store.path='x.db'", "session.ttl_s=5", "routing.max_retries=0",
    ])
    merged, held = keep_restart_settings(old, new)
    assert held == ["server.port", "store.path"]
    assert (merged.server.port, merged.store.path) == (old.server.port, old.store.path)
    assert (merged.session.ttl_s, merged.routing.max_retries) == (5, 0)


def test_unchanged_config_holds_nothing():
    config = load_config(environ={})
    assert keep_restart_settings(config, load_config(environ={})) == (config, [])
