"""The wallet channel: a third-party wallet provider (the merchant scans the customer's payment
code) over HTTPS with JSON bodies, each request and answer signed by its sender.

The switch signs with its key pair in the HSM (``WalletEndpoint.signing_key_ref``) and believes
an answer only if it verifies under ``provider_public_key_pem``: an answer that does not is
treated as no answer (:class:`LinkBroken`, outcome unknown, so the switch reverses). The
provider's TLS certificate is checked against ``ca_certificate_pem``.

A payment is keyed at the provider by ``out_trade_no`` = our transaction id, so resending it
never charges twice. ``PROCESSING`` (the customer confirms on the phone) is settled by the
provider's signed notification (:mod:`switch.notifications`) or, failing that, by querying the
payment every ``poll_interval_s``; no outcome by the deadline is :class:`LinkTimeout`.
A reversal cancels the payment (refunded in full if paid); a refund is keyed by
``out_refund_no`` = the refund's transaction id. Wallets know purchases only: no
pre-authorisation, so no capture.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from prometheus_client import Counter
from yarl import URL

from cardswitch import responses, signing
from cardswitch.v1 import admin_pb2
from switch.context import (
    ChannelError,
    ChannelResult,
    LinkBroken,
    LinkConfig,
    LinkDown,
    LinkTimeout,
    TxnContext,
)
from switch.notifications import NotificationHub

log = logging.getLogger(__name__)

REQUESTS = Counter("cardswitch_wallet_requests_total",
                   "Requests to wallet providers by outcome (HTTP status or channel error)",
                   ["link", "endpoint", "outcome"])

ALGORITHMS = {admin_pb2.SIGNATURE_ALGORITHM_RSA_SHA256: signing.RSA_SHA256,
              admin_pb2.SIGNATURE_ALGORITHM_ED25519: signing.ED25519}

#: The provider's failure codes as ISO 8583 response codes; any other is 05.
FAILURE_CODES = {
    "INSUFFICIENT_BALANCE": "51",
    "INVALID_PAYMENT_CODE": "14",
    "EXPIRED": "14",
    "USER_FROZEN": "62",
    "LIMIT_EXCEEDED": "61",
    "USER_CANCELLED": "17",
    "SYSTEM_ERROR": "96",
}
PURCHASES_ONLY = "wallets support purchases only"
DONE = ("SUCCESS", "FAILED", "CLOSED")


def response_code(provider_code: Any) -> str:
    """The ISO 8583 response code for a provider's failure code.

    >>> response_code("USER_FROZEN"), response_code("RISK_REJECTED")
    ('62', '05')
    """
    return FAILURE_CODES.get(str(provider_code), "05")


def approval_code(reference: str) -> str:
    """The last six characters of the provider's reference, e.g. ``2025060112345678`` ->
    ``345678``."""
    return reference[-6:].upper().rjust(6, "0")


def masked(payment_code: str) -> str:
    """Payment codes are like PANs: only the last four characters are ever shown."""
    return "*" * max(len(payment_code) - 4, 0) + payment_code[-4:]


def signature_algorithm(endpoint: admin_pb2.WalletEndpoint) -> str:
    """The ``Cs-Algorithm`` the endpoint's ``algorithm`` names; ValueError if unset."""
    if endpoint.algorithm not in ALGORITHMS:
        raise ValueError("wallet.algorithm: must be SIGNATURE_ALGORITHM_RSA_SHA256 or "
                         "SIGNATURE_ALGORITHM_ED25519")
    return ALGORITHMS[endpoint.algorithm]


