"""The customers' phones and the notifications: one background loop.

It lets the simulated customers confirm (or decline) their due ``PROCESSING`` payments, then
POSTs each queued notification, signed afresh on every attempt, to the merchant's
``notify_url`` until the merchant answers 200 (at least once: the same ``notification_id`` on
every repeat, with doubling delays; see :mod:`issuer_sim.wallet.ledger`). Its state is in the
database, so a restart carries on where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

import aiohttp
from yarl import URL

from cardswitch import signing
from issuer_sim.wallet.control import Faults, Stats
from issuer_sim.wallet.ledger import Ledger, PendingNotification, utc_now

log = logging.getLogger(__name__)

NOTIFY_TIMEOUT_S = 5.0
#: The longest the loop sleeps without being woken (a payment added by another process).
IDLE_S = 1.0


class Notifier:
    def __init__(self, ledger: Ledger, signer: signing.Signer, faults: Faults, stats: Stats,
                 client_ssl: ssl.SSLContext) -> None:
        self._ledger = ledger
        self._signer = signer
        self._forger = signing.LocalSigner.generate(signer.algorithm, signer.key_id)
        self._faults = faults
        self._stats = stats
        self._ssl = client_ssl
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        """Something became due sooner than the loop planned (a new PROCESSING payment)."""
        self._wake.set()

    async def run(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl),
            timeout=aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT_S))
        try:
            while True:
                self._wake.clear()
                try:
                    await self._run_due()
                    wait = await self._until_next_due()
                except Exception:
                    log.exception("wallet notifier: cycle failed; retrying")
                    wait = IDLE_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            await self._session.close()

    async def _run_due(self) -> None:
        declined = await self._ledger.confirm_due(self._faults.user_cancels_next)
        self._faults.user_cancels_next = max(self._faults.user_cancels_next - declined, 0)
        due = await self._ledger.due_notifications()
        await asyncio.gather(*(self._deliver(n) for n in due))

    async def _until_next_due(self) -> float:
        next_at = await self._ledger.next_due()
        if next_at is None:
            return IDLE_S
        return min(max((next_at - utc_now()).total_seconds(), 0.01), IDLE_S)

    async def _deliver(self, n: PendingNotification) -> None:
        assert self._session is not None
        signer = self._forger if self._faults.forge_notification_signature else self._signer
        url = URL(n.notify_url)
        headers = await signing.sign_request(signer, "POST", url.raw_path_qs, n.payload)
        headers["Content-Type"] = "application/json"
        self._stats.notifications_sent += 1
        try:
            async with self._session.post(url, data=n.payload, headers=headers) as answer:
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("notification %s: not delivered (%s), attempt %d", n.notification_id,
                     type(exc).__name__, n.attempts + 1)
            status = 0
        else:
            log.info("notification %s: HTTP %d, attempt %d", n.notification_id, status,
                     n.attempts + 1)
        if status == 200:
            self._stats.notifications_acknowledged += 1
        await self._ledger.notification_result(n.notification_id, status == 200)
