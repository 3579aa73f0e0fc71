"""Interrupted turns at start-up (one process): continued, or given up past the bound."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from server.auth.identity import LOCAL_USER
from server.config.settings import Config
from server.models.base import ChatMessage
from server.store.base import NewUserMessage
from server.store.sqlite.store import SqliteStore
from server.turns.state import TurnRequest
from tests.support.inproc import connected, make_config, running_app
from tests.support.scripted import ScriptedProvider, answer


def _interrupted_turn(
    config: Config, *, claims: int, run_request: dict[str, Any] | None = None
) -> tuple[str, str]:
    """A turn left running by a crash (its run committed with its message, its answer
    streaming with a checkpoint), already taken up `claims` times; its conversation and
    answer ids."""

    async def leave() -> tuple[str, str]:
        store = SqliteStore(config.store.path, config.store)
        await store.open()
        try:
            await store.ensure_user(LOCAL_USER)
            accepted = await store.accept_user_message(NewUserMessage(
                user_id=LOCAL_USER.id, client_msg_id="c1", text="one two three four",
                run_request=run_request,
            ))
            await store.checkpoint_message(accepted.answer_id, [{"type": "text", "text": "one two "}])
            for _ in range(claims):
                assert await store.claim_run(accepted.turn_id) is not None
            return accepted.conversation_id, accepted.answer_id
        finally:
            await store.close()

    return asyncio.run(leave())


def _answer(config: Config, conversation_id: str, **app: Any) -> dict:
    with running_app(config, **app) as client, connected(client, hello={}) as socket:
        for _ in range(200):
            reply = socket.request({"type": "history", "conversation_id": conversation_id})
            answer = reply["messages"][-1]
            if answer["status"] != "streaming":
                return answer
            asyncio.run(asyncio.sleep(0.02))
    raise AssertionError("still streaming")


def test_an_interrupted_turn_continues_from_its_checkpoint(tmp_path: Path) -> None:
    config = make_config(tmp_path, 'turns.on_interrupt="continue"')
    conversation_id, _ = _interrupted_turn(config, claims=0)
    answer = _answer(config, conversation_id)
    assert answer["status"] == "complete" and answer["text"] == "one two three four"


def test_a_turn_interrupted_too_often_fails_with_its_text_kept(tmp_path: Path) -> None:
    config = make_config(tmp_path, 'turns.on_interrupt="continue"', "turns.max_interruptions=2")
    conversation_id, _ = _interrupted_turn(config, claims=2)  # the start-up's claim is the third
    answer = _answer(config, conversation_id)
    assert answer["status"] == "failed" and answer["text"] == "one two "


def test_with_mark_an_interrupted_answer_is_left_incomplete(tmp_path: Path) -> None:
    config = make_config(tmp_path, 'turns.on_interrupt="mark"')
    conversation_id, _ = _interrupted_turn(config, claims=0)
    answer = _answer(config, conversation_id)
    assert answer["status"] == "incomplete" and answer["text"] == "one two "


def _text(role: str, value: str) -> ChatMessage:
    return ChatMessage(role, [{"type": "text", "text": value}])


SO_FAR = _text("assistant", "one two ")  # the checkpoint, for the model to go on from


def test_a_continued_api_turn_gets_its_clients_context_and_instructions_back(
    tmp_path: Path,
) -> None:
    """An API turn's context is the client's, not the stored history (which holds only the
    question): the run keeps it, so the continued turn sends the model the same."""
    context = [_text("user", "earlier"), _text("assistant", "said before"), _text("user", "now this")]
    run_request = TurnRequest(
        turn_id="t", answer_id="m", user=LOCAL_USER, conversation_id="c", context=context,
        instructions="Answer in French.",
    ).run_request()
    config = make_config(tmp_path, 'turns.on_interrupt="continue"')
    conversation_id, _ = _interrupted_turn(config, claims=0, run_request=run_request)
    provider = ScriptedProvider(answer("three four"))

    done = _answer(config, conversation_id, providers={"echo": provider})

    assert done["status"] == "complete" and done["text"] == "one two three four"
    [request] = provider.requests
    assert request.messages == [*context, SO_FAR]
    assert request.system.endswith("\n\nAnswer in French.")


def test_a_continued_socket_turn_gets_the_stored_history(tmp_path: Path) -> None:
    config = make_config(tmp_path, 'turns.on_interrupt="continue"')
    conversation_id, _ = _interrupted_turn(config, claims=0)
    provider = ScriptedProvider(answer("three four"))

    done = _answer(config, conversation_id, providers={"echo": provider})

    assert done["text"] == "one two three four"
    [request] = provider.requests
    assert request.messages == [_text("user", "one two three four"), SO_FAR]
