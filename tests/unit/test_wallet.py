"""The wallet channel against the wallet provider simulator, both real, over TLS in one process.

Each test starts an HSM (both parties' key pairs), the provider (its own database, demo users
from ``wallet seed``, HTTPS with a certificate of a local CA), the switch's notification server,
and a :class:`WalletChannel` signing through the HSM; then drives the channel as the switch's
pipeline would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from cardswitch import certs, launcher, signing
from cardswitch.v1 import admin_pb2, hsm_pb2
from issuer_sim.wallet import seed, server
from switch.channels.wallet import WalletChannel, signature_algorithm
from switch.context import (
    LinkBroken,
    LinkConfig,
    LinkDown,
    LinkTimeout,
    TerminalConfig,
    TxnContext,
)
from switch.notifications import NotificationHub, NotificationServer
from tests.conftest import pg_schema
from tests.hsm_support import fresh_hsm_home, running_hsm

LINK = "wallet-a"
MERCHANT = "M-100200"
TERMINAL = TerminalConfig("T0000001", MERCHANT, "5812", "Corner Cafe Springfield", "USD", "")
HSM_ALGORITHMS = {signing.RSA_SHA256: hsm_pb2.KEY_ALGORITHM_RSA_2048,
                  signing.ED25519: hsm_pb2.KEY_ALGORITHM_ED25519}
PROTO_ALGORITHMS = {signing.RSA_SHA256: admin_pb2.SIGNATURE_ALGORITHM_RSA_SHA256,
                    signing.ED25519: admin_pb2.SIGNATURE_ALGORITHM_ED25519}


@dataclass
class Env:
    hsm: Any
    seeded: seed.SeedResult
    wallet: server.RunningWallet
    hub: NotificationHub
    notify: NotificationServer
    link: LinkConfig
    channel: WalletChannel
    ca_pem: str
    db_path: Path

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        context = ssl.create_default_context(cadata=self.ca_pem)
        async with aiohttp.ClientSession() as session, session.request(
                method, f"https://127.0.0.1:{self.wallet.port}/control/{path}", json=body,
                ssl=context) as answer:
            return await answer.json()

    async def balance(self, user_id: str) -> int:
        return int((await self.control("GET", f"users/{user_id}"))["balance_minor"])

    async def faults(self, **faults: Any) -> None:
        await self.control("POST", "faults", faults)

    def channel_with(self, **endpoint: Any) -> WalletChannel:
        wallet = admin_pb2.WalletEndpoint()
        wallet.CopyFrom(self.link.wallet)
        for name, value in endpoint.items():
            setattr(wallet, name, value)
        signer = signing.HsmSigner(self.hsm, wallet.signing_key_ref,
                                   signature_algorithm(wallet))
        return WalletChannel(replace(self.link, wallet=wallet), signer, self.hub)


@asynccontextmanager
async def environment(tmp_path: Path, *, switch_algorithm: str = signing.ED25519,
                      provider_algorithm: str = signing.ED25519, notify_delay_ms: int = 150,
                      poll_interval_s: float = 0.5, url: str = "") -> AsyncIterator[Env]:
    async with running_hsm() as (_hsm_server, hsm):
        await hsm.GenerateKeyPair(hsm_pb2.GenerateKeyPairRequest(
            label=server.SWITCH_KEY, algorithm=HSM_ALGORITHMS[switch_algorithm]))
        certs_dir = certs.init(tmp_path / "certs")
        db_path = tmp_path / "wallet.db"
        url = url or f"sqlite:///{db_path}"
        seeded = await seed.seed(hsm, url=url, algorithm=provider_algorithm,
                                 out_dir=tmp_path / "wallet")
        wallet = await server.start(hsm, url=url, certs_dir=certs_dir,
                                    notify_delay_ms=notify_delay_ms)
        ca_pem = (certs_dir / "ca.pem").read_text()
        links: dict[str, LinkConfig] = {}
        hub = NotificationHub()
        notify = NotificationServer(hub, links.get, ssl_context=server.server_ssl(
            certs_dir / "server.pem", certs_dir / "server.key"))
        await notify.start()
        link = LinkConfig(name=LINK, host="127.0.0.1", port=wallet.port, zpk_key_ref="",
                          timeout_ms=5000, acquirer_id="", kind="wallet",
                          wallet=admin_pb2.WalletEndpoint(
                              base_url=f"https://127.0.0.1:{wallet.port}",
                              algorithm=PROTO_ALGORITHMS[switch_algorithm],
                              signing_key_ref=server.SWITCH_KEY,
                              provider_public_key_pem=wallet.public_key_pem,
                              merchant_account=MERCHANT, ca_certificate_pem=ca_pem))
        links[LINK] = link
        signer = signing.HsmSigner(hsm, server.SWITCH_KEY, switch_algorithm)
        channel = WalletChannel(link, signer, hub, poll_interval_s=poll_interval_s)
        try:
            yield Env(hsm, seeded, wallet, hub, notify, link, channel, ca_pem, db_path)
        finally:
            await channel.close()
            await notify.close()
            await wallet.close()


def run(tmp_path: Path, scenario: Callable[[Env], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        async with environment(tmp_path, **options) as env:
            await scenario(env)
    asyncio.run(main())


@pytest.fixture(autouse=True)
def hsm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fresh_hsm_home(tmp_path, monkeypatch)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The provider's database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wallet.db'}"
    else:
        yield from pg_schema()


def txn(payment_code: str, amount_minor: int, *, kind: str = "purchase",
        presentation: str = "token", transaction_id: str = "",
        original: dict[str, Any] | None = None) -> TxnContext:
    return TxnContext(kind=kind, terminal=TERMINAL, stan="000001",
                      local_date_time="20250601120000", request_id=None,
                      deadline=time.monotonic() + 30, amount_minor=amount_minor, currency="USD",
                      wallet_provider="alipay", wallet_token=payment_code,
                      wallet_presentation=presentation,
                      transaction_id=transaction_id or f"T{uuid.uuid4().hex[:20]}",
                      original=original)


def reversal_of(payment: TxnContext) -> TxnContext:
    return txn("", payment.amount_minor, kind="reversal",
               original={"transaction_id": payment.transaction_id, "type": "purchase",
                         "amount_minor": payment.amount_minor, "currency": "USD"})


def refund_of(payment: TxnContext, amount_minor: int, transaction_id: str = "") -> TxnContext:
    return txn("", amount_minor, kind="refund", transaction_id=transaction_id,
               original={"transaction_id": payment.transaction_id, "type": "purchase",
                         "amount_minor": payment.amount_minor, "currency": "USD"})


def notifications(outcome: str, link: str = LINK) -> float:
    return REGISTRY.get_sample_value("cardswitch_wallet_notifications_total",
                                     {"link": link, "outcome": outcome}) or 0.0


@pytest.mark.parametrize(("switch_algorithm", "provider_algorithm", "presentation"), [
    (signing.ED25519, signing.RSA_SHA256, "token"),
    (signing.RSA_SHA256, signing.ED25519, "qr"),
])
def test_a_payment_within_the_balance_is_approved_and_debited(
        tmp_path: Path, switch_algorithm: str, provider_algorithm: str,
        presentation: str) -> None:
    async def scenario(env: Env) -> None:
        code = env.seeded.code("alipay-alice")
        scanned = f"https://qr.wallet.example/{code}" if presentation == "qr" else code
        result = await env.channel.authorize(txn(scanned, 1250, presentation=presentation), 5)
        assert (result.response_code, result.reason) == ("00", "approved")
        assert len(result.provider_reference) == 24
        assert result.approval_code == result.provider_reference[-6:]
        assert await env.balance("alipay-alice") == 1_000_000 - 1250

    run(tmp_path, scenario, switch_algorithm=switch_algorithm,
        provider_algorithm=provider_algorithm)


def test_the_providers_refusals_map_to_iso_response_codes(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        attempts = [
            (env.seeded.code("alipay-bob"), 1250),
            ("281111222233334444", 1250),
            ("991111222233334444", 1250),
            (env.seeded.code("alipay-alice", expired=True), 1250),
            (env.seeded.code("alipay-carol"), 1250),
            (env.seeded.code("alipay-alice"), 600_000),
        ]
        results = [await env.channel.authorize(txn(code, amount), 5)
                   for code, amount in attempts]
        assert [(r.response_code, r.reason) for r in results] == [
            ("51", "balance too low"),
            ("14", "unknown payment code"),
            ("14", "not a payment code of this wallet"),
            ("14", "payment code expired: refresh it in the app"),
            ("62", "the wallet account is frozen"),
            ("61", "over the single payment limit of 500000"),
        ]
        assert await env.balance("alipay-bob") == 300

    run(tmp_path, scenario)


def test_a_payment_awaiting_confirmation_is_approved_on_its_verified_notification(
        tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        accepted = notifications("accepted")
        taken: list[tuple[str, dict[str, Any]]] = []

        async def journal(link: str, payload: dict[str, Any]) -> None:
            taken.append((link, payload))

        env.hub.on_notification = journal
        payment = txn(env.seeded.code("alipay-dave"), 6000)
        result = await env.channel.authorize(payment, 10)
        assert (result.response_code, result.reason) == ("00", "approved")
        assert notifications("accepted") == accepted + 1
        assert [(link, p["out_trade_no"], p["status"]) for link, p in taken] == [
            (LINK, payment.transaction_id, "SUCCESS")]
        stats = await env.control("GET", "stats")
        assert "GET /v1/payments/{out_trade_no}" not in stats["requests"]  # no query needed
        assert await env.balance("alipay-dave") == 1_000_000 - 6000

    run(tmp_path, scenario, poll_interval_s=30)


def test_a_customer_declining_on_the_phone_is_17(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await env.faults(user_cancels_next=1)
        result = await env.channel.authorize(txn(env.seeded.code("alipay-dave"), 6000), 10)
        assert (result.response_code, result.reason) == ("17",
                                                         "the customer declined on the phone")
        assert await env.balance("alipay-dave") == 1_000_000

    run(tmp_path, scenario, poll_interval_s=30)


def test_a_forged_notification_is_refused_and_the_payment_settled_by_query(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="switch.notifications")

    async def scenario(env: Env) -> None:
        accepted, rejected = notifications("accepted"), notifications("rejected")
        await env.faults(forge_notification_signature=True)
        result = await env.channel.authorize(txn(env.seeded.code("alipay-dave"), 6000), 10)
        assert (result.response_code, result.reason) == ("00", "approved")
        for _ in range(50):  # the notification comes after the query saw the payment
            if notifications("rejected") > rejected:
                break
            await asyncio.sleep(0.05)
        assert notifications("rejected") > rejected
        assert notifications("accepted") == accepted
        stats = await env.control("GET", "stats")
        assert stats["requests"]["GET /v1/payments/{out_trade_no}"] >= 1
        assert stats["notifications_acknowledged"] == 0

    run(tmp_path, scenario, notify_delay_ms=100, poll_interval_s=0.5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "rejected wallet notification for link wallet-a: signature does not verify" in warnings


def test_a_forged_notification_alone_never_settles_a_payment(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await env.faults(forge_notification_signature=True)
        payment = txn(env.seeded.code("alipay-dave"), 6000)
        with pytest.raises(LinkTimeout) as caught:
            await env.channel.authorize(payment, 1.5)
        assert str(caught.value) == (f"link wallet-a: payment {payment.transaction_id} was "
                                     "PROCESSING; no outcome believed by the deadline")
        # The customer did pay: the reversal the switch owes gives it back.
        assert await env.balance("alipay-dave") == 1_000_000 - 6000
        result = await env.channel.reverse(reversal_of(payment), 5, advice=True)
        assert (result.response_code, result.reason) == ("00", "cancelled: refunded in full")
        assert await env.balance("alipay-dave") == 1_000_000

    run(tmp_path, scenario, notify_delay_ms=100, poll_interval_s=60)


def test_a_payment_sent_again_is_charged_once(tmp_path: Path, database: str) -> None:
    async def scenario(env: Env) -> None:
        payment = txn(env.seeded.code("alipay-alice"), 2000)
        first = await env.channel.authorize(payment, 5)
        again = await asyncio.gather(*(env.channel.authorize(payment, 5) for _ in range(3)))
        assert {(r.response_code, r.provider_reference) for r in [first, *again]} == {
            ("00", first.provider_reference)}
        assert await env.balance("alipay-alice") == 1_000_000 - 2000

    run(tmp_path, scenario, url=database)


def test_a_cancel_refunds_a_paid_payment_in_full_once(tmp_path: Path, database: str) -> None:
    async def scenario(env: Env) -> None:
        payment = txn(env.seeded.code("wechat-erin"), 2500)
        paid = await env.channel.authorize(payment, 5)
        void = await env.channel.reverse(reversal_of(payment), 5, advice=False)
        again = await env.channel.reverse(reversal_of(payment), 5, advice=True)
        assert [(r.response_code, r.reason, r.provider_reference) for r in (void, again)] == [
            ("00", "cancelled: refunded in full", paid.provider_reference),
            ("00", "cancelled: refunded in full", paid.provider_reference)]
        assert await env.balance("wechat-erin") == 1_000_000

    run(tmp_path, scenario, url=database)


def test_a_payment_arriving_after_its_reversal_is_refused(tmp_path: Path, database: str) -> None:
    async def scenario(env: Env) -> None:
        payment = txn(env.seeded.code("alipay-alice"), 3000)
        void = await env.channel.reverse(reversal_of(payment), 5, advice=True)
        assert (void.response_code, void.reason) == ("00", "closed before the payment arrived")
        late = await env.channel.authorize(payment, 5)
        assert (late.response_code, late.reason) == ("05", "closed before the payment arrived")
        assert await env.balance("alipay-alice") == 1_000_000

    run(tmp_path, scenario, url=database)


def test_partial_refunds_up_to_the_paid_amount(tmp_path: Path, database: str) -> None:
    async def scenario(env: Env) -> None:
        payment = txn(env.seeded.code("alipay-alice"), 5000)
        assert (await env.channel.authorize(payment, 5)).response_code == "00"
        first = refund_of(payment, 2000)
        results = [await env.channel.refund(first, 5),
                   await env.channel.refund(first, 5),  # sent again: refunded once
                   await env.channel.refund(refund_of(payment, 3500), 5),
                   await env.channel.refund(refund_of(payment, 3000), 5)]
        assert [(r.response_code, r.reason) for r in results] == [
            ("00", "approved"), ("00", "approved"),
            ("05", "refund of 3500 exceeds the refundable 3000"), ("00", "approved")]
        assert results[0].provider_reference == results[1].provider_reference
        assert results[0].provider_reference != results[3].provider_reference
        assert await env.balance("alipay-alice") == 1_000_000

    run(tmp_path, scenario, url=database)


def test_an_answer_with_a_bad_signature_is_no_answer(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await env.faults(forge_answer_signature=True)
        payment = txn(env.seeded.code("alipay-alice"), 4000)
        with pytest.raises(LinkBroken, match="answer to POST /v1/payments not believed: "
                                             "signature does not verify"):
            await env.channel.authorize(payment, 5)
        assert await env.balance("alipay-alice") == 1_000_000 - 4000  # it did charge
        await env.faults(forge_answer_signature=False)
        await env.channel.reverse(reversal_of(payment), 5, advice=True)
        assert await env.balance("alipay-alice") == 1_000_000

    run(tmp_path, scenario)


def test_requests_signed_with_a_key_the_provider_does_not_know_are_refused(
        tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await env.hsm.GenerateKeyPair(hsm_pb2.GenerateKeyPairRequest(
            label="impostor", algorithm=hsm_pb2.KEY_ALGORITHM_ED25519))
        impostor = env.channel_with(signing_key_ref="impostor")
        try:
            result = await impostor.authorize(txn(env.seeded.code("alipay-alice"), 1000), 5)
        finally:
            await impostor.close()
        assert (result.response_code, result.reason) == (
            "96", "wallet provider refused the request: HTTP 401 INVALID_SIGNATURE "
                  "signature does not verify")
        assert (await env.control("GET", "stats"))["rejected_signatures"] == 1
        assert await env.balance("alipay-alice") == 1_000_000

    run(tmp_path, scenario)


def test_transport_failures_are_channel_errors(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="issuer_sim.wallet.server")

    async def scenario(env: Env) -> None:
        code = env.seeded.code("alipay-alice")
        await env.faults(fail_http_500_next=1)
        with pytest.raises(LinkBroken, match="answered HTTP 500"):
            await env.channel.authorize(txn(code, 100), 5)
        await env.faults(drop_connection_next=1)
        with pytest.raises(LinkBroken, match="POST /v1/payments: ServerDisconnectedError"):
            await env.channel.authorize(txn(code, 100), 5)
        assert await env.balance("alipay-alice") == 1_000_000 - 100  # the dropped answer's
        await env.faults(delay_ms=1000)
        slow = txn(code, 100)
        with pytest.raises(LinkTimeout, match="no answer to POST /v1/payments within 300 ms"):
            await env.channel.authorize(slow, 0.3)
        await env.faults(delay_ms=0)
        void = await env.channel.reverse(reversal_of(slow), 5, advice=True)
        assert (void.response_code, void.reason) == ("00", "closed before the payment arrived")
        await asyncio.sleep(1)  # the slow request is handled now, after its reversal: refused
        assert (f"payment {slow.transaction_id} of 100 USD with code **************{code[-4:]}:"
                f" CLOSED TRADE_CLOSED") in caplog.text
        assert await env.balance("alipay-alice") == 1_000_000 - 100
        assert env.channel.state() == ("UP", 0)

    run(tmp_path, scenario)


def test_a_provider_not_listening_is_link_down(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        base_url = f"https://127.0.0.1:{launcher.free_port()}"
        down = env.channel_with(base_url=base_url)
        try:
            with pytest.raises(LinkDown) as caught:
                await down.authorize(txn(env.seeded.code("alipay-alice"), 100), 5)
            assert str(caught.value) == (f"link wallet-a: cannot connect to {base_url} "
                                         "(ClientConnectorError)")
            assert down.state() == ("DOWN", 0)
        finally:
            await down.close()

    run(tmp_path, scenario)


def test_preauth_and_capture_are_not_for_wallets(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        code = env.seeded.code("alipay-alice")
        results = [await env.channel.authorize(txn(code, 100, kind="preauth"), 5),
                   await env.channel.capture(txn(code, 100, kind="capture"), 5)]
        assert [(r.response_code, r.reason) for r in results] == [
            ("12", "wallets support purchases only")] * 2

    run(tmp_path, scenario)


def test_balance_inquiry_and_echo(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        result = await env.channel.balance(txn(env.seeded.code("wechat-erin"), 0,
                                               kind="balance"), 5)
        assert (result.response_code, result.balances) == ("00",
                                                           [("available", "USD", 1_000_000)])
        frozen = await env.channel.balance(txn(env.seeded.code("alipay-carol"), 0,
                                               kind="balance"), 5)
        assert (frozen.response_code, frozen.reason) == ("62", "the wallet account is frozen")
        assert await env.channel.echo(5) is True

    run(tmp_path, scenario)


def test_the_notification_server_believes_only_signed_fresh_notifications(
        tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        provider, _ = await signing.HsmSigner.from_hsm(env.hsm, server.PROVIDER_KEY)
        url = env.hub.notify_url(LINK)
        path = f"/wallet/notify/{LINK}"
        body = json.dumps({"notification_id": "n-1", "out_trade_no": "T-1",
                           "trade_no": "2025", "status": "SUCCESS", "amount_minor": 1,
                           "currency": "USD"}).encode()
        context = ssl.create_default_context(cadata=env.ca_pem)
        statuses = []
        async with aiohttp.ClientSession() as session:
            async def post(target: str, headers: dict[str, str]) -> int:
                async with session.post(target, data=body, headers=headers,
                                        ssl=context) as answer:
                    return answer.status

            first = await signing.sign_request(provider, "POST", path, body)
            statuses.append(await post(url, first))
            statuses.append(await post(url, first))  # the same bytes again: a replay
            statuses.append(await post(url, await signing.sign_request(
                provider, "POST", path, body)))  # a repeat: signed afresh
            stale = await signing.sign_request(provider, "POST", path, body,
                                               now=time.time() - 600)
            statuses.append(await post(url, stale))
            other = url.replace(LINK, "no-such-link")
            statuses.append(await post(other, await signing.sign_request(
                provider, "POST", "/wallet/notify/no-such-link", body)))
        assert statuses == [200, 401, 200, 401, 401]

    before = {o: notifications(o) for o in ("accepted", "duplicate", "rejected")}
    unknown = notifications("rejected", "unknown")
    run(tmp_path, scenario)
    assert {o: notifications(o) - before[o] for o in before} == {
        "accepted": 1, "duplicate": 1, "rejected": 2}
    assert notifications("rejected", "unknown") == unknown + 1


def test_logs_and_the_providers_database_hold_no_clear_payment_code(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    codes: list[str] = []

    async def scenario(env: Env) -> None:
        codes.extend([env.seeded.code("alipay-alice"), env.seeded.code("alipay-bob")])
        for code in codes:
            await env.channel.authorize(txn(code, 1250), 5)
            await env.channel.authorize(txn(f"https://qr.wallet.example/{code}", 1250,
                                            presentation="qr"), 5)

    run(tmp_path, scenario)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("wallet.db*"))
    for code in codes:
        assert code not in caplog.text
        assert code.encode() not in stored
        assert f"with code **************{code[-4:]}" in caplog.text
