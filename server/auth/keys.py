"""API keys: made once, shown once, stored as a SHA-256 hash and found by their non-secret prefix."""

from __future__ import annotations

import hashlib
import secrets

KEY_MARK = "cw_"


PREFIX_LEN = len(KEY_MARK) + 9  # the non-secret start of a key, shown in listings


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (the key, shown once; its prefix; its hash, which is what is stored)."""
    key = KEY_MARK + secrets.token_urlsafe(32)
    return key, key_prefix(key), key_hash(key)


def key_prefix(key: str) -> str:
    return key[:PREFIX_LEN]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