class WalletChannel:
    """The :class:`switch.channels.base.Channel` for a wallet provider link."""

    def __init__(self, config: LinkConfig, signer: signing.Signer,
                 notifications: NotificationHub, *, poll_interval_s: float = 0.5) -> None:
        self.name = config.name
        self.config = config
        self._endpoint = config.wallet
        self._base = config.wallet.base_url.rstrip("/")
        self._signer = signer
        self._hub = notifications
        self._poll_interval = poll_interval_s
        self._nonces = signing.NonceCache()
        self._session: aiohttp.ClientSession | None = None
        self._state = "UP"  # until a request cannot connect: HTTPS keeps no standing link
        self._in_flight = 0

    def state(self) -> tuple[str, int]:
        return self._state, self._in_flight

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def echo(self, timeout: float) -> bool:
        status, answer = await self._call("echo", "POST", "/v1/echo", {}, timeout)
        return status == 200 and answer.get("status") == "SUCCESS"

    async def capture(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        return ChannelResult("12", reason=PURCHASES_ONLY)

    async def advise(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        """Wallet payments are never stood in, so there is nothing to advise ("12" settles
        a stray queue entry for good)."""
        return ChannelResult("12", reason="wallet payments are never stood in")

    async def authorize(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        if ctx.kind != "purchase":
            return ChannelResult("12", reason=PURCHASES_ONLY)
        deadline = asyncio.get_running_loop().time() + timeout
        body = {"merchant_account": self._endpoint.merchant_account,
                "out_trade_no": ctx.transaction_id, "amount_minor": ctx.amount_minor,
                "currency": ctx.currency, "payment_code": ctx.wallet_token,
                "presentation": ctx.wallet_presentation or "token",
                "notify_url": self._hub.notify_url(self.name),
                "subject": ctx.terminal.name_location.strip()}
        log.debug("link %s: payment %s of %d %s with code %s", self.name, ctx.transaction_id,
                  ctx.amount_minor, ctx.currency, masked(ctx.wallet_token))
        with self._hub.expect(self.name, ctx.transaction_id) as notified:
            status, answer = await self._call("pay", "POST", "/v1/payments", body, timeout)
            if status != 200:
                return _refused(status, answer)
            if answer.get("status") == "PROCESSING":
                answer = await self._outcome(ctx, notified, deadline)
        _check_payment(answer, ctx)
        return _payment_result(answer)

    async def reverse(self, ctx: TxnContext, timeout: float, *, advice: bool) -> ChannelResult:
        """Cancels the original payment: refunded in full if paid, closed if not (or not yet
        arrived). The same call for a void and an advice: a cancel is idempotent."""
        original = ctx.original or {}
        if original.get("type") == "refund":
            return ChannelResult("12", reason="a wallet refund is not reversed: send it again "
                                              "(same transaction id) to learn its outcome")
        out_trade_no = str(original["transaction_id"])
        status, answer = await self._call(
            "cancel", "POST", f"/v1/payments/{quote(out_trade_no, safe='')}/cancel",
            {"merchant_account": self._endpoint.merchant_account}, timeout)
        if status != 200:
            return _refused(status, answer)
        if answer.get("status") not in ("CLOSED", "FAILED"):
            raise LinkBroken(f"link {self.name}: cancel of {out_trade_no} left it "
                             f"{str(answer.get('status'))[:20]}")
        return ChannelResult(responses.APPROVED, reason=str(answer.get("message", "")),
                             provider_reference=str(answer.get("trade_no", "")))

    async def refund(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        original = ctx.original or {}
        body = {"merchant_account": self._endpoint.merchant_account,
                "out_trade_no": str(original["transaction_id"]),
                "out_refund_no": ctx.transaction_id, "amount_minor": ctx.amount_minor,
                "currency": ctx.currency}
        status, answer = await self._call("refund", "POST", "/v1/refunds", body, timeout)
        if status != 200:
            return _refused(status, answer)
        if answer.get("status") != "SUCCESS":
            return _failure(answer)
        refund_no = str(answer.get("refund_no", ""))
        return ChannelResult(responses.APPROVED, approval_code(refund_no),
                             responses.reason(responses.APPROVED), provider_reference=refund_no)

    async def balance(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        body = {"merchant_account": self._endpoint.merchant_account,
                "payment_code": ctx.wallet_token,
                "presentation": ctx.wallet_presentation or "token"}
        status, answer = await self._call("balance", "POST", "/v1/balance", body, timeout)
        if status != 200:
            return _refused(status, answer)
        if answer.get("status") != "SUCCESS":
            return _failure(answer)
        try:
            balances = [(str(b["type"]), str(b["currency"]), int(b["amount_minor"]))
                        for b in answer["balances"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise LinkBroken(f"link {self.name}: balance answer unreadable") from exc
        return ChannelResult(responses.APPROVED, reason=responses.reason(responses.APPROVED),
                             balances=balances)

    async def _outcome(self, ctx: TxnContext, notified: asyncio.Future[dict[str, Any]],
                       deadline: float) -> dict[str, Any]:
        """The payment's final answer: its verified notification, or a query's answer."""
        loop = asyncio.get_running_loop()
        path = (f"/v1/payments/{quote(ctx.transaction_id, safe='')}"
                f"?merchant_account={quote(self._endpoint.merchant_account, safe='')}")
        while (remaining := deadline - loop.time()) > 0:
            try:
                return await asyncio.wait_for(asyncio.shield(notified),
                                              min(self._poll_interval, remaining))
            except TimeoutError:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                status, answer = await self._call("query", "GET", path, None, remaining)
            except ChannelError as exc:
                log.info("link %s: query of %s failed (%s); still waiting", self.name,
                         ctx.transaction_id, exc)
                continue
            if status == 200 and answer.get("status") in DONE:
                return answer
        raise LinkTimeout(f"link {self.name}: payment {ctx.transaction_id} was PROCESSING; "
                          f"no outcome believed by the deadline")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            pem = self._endpoint.ca_certificate_pem
            context = (ssl.create_default_context(cadata=pem) if pem
                       else ssl.create_default_context())
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=100),
                timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def _call(self, endpoint: str, method: str, path: str, body: dict[str, Any] | None,
                    timeout: float) -> tuple[int, dict[str, Any]]:
        """Sends a signed request; the answer's HTTP status and its verified JSON object.
        ``endpoint`` names the operation for metrics (never a path with an id in it)."""
        self._in_flight += 1
        try:
            status, answer = await self._exchange(method, path, body, timeout)
        except ChannelError as exc:
            REQUESTS.labels(self.name, endpoint, type(exc).__name__).inc()
            raise
        finally:
            self._in_flight -= 1
        REQUESTS.labels(self.name, endpoint, str(status)).inc()
        return status, answer

    async def _exchange(self, method: str, path: str, body: dict[str, Any] | None,
                        timeout: float) -> tuple[int, dict[str, Any]]:
        url = URL(self._base + path, encoded=True)
        data = json.dumps(body).encode() if body is not None else b""
        try:
            headers = await signing.sign_request(self._signer, method, url.raw_path_qs, data)
        except signing.SigningFailed as exc:
            raise LinkDown(f"link {self.name}: cannot sign: {exc}") from exc
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(timeout):
                async with self._client().request(method, url, data=data or None,
                                                  headers=headers) as resp:
                    status, raw, answer_headers = resp.status, await resp.read(), resp.headers
        except TimeoutError as exc:
            raise LinkTimeout(f"link {self.name}: no answer to {method} {url.path} within "
                              f"{timeout * 1000:.0f} ms") from exc
        except aiohttp.ClientConnectorError as exc:
            self._state = "DOWN"
            raise LinkDown(f"link {self.name}: cannot connect to {self._base} "
                           f"({type(exc).__name__})") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise LinkBroken(f"link {self.name}: {method} {url.path}: "
                             f"{type(exc).__name__}") from exc
        self._state = "UP"
        if status >= 500:
            raise LinkBroken(f"link {self.name}: {method} {url.path} answered HTTP {status}")
        try:
            signing.verify(answer_headers, method, url.raw_path_qs, raw,
                           self._endpoint.provider_public_key_pem, now=time.time(),
                           nonces=self._nonces)
        except signing.SignatureError as exc:
            raise LinkBroken(f"link {self.name}: answer to {method} {url.path} not believed: "
                             f"{exc}") from exc
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise LinkBroken(f"link {self.name}: answer to {method} {url.path} is not a JSON "
                             f"object")
        return status, answer


def _check_payment(answer: dict[str, Any], ctx: TxnContext) -> None:
    """An answer or notification about another payment, or another amount, is not believed."""
    if answer.get("out_trade_no") != ctx.transaction_id:
        raise LinkBroken(f"wallet answer names payment {str(answer.get('out_trade_no'))[:64]}, "
                         f"not {ctx.transaction_id}")
    if answer.get("status") == "SUCCESS" and (answer.get("amount_minor"),
                                              answer.get("currency")) != (ctx.amount_minor,
                                                                          ctx.currency):
        raise LinkBroken(f"wallet paid {answer.get('amount_minor')} {answer.get('currency')} "
                         f"for {ctx.transaction_id}, not {ctx.amount_minor} {ctx.currency}")


def _payment_result(answer: dict[str, Any]) -> ChannelResult:
    trade_no = str(answer.get("trade_no") or "")
    status = answer.get("status")
    if status == "SUCCESS":
        return ChannelResult(responses.APPROVED, approval_code(trade_no),
                             responses.reason(responses.APPROVED), provider_reference=trade_no)
    if status in ("FAILED", "CLOSED"):
        return _failure(answer)
    raise LinkBroken(f"wallet payment status {str(status)[:20]!r} is not an outcome")


def _failure(answer: dict[str, Any]) -> ChannelResult:
    code = response_code(answer.get("code"))
    return ChannelResult(code, reason=str(answer.get("message") or responses.reason(code)),
                         provider_reference=str(answer.get("trade_no") or ""))


def _refused(status: int, answer: dict[str, Any]) -> ChannelResult:
    """A request the provider refused (HTTP 4xx, e.g. our signature): it did nothing."""
    return ChannelResult("96", reason=f"wallet provider refused the request: HTTP {status} "
                                      f"{str(answer.get('code', ''))[:32]} "
                                      f"{str(answer.get('message', ''))[:120]}".rstrip())
