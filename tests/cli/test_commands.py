"""The `chinwag` command as an operator meets it: real processes, one-line errors."""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.cli.commands import chinwag, clean_environment, command, one_line_error

ROOT = Path(__file__).resolve().parents[2]
A_KEY = "sk-ant-api03-Zx9vQ2mN7pL4kR8tY1wE5uI3oA6sD0fG"


# -- the modules of server/cli -------------------------------------------------------------


def test_only_the_entry_points_import_main() -> None:
    importers = []
    for path in (ROOT / "server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if "server.cli.main" in names:
                importers.append(path.relative_to(ROOT).as_posix())
    assert importers == ["server/__main__.py"]
    assert 'chinwag = "server.cli.main:main"' in (ROOT / "pyproject.toml").read_text()


def test_every_command_starts(tmp_path: Path) -> None:
    for verb in ("serve", "schema", "config", "export", "import", "users", "keys"):
        result = chinwag(tmp_path, verb, "--help")
        assert result.returncode == 0 and "usage: chinwag" in result.stdout, result.stderr


# -- 13: secrets masked by what they are ---------------------------------------------------


def test_show_masks_declared_secrets_and_not_names(tmp_path: Path) -> None:
    (tmp_path / "chinwag.toml").write_text(
        "[limits]\nstorage_uri = 'redis://:hunter2@cache:6379'\n"
        "[quotas]\ntokens_per_day = 123456\n"
        "[models.local]\nprovider = 'openai'\nbase_url = 'http://127.0.0.1:11434/v1'\n"
        "max_output_tokens = 2048\napi_key_env = 'OLLAMA_KEY'\n"
    )
    toml = chinwag(tmp_path, "config", "show")
    shown = json.loads(chinwag(tmp_path, "config", "show", "--json").stdout)
    assert toml.returncode == 0, toml.stderr
    assert "hunter2" not in toml.stdout + json.dumps(shown)
    assert 'storage_uri = "redis://:********@cache:6379"' in toml.stdout
    assert "tokens_per_day = 123456" in toml.stdout and "max_output_tokens = 2048" in toml.stdout
    assert shown["quotas.tokens_per_day"]["value"] == 123456
    assert shown["models.local.max_output_tokens"]["value"] == 2048
    assert shown["models.local.base_url"]["value"] == "http://127.0.0.1:11434/v1"
    assert shown["models.local.api_key_env"]["value"] == "OLLAMA_KEY"


@pytest.mark.parametrize("key", ["models.claude.api_key_env", "auth.secret_env"])
def test_a_key_where_its_variable_name_belongs_is_refused(tmp_path: Path, key: str) -> None:
    section, _, name = key.rpartition(".")
    extra = "provider = 'anthropic'\n" if section.startswith("models") else ""
    (tmp_path / "chinwag.toml").write_text(f"[{section}]\n{extra}{name} = '{A_KEY}'\n")
    for args in (["config", "show"], ["config", "validate", "chinwag.toml"], ["serve", "--port", "0"]):
        result = chinwag(tmp_path, *args)
        line = one_line_error(result)
        assert result.returncode == 2 and result.stdout == ""
        assert key in line and "name of the environment variable" in line and "chinwag.toml:" in line
        assert A_KEY not in line and A_KEY[:12] not in line


def test_a_variable_name_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "chinwag.toml").write_text(
        "[models.claude]\nprovider = 'anthropic'\napi_key_env = 'ANTHROPIC_API_KEY'\n"
        "[auth]\nsecret_env = 'CHINWAG_COOKIE_SECRET'\n"
    )
    assert chinwag(tmp_path, "config", "validate", "chinwag.toml").stdout == "ok\n"


# -- 14: what `config show` prints is a chinwag.toml ---------------------------------------


def test_show_output_loads_back_as_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "chinwag.toml").write_text(
        """
[server]
name = "chinwag \\u00e9\\u00e8 \\"quoted\\" \\\\ tab\\t"
allowed_origins = ["http://a.example", "http://b.example"]
[models."odd name.v2"]
provider = "openai"
base_url = "http://127.0.0.1:11434/v1"
api_key_env = "OLLAMA_KEY"
[models.claude]
provider = "anthropic"
[routing]
default = "claude"
fallback = ["odd name.v2", "echo"]
rules = [{model = "echo", roles = ["bot"], max_chars = 10}, {model = "claude", min_chars = 5}]
[tools]
policy = {search = "ask"}
role_policy = {bot = {search = "deny"}}
[quotas]
per_role = {bot = 1000}
[session]
ttl_s = 1e300
"""
    )
    first = chinwag(tmp_path, "config", "show")
    assert first.returncode == 0, first.stderr
    (tmp_path / "again.toml").write_text(first.stdout)
    assert chinwag(tmp_path, "config", "validate", "again.toml").stdout == "ok\n"

    def values(*args: str) -> dict[str, object]:
        result = chinwag(tmp_path, "config", "show", "--json", *args)
        assert result.returncode == 0, result.stderr
        return {key: entry["value"] for key, entry in json.loads(result.stdout).items()}

    assert values("--config", "again.toml") == values()


def test_show_of_the_defaults_loads_back(tmp_path: Path) -> None:
    shown = chinwag(tmp_path, "config", "show")
    (tmp_path / "defaults.toml").write_text(shown.stdout)
    result = chinwag(tmp_path, "config", "validate", "defaults.toml")
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


# -- 15: a port out of range ---------------------------------------------------------------


