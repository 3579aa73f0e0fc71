"""Passwords, hashed with scrypt and a per-user salt; the parameters are stored with each hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt: 16 MiB and about 50 ms per hash; the parameters are stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str | None) -> bool:
    """Fixed work whether or not there is a stored hash, so timing says nothing about names."""
    if not stored:
        hash_password(password)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(actual, expected)
