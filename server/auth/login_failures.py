"""Failed logins, counted per account, so that guessing one password is slow from anywhere
while a flood of wrong ones cannot keep the right one out.

Two moving windows of `limits.login_failure_window_s`, on the storage
`server.limits_storage` picks (shared by every node when there is a bus):

- **per (account, address)**: `limits.login_failures_per_address` failures, then that
  address may not try that account until the window frees up. This is what stops one
  address, however it is throttled otherwise.
- **per account**: `limits.login_failures_per_account` failures from all addresses, then
  the account is closed to every address it has *never logged in from*. An address the
  account logged in from before (a row in `logins`) keeps trying, within its own
  per-(account, address) limit.

So one address adds at most `login_failures_per_address` failures per window to an
account's count and cannot close it alone; many addresses together close it only to
strangers, and the owner on a known address still gets in. Only failures count: an
attempt refused here checks no password and counts nothing, and a success from an
address clears that address's failures for the account. Names that exist and names
that do not are counted alike, so a refusal tells nothing about which names exist.
"""

from __future__ import annotations

import hashlib
import math
import time

import limits

from server.config.live import LiveConfig, as_live
from server.config.settings import Config
from server.limits_storage import Windows
from server.store.base import Store

NAMESPACE = "login_failures"


class LoginFailures:
    def __init__(self, config: Config | LiveConfig, store: Store):
        self._live = as_live(config)
        self.store = store
        # The storage is chosen once: `limits.storage_uri` and `bus` need a restart.
        self.limiter = Windows(self._live.current)

    async def retry_after(self, account: str, address: str, user_id: str | None) -> float | None:
        """Seconds until `address` may try `account` again; None: it may try now.

        `user_id` is the account's user, None for a name that does not exist."""
        pair, overall = self._items()
        key = account_key(account)
        waits = []
        if pair is not None and not await self.limiter.test(pair, NAMESPACE, key, address):
            waits.append(await self._wait(pair, key, address))
        if overall is not None and not await self.limiter.test(overall, NAMESPACE, key):
            known = user_id is not None and await self.store.logged_in_from(user_id, address)
            if not known:
                waits.append(await self._wait(overall, key))
        return max(waits) if waits else None

    async def failed(self, account: str, address: str) -> None:
        pair, overall = self._items()
        key = account_key(account)
        if pair is not None:
            await self.limiter.hit(pair, NAMESPACE, key, address)
        if overall is not None:
            await self.limiter.hit(overall, NAMESPACE, key)

    async def succeeded(self, account: str, address: str) -> None:
        """The right password from `address`: its earlier failures there no longer count."""
        pair, _ = self._items()
        if pair is not None:
            await self.limiter.clear(pair, NAMESPACE, account_key(account), address)

    def _items(self) -> tuple[limits.RateLimitItem | None, limits.RateLimitItem | None]:
        settings = self._live.current.limits
        window = max(1, math.ceil(settings.login_failure_window_s))

        def item(amount: int) -> limits.RateLimitItem | None:
            return limits.RateLimitItemPerSecond(amount, window) if amount > 0 else None

        return item(settings.login_failures_per_address), item(settings.login_failures_per_account)

    async def _wait(self, item: limits.RateLimitItem, *identifiers: str) -> float:
        stats = await self.limiter.get_window_stats(item, NAMESPACE, *identifiers)
        return max(1.0, math.ceil(stats.reset_time - time.time()))


def account_key(account: str) -> str:
    """Counters are keyed by a hash: rate-limit storage (say, Redis) holds no names."""
    return hashlib.sha256(account.encode()).hexdigest()[:24]
