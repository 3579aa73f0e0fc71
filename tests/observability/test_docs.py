"""docs/operations.md lists every metric and every log event, and its alert rules parse."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from server.config.settings import Config, SessionSettings
from server.models.selector import Selector
from server.observability.metrics import Metrics
from server.sessions.registry import SessionRegistry

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "operations.md").read_text()
LOG_CALL = re.compile(
    r"\blog\.(?:debug|info|warning|error|exception|critical)\(\s*"
    r"\"([^\"]+)\"(?:\s+if\s+\w+\s+else\s+\"([^\"]+)\")?"
)


def exported_metrics() -> set[str]:
    metrics = Metrics()
    metrics.watch(SimpleNamespace(
        selector=Selector(Config(), {}),
        sessions=SessionRegistry(SessionSettings(ttl_s=1, replay_buffer=1)),
        turns=SimpleNamespace(running={}),
        bus=SimpleNamespace(queued=lambda: 0),
    ))
    return {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in metrics.registry.collect()
    }


def documented_metrics() -> set[str]:
    return set(re.findall(r"^\| `(chinwag_[a-z_]+)` \|", DOC, re.MULTILINE))


def logged_events() -> set[str]:
    events: set[str] = set()
    for path in (ROOT / "server").rglob("*.py"):
        source = path.read_text()
        if "structlog" not in source:  # e.g. client.py: the bots' library logs in their process
            continue
        for match in LOG_CALL.finditer(source):
            events.update(name for name in match.groups() if name)
    return events


def documented_events() -> set[str]:
    rows = re.findall(r"^\| (`[a-z_]+`(?: / `[a-z_]+`)*) \|", DOC, re.MULTILINE)
    return {name for row in rows for name in re.findall(r"`([a-z_]+)`", row)}


def test_every_metric_is_documented_and_nothing_else() -> None:
    assert exported_metrics() == documented_metrics()


@pytest.mark.parametrize("event", sorted(logged_events()))
def test_every_log_event_is_snake_case_and_documented(event: str) -> None:
    assert re.fullmatch(r"[a-z]+(?:_[a-z]+)*", event)
    assert event in documented_events()


def test_alert_rules_parse_and_use_only_exported_metrics() -> None:
    yaml = pytest.importorskip("yaml")
    block = re.search(r"```yaml\n(groups:.*?)```", DOC, re.DOTALL)
    assert block is not None
    rules = yaml.safe_load(block[1])["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "ChinwagNoReadyInstance", "ChinwagTurnFailureRatioHigh", "ChinwagCircuitOpen",
        "ChinwagTimeToFirstTokenSlow", "ChinwagStoreWritesSlow", "ChinwagSlowConsumerCloses",
    }
    exported = exported_metrics()
    series = {s for r in rules for s in re.findall(r"chinwag_[a-z_]+", r["expr"])}
    assert series and {re.sub(r"_(bucket|sum|count)$", "", s) for s in series} <= exported