@pytest.mark.parametrize("port", ["-5", "65536"])
def test_a_port_out_of_range_is_refused(tmp_path: Path, port: str) -> None:
    (tmp_path / "bad.toml").write_text(f"[server]\nport = {port}\n")
    line = one_line_error(chinwag(tmp_path, "config", "validate", "bad.toml"))
    assert "server.port" in line and "bad.toml:2" in line
    served = chinwag(tmp_path, "serve", "--port", port)  # returns at once: nothing is bound
    assert served.returncode == 2 and "server.port" in one_line_error(served)
    assert "(--set)" in served.stderr


@pytest.mark.parametrize(("table", "setting", "value"), [
    ("session", "ttl_s", "-1.5"),
    ("limits", "max_text_chars", "-5"),
    ("turns", "deadline_s", "-300"),
    ("quotas.per_user", "ann", "-3"),
])
def test_a_negative_number_is_refused_naming_the_setting(
    tmp_path: Path, table: str, setting: str, value: str
) -> None:
    (tmp_path / "bad.toml").write_text(f"[{table}]\n{setting} = {value}\n")
    result = chinwag(tmp_path, "config", "validate", "bad.toml")
    line = one_line_error(result)
    assert result.returncode == 2
    assert f"{table}.{setting}: must be 0 or more" in line and "bad.toml:2" in line


# -- 16: --user takes a name ---------------------------------------------------------------


def _export_file(tmp_path: Path) -> Path:
    path = tmp_path / "conv.json"
    path.write_text(json.dumps({
        "kind": "chinwag.conversation", "version": 1,
        "conversation": {"title": "from elsewhere"},
        "messages": [{"role": "user", "status": "complete", "content": [{"type": "text", "text": "hi"}]}],
    }))
    return path


def test_import_and_export_take_the_users_name_or_id(tmp_path: Path) -> None:
    added = chinwag(tmp_path, "users", "add", "ann")
    assert added.returncode == 0, added.stderr
    ann_id = added.stderr.rsplit("id ", 1)[1].strip()
    for who in ("ann", ann_id):
        imported = chinwag(tmp_path, "import", str(_export_file(tmp_path)), "--user", who)
        assert imported.returncode == 0, imported.stderr
        conversation_id = imported.stdout.strip()
        for owner in ("ann", ann_id):
            exported = chinwag(tmp_path, "export", conversation_id, "--format", "json", "--user", owner)
            assert exported.returncode == 0, exported.stderr
            assert json.loads(exported.stdout)["conversation"]["title"] == "from elsewhere"
        assert "not_found" in one_line_error(chinwag(tmp_path, "export", conversation_id))  # not local's


def test_an_unknown_user_is_refused_and_nothing_is_imported(tmp_path: Path) -> None:
    assert chinwag(tmp_path, "users", "add", "ann").returncode == 0
    result = chinwag(tmp_path, "import", str(_export_file(tmp_path)), "--user", "nobody")
    assert result.returncode == 1 and result.stdout == ""
    assert "no user named 'nobody'" in one_line_error(result)
    with sqlite3.connect(tmp_path / "conversations" / "chinwag.db") as db:
        assert db.execute("SELECT count(*) FROM conversations").fetchone() == (0,)
    assert "no user named 'nobody'" in one_line_error(chinwag(tmp_path, "export", "c_x", "--user", "nobody"))


# -- 17: every error is one line -----------------------------------------------------------


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(chinwag(tmp_path, "import", "missing.json"))
    assert line == "chinwag: missing.json: No such file or directory"
    assert not (tmp_path / "conversations").exists()  # nothing was opened for it
    assert "Is a directory" in one_line_error(chinwag(tmp_path, "import", "."))


def test_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    imported = chinwag(tmp_path, "import", str(_export_file(tmp_path)))
    target = tmp_path / "no" / "such" / "dir.md"
    line = one_line_error(chinwag(tmp_path, "export", imported.stdout.strip(), "-o", str(target)))
    assert line == f"chinwag: {target}: No such file or directory"


def test_output_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """`chinwag schema | head`: the reader is gone before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*command(), "schema"], check=False, cwd=tmp_path, env=clean_environment(), stdout=write_end,
            stderr=subprocess.PIPE, text=True, timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141  # as a shell reports a program stopped by SIGPIPE
    assert result.stderr == ""


def test_a_bad_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "chinwag.toml").write_text("[server\nport = 1\n")
    for args in (["serve"], ["users", "list"], ["export", "c_x"], ["config", "show"]):
        result = chinwag(tmp_path, *args)
        assert result.returncode == 2 and "not valid TOML" in one_line_error(result)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["serve", "--port", "abc"], "chinwag serve: argument --port: invalid int value: 'abc'"),
        (["frob"], "chinwag: argument command: invalid choice: 'frob'"),
        (["config"], "chinwag config: the following arguments are required"),
    ],
)
def test_a_usage_error_is_one_line(tmp_path: Path, args: list[str], said: str) -> None:
    result = chinwag(tmp_path, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(said) and len(result.stderr.splitlines()) == 1


def test_serve_host_is_taken_as_it_is_written(tmp_path: Path) -> None:
    """A quote in `--host` stays a quote (refused, beyond loopback, before anything binds)."""
    result = chinwag(tmp_path, "serve", "--host", 'odd"name', "--port", "0")
    assert result.returncode == 2 and "server.host" in result.stderr
    assert 'odd"name' in result.stderr and '"odd"name"' not in result.stderr
