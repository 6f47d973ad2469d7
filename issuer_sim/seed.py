"""Issuing the test cards: keys in the HSM, accounts in the issuer database, the card file.

For each card of ``cardswitch/testcards.yaml`` the HSM derives the IBM 3624 PIN offset from the
chosen PIN, the PAN token (keyed hash) and PAN ciphertext, and the CVVs; the issuer stores the
account with the token, the ciphertext and the offset, never the PAN or the PIN.

Seeding is idempotent: an existing account keeps its balance, status and PIN tries (only the
values the HSM derives are refreshed if its keys changed); ``reset`` puts an account back to
the file's values and releases its open holds.

The card file ``$CARDSWITCH_VAR/issuer/cards.json`` is the personalisation output (what would be
embossed and encoded on the plastic): PAN, PIN, expiry, CVV2 and track 2 per card. Terminals and
the demo read it. It holds clear card data by design, so it is written mode 0600 and only ever
for these development cards.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from sqlalchemy import update

from cardswitch import config, db
from cardswitch.cards import brand_of, validate_pan
from cardswitch.embossing import EmbossedCard
from cardswitch.v1 import hsm_pb2, hsm_pb2_grpc
from issuer_sim import open_to_buy
from issuer_sim.chip import IMK_AC_REF, IMK_SMC_REF, IMK_SMI_REF
from issuer_sim.models import ACCOUNT_STATUSES, AUTH_APPROVED, Account, Authorization
from issuer_sim.processing import (
    CVK_REF,
    CVV2_SERVICE_CODE,
    DEK_REF,
    HMAC_REF,
    PVK_REF,
    utc_now,
)
from issuer_sim.zone_keys import ZMK_REF, ZPK_REF

log = logging.getLogger(__name__)

DEFAULT_CARDS = config.ROOT / "cardswitch" / "testcards.yaml"
HSM_TIMEOUT_S = 10.0

#: The issuer's keys: label, type, algorithm. The switch shares zpk-issuer as its first zone PIN
#: key for this issuer in the demo, and zmk-issuer as the zone master key it sends new ones
#: under (0800/161). The ZMK is AES: a TR-31 version D block under it carries a TDES zone PIN
#: key as well as an AES one, where a TDES ZMK could not carry an AES key.
ISSUER_KEYS: tuple[tuple[str, hsm_pb2.KeyType, hsm_pb2.KeyAlgorithm], ...] = (
    (ZPK_REF, hsm_pb2.KEY_TYPE_ZPK, hsm_pb2.KEY_ALGORITHM_TDES_2KEY),
    (ZMK_REF, hsm_pb2.KEY_TYPE_ZMK, hsm_pb2.KEY_ALGORITHM_AES_256),
    (PVK_REF, hsm_pb2.KEY_TYPE_PVK, hsm_pb2.KEY_ALGORITHM_TDES_2KEY),
    (CVK_REF, hsm_pb2.KEY_TYPE_CVK, hsm_pb2.KEY_ALGORITHM_TDES_2KEY),
    (DEK_REF, hsm_pb2.KEY_TYPE_DEK, hsm_pb2.KEY_ALGORITHM_AES_256),
    (HMAC_REF, hsm_pb2.KEY_TYPE_HMAC, hsm_pb2.KEY_ALGORITHM_HMAC_SHA256),
    (IMK_AC_REF, hsm_pb2.KEY_TYPE_IMK_AC, hsm_pb2.KEY_ALGORITHM_TDES_2KEY),
    (IMK_SMI_REF, hsm_pb2.KEY_TYPE_IMK_SMI, hsm_pb2.KEY_ALGORITHM_TDES_2KEY),
    (IMK_SMC_REF, hsm_pb2.KEY_TYPE_IMK_SMC, hsm_pb2.KEY_ALGORITHM_TDES_2KEY),
)
#: Track 2 discretionary data: PIN verification key index, then a PVV this issuer does not use.
PVKI, PVV = "1", "0000"
#: Track 2 holds at most 37 characters (ISO/IEC 7813), DE 35 too.
TRACK2_MAX = 37


@dataclass(frozen=True)
class CardSpec:
    """One card of the test cards file."""

    account_id: str
    pan: str
    brand: str
    pin: str
    expiry_yymm: str
    service_code: str
    status: str
    currency: str
    balance_minor: int
    daily_limit_minor: int
    blocked_mccs: str


@dataclass(frozen=True)
class SeedResult:
    created: list[str]
    reset: list[str]
    refreshed: list[str]
    unchanged: list[str]
    keys_generated: list[str]
    card_file: Path


def load_cards(path: Path) -> list[CardSpec]:
    """Reads and checks the cards file; ValueError names the card and field at fault."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("cards"), list):
        raise ValueError(f"{path}: expected a mapping with a 'cards' list")
    default_currency = str(data.get("currency", "USD"))
    cards = []
    for i, raw in enumerate(data["cards"]):
        where = f"{path}: cards[{i}]"
        try:
            mccs = raw.get("blocked_mccs", "")
            card = CardSpec(
                account_id=str(raw["account_id"]), pan=str(raw["pan"]),
                brand=str(raw.get("brand") or brand_of(str(raw["pan"]))), pin=str(raw["pin"]),
                expiry_yymm=str(raw["expiry_yymm"]), service_code=str(raw["service_code"]),
                status=str(raw.get("status", "active")),
                currency=str(raw.get("currency", default_currency)),
                balance_minor=int(raw["balance_minor"]),
                daily_limit_minor=int(raw["daily_limit_minor"]),
                blocked_mccs=",".join(map(str, mccs)) if isinstance(mccs, list) else str(mccs))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {type(exc).__name__} {exc}") from exc
        problem = validate_pan(card.pan, f"{where}.pan")
        if problem:
            raise ValueError(problem)
        if card.status not in ACCOUNT_STATUSES:
            raise ValueError(f"{where}.status: {card.status!r} is not one of {ACCOUNT_STATUSES}")
        cards.append(card)
    return cards


