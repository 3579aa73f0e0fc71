"""The turn guard: a `send` is checked before its message is stored, against the user's
turns per minute (the `limits` library, on the storage `server.limits_storage` picks:
shared by every node when there is a bus) and the day's token quota (counted from the
store, so it holds across restarts and processes; the clock is injectable to test
midnight)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import limits

from server.auth.identity import LOCAL_USER
from server.config.live import LiveConfig, as_live
from server.config.settings import Config
from server.errors import QuotaExceeded, RateLimited
from server.limits_storage import Windows
from server.store.base import Store, UserRecord
from server.store.ids import format_time

if TYPE_CHECKING:
    from server.observability.metrics import Metrics


def utc_clock() -> datetime:
    return datetime.now(UTC)


class TurnGuard:
    """Checks a `send` before its message is stored: turn rate, then the day's quota.

    A resend of a message already stored is never refused (it starts no new turn and
    must get its `ack` again: Guarantee 1)."""

    def __init__(
        self,
        config: Config | LiveConfig,
        store: Store,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = utc_clock,
    ):
        self._live = as_live(config)
        self.store = store
        self.metrics = metrics
        self.clock = clock
        # The storage is chosen once: `limits.storage_uri` and `bus` need a restart.
        self.limiter = Windows(self._live.current)

    def _turn_item(self) -> limits.RateLimitItem | None:
        per_minute = self._live.current.limits.turns_per_minute
        return limits.RateLimitItemPerMinute(per_minute) if per_minute > 0 else None

    async def check(self, user: UserRecord, client_msg_id: str) -> None:
        """Raise QuotaExceeded or RateLimited when this send may not start a turn; otherwise
        the send is counted against the user's turns per minute, in the same step as the
        check (`hit`), so sends arriving at once on any nodes cannot all slip under the
        limit. A resend of a message already stored is neither refused nor counted.

        A send counted here whose message then cannot be stored (the store is away) stays
        counted: the window errs on the side of the limit."""
        if client_msg_id and await self.store.message_accepted(user.id, client_msg_id):
            return
        await self._check_quota(user)
        try:
            await self._take_turn(user)
        except RateLimited:
            self.metrics.rate_limited.labels("turns").inc()
            raise

    async def _take_turn(self, user: UserRecord) -> None:
        item = self._turn_item()
        if item is None or user.id == LOCAL_USER.id:
            return
        if not await self.limiter.hit(item, "turns", user.id):
            stats = await self.limiter.get_window_stats(item, "turns", user.id)
            retry_after = max(0.1, round(stats.reset_time - time.time(), 1))
            raise RateLimited(
                f"more than {item.amount} turns a minute; try again in {retry_after:g} s",
                retry_after=retry_after,
            )

    def quota_for(self, user: UserRecord) -> int:
        quotas = self._live.current.quotas
        if user.name in quotas.per_user:
            return quotas.per_user[user.name]
        return quotas.per_role.get(user.role, quotas.tokens_per_day)

    async def _check_quota(self, user: UserRecord) -> None:
        quota = self.quota_for(user)
        if quota <= 0:
            return
        now = self.clock()
        day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        midnight = day + timedelta(days=1)
        used = await self.store.tokens_used(user.id, format_time(day), format_time(midnight))
        if used >= quota:
            retry_after = math.ceil((midnight - now).total_seconds())
            raise QuotaExceeded(
                f"today's quota of {quota} tokens is used up ({used}); it resets at 00:00 UTC",
                details={"quota": quota, "used": used, "resets_at": format_time(midnight)},
                retry_after=retry_after,
            )
