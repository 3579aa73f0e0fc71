"""Full-text search on PostgreSQL: a generated `tsvector` column with a GIN index, ranked
with `ts_rank`, snippets from `ts_headline`.

What a user typed never reaches `to_tsquery` as text: each word is passed as a parameter to
`chinwag_query` (see `migrations.py`), which takes its lexemes as a phrase and makes the
last one a prefix when the word ended in `*`; the words are ANDed. So any text is safe, as
with SQLite's `match_expression`.
"""

from __future__ import annotations

import asyncpg

from server.errors import NotFound
from server.store.base import SearchHit
from server.store.ids import stored_bound
from server.store.postgres.rows import no_nul

SNIPPET_WORDS = 24
# ts_headline wraps matches in these; they are removed from the text first, then replaced
# by the caller's marks, so marks need no quoting in ts_headline's option syntax.
_START, _STOP = "\ue000", "\ue001"
_OPTIONS = f"StartSel={_START}, StopSel={_STOP}, MaxWords={SNIPPET_WORDS}, MinWords=12, ShortWord=0"
# Rank normalisation 2: divide by the document length, as bm25 favours short matches.
_NORMALISATION = 2


def query_words(query: str) -> tuple[list[str], list[bool]] | None:
    """The words of `query` and whether each is a prefix; None when nothing is searchable."""
    words: list[str] = []
    prefixes: list[bool] = []
    for word in no_nul(query).split():
        bare = word.rstrip("*")
        # A word without letters or digits has no lexemes; leave it out.
        if any(ch.isalnum() for ch in bare):
            words.append(bare)
            prefixes.append(bare != word)
    return (words, prefixes) if words else None


async def search_messages(
    conn: asyncpg.Connection,
    user_id: str,
    query: str,
    *,
    conversation_id: str | None,
    role: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    marks: tuple[str, str],
) -> list[SearchHit]:
    """The user's messages matching `query`, best `ts_rank` first (ties: newest first)."""
    words = query_words(query)
    if words is None or limit < 1:
        return []
    if conversation_id is not None:
        owned = await conn.fetchval(
            "SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2", conversation_id, user_id
        )
        if owned is None:
            raise NotFound("conversation not found")
    params: list[object] = [*words, user_id]
    where = ["m.user_id = $3"]
    for column, operator, value in (
        ("m.conversation_id", "=", conversation_id),
        ("m.role", "=", role),
        ("m.created_at", ">=", stored_bound(since)),
        ("m.created_at", "<", stored_bound(until)),
    ):
        if value is not None:
            params.append(value)
            where.append(f"{column} {operator} ${len(params)}")
    params.append(limit)
    rows = await conn.fetch(
        "WITH q AS (SELECT chinwag_query($1, $2) AS query)"
        " SELECT m.id, m.conversation_id, c.title, m.role, m.created_at, m.text,"
        f" ts_headline('chinwag', translate(m.text, '{_START}{_STOP}', ''), q.query,"
        f" '{_OPTIONS}') AS snippet,"
        f" ts_rank(m.search, q.query, {_NORMALISATION}) AS rank"
        " FROM q, messages m JOIN conversations c ON c.id = m.conversation_id"
        f" WHERE m.search @@ q.query AND {' AND '.join(where)}"
        f" ORDER BY rank DESC, m.seq DESC LIMIT ${len(params)}",
        *params,
    )
    return [_hit(row, marks) for row in rows]


def _hit(row: asyncpg.Record, marks: tuple[str, str]) -> SearchHit:
    return SearchHit(
        message_id=row["id"],
        conversation_id=row["conversation_id"],
        conversation_title=row["title"],
        role=row["role"],
        snippet=_snippet(row["snippet"], row["text"], marks),
        created_at=row["created_at"],
        score=float(row["rank"]),
    )


def _snippet(headline: str, text: str, marks: tuple[str, str]) -> str:
    """The headline with the caller's marks, and "…" where it cuts the text (as SQLite's
    `snippet()` does)."""
    plain = headline.replace(_START, "").replace(_STOP, "")
    source = text.replace(_START, "").replace(_STOP, "")
    at = source.find(plain)
    snippet = headline.replace(_START, marks[0]).replace(_STOP, marks[1])
    if at > 0:
        snippet = "…" + snippet
    if at >= 0 and at + len(plain) < len(source):
        snippet += "…"
    return snippet


