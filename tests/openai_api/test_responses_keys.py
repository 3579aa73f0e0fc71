"""The Responses API with chinwag API keys: another user's response id is 404 everywhere it
can be named, and the turn guard's refusal is 429 with `retry-after`."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.openai_api.helpers import api, two_users_with_keys
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, str]]:
    with two_users_with_keys(tmp_path_factory.mktemp("response-keys"), "echo.delay_ms=5", "limits.turns_per_minute=3") as users:
        yield users


def test_another_users_response_is_404_and_limits_are_429(keyed: tuple[LiveServer, str, str]) -> None:
    live, alice, bob = keyed
    mine = api(live, alice).responses.create(model="echo", input="private words")
    intruder = api(live, bob)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.retrieve(mine.id, stream=True, starting_after=0)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.cancel(mine.id)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.create(model="echo", input="continue theirs", previous_response_id=mine.id)
    with pytest.raises(openai.NotFoundError):
        intruder.responses.create(model="echo", input="theirs", extra_headers={"X-Chinwag-Conversation": mine.conversation.id})  # type: ignore[union-attr]
    assert api(live, alice).responses.retrieve(mine.id).output_text == "private words"  # untouched
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(4):  # three turns a minute: alice's fourth at the latest is refused
            api(live, alice).responses.create(model="echo", input="again")
    assert int(refused.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.AuthenticationError):
        api(live, "cw_wrong").responses.create(model="echo", input="hi")
