"""The personalisation bureau: turns an issued card into a chip card file.

For one card of the issuer's card file (``cardswitch issuer seed``) with a ``chip:`` entry in
the test cards, the bureau

1. asks the HSM to derive the card's ICC master keys (AC, SMI, SMC) from the issuer master keys
   and export them as key blocks under the personalisation transport key (``zmk-perso``);
2. opens the blocks with that key, which the bureau alone holds in clear (``perso.kek``, mode
   0600, imported into the HSM as a ZMK the first time);
3. signs the card's static data (SDA) or certifies a new ICC RSA key (DDA) with the issuer key
   of the test PKI (:class:`terminals.emv.pki.TestPki`), whose CA key the terminals trust;
4. writes the card file: its profile in clear, its secrets sealed under the transport key.

Cards live in ``$CARDSWITCH_VAR/cards/<account_id>.card.json`` beside their state files.
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import os
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import yaml

from cardswitch import config, emv
from cardswitch.embossing import EmbossedCard
from cardswitch.v1 import hsm_pb2
from hsm_sim.algorithms import kcv, keyblock
from issuer_sim.chip import IMK_AC_REF, IMK_SMC_REF, IMK_SMI_REF
from terminals.cards.profile import (
    CardProfile,
    CardSecrets,
    static_data_to_authenticate,
    write_card,
)
from terminals.cards.state import state_path
from terminals.emv import pki

PERSO_ZMK_REF = "zmk-perso"
HSM_TIMEOUT_S = 10.0
ICC_RSA_BITS = 1024
#: Where the chip options of the test cards are read from (their ``chip:`` entries).
DEFAULT_CARDS = config.ROOT / "cardswitch" / "testcards.yaml"
COUNTRY_NUMERIC = "0840"
CURRENCY_NUMERIC = {"USD": "0840", "EUR": "0978", "GBP": "0826", "CNY": "0156"}


@dataclass(frozen=True)
class ChipOptions:
    """How one card's chip is personalised."""

    cvn: int | None = None
    oda: str = "dda"
    contactless: bool = False
    psn: str = "00"

    @classmethod
    def from_yaml(cls, raw: dict[str, Any], where: str) -> ChipOptions:
        unknown = set(raw) - {"cvn", "oda", "contactless", "psn"}
        if unknown:
            raise ValueError(f"{where}.chip: unknown {', '.join(sorted(unknown))}")
        oda = str(raw.get("oda", "dda"))
        if oda not in ("none", "sda", "dda"):
            raise ValueError(f"{where}.chip.oda: must be none, sda or dda, not {oda!r}")
        psn = str(raw.get("psn", "00"))
        if len(psn) != 2 or not psn.isdigit():
            raise ValueError(f"{where}.chip.psn: must be 2 digits, not {psn!r}")
        cvn = raw.get("cvn")
        return cls(cvn=None if cvn is None else int(cvn), oda=oda,
                   contactless=bool(raw.get("contactless", False)), psn=psn)


def chip_options(path: Path = DEFAULT_CARDS) -> dict[str, ChipOptions]:
    """Chip options by account id, for the cards of ``path`` that have a ``chip:`` entry."""
    data = yaml.safe_load(path.read_text())
    out = {}
    for i, raw in enumerate(data.get("cards", [])):
        if isinstance(raw, dict) and isinstance(raw.get("chip"), dict):
            out[str(raw["account_id"])] = ChipOptions.from_yaml(raw["chip"], f"cards[{i}]")
    return out


def cards_dir(var: Path | None = None) -> Path:
    return (var or config.var_dir()) / "cards"


def card_path(account_id: str, var: Path | None = None) -> Path:
    return cards_dir(var) / f"{account_id}.card.json"


def pki_dir(var: Path | None = None) -> Path:
    return (var or config.var_dir()) / "emv-pki"


def _kek_path(var: Path | None = None) -> Path:
    return cards_dir(var) / "perso.kek"


def read_kek(var: Path | None = None) -> bytes:
    """The personalisation transport key, as the bureau keeps it."""
    path = _kek_path(var)
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        raise ValueError(f"{path}: no personalisation key; run `cardswitch card issue` first") \
            from None


def ensure_kek(stub: Any) -> bytes:
    """The transport key, made and imported into the HSM as ``zmk-perso`` the first time."""
    path = _kek_path()
    if path.exists():
        kek = read_kek()
    else:
        kek = secrets.token_bytes(16)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(kek.hex())
    try:
        info = stub.GetKey(hsm_pb2.GetKeyRequest(key_ref=PERSO_ZMK_REF), timeout=HSM_TIMEOUT_S)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label=PERSO_ZMK_REF, key_type=hsm_pb2.KEY_TYPE_ZMK,
            algorithm=hsm_pb2.KEY_ALGORITHM_AES_128, components=[kek.hex()]),
            timeout=HSM_TIMEOUT_S)
        return kek
    if info.kcv.upper() != kcv.kcv(kek, algorithm="aes").hex().upper():
        raise ValueError(f"{path}: does not match the HSM's {PERSO_ZMK_REF} (check value "
                         f"{info.kcv}); the bureau and the HSM disagree on the key")
    return kek


