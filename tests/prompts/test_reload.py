"""Hot reload in-process: `Reloader` applied to a runtime, logs read with capture_logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import watchfiles
from structlog.testing import capture_logs

from server.app import create_app
from server.config.reload import Reloader
from server.config.settings import SHIPPED_PROMPTS, load_config
from server.runtime import Runtime


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    prompts = tmp_path / "prompts"
    shutil.copytree(SHIPPED_PROMPTS, prompts)
    config = tmp_path / "chinwag.toml"
    config.write_text(f"[prompts]\ndir = '{prompts}'\n\n[session]\nttl_s = 60\n")
    return prompts, config


def reloader_for(runtime: Runtime) -> Reloader:
    return Reloader.from_origin(runtime.live, runtime.prompts, runtime.apply_config)


def runtime_for(tmp_path: Path, config_file: Path) -> Runtime:
    config = load_config(config_file, environ={}, overrides=[f"store.path='{tmp_path / 'db'}'"])
    return create_app(config).state.runtime


def events(logs: list[dict], name: str) -> list[dict]:
    return [entry for entry in logs if entry["event"] == name]


def test_reloader_rebuilds_config_from_the_same_file_and_sets(tmp_path, files):
    runtime = runtime_for(tmp_path, files[1])
    reloader = reloader_for(runtime)
    assert reloader.config_path == files[1].resolve()
    assert reloader.overrides == (f"store.path='{tmp_path / 'db'}'",)


def test_a_valid_config_change_reaches_every_holder(tmp_path, files):
    prompts, config_file = files
    runtime = runtime_for(tmp_path, config_file)
    config_file.write_text(
        f"[prompts]\ndir = '{prompts}'\ndefault_template = 'concise'\n\n[session]\nttl_s = 5\n"
        "[routing]\nmax_retries = 0\n[models.local]\nprovider = 'openai'\nbase_url = 'http://127.0.0.1:1/v1'\n"
    )
    with capture_logs() as logs:
        assert reloader_for(runtime).reload_config()
    for holder in (runtime, runtime.selector, runtime.turns):
        assert holder.config is runtime.config
    assert runtime.config.prompts.default_template == "concise"
    assert runtime.sessions.ttl_s == 5
    assert "openai" in runtime.selector.providers  # a new kind of model gets its provider
    changed = events(logs, "config_reloaded")[0]["changed"]
    assert "session.ttl_s" in changed and "models.local.provider" in changed


def test_an_invalid_config_is_refused_and_logged_with_its_line(tmp_path, files):
    _, config_file = files
    runtime = runtime_for(tmp_path, config_file)
    before = runtime.config
    config_file.write_text("[session]\nttl_s = 5\n\n[turns]\ndeadline_s = 'soon'\n")
    with capture_logs() as logs:
        assert not reloader_for(runtime).reload_config()
    assert runtime.config is before
    [failed] = events(logs, "config_reload_failed")
    assert failed["key"] == "turns.deadline_s"
    assert failed["location"] == f"{config_file}:5"
    assert failed["log_level"] == "error"


def test_a_config_naming_a_missing_default_template_is_refused(tmp_path, files):
    prompts, config_file = files
    runtime = runtime_for(tmp_path, config_file)
    config_file.write_text(f"[prompts]\ndir = '{prompts}'\ndefault_template = 'nope'\n")
    with capture_logs() as logs:
        assert not reloader_for(runtime).reload_config()
    assert events(logs, "config_reload_failed")[0]["key"] == "prompts.default_template"
    assert runtime.config.prompts.default_template == "system"


def test_restart_settings_are_named_and_kept(tmp_path, files):
    prompts, config_file = files
    runtime = runtime_for(tmp_path, config_file)
    config_file.write_text(
        f"[prompts]\ndir = '{tmp_path}'\n[server]\nport = 9999\nname = 'renamed'\n[session]\nttl_s = 60\n"
    )
    with capture_logs() as logs:
        assert reloader_for(runtime).reload_config()
    [held] = events(logs, "config_restart_required")
    assert held["keys"] == ["prompts.dir", "server.port"]
    assert runtime.config.server.port == 8000 and runtime.config.prompts.dir == str(prompts)
    assert runtime.config.server.name == "renamed"


def test_template_reload_swaps_the_set_or_keeps_it(tmp_path, files):
    prompts, config_file = files
    runtime = runtime_for(tmp_path, config_file)
    reloader = reloader_for(runtime)
    (prompts / "extra.md.j2").write_text("extra")
    with capture_logs() as logs:
        assert reloader.reload_prompts()
        assert "extra" in runtime.prompts.names()
        (prompts / "extra.md.j2").write_text("line 1\n{{ nope }}\n")
        assert not reloader.reload_prompts()
    assert "extra" in runtime.prompts.names()
    assert runtime.prompts.render("extra", {}) == "extra"
    [failed] = events(logs, "prompts_reload_failed")
    assert failed["location"] == str(prompts.resolve() / "extra.md.j2:2")


def test_removing_the_default_template_is_refused(tmp_path, files):
    prompts, config_file = files
    runtime = runtime_for(tmp_path, config_file)
    (prompts / "system.md.j2").unlink()
    with capture_logs() as logs:
        assert not reloader_for(runtime).reload_prompts()
    assert "system" in runtime.prompts.names()
    assert events(logs, "prompts_reload_failed")


def test_only_templates_and_the_config_file_count(tmp_path, files):
    prompts, config_file = files
    reloader = reloader_for(runtime_for(tmp_path, config_file))
    added = watchfiles.Change.added
    assert reloader.classify([(added, str(prompts / "a.md.j2"))]) == (True, False)
    assert reloader.classify([(added, str(config_file))]) == (False, True)
    assert reloader.classify([(added, str(tmp_path / "db-wal")), (added, str(prompts / "x.txt"))]) == (False, False)
    assert not reloader.relevant(added, str(tmp_path / "db-wal"))


async def test_the_watcher_starts_and_stops_cleanly(tmp_path, files):
    reloader = reloader_for(runtime_for(tmp_path, files[1]))
    reloader.start()
    await reloader.stop()
    assert reloader._task is None
