"""Demo wallet users, their payment codes, and the provider's signing key pair in the HSM.

Users (balances in minor units of USD, the demo terminals' currency):

- ``alipay-alice``: 10,000.00, active; also holds an expired code;
- ``alipay-bob``: 3.00 (low balance);
- ``alipay-carol``: frozen;
- ``alipay-dave``: payments over 50.00 (5000) need confirmation on the phone (PROCESSING,
  then a notification);
- ``wechat-erin``: a WeChat Pay-like user, 10,000.00.

Seeding is idempotent: existing users keep their balance and status unless ``reset``; each run
gives every user a fresh payment code (as the app refreshes it) and writes the codes — what the
phones show — to ``$CARDSWITCH_VAR/wallet/codes.json`` (mode 0600, development data only) and
the provider's public key to ``$CARDSWITCH_VAR/wallet/provider_public_key.pem``.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import delete
from sqlalchemy.orm import Session

from cardswitch import config, db
from cardswitch.v1 import hsm_pb2
from issuer_sim.wallet import codes
from issuer_sim.wallet.ledger import utc_now
from issuer_sim.wallet.models import USER_ACTIVE, USER_FROZEN, PaymentCode, WalletUser
from issuer_sim.wallet.server import PROVIDER_KEY

HSM_TIMEOUT_S = 10.0
KEY_ALGORITHMS = {"rsa-sha256": hsm_pb2.KEY_ALGORITHM_RSA_2048,
                  "ed25519": hsm_pb2.KEY_ALGORITHM_ED25519}


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    provider: str
    balance_minor: int
    status: str = USER_ACTIVE
    confirm_over_minor: int | None = None
    currency: str = "USD"
    single_limit_minor: int = 500_000


DEMO_USERS = (
    DemoUser("alipay-alice", "alipay", 1_000_000),
    DemoUser("alipay-bob", "alipay", 300),
    DemoUser("alipay-carol", "alipay", 1_000_000, status=USER_FROZEN),
    DemoUser("alipay-dave", "alipay", 1_000_000, confirm_over_minor=5000),
    DemoUser("wechat-erin", "wechatpay", 1_000_000),
)
#: Users who also hold an expired code.
EXPIRED_CODE_USERS = ("alipay-alice",)


@dataclass(frozen=True)
class DemoCode:
    user_id: str
    provider: str
    payment_code: str
    qr_payload: str
    expired: bool


@dataclass
class SeedResult:
    codes: list[DemoCode] = field(default_factory=list)
    keys_generated: list[str] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)
    public_key_pem: str = ""
    codes_file: Path | None = None

    def code(self, user_id: str, *, expired: bool = False) -> str:
        """The payment code ``user_id``'s phone shows now (or the expired one)."""
        return next(c.payment_code for c in self.codes
                    if c.user_id == user_id and c.expired == expired)


async def provider_key(hsm: Any, algorithm: str, result: SeedResult) -> str:
    """The provider's public key (PEM), generating its key pair in the HSM if missing."""
    try:
        answer = await hsm.GetPublicKey(hsm_pb2.GetPublicKeyRequest(key_ref=PROVIDER_KEY),
                                        timeout=HSM_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        answer = await hsm.GenerateKeyPair(hsm_pb2.GenerateKeyPairRequest(
            label=PROVIDER_KEY, algorithm=KEY_ALGORITHMS[algorithm]), timeout=HSM_TIMEOUT_S)
        result.keys_generated.append(PROVIDER_KEY)
    return str(answer.public_key_pem)


def seed_users(s: Session, reset: bool, result: SeedResult) -> None:
    now = utc_now()
    for demo in DEMO_USERS:
        user = s.get(WalletUser, demo.user_id)
        if user is None:
            user = WalletUser(user_id=demo.user_id)
            s.add(user)
            result.users_created.append(demo.user_id)
        elif not reset:
            continue
        user.provider, user.status, user.currency = demo.provider, demo.status, demo.currency
        user.balance_minor, user.single_limit_minor = demo.balance_minor, demo.single_limit_minor
        user.confirm_over_minor = demo.confirm_over_minor
    s.flush()
    for demo in DEMO_USERS:
        s.execute(delete(PaymentCode).where(PaymentCode.user_id == demo.user_id))
        kinds = [False, True] if demo.user_id in EXPIRED_CODE_USERS else [False]
        for expired in kinds:
            code = codes.new_code(demo.provider)
            s.add(PaymentCode(code_hash=codes.code_hash(code), last_four=code[-4:],
                              user_id=demo.user_id,
                              expires_at=now - timedelta(minutes=1) if expired else None))
            result.codes.append(DemoCode(demo.user_id, demo.provider, code,
                                         codes.qr_payload(code), expired))


async def seed(hsm: Any, *, url: str | None = None, algorithm: str = "ed25519",
               reset: bool = False, out_dir: Path | None = None) -> SeedResult:
    """Creates the provider's key pair (if missing), the demo users and fresh codes."""
    if algorithm not in KEY_ALGORITHMS:
        raise ValueError(f"algorithm: one of {', '.join(KEY_ALGORITHMS)}, got {algorithm!r}")
    url = url or config.database_url("wallet")
    result = SeedResult()
    result.public_key_pem = await provider_key(hsm, algorithm, result)
    await asyncio.to_thread(_seed_database, url, reset, result)
    out = out_dir or config.var_dir() / "wallet"
    await asyncio.to_thread(_write_files, out, result)
    return result


def _seed_database(url: str, reset: bool, result: SeedResult) -> None:
    db.upgrade(url, "issuer_sim.wallet")
    engine = db.make_engine(url)
    try:
        with db.session_factory(engine).begin() as s:
            seed_users(s, reset, result)
    finally:
        engine.dispose()


def _write_files(out: Path, result: SeedResult) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "provider_public_key.pem").write_text(result.public_key_pem)
    path = out / "codes.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump([asdict(c) for c in result.codes], f, indent=2)
    result.codes_file = path