def _icc_keys(stub: Any, kek: bytes, pan: str, psn: str) -> tuple[bytes, bytes, bytes]:
    response = stub.DeriveIccKeys(hsm_pb2.DeriveIccKeysRequest(
        imk_ac_key_ref=IMK_AC_REF, imk_smi_key_ref=IMK_SMI_REF, imk_smc_key_ref=IMK_SMC_REF,
        pan=pan, psn=psn, zmk_key_ref=PERSO_ZMK_REF), timeout=HSM_TIMEOUT_S)
    keys = []
    for exported in (response.icc_ac, response.icc_smi, response.icc_smc):
        _header, key = keyblock.unwrap(kek, exported.key_block)
        keys.append(key)
    return keys[0], keys[1], keys[2]


def _last_day(yymm: str) -> str:
    """5F24 for a YYMM expiry: the month's last day, YYMMDD."""
    year, month = 2000 + int(yymm[:2]), int(yymm[2:])
    return f"{yymm}{calendar.monthrange(year, month)[1]:02d}"


def build_profile(card: EmbossedCard, options: ChipOptions, currency: str,
                  today: date | None = None) -> CardProfile:
    """The card's profile before its ODA data, from its embossing and chip options."""
    today = today or date.today()
    if card.brand not in emv.AIDS:
        raise ValueError(f"{card.account_id}.brand: no chip application for {card.brand!r} "
                         f"(cards carry {', '.join(emv.AIDS)})")
    return CardProfile(
        brand=card.brand, pan=card.pan, psn=options.psn,  # type: ignore[arg-type]
        expiry=_last_day(card.expiry_yymm), effective=today.strftime("%y%m01"),
        service_code=card.service_code, cardholder_name="CARDSWITCH/TEST",
        currency_numeric=CURRENCY_NUMERIC.get(currency, "0840"),
        country_numeric=COUNTRY_NUMERIC, cvn=options.cvn, oda=options.oda,  # type: ignore[arg-type]
        contactless=options.contactless,
        track2_discretionary=card.track2.split("=", 1)[1][7:] if "=" in card.track2 else "")


def certify(profile: CardProfile, test_pki: pki.TestPki,
            today: date | None = None) -> tuple[CardProfile, pki.RsaPrivate | None]:
    """The profile with its ODA certificates, and the ICC RSA key for DDA."""
    if profile.oda == "none":
        return profile, None
    today = today or date.today()
    rid = emv.AIDS[profile.brand][:5]
    index, _ca = test_pki.ca_public(rid)
    issuer_key, cert, remainder, exponent = test_pki.issuer(rid, profile.pan[:6])
    certificates = {"8F": bytes([index]), "90": cert, "9F32": exponent}
    if remainder:
        certificates["92"] = remainder
    static = static_data_to_authenticate(profile)
    icc_key = None
    if profile.oda == "sda":
        certificates["93"] = pki.sign_static_data(issuer_key, static, secrets.token_bytes(2))
    else:
        icc_key = pki.RsaPrivate.generate(ICC_RSA_BITS)
        expiry_mmyy = profile.expiry[2:4] + profile.expiry[:2]
        serial = secrets.token_bytes(3)
        icc_cert, icc_remainder = pki.icc_certificate(issuer_key, icc_key.public, profile.pan,
                                                      expiry_mmyy, serial, static)
        certificates.update({"9F46": icc_cert, "9F47": icc_key.public.exponent})
        if icc_remainder:
            certificates["9F48"] = icc_remainder
    return dataclasses.replace(profile, certificates=certificates), icc_key


def issue(stub: Any, card: EmbossedCard, options: ChipOptions, *, currency: str = "USD",
          test_pki: pki.TestPki | None = None) -> Path:
    """Personalises ``card``'s chip and writes its card file; returns the file's path."""
    kek = ensure_kek(stub)
    test_pki = test_pki or pki.TestPki(pki_dir())
    icc_ac, icc_smi, icc_smc = _icc_keys(stub, kek, card.pan, options.psn)
    profile, icc_key = certify(build_profile(card, options, currency), test_pki)
    path = card_path(card.account_id)
    write_card(path, profile, CardSecrets(icc_mk_ac=icc_ac, icc_mk_smi=icc_smi,
                                          icc_mk_smc=icc_smc, offline_pin=card.pin,
                                          icc_rsa=icc_key), kek)
    state_path(path).unlink(missing_ok=True)  # a new card starts at ATC 0
    return path


def issued() -> list[str]:
    """Account ids that have a chip card file."""
    return sorted(p.name.removesuffix(".card.json") for p in cards_dir().glob("*.card.json"))


def summary(path: Path) -> dict[str, Any]:
    """What a card file says in clear (no PAN): for ``cardswitch card list``."""
    data = json.loads(path.read_text())
    profile = data.get("profile", {})
    return {"brand": profile.get("brand"), "cvn": profile.get("cvn"), "oda": profile.get("oda"),
            "contactless": profile.get("contactless")}
