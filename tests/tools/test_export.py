"""Export: four formats, the JSON one imported back to the same content, and the download
route."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.errors import BadRequest, NotFound
from server.exporting import export_conversation, parse_json_export
from server.store.base import NewUserMessage, UserRecord
from server.store.sqlite.store import SqliteStore
from tests.support.scripted import ScriptedProvider, answer, tool_round
from tests.tools.helpers import connect, make_config, running

ALICE = UserRecord(id="alice", name="Alice", role="user")
BOB = UserRecord(id="bob", name="Bob", role="user")
NASTY = '<script>alert("x")</script> & <b>bold</b>'
ANSWER = [
    {"type": "text", "text": "Let me look. "},
    {"type": "tool_use", "id": "tc_1", "name": "search", "input": {"query": "otters"}},
    {"type": "tool_result", "tool_use_id": "tc_1", "content": "[]", "is_error": False},
    {"type": "text", "text": "Nothing about otters, but: " + NASTY},
]
IDS = {"id", "conversation_id", "turn_id", "client_msg_id"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "chinwag.db", make_config(tmp_path).store)
    await store.open()
    for user in (ALICE, BOB):
        await store.ensure_user(user)
    yield store
    await store.close()


async def conversation(store: SqliteStore, user_id: str = "alice") -> str:
    """A conversation with text, a tool call and its result, markup, a comma and a newline."""
    first = await store.accept_user_message(NewUserMessage(
        user_id=user_id, client_msg_id="cm1", text="Find otters, please.\nThanks", model="fake",
    ))
    # Each answer is the one reserved with its question, finished as the turn runner does.
    await store.finish_message(
        first.answer_id, content=ANSWER, status="complete", model="fake", usage={"input_tokens": 3, "output_tokens": 4}
    )
    await store.update_conversation(user_id, first.conversation_id, {"title": "Otters & <friends>"})
    second = await store.accept_user_message(NewUserMessage(
        user_id=user_id, client_msg_id="cm2", text=NASTY, conversation_id=first.conversation_id,
    ))
    await store.finish_message(
        second.answer_id, content=[{"type": "text", "text": "Half an ans"}], status="cancelled", model="fake"
    )
    return first.conversation_id


def without_ids(document: str) -> dict[str, Any]:
    conversation, messages = parse_json_export(document)
    return {
        "conversation": {k: v for k, v in conversation.items() if k not in IDS},
        "messages": [{k: v for k, v in m.items() if k not in IDS} for m in messages],
    }


async def test_json_round_trips(store: SqliteStore) -> None:
    original = await conversation(store)
    first = await export_conversation(store, "alice", original, "json")
    copy = await store.import_conversation("alice", *parse_json_export(first.body))
    assert copy != original
    second = await export_conversation(store, "alice", copy, "json")
    assert without_ids(second.body) == without_ids(first.body)
    content = without_ids(first.body)
    assert content["conversation"]["title"] == "Otters & <friends>"
    assert [m["content"] for m in content["messages"]][1] == ANSWER
    assert [m["status"] for m in content["messages"]] == ["complete", "complete", "complete", "cancelled"]
    # The copy gets new ids throughout.
    old, new = json.loads(first.body), json.loads(second.body)
    assert not {m["id"] for m in old["messages"]} & {m["id"] for m in new["messages"]}


async def test_an_import_belongs_to_the_importer_only(store: SqliteStore) -> None:
    original = await conversation(store)
    exported = await export_conversation(store, "alice", original, "json")
    copy = await store.import_conversation("bob", *parse_json_export(exported.body))
    again = await export_conversation(store, "bob", copy, "json")
    assert without_ids(again.body) == without_ids(exported.body)
    with pytest.raises(NotFound):
        await export_conversation(store, "alice", copy, "json")
    with pytest.raises(NotFound):
        await export_conversation(store, "bob", original, "json")
    # The imported text is searchable by its new owner.
    assert await store.search_messages("bob", "otters")


def test_parse_json_export_refuses_other_documents() -> None:
    for raw, message in [
        ("not json", "not JSON"),
        ('{"kind": "something.else"}', "not a chinwag conversation export"),
        ('{"kind": "chinwag.conversation", "version": 99}', "unsupported export version 99"),
        ('{"kind": "chinwag.conversation", "version": 1, "messages": []}', "needs a conversation"),
    ]:
        with pytest.raises(BadRequest, match=message):
            parse_json_export(raw)


async def test_html_escapes_everything(store: SqliteStore) -> None:
    exported = await export_conversation(store, "alice", await conversation(store), "html")
    body = exported.body
    assert (exported.media_type, exported.filename) == ("text/html; charset=utf-8", "otters-friends.html")
    assert "<script>" not in body and "<b>" not in body and "<friends>" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in body
    assert "<title>Otters &amp; &lt;friends&gt;</title>" in body
    assert body.startswith("<!doctype html>") and body.rstrip().endswith("</html>")


async def test_csv_parses_back(store: SqliteStore) -> None:
    exported = await export_conversation(store, "alice", await conversation(store), "csv")
    assert exported.media_type == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(exported.body)))
    assert rows[0] == ["created_at", "role", "status", "model", "text"]
    assert [(r[1], r[2], r[3]) for r in rows[1:]] == [
        ("user", "complete", ""), ("assistant", "complete", "fake"),
        ("user", "complete", ""), ("assistant", "cancelled", "fake"),
    ]
    assert [r[4] for r in rows[1:]] == [
        "Find otters, please.\nThanks",
        "Let me look. \n\n[tool call search {\"query\":\"otters\"}]\n\n[tool result: []]\n\n"
        "Nothing about otters, but: " + NASTY,
        NASTY,
        "Half an ans",
    ]


async def test_markdown_contains_the_text(store: SqliteStore) -> None:
    exported = await export_conversation(store, "alice", await conversation(store), "md")
    body = exported.body
    assert exported.filename == "otters-friends.md"
    assert body.startswith("# Otters & <friends>\n")
    for text in ["Find otters, please.\nThanks", "Let me look.", '[tool call search {"query":"otters"}]',
                 "[tool result: []]", "Nothing about otters", "Half an ans"]:
        assert text in body
    assert "## You" in body and "## Assistant (fake)" in body and "_(cancelled)_" in body


async def test_unknown_format_and_other_users_conversation(store: SqliteStore) -> None:
    original = await conversation(store)
    with pytest.raises(BadRequest, match="unknown export format 'pdf'"):
        await export_conversation(store, "alice", original, "pdf")
    with pytest.raises(NotFound):
        await export_conversation(store, "bob", original, "md")


def test_the_download_route(tmp_path: Path) -> None:
    provider = ScriptedProvider(tool_round(("note", {"text": "x"})), answer("<script>hi</script>"))
    with running(make_config(tmp_path), provider) as client:
        with connect(client) as conn:
            ack, _ = conn.chat("export me")
        conversation_id = ack["conversation_id"]
        url = f"/api/conversations/{conversation_id}/export"
        downloads = {fmt: client.get(url, params={"format": fmt}) for fmt in ("md", "json", "csv", "html")}
        default = client.get(url)
        unknown = client.get("/api/conversations/c_nosuchthing/export", params={"format": "md"})
        bad = client.get(url, params={"format": "pdf"})
    for fmt, response in downloads.items():
        assert response.status_code == 200, fmt
        disposition = response.headers["content-disposition"]
        assert disposition == f"attachment; filename=\"export-me.{fmt}\"; filename*=UTF-8''export-me.{fmt}"
        assert response.headers["cache-control"] == "no-store"
    assert downloads["html"].headers["content-type"] == "text/html; charset=utf-8"
    assert "<script>hi" not in downloads["html"].text and "&lt;script&gt;hi" in downloads["html"].text
    _, messages = parse_json_export(downloads["json"].content)
    assert [b["type"] for b in messages[1]["content"]] == ["tool_use", "tool_result", "text"]
    assert default.status_code == 200 and default.headers["content-type"] == "text/markdown; charset=utf-8"
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_request")


def test_the_export_tool(tmp_path: Path) -> None:
    with running(make_config(tmp_path), ScriptedProvider(answer("fine"))) as client, connect(client) as conn:
        ack, _ = conn.chat("hello there")
        nothing = conn.tool("export", {"format": "md"})
        json_copy = conn.tool("export", {"format": "json"}, conversation_id=ack["conversation_id"])
    assert (nothing["ok"], nothing["error"]) == (False, "no conversation to export: pass conversation_id")
    result = json_copy["result"]
    assert result["download_url"] == f"/api/conversations/{ack['conversation_id']}/export?format=json"
    assert result["media_type"] == "application/json" and result["filename"].endswith(".json")
    _, messages = parse_json_export(result["content"])
    assert [m["text"] for m in messages] == ["hello there", "fine"]