def card_file_path() -> Path:
    return config.var_dir() / "issuer" / "cards.json"


class _Hsm:
    """The few HSM calls issuance needs, on a blocking channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub_class: Any = hsm_pb2_grpc.HsmServiceStub  # generated code has no annotations
        self._stub = stub_class(channel)

    def ensure_keys(self) -> list[str]:
        """Generates each issuer key the HSM does not have yet; returns their labels."""
        generated = []
        for label, key_type, algorithm in ISSUER_KEYS:
            try:
                self._stub.GetKey(hsm_pb2.GetKeyRequest(key_ref=label), timeout=HSM_TIMEOUT_S)
                continue
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            try:
                self._stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
                    label=label, key_type=key_type, algorithm=algorithm), timeout=HSM_TIMEOUT_S)
                generated.append(label)
            except grpc.RpcError as exc:  # another seeder was quicker
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
        return generated

    def pin_offset(self, pan: str, pin: str) -> str:
        return str(self._stub.GeneratePinOffset(hsm_pb2.GeneratePinOffsetRequest(
            pvk_key_ref=PVK_REF, pan=pan, pin=pin), timeout=HSM_TIMEOUT_S).offset)

    def protect(self, pan: str) -> Any:
        return self._stub.ProtectPan(hsm_pb2.ProtectPanRequest(
            hmac_key_ref=HMAC_REF, dek_key_ref=DEK_REF, pan=pan), timeout=HSM_TIMEOUT_S)

    def cvv(self, pan: str, expiry_yymm: str, service_code: str) -> str:
        return str(self._stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref=CVK_REF, pan=pan, expiry_yymm=expiry_yymm, service_code=service_code),
            timeout=HSM_TIMEOUT_S).cvv)


def seed(hsm_address: str, cards_path: Path = DEFAULT_CARDS, *, reset: bool = False,
         url: str | None = None) -> SeedResult:
    """Issues every card of ``cards_path`` through the HSM at ``hsm_address``."""
    cards = load_cards(cards_path)
    url = url or config.database_url("issuer")
    db.upgrade(url, "issuer_sim")
    engine = db.make_engine(url, pool_size=1)
    sessions = db.session_factory(engine)
    outcome: dict[str, list[str]] = {"created": [], "reset": [], "refreshed": [],
                                     "unchanged": []}
    plastics = []
    try:
        with grpc.insecure_channel(hsm_address) as channel:
            grpc.channel_ready_future(channel).result(timeout=HSM_TIMEOUT_S)
            hsm = _Hsm(channel)
            generated = hsm.ensure_keys()
            for card in cards:
                offset = hsm.pin_offset(card.pan, card.pin)
                protected = hsm.protect(card.pan)
                with sessions.begin() as s:
                    what = _upsert(s, card, offset, protected, reset)
                outcome[what].append(card.account_id)
                cvv1 = hsm.cvv(card.pan, card.expiry_yymm, card.service_code)
                plastics.append(EmbossedCard(
                    account_id=card.account_id, pan=card.pan, brand=card.brand, pin=card.pin,
                    expiry_yymm=card.expiry_yymm, service_code=card.service_code,
                    cvv2=hsm.cvv(card.pan, card.expiry_yymm, CVV2_SERVICE_CODE),
                    track2=track2(card, cvv1)))
    finally:
        engine.dispose()
    path = write_card_file(plastics)
    log.info("issued %d cards (%s); card file %s", len(cards),
             ", ".join(f"{len(v)} {k}" for k, v in outcome.items()), path)
    return SeedResult(keys_generated=generated, card_file=path, **outcome)


def _upsert(s: Any, card: CardSpec, offset: str, protected: Any, reset: bool) -> str:
    # A reset rewrites the open-to-buy counters: under the row lock, like every posting.
    account = s.get(Account, card.account_id, with_for_update=reset)
    if account is None:
        s.add(Account(
            account_id=card.account_id, pan_token=protected.pan_token,
            last_four=protected.last_four, encrypted_pan=protected.encrypted_pan,
            expiry_yymm=card.expiry_yymm, service_code=card.service_code, status=card.status,
            currency=card.currency, balance_minor=card.balance_minor,
            daily_limit_minor=card.daily_limit_minor, pin_offset=offset, pin_tries=0,
            blocked_mccs=card.blocked_mccs, created_at=utc_now()))
        return "created"
    derived = {"pin_offset": offset, "expiry_yymm": card.expiry_yymm,
               "service_code": card.service_code, "pan_token": protected.pan_token,
               "last_four": protected.last_four}
    changed = {k: v for k, v in derived.items() if getattr(account, k) != v}
    if "pan_token" in changed:  # new HSM keys: the old ciphertext no longer decrypts either
        changed["encrypted_pan"] = protected.encrypted_pan
    if reset:
        changed.update(status=card.status, currency=card.currency,
                       balance_minor=card.balance_minor,
                       daily_limit_minor=card.daily_limit_minor, pin_tries=0,
                       blocked_mccs=card.blocked_mccs)
        s.execute(update(Authorization)
                  .where(Authorization.account_id == card.account_id,
                         Authorization.status == AUTH_APPROVED, Authorization.hold_minor > 0)
                  .values(hold_minor=0))
        open_to_buy.recount(s, account, utc_now().date())
    for name, value in changed.items():
        setattr(account, name, value)
    if reset:
        return "reset"
    return "refreshed" if changed else "unchanged"


def track2(card: CardSpec, cvv1: str) -> str:
    """``PAN=YYMMSSS`` + PVKI + PVV + CVV1 + zero fill, up to six zeros within 37 characters.

    >>> card = load_cards(DEFAULT_CARDS)[0]
    >>> track2(card, "123")[len(card.pan):]
    '=30122011000012300000'
    """
    head = f"{card.pan}={card.expiry_yymm}{card.service_code}{PVKI}{PVV}{cvv1}"
    return head + "0" * max(0, min(6, TRACK2_MAX - len(head)))


def write_card_file(plastics: list[EmbossedCard]) -> Path:
    """Writes the card file atomically, readable by its owner only."""
    path = card_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"cards": [asdict(p) for p in plastics]}, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)
    return path
