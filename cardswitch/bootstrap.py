"""Brings a fresh cluster to a working configuration: keys, cards, issuer link, routes, terminals.

Idempotent: every step tolerates what already exists, so ``./run demo`` can run twice on one
``var/`` directory.
"""

from __future__ import annotations

import grpc

from cardswitch import certs
from cardswitch.launcher import Cluster
from cardswitch.v1 import admin_pb2, admin_pb2_grpc, hsm_pb2, hsm_pb2_grpc

ISSUER_LINK = "issuer-a"
#: A second connection to the same issuer host (a backup line): routes fail over to it.
BACKUP_LINK = "issuer-a-backup"
ISSUER_ZPK = "zpk-issuer"
ISSUER_ZMK = "zmk-issuer"
#: Stand-in limits of the demo issuer: small purchases in USD, three per card and day.
STAND_IN = admin_pb2.StandInRules(
    enabled=True, currency="USD", max_amount_minor=10000,
    max_daily_amount_per_card_minor=20000, max_daily_count_per_card=3)
BREAKER = admin_pb2.CircuitBreaker(failure_threshold=3, open_ms=3000)
#: The switch's key pair for signing requests to wallet providers.
WALLET_SIGNING_KEY = "wallet-switch-signing"
WALLET_LINK = "wallet-sim"
WALLET_PROVIDERS = ("alipay", "wechatpay")
WALLET_MERCHANT = "2088000000000001"
BDK = "bdk-demo"
ROUTES = (("476173", "visa"), ("541333", "mastercard"), ("621234", "unionpay"))
SWITCH_KEYS = (
    (BDK, hsm_pb2.KEY_TYPE_BDK, hsm_pb2.KEY_ALGORITHM_TDES_2KEY),
    ("dek-switch", hsm_pb2.KEY_TYPE_DEK, hsm_pb2.KEY_ALGORITHM_AES_256),
    ("hmac-switch", hsm_pb2.KEY_TYPE_HMAC, hsm_pb2.KEY_ALGORITHM_HMAC_SHA256),
)


async def ensure_keys(hsm_address: str) -> None:
    async with grpc.aio.insecure_channel(hsm_address) as channel:
        stub = hsm_pb2_grpc.HsmServiceStub(channel)
        for label, key_type, algorithm in SWITCH_KEYS:
            await _ignore_exists(stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
                label=label, key_type=key_type, algorithm=algorithm), timeout=10))
        await _ignore_exists(stub.GenerateKeyPair(hsm_pb2.GenerateKeyPairRequest(
            label=WALLET_SIGNING_KEY, algorithm=hsm_pb2.KEY_ALGORITHM_ED25519), timeout=10))


def switch_channel(cluster: Cluster) -> grpc.aio.Channel:
    if cluster.insecure:
        return grpc.aio.insecure_channel(cluster.switch)
    return grpc.aio.secure_channel(cluster.switch, certs.client_credentials(cluster.var / "certs"))


async def _ignore_exists(call: object) -> None:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise


async def configure_switch(cluster: Cluster, terminals: list[tuple[str, str]],
                           issuer_timeout_ms: int = 2000) -> None:
    """Issuer link, BIN routes and ``terminals`` [(terminal id, merchant id)] via AdminService."""
    async with switch_channel(cluster) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for name in (ISSUER_LINK, BACKUP_LINK):
            await _ignore_exists(admin.CreateIssuerLink(admin_pb2.CreateIssuerLinkRequest(
                link=admin_pb2.IssuerLink(
                    name=name, host="127.0.0.1", port=cluster.issuer_port,
                    zpk_key_ref=ISSUER_ZPK, zmk_key_ref=ISSUER_ZMK,
                    timeout_ms=issuer_timeout_ms, acquirer_id="123456",
                    stand_in=STAND_IN, breaker=BREAKER)), timeout=10))
        existing = {r.bin_prefix for r in (await admin.ListRoutes(
            admin_pb2.ListRoutesRequest(), timeout=10)).routes}
        for prefix, brand in ROUTES:
            if prefix not in existing:
                await admin.CreateRoute(admin_pb2.CreateRouteRequest(route=admin_pb2.Route(
                    description=f"{brand} cards of the demo issuer", bin_prefix=prefix,
                    brand=brand, primary_link=ISSUER_LINK, secondary_links=[BACKUP_LINK])),
                    timeout=10)
        if cluster.wallet_port:
            await _configure_wallet(admin, cluster)
        for terminal_id, merchant_id in terminals:
            await _ignore_exists(admin.CreateTerminal(admin_pb2.CreateTerminalRequest(
                terminal=admin_pb2.Terminal(
                    terminal_id=terminal_id, merchant_id=merchant_id, mcc="5411",
                    name_location="CARDSWITCH DEMO STORE  SPRINGFIELD   US", currency="USD",
                    bdk_key_ref=BDK)), timeout=10))


async def _configure_wallet(admin: admin_pb2_grpc.AdminServiceStub, cluster: Cluster) -> None:
    """The wallet provider simulator as a link, and a route per wallet provider to it."""
    provider_key = (cluster.var / "wallet" / "provider_public_key.pem").read_text()
    ca = (cluster.var / "certs" / "ca.pem").read_text()
    await _ignore_exists(admin.CreateIssuerLink(admin_pb2.CreateIssuerLinkRequest(
        link=admin_pb2.IssuerLink(
            name=WALLET_LINK, kind=admin_pb2.CHANNEL_KIND_WALLET, timeout_ms=8000,
            wallet=admin_pb2.WalletEndpoint(
                base_url=f"https://127.0.0.1:{cluster.wallet_port}",
                algorithm=admin_pb2.SIGNATURE_ALGORITHM_ED25519,
                signing_key_ref=WALLET_SIGNING_KEY, provider_public_key_pem=provider_key,
                merchant_account=WALLET_MERCHANT, ca_certificate_pem=ca),
            breaker=BREAKER)), timeout=10))
    existing = {r.wallet_provider for r in (await admin.ListRoutes(
        admin_pb2.ListRoutesRequest(), timeout=10)).routes}
    for provider in WALLET_PROVIDERS:
        if provider not in existing:
            await admin.CreateRoute(admin_pb2.CreateRouteRequest(route=admin_pb2.Route(
                description=f"{provider} payment codes", wallet_provider=provider,
                primary_link=WALLET_LINK)), timeout=10)


async def start_all(cluster: Cluster, terminals: list[tuple[str, str]],
                    issuer_timeout_ms: int = 2000, seed_args: tuple[str, ...] = ()) -> None:
    """Initialises what is missing, starts HSM, issuer and switch, and configures them."""
    lmk = cluster.var / "hsm" / "lmk.key"
    if not lmk.exists():
        cluster.cli("hsm", "init")
    if not cluster.insecure:
        certs.init(cluster.var / "certs")
    cluster.start_hsm()
    await ensure_keys(cluster.hsm)
    cluster.cli("issuer", "seed", "--hsm", cluster.hsm, *seed_args)
    cards = list(seed_args[seed_args.index("--cards"):][:2]) if "--cards" in seed_args else []
    cluster.cli("card", "issue", "--all", "--hsm", cluster.hsm, *cards)
    cluster.start_issuer()
    if cluster.wallet_port:
        certs.init(cluster.var / "certs")
        cluster.cli("wallet", "seed", "--hsm", cluster.hsm)
        cluster.start_wallet()
    cluster.start_switch()
    await configure_switch(cluster, terminals, issuer_timeout_ms)
