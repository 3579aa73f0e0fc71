"""`chinwag export` and `chinwag import` as an operator runs them: separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.inproc import connected, make_config, running_app


def chinwag(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    store = f'store.path="{tmp_path / "chinwag.db"}"'
    return subprocess.run(
        [sys.executable, "-m", "server", *args, "--set", store],
        check=False, capture_output=True, text=True, timeout=60,
    )


def test_export_import_export_keeps_the_content(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path)) as client, connected(client, hello={}) as socket:
        ack, _ = socket.chat("first <script>x</script>")
        socket.chat("second, with \"quotes\"", conversation_id=ack["conversation_id"])
    exported = chinwag(tmp_path, "export", ack["conversation_id"], "--format", "json", "-o", str(tmp_path / "a.json"))
    assert exported.returncode == 0, exported.stderr
    imported = chinwag(tmp_path, "import", str(tmp_path / "a.json"))
    assert imported.returncode == 0, imported.stderr
    new_id = imported.stdout.strip()
    assert new_id.startswith("c_") and new_id != ack["conversation_id"]
    again = chinwag(tmp_path, "export", new_id, "--format", "json")

    def content(document: str) -> list[tuple[str, str, object]]:
        data = json.loads(document)
        return [(m["role"], m["status"], m["content"]) for m in data["messages"]]

    assert content((tmp_path / "a.json").read_text()) == content(again.stdout)
    assert json.loads(again.stdout)["conversation"]["title"] == "first <script>x</script>"


def test_export_of_an_unknown_conversation_says_so(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path)):
        pass  # creates the database
    result = chinwag(tmp_path, "export", "c_missing")
    assert result.returncode == 1 and "not_found" in result.stderr


def test_import_refuses_a_file_that_is_not_an_export(tmp_path: Path) -> None:
    with running_app(make_config(tmp_path)):
        pass
    (tmp_path / "x.json").write_text('{"hello": 1}')
    result = chinwag(tmp_path, "import", str(tmp_path / "x.json"))
    assert result.returncode == 1 and "not a chinwag conversation export" in result.stderr
