"""The usage meter: what a call is charged when it ends, known or estimated (issue 15 point 2)."""

from __future__ import annotations

from server.models.base import TextDelta, ToolUse, Usage
from server.models.usage import UsageMeter, estimate_tokens, request_chars
from tests.models.conftest import request


def test_a_finished_call_keeps_the_servers_counts() -> None:
    meter = UsageMeter(request())
    for event in (Usage(40, 1), TextDelta("x" * 100), Usage(40, 30)):
        meter.saw(event)
    assert meter.usage(finished=True) == Usage(40, 30)


def test_a_cut_call_counts_at_least_the_text_sent_and_the_reported_input() -> None:
    meter = UsageMeter(request())
    for event in (Usage(40, 1), TextDelta("x" * 100), ToolUse("t", "search", {"q": "abc"})):
        meter.saw(event)
    sent = estimate_tokens(100 + len("search") + len('{"q":"abc"}'))
    assert meter.usage(finished=False) == Usage(40, sent, estimated=True)


def test_a_server_reporting_nothing_gets_an_estimate_marked_as_such() -> None:
    req = request("hello there")
    meter = UsageMeter(req)
    meter.saw(TextDelta("abcdefgh"))
    meter.saw(Usage(0, 0))
    assert meter.usage(finished=True) == Usage(estimate_tokens(request_chars(req)), 2, estimated=True)


def test_a_call_that_never_answered_costs_nothing() -> None:
    assert UsageMeter(request()).usage(finished=False) == Usage()
