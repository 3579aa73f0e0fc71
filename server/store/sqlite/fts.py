"""Turning what a user typed into an FTS5 query that cannot be a syntax error.

FTS5 has its own query language (`AND`, `OR`, `NEAR(...)`, `"phrases"`, `col:`, `^`, `*`,
parentheses). Users type plain words, and a stray quote or parenthesis must not become an
error or an operator. So every whitespace-separated word becomes a quoted phrase (quotes
inside doubled), the phrases are ANDed, and a trailing `*` on a word is kept as a prefix
search, the one operator people type on purpose.
"""

from __future__ import annotations


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression for `query`, or None when it has nothing to search for."""
    phrases = [_phrase(word) for word in query.split()]
    kept = [p for p in phrases if p]
    return " ".join(kept) if kept else None


def _phrase(word: str) -> str:
    prefix = word.endswith("*")
    word = word.rstrip("*")
    # A word without letters or digits yields no tokens; leave it out rather than search it.
    if not any(ch.isalnum() for ch in word):
        return ""
    quoted = '"' + word.replace('"', '""') + '"'
    return quoted + "*" if prefix else quoted
