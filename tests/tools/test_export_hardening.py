"""Export hardening: titles outside Latin-1 in the download's file name (RFC 6266 /
RFC 5987 `filename*`), and CSV cells that a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from server.exporting import export_conversation
from server.store.base import NewUserMessage, UserRecord
from server.store.sqlite.store import SqliteStore
from tests.support.scripted import ScriptedProvider, answer
from tests.tools.helpers import connect, make_config, running

ALICE = UserRecord(id="alice", name="Alice", role="user")
FORMULAS = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\t=tab", "\r=cr", '=HYPERLINK("http://x","y")']


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "chinwag.db", make_config(tmp_path).store)
    await store.open()
    await store.ensure_user(ALICE)
    yield store
    await store.close()


def test_a_title_outside_latin1_downloads_with_an_encoded_file_name(tmp_path: Path) -> None:
    with running(make_config(tmp_path), ScriptedProvider(answer("好的"))) as client:
        with connect(client) as conn:
            ack, _ = conn.chat("你好")
            updated = conn.request({
                "type": "conversation.update", "conversation_id": ack["conversation_id"], "title": "中文标题 \"q\";x",
            })
            assert updated["type"] == "ok", updated
        url = f"/api/conversations/{ack['conversation_id']}/export"
        responses = {fmt: client.get(url, params={"format": fmt}) for fmt in ("md", "csv")}
    for fmt, response in responses.items():
        assert response.status_code == 200, (fmt, response.text)
        disposition = response.headers["content-disposition"]
        plain, _, extended = disposition.partition("; filename*=")
        assert plain == f'attachment; filename="conversation.{fmt}"'  # an ASCII fallback
        assert extended.startswith("UTF-8''")
        assert unquote(extended.removeprefix("UTF-8''")) == f"中文标题-q-x.{fmt}"
    assert "好的" in responses["md"].text


def test_content_disposition_keeps_ascii_names_and_quotes_nothing_unsafe() -> None:
    from server.http.export_route import content_disposition

    assert content_disposition("plans.md") == "attachment; filename=\"plans.md\"; filename*=UTF-8''plans.md"
    header = content_disposition('café "x";\r\n.md')
    header.encode("latin-1")  # every header value must be Latin-1; this one is ASCII
    assert header.isascii() and "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="cafe-x.md"; filename*=UTF-8\'\'')
    assert unquote(header.partition("UTF-8''")[2]) == 'café "x";\r\n.md'


async def test_csv_cells_that_start_a_formula_are_neutralised(store: SqliteStore) -> None:
    first = await store.accept_user_message(NewUserMessage(user_id="alice", client_msg_id="f0", text=FORMULAS[0]))
    for index, text in enumerate(FORMULAS[1:], start=1):
        await store.accept_user_message(NewUserMessage(
            user_id="alice", client_msg_id=f"f{index}", text=text, conversation_id=first.conversation_id,
        ))
    await store.finish_message(first.answer_id, content=[{"type": "text", "text": "=2*3"}], status="complete",
                               model="=evil")
    exported = await export_conversation(store, "alice", first.conversation_id, "csv")
    rows = list(csv.reader(io.StringIO(exported.body)))
    asked = [row[4] for row in rows[1:] if row[1] == "user"]
    assert asked == ["'" + text for text in FORMULAS]
    assert (rows[2][1], rows[2][3], rows[2][4]) == ("assistant", "'=evil", "'=2*3")  # every cell
    for row in rows[1:]:
        for cell in row:
            assert not cell or cell[0] not in "=+-@\t\r"


async def test_csv_leaves_ordinary_text_alone(store: SqliteStore) -> None:
    accepted = await store.accept_user_message(NewUserMessage(user_id="alice", client_msg_id="n", text="a = b + c"))
    exported = await export_conversation(store, "alice", accepted.conversation_id, "csv")
    rows = list(csv.reader(io.StringIO(exported.body)))
    assert rows[1][4] == "a = b + c" and rows[1][1] == "user"
