"""A turn in a long conversation reads only as much history as its model can take."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from server.turns.runner import HISTORY_PAGE
from tests.support.inproc import connected, make_config, running_app


def test_a_long_conversation_is_read_back_only_as_far_as_the_budget_reaches(tmp_path: Path) -> None:
    settings = ['models.small.provider="echo"', "models.small.context_window=1200",
                "models.small.max_output_tokens=100", 'routing.default="small"']
    with running_app(make_config(tmp_path, *settings)) as client, connected(client, hello={}) as socket:
        first, _ = socket.chat("start " * 20)
        for number in range(HISTORY_PAGE):  # 2 messages a turn: two pages of history and more
            socket.chat(f"message {number} " + "filler " * 20, conversation_id=first["conversation_id"])
        with capture_logs() as logs:
            _, events = socket.chat("the newest question", conversation_id=first["conversation_id"])
    assert events[-1]["status"] == "complete"
    trimmed = next(line for line in logs if line["event"] == "context_trimmed")
    total_before = 2 * (HISTORY_PAGE + 1)
    assert trimmed["kept"] >= 2  # the newest messages made it in
    # What was read is what was kept plus what was dropped: one page, not the whole history.
    assert trimmed["kept"] + trimmed["dropped"] <= HISTORY_PAGE + 1 < total_before
