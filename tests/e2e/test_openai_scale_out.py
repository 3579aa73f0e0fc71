"""The Responses API across nodes: a background response started on one node is resumed
with `starting_after` on another (every event exactly once, the same numbers a replay
gives), and cancelled from a third, which stops it within a second."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.support.cluster import ClusterFactory

pytestmark = pytest.mark.slow

LONG = " ".join(f"w{n}" for n in range(40))


def api(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)


def plain(events: list[Any]) -> list[tuple[int, str, str]]:
    return [(e.sequence_number, e.type, getattr(e, "delta", "")) for e in events]


def test_a_response_resumes_on_another_node_and_a_third_cancels_another(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("echo.delay_ms=40", "limits.turns_per_minute=0")
    first = api(cluster.node_url(0))
    stream = first.responses.create(model="echo", input=LONG, stream=True, background=True)
    seen: list[Any] = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta" and len(seen) >= 8:
            break
    stream.close()
    response_id = seen[0].response.id
    # node-2 follows the turn node-1 runs, through the shared store.
    seen += list(api(cluster.node_url(1)).responses.retrieve(response_id, stream=True, starting_after=seen[-1].sequence_number))
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    assert seen[-1].type == "response.completed"
    assert "".join(e.delta for e in seen if e.type == "response.output_text.delta") == LONG
    assert plain(list(api(cluster.node_url(2)).responses.retrieve(response_id, stream=True))) == plain(seen)

    running = first.responses.create(model="echo", input=LONG + " more", background=True)
    deadline = time.monotonic() + 10
    while not first.responses.retrieve(running.id).output_text and time.monotonic() < deadline:
        time.sleep(0.05)
    asked = time.monotonic()
    cancelled = api(cluster.node_url(2)).responses.cancel(running.id)
    assert cancelled.status == "cancelled" and time.monotonic() - asked < 1.5
    partial = cancelled.output_text
    assert partial and (LONG + " more").startswith(partial) and partial != LONG + " more"
    time.sleep(0.3)  # nothing more is written after the cancel
    assert first.responses.retrieve(running.id).output_text == partial
