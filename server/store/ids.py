"""Ids and timestamps as the store writes them.

Ids are opaque to clients, but a short prefix (`c_`, `m_`, `t_`, `u_`, `k_`) says what kind
of thing an id names in logs. The random part has 96 bits, so an id cannot be guessed: an id
is never a capability, but guessing one should not even reach the ownership check.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from server.errors import BadRequest

CONVERSATION = "c_"
MESSAGE = "m_"
TURN = "t_"
USER = "u_"
API_KEY = "k_"
LOGIN = "l_"
# The built-in user of the embedded default (no accounts configured).
LOCAL_USER_ID = "local"


def new_id(prefix: str) -> str:
    """A fresh unguessable id: `prefix` + 16 URL-safe characters."""
    return prefix + secrets.token_urlsafe(12)


def utc_now() -> str:
    """Now as RFC 3339 in UTC with milliseconds and `Z`, e.g. `2025-01-31T12:00:00.123Z`.

    The fixed width makes these strings sort in time order, which the queries rely on.
    """
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """`moment` (naive means UTC) in the store's RFC 3339 form."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def stored_time(value: str) -> str:
    """An RFC 3339 time from a caller in the stored form, so that comparing it with stored
    times as text compares them as times; BadRequest if it is not one."""
    try:
        return format_time(datetime.fromisoformat(value))
    except ValueError:
        raise BadRequest(f"not an RFC 3339 time: {value!r}") from None


def stored_bound(value: str | None) -> str | None:
    """`stored_time` of an optional bound (a search's `since`/`until`)."""
    return None if value is None else stored_time(value)
