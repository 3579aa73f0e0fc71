"""Hot reload end to end: a real server in its own process, a client that stays connected,
and files edited on disk between turns.

What a turn shows of the template and config it ran with: `turn.started.model` (the
template's `model` hint, or `routing.default`) and `turn.completed.usage.input_tokens`
(the echo model counts the words of the rendered system prompt plus the messages).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from server.config.settings import SHIPPED_PROMPTS
from tests.support.live import LiveServer
from tests.support.wsclient import WsClient

pytestmark = pytest.mark.timeout(90)

CONFIG = """\
[models.alpha]
provider = "echo"
model_id = "echo"

[models.beta]
provider = "echo"
model_id = "echo"

[models.gamma]
provider = "echo"
model_id = "echo"

[routing]
default = "{default}"

[reload]
debounce_ms = 50
{extra}"""


def probe(hint: str, words: int) -> str:
    body = " ".join(f"w{i}" for i in range(words))
    return f'+++\ndescription = "probe"\nmodel = "{hint}"\n+++\n{body}\n'


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    shutil.copy(SHIPPED_PROMPTS / "system.md.j2", prompts)
    (prompts / "probe.md.j2").write_text(probe("beta", 3))
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "chinwag.toml").write_text(CONFIG.format(default="alpha", extra=""))
    return prompts, etc / "chinwag.toml"


def events_named(server: LiveServer, event: str) -> list[dict[str, Any]]:
    found = []
    for line in list(server.log):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


async def wait_for(server: LiveServer, event: str, count: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = events_named(server, event)
        if len(found) >= count:
            return found[count - 1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {event} #{count} in the log:\n" + "".join(server.log[-30:]))


async def turn(client: WsClient, text: str, **fields: Any) -> tuple[str, int, dict[str, Any]]:
    ack, events = await client.chat(text, **fields)
    started = next(e for e in events if e["type"] == "turn.started")
    completed = events[-1]
    assert completed["status"] == "complete", completed
    return started["model"], completed["usage"]["input_tokens"], ack


async def test_template_edits_change_the_next_turn_and_broken_ones_are_refused(setup):
    prompts, config_file = setup
    with LiveServer(prompts.parent, f'prompts.dir="{prompts}"', config_file=config_file) as server:
        await wait_for(server, "reload_watching", 1)
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            model, tokens, ack = await turn(client, "hello there", template="probe")
            assert (model, tokens) == ("beta", 3 + 2)
            conversation = {"conversation_id": ack["conversation_id"], "template": "probe"}

            (prompts / "probe.md.j2").write_text(probe("gamma", 7))
            await wait_for(server, "prompts_reloaded", 1)
            model, tokens, _ = await turn(client, "again", **conversation)
            assert model == "gamma"
            assert tokens == 7 + 5  # history: "hello there" twice (asked, echoed), "again"

            (prompts / "probe.md.j2").write_text('+++\nmodel = "alpha"\n+++\nbroken {% if %}\n')
            failed = await wait_for(server, "prompts_reload_failed", 1)
            assert "probe.md.j2:4" in failed["location"], failed
            model, tokens, _ = await turn(client, "still", **conversation)
            assert model == "gamma"  # the previous version stays live
            assert tokens == 7 + 7  # ... "again" echoed, "still"

            # The same socket served every turn: nothing was dropped.
            assert client.connection.close_code is None


async def test_config_edits_change_the_next_turn_and_broken_ones_are_refused(setup):
    prompts, config_file = setup
    with LiveServer(prompts.parent, f'prompts.dir="{prompts}"', config_file=config_file) as server:
        await wait_for(server, "reload_watching", 1)
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            model, _, ack = await turn(client, "hello")
            assert model == "alpha"
            conversation = {"conversation_id": ack["conversation_id"]}

            config_file.write_text(CONFIG.format(default="beta", extra=""))
            await wait_for(server, "config_reloaded", 1)
            model, _, _ = await turn(client, "again", **conversation)
            assert model == "beta"

            broken = CONFIG.format(default="gamma", extra="\n[session]\nttl_seconds = 5\n")
            config_file.write_text(broken)
            failed = await wait_for(server, "config_reload_failed", 1)
            line = broken.splitlines().index("ttl_seconds = 5") + 1
            assert failed["key"] == "session.ttl_seconds"
            assert failed["location"] == f"{config_file}:{line}"
            model, _, _ = await turn(client, "still", **conversation)
            assert model == "beta"  # the previous config stays live

            restart = CONFIG.format(default="gamma", extra="\n[store]\nbusy_timeout_ms = 1234\n")
            config_file.write_text(restart)
            held = await wait_for(server, "config_restart_required", 1)
            assert held["keys"] == ["store.busy_timeout_ms"]
            model, _, _ = await turn(client, "last", **conversation)
            assert model == "gamma"  # the rest of the change did apply
            assert client.connection.close_code is None


async def test_template_syntax_in_user_text_reaches_the_model_literally(tmp_path):
    payloads = "{{7*7}} {{ ''.__class__.__mro__ }} {{ cycler.__init__.__globals__ }} {% for x in range(10**9) %}x{% endfor %}"
    with LiveServer(tmp_path) as server:
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            _, events = await client.chat(payloads, variables={"tone": "{{7*7}}"})
            text = "".join(e["text"] for e in events if e["type"] == "delta")
            assert text == payloads
            assert events[-1]["status"] == "complete"
