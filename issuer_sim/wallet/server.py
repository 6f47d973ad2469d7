"""The wallet provider's HTTPS API (JSON, every request and answer signed) and test control.

API, for the merchant (the switch); amounts are integer minor units with an ISO 4217 code:

- ``POST /v1/payments`` {merchant_account, out_trade_no, amount_minor, currency, payment_code,
  presentation ("qr"|"token"), notify_url, subject} -> {status SUCCESS|PROCESSING|FAILED,
  trade_no, code, message, paid_at...}; the same out_trade_no again: the same answer;
- ``GET /v1/payments/{out_trade_no}?merchant_account=M`` -> the payment, or 404 TRADE_NOT_EXIST;
- ``POST /v1/payments/{out_trade_no}/cancel`` {merchant_account} -> the payment, CLOSED, with
  ``action`` refunded|closed|none (idempotent);
- ``POST /v1/refunds`` {merchant_account, out_trade_no, out_refund_no, amount_minor};
- ``POST /v1/balance`` {merchant_account, payment_code, presentation}; ``POST /v1/echo``.

A request whose signature does not verify under the switch's public key is answered 401
INVALID_SIGNATURE; bad input 400 INVALID_PARAMETER naming the field. Answers are signed over the
request's method and path. ``/control/`` (faults, stats, users; see
:mod:`issuer_sim.wallet.control`) is not signed and answers only callers on the loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from cardswitch import certs, config, db, logs, signing
from cardswitch.v1 import hsm_pb2
from issuer_sim.wallet import codes
from issuer_sim.wallet.control import Faults, Stats
from issuer_sim.wallet.ledger import Ledger, PaymentRequest
from issuer_sim.wallet.notifier import Notifier

log = logging.getLogger(__name__)

PROVIDER_KEY = "wallet-provider-signing"
SWITCH_KEY = "wallet-switch-signing"
LOOPBACK = ("127.0.0.1", "::1")

_OUT_NO = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CURRENCY = re.compile(r"[A-Z]{3}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


class SwitchKey:
    """The switch's public key: given, or fetched from the HSM once it exists there."""

    def __init__(self, hsm: Any, key_ref: str, pem: str = "") -> None:
        self._hsm, self._key_ref, self._pem = hsm, key_ref, pem

    async def pem(self) -> str:
        if not self._pem:
            try:
                answer = await self._hsm.GetPublicKey(
                    hsm_pb2.GetPublicKeyRequest(key_ref=self._key_ref), timeout=2.0)
            except grpc.aio.AioRpcError as exc:
                raise signing.SignatureError(f"the switch's public key {self._key_ref} is not "
                                             f"available ({exc.code().name})") from None
            self._pem = str(answer.public_key_pem)
        return self._pem


def _text(body: dict[str, Any], name: str, *, max_len: int,
          pattern: re.Pattern[str] | None = None, required: bool = True) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise BadRequest(name, "must be a string")
    if required and not value:
        raise BadRequest(name, "is required")
    if len(value) > max_len:
        raise BadRequest(name, f"longer than {max_len} characters")
    if value and pattern is not None and not pattern.fullmatch(value):
        raise BadRequest(name, f"must match {pattern.pattern}")
    return value


def _amount(body: dict[str, Any], name: str = "amount_minor") -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(name, "must be a positive integer (minor units)")
    return value


