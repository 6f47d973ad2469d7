"""The switch's HTTPS endpoint for wallet providers' payment notifications.

A wallet payment the customer must confirm on the phone is answered ``PROCESSING``; its outcome
comes later as a notification the provider POSTs to ``/wallet/notify/<link>`` (at least once,
the same ``notification_id`` on every repeat). A notification is believed only once its
signature verifies under that link's ``provider_public_key_pem`` (:mod:`cardswitch.signing`);
anything else is answered 401 and counted ``rejected``.

:class:`NotificationHub` hands believed notifications to whoever waits for the payment (the
wallet channel, keyed by link and ``out_trade_no``) and to ``on_notification`` (the journal).
Deduplication is per process; on several switch nodes a repeat may reach another node, so
``on_notification`` must be idempotent, and a channel whose notification went to another node
learns the outcome by querying the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from cardswitch import signing
from switch.context import LinkConfig

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter("cardswitch_wallet_notifications_total",
                        "Wallet provider notifications received",
                        ["link", "outcome"])

ACCEPTED, DUPLICATE, REJECTED, FAILED = "accepted", "duplicate", "rejected", "failed"
PATH = "/wallet/notify/{link}"
#: Notifications are small JSON objects.
MAX_BODY = 64 * 1024

Payload = dict[str, Any]
OnNotification = Callable[[str, Payload], Awaitable[None]]


class NotificationHub:
    """Believed notifications, handed to the channel waiting for them and to a callback.

    ``notify_base_url`` is where providers are told to send them (the :class:`NotificationServer`
    sets it when it starts, unless given: e.g. a load balancer's address in a fleet).
    """

    def __init__(self, *, notify_base_url: str = "",
                 on_notification: OnNotification | None = None,
                 remember: int = 100_000) -> None:
        self.notify_base_url = notify_base_url.rstrip("/")
        self.on_notification = on_notification
        self._waiting: dict[tuple[str, str], asyncio.Future[Payload]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._remember = remember

    def notify_url(self, link: str) -> str:
        """Where ``link``'s provider sends notifications; "" when no server listens (the
        provider then sends none, and the channel learns outcomes by querying)."""
        return f"{self.notify_base_url}/{link}" if self.notify_base_url else ""

    @contextlib.contextmanager
    def expect(self, link: str, out_trade_no: str) -> Iterator[asyncio.Future[Payload]]:
        """A future for the notification of ``out_trade_no`` from ``link``, while in the block.

        Enter it before sending the payment, so a notification cannot come before the waiter.
        """
        key = (link, out_trade_no)
        future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            yield future
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]
            future.cancel()

    async def deliver(self, link: str, payload: Payload) -> str:
        """Takes a verified notification: ``accepted``, or ``duplicate`` if seen before.

        Raises what ``on_notification`` raises; the notification then counts as not received
        (the provider sends it again).
        """
        notification_id = str(payload["notification_id"])
        lock = self._locks.setdefault(notification_id, asyncio.Lock())
        async with lock:  # a repeat arriving meanwhile waits for the first's outcome
            if notification_id in self._seen:
                return DUPLICATE
            if self.on_notification is not None:
                await self.on_notification(link, payload)
            self._seen[notification_id] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        self._locks.pop(notification_id, None)
        future = self._waiting.get((link, str(payload["out_trade_no"])))
        if future is not None and not future.done():
            future.set_result(payload)
        return ACCEPTED


def _problem(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "malformed: not a JSON object"
    for name in ("notification_id", "out_trade_no", "status"):
        if not isinstance(payload.get(name), str) or not payload[name]:
            return f"malformed: {name} missing"
    return None


class NotificationServer:
    """Serves ``POST /wallet/notify/{link}``; ``links`` finds a link's configuration by name."""

    def __init__(self, hub: NotificationHub, links: Callable[[str], LinkConfig | None],
                 host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, *,
                 max_skew_s: int = signing.DEFAULT_MAX_SKEW_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.port = port
        self._links = links
        self._host = host
        self._ssl = ssl_context
        self._max_skew_s = max_skew_s
        self._clock = clock
        self._nonces = signing.NonceCache()
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Listens (port 0: a free one) and returns the port."""
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes([web.post(PATH, self.handle)])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self.port, ssl_context=self._ssl,
                          reuse_port=True).start()
        self.port = int(self._runner.addresses[0][1])
        if not self.hub.notify_base_url:
            scheme = "https" if self._ssl is not None else "http"
            self.hub.notify_base_url = f"{scheme}://{self._host}:{self.port}/wallet/notify"
        log.info("wallet notifications on %s", self.hub.notify_base_url)
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["link"]
        link = self._links(name)
        label = name if link is not None else "unknown"  # no label per attacker's URL
        body = await request.read()
        try:
            if link is None or not link.wallet.provider_public_key_pem:
                raise signing.SignatureError("no wallet link of that name")
            signing.verify(request.headers, request.method, request.raw_path, body,
                           link.wallet.provider_public_key_pem, now=self._clock(),
                           nonces=self._nonces, max_skew_s=self._max_skew_s)
        except signing.SignatureError as exc:
            return self._reject(name, label, 401, str(exc))
        try:
            payload = json.loads(body)
        except ValueError:
            return self._reject(name, label, 400, "malformed: not JSON")
        problem = _problem(payload)
        if problem is not None:
            return self._reject(name, label, 400, problem)
        try:
            outcome = await self.hub.deliver(name, payload)
        except Exception:
            NOTIFICATIONS.labels(label, FAILED).inc()
            log.exception("wallet notification %s for link %s: not taken",
                          payload["notification_id"], name)
            return web.json_response({"error": "not taken, send again"}, status=500)
        NOTIFICATIONS.labels(label, outcome).inc()
        log.info("wallet notification %s for link %s: payment %s %s (%s)",
                 payload["notification_id"], name, payload["out_trade_no"], payload["status"],
                 outcome)
        return web.json_response({"result": "ok"})

    def _reject(self, name: str, label: str, status: int, reason: str) -> web.Response:
        NOTIFICATIONS.labels(label, REJECTED).inc()
        log.warning("rejected wallet notification for link %s: %s",
                    name if label != "unknown" else repr(name[:40]), reason)
        return web.json_response({"error": "rejected"}, status=status)
