"""What a turn's run keeps of an API turn (`RunRecord.request`), and what it gives back."""

from __future__ import annotations

import msgspec

from server.models.base import ChatMessage, ToolSpec
from server.store.base import UserRecord
from server.turns.state import TurnRequest, api_fields

USER = UserRecord(id="u", name="U", role="user")


def _turn(**fields: object) -> TurnRequest:
    return TurnRequest(turn_id="t", answer_id="m", user=USER, conversation_id="c", **fields)  # type: ignore[arg-type]


def test_an_api_turns_fields_come_back_from_its_run_request() -> None:
    fields = {
        "context": [ChatMessage("user", [{"type": "text", "text": "hi"}])],
        "instructions": "Be brief.",
        "client_tools": [ToolSpec("lookup", "Look it up.", {"type": "object"})],
        "approvals_in_next_request": True,
    }
    request = _turn(**fields).run_request()

    assert request == {
        "context": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "instructions": "Be brief.",
        "client_tools": [
            {"name": "lookup", "description": "Look it up.", "input_schema": {"type": "object"}},
        ],
        "approvals_in_next_request": True,
    }
    # As the store gives it back: decoded from JSON text.
    assert api_fields(msgspec.json.decode(msgspec.json.encode(request))) == fields


def test_any_one_field_makes_a_run_request_and_a_socket_turn_has_none() -> None:
    assert _turn().run_request() is None
    assert api_fields(None) == {}
    assert api_fields(_turn(context=[]).run_request())["context"] == []  # [] is not "stored history"
    assert api_fields(_turn(approvals_in_next_request=True).run_request()) == {
        "context": None, "instructions": None, "client_tools": [], "approvals_in_next_request": True,
    }