class WalletApi:
    """The aiohttp application: signed API routes and the loopback-only control routes."""

    def __init__(self, ledger: Ledger, signer: signing.Signer, switch_key: SwitchKey,
                 faults: Faults, stats: Stats, notifier: Notifier) -> None:
        self._ledger = ledger
        self._signer = signer
        self._forger = signing.LocalSigner.generate(signer.algorithm, signer.key_id)
        self._switch_key = switch_key
        self._faults = faults
        self._stats = stats
        self._notifier = notifier
        self._nonces = signing.NonceCache()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes([
            web.post("/v1/payments", self.pay),
            web.get("/v1/payments/{out_trade_no}", self.query),
            web.post("/v1/payments/{out_trade_no}/cancel", self.cancel),
            web.post("/v1/refunds", self.refund),
            web.post("/v1/balance", self.balance),
            web.post("/v1/echo", self.echo),
            web.get("/control/faults", self.get_faults),
            web.post("/control/faults", self.set_faults),
            web.get("/control/stats", self.get_stats),
            web.get("/control/users/{user_id}", self.get_user),
        ])
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/control/"):
            if request.remote not in LOOPBACK:
                return web.json_response({"code": "FORBIDDEN"}, status=403)
            return await handler(request)
        resource = request.match_info.route.resource
        self._stats.requests[f"{request.method} "
                             f"{resource.canonical if resource else 'unknown'}"] += 1
        body = await request.read()  # before any delay: the request has fully arrived
        if self._faults.delay_ms:
            await asyncio.sleep(self._faults.delay_ms / 1000)
        if self._faults.take("fail_http_500_next"):
            return web.json_response({"code": "SYSTEM_ERROR", "message": "injected fault"},
                                     status=500)
        status, answer = await self._handle(request, body, handler)
        if self._faults.take("drop_connection_next") and request.transport is not None:
            request.transport.abort()  # handled; aiohttp cannot send the answer, and drops it
        return await self._signed(request, status, answer)

    async def _handle(self, request: web.Request, body: bytes,
                      handler: Handler) -> tuple[int, Any]:
        try:
            signing.verify(request.headers, request.method, request.raw_path, body,
                           await self._switch_key.pem(), now=time.time(), nonces=self._nonces)
        except signing.SignatureError as exc:
            self._stats.rejected_signatures += 1
            log.warning("refused %s %s: %s", request.method, request.path, exc)
            return 401, {"code": "INVALID_SIGNATURE", "message": str(exc)}
        try:
            response = await handler(request)
        except BadRequest as exc:
            return 400, {"code": "INVALID_PARAMETER", "message": str(exc)}
        except web.HTTPException as exc:
            return exc.status, {"code": exc.reason.upper().replace(" ", "_"),
                                "message": exc.reason}
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        return response.status, json.loads(response.body)

    async def _signed(self, request: web.Request, status: int, answer: Any) -> web.Response:
        body = json.dumps(answer).encode()
        signer = self._forger if self._faults.forge_answer_signature else self._signer
        headers = await signing.sign_request(signer, request.method, request.raw_path, body)
        return web.Response(body=body, status=status, headers=headers,
                            content_type="application/json")

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise BadRequest("body", "not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body", "must be a JSON object")
        return body

    async def pay(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        presentation = _text(body, "presentation", max_len=8)
        if presentation not in codes.PRESENTATIONS:
            raise BadRequest("presentation", f"one of {', '.join(codes.PRESENTATIONS)}")
        notify_url = _text(body, "notify_url", max_len=1024, required=False)
        if notify_url and not notify_url.startswith("https://"):
            raise BadRequest("notify_url", "must be an https:// URL")
        req = PaymentRequest(
            merchant_account=_text(body, "merchant_account", max_len=64),
            out_trade_no=_text(body, "out_trade_no", max_len=64, pattern=_OUT_NO),
            amount_minor=_amount(body), currency=_text(body, "currency", max_len=3,
                                                       pattern=_CURRENCY),
            payment_code=_text(body, "payment_code", max_len=256),
            presentation=presentation, notify_url=notify_url,
            subject=_text(body, "subject", max_len=128, required=False))
        answer = await self._ledger.pay(req)
        log.info("payment %s of %d %s with code %s: %s %s", req.out_trade_no, req.amount_minor,
                 req.currency, codes.masked(req.payment_code), answer["status"], answer["code"])
        if answer["status"] == "PROCESSING":
            self._notifier.wake()
        return web.json_response(answer)

    async def query(self, request: web.Request) -> web.Response:
        merchant = request.query.get("merchant_account", "")
        answer = await self._ledger.query(merchant, request.match_info["out_trade_no"])
        if answer is None:
            return web.json_response({"code": "TRADE_NOT_EXIST", "message": "no such payment"},
                                     status=404)
        return web.json_response(answer)

    async def cancel(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        out_trade_no = request.match_info["out_trade_no"]
        if not _OUT_NO.fullmatch(out_trade_no):
            raise BadRequest("out_trade_no", f"must match {_OUT_NO.pattern}")
        answer = await self._ledger.cancel(_text(body, "merchant_account", max_len=64),
                                           out_trade_no)
        log.info("cancel %s: %s", out_trade_no, answer["action"])
        return web.json_response(answer)

    async def refund(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        answer = await self._ledger.refund(
            _text(body, "merchant_account", max_len=64),
            _text(body, "out_trade_no", max_len=64, pattern=_OUT_NO),
            _text(body, "out_refund_no", max_len=64, pattern=_OUT_NO), _amount(body))
        return web.json_response(answer)

    async def balance(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        _text(body, "merchant_account", max_len=64)
        answer = await self._ledger.balance(_text(body, "payment_code", max_len=256),
                                            str(body.get("presentation") or "token"))
        return web.json_response(answer)

    async def echo(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "SUCCESS", "time": int(time.time())})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults.as_dict())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            self._faults.update(await request.json())
        except (ValueError, AttributeError) as exc:
            return web.json_response({"code": "INVALID_PARAMETER", "message": str(exc)},
                                     status=400)
        return web.json_response(self._faults.as_dict())

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._stats.as_dict())

    async def get_user(self, request: web.Request) -> web.Response:
        user = await self._ledger.user(request.match_info["user_id"])
        if user is None:
            return web.json_response({"code": "USER_NOT_EXIST"}, status=404)
        return web.json_response(user)


def server_ssl(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class RunningWallet:
    runner: web.AppRunner
    port: int
    ledger: Ledger
    faults: Faults
    stats: Stats
    notifier_task: asyncio.Task[None]
    #: The provider's public key (PEM), for the switch's link configuration.
    public_key_pem: str

    async def close(self) -> None:
        self.notifier_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.notifier_task
        await self.runner.cleanup()
        await asyncio.to_thread(self.ledger.close)


async def start(hsm: Any, *, port: int = 0, host: str = "127.0.0.1", url: str | None = None,
                certs_dir: Path | None = None, notify_delay_ms: int = 2000,
                provider_key_ref: str = PROVIDER_KEY, switch_key_ref: str = SWITCH_KEY,
                switch_public_key_pem: str = "") -> RunningWallet:
    """Migrates the tables and serves HTTPS on ``host:port`` (0: a free port). ``hsm`` is an
    HsmService stub holding the provider's key pair (made by ``cardswitch wallet seed``)."""
    url = url or config.database_url("wallet")
    await asyncio.to_thread(db.upgrade, url, "issuer_sim.wallet")
    try:
        signer, public_key_pem = await signing.HsmSigner.from_hsm(hsm, provider_key_ref)
    except signing.SigningFailed as exc:
        raise ValueError(f"{exc}: run `cardswitch wallet seed` first") from None
    cert, key = await asyncio.to_thread(certs.issue_server_certificate, "wallet", certs_dir)
    client_ssl = ssl.create_default_context(cafile=cert.parent / "ca.pem")
    ledger = Ledger(url, confirm_delay=timedelta(milliseconds=notify_delay_ms))
    faults, stats = Faults(), Stats()
    notifier = Notifier(ledger, signer, faults, stats, client_ssl)
    api = WalletApi(ledger, signer, SwitchKey(hsm, switch_key_ref, switch_public_key_pem),
                    faults, stats, notifier)
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=server_ssl(cert, key))
    await site.start()
    bound = int(runner.addresses[0][1])
    task = asyncio.create_task(notifier.run(), name="wallet-notifier")
    log.info("wallet provider on https://%s:%d, signing with %s (%s)", host, bound,
             provider_key_ref, signer.algorithm)
    return RunningWallet(runner, bound, ledger, faults, stats, task, public_key_pem)


async def serve(port: int, hsm_address: str, *, host: str = "127.0.0.1",
                notify_delay_ms: int = 2000, switch_public_key_pem: str = "") -> None:
    """Runs the provider until SIGTERM/SIGINT; prints its ready line once it listens."""
    logs.setup("wallet")
    async with grpc.aio.insecure_channel(hsm_address) as channel:
        from cardswitch.v1 import hsm_pb2_grpc
        stub: Any = hsm_pb2_grpc.HsmServiceStub(channel)
        running = await start(stub, port=port, host=host, notify_delay_ms=notify_delay_ms,
                              switch_public_key_pem=switch_public_key_pem)
        print(f"WALLET ready on {host}:{running.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        await running.close()
