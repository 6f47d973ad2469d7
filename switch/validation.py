"""Request validation: every problem found, each naming its field. Never echoes a PAN or PIN."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cardswitch import cards, currency, tlv
from cardswitch.errors import FieldViolations
from cardswitch.v1 import common_pb2

ENTRY_MODE_NAMES = {
    common_pb2.ENTRY_MODE_MAGSTRIPE: "magstripe",
    common_pb2.ENTRY_MODE_MANUAL: "manual",
    common_pb2.ENTRY_MODE_CHIP: "chip",
    common_pb2.ENTRY_MODE_CONTACTLESS: "contactless",
    common_pb2.ENTRY_MODE_WALLET: "wallet",
    common_pb2.ENTRY_MODE_ECOMMERCE: "ecommerce",
}

_TRACK2_EQUIVALENT = re.compile(r"^[0-9]{12,19}=[0-9]{7}[0-9]*$")

#: Service code third digit meaning "PIN required" (ISO 7813).
PIN_REQUIRED_SERVICE_DIGITS = {"0", "3", "5"}


class Violations:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise FieldViolations(self.items)


def check_key(key: Any, v: Violations, prefix: str = "key") -> None:
    if not key.terminal_id or len(key.terminal_id) > 8:
        v.add(f"{prefix}.terminal_id", "must be 1 to 8 characters")
    if len(key.stan) != 6 or not key.stan.isdigit():
        v.add(f"{prefix}.stan", "must be exactly 6 digits")
    ldt = key.local_date_time
    if len(ldt) != 12 or not ldt.isdigit():
        v.add(f"{prefix}.local_date_time", "must be YYMMDDhhmmss (12 digits)")
    else:
        try:
            dt.datetime.strptime(ldt, "%y%m%d%H%M%S")
        except ValueError:
            v.add(f"{prefix}.local_date_time", "is not a real date and time")
    if len(key.request_id) > 64:
        v.add(f"{prefix}.request_id", "must be at most 64 characters")


def check_money(money: Any, field: str, v: Violations, *, allow_zero: bool = False) -> None:
    if not money.currency:
        v.add(f"{field}.currency", "is required (ISO 4217 alphabetic code)")
    elif currency.by_alpha(money.currency) is None:
        v.add(f"{field}.currency", f"unknown ISO 4217 currency {money.currency[:8]!r}")
    amount = money.amount_minor
    if amount < 0:
        v.add(f"{field}.amount_minor", "must not be negative")
    elif amount == 0 and not allow_zero:
        v.add(f"{field}.amount_minor", "must be greater than zero")
    elif amount > currency.MAX_AMOUNT_MINOR:
        v.add(f"{field}.amount_minor",
              f"exceeds the 12-digit maximum {currency.MAX_AMOUNT_MINOR}")


def card_fields(card: Any, v: Violations, field: str = "card") -> dict[str, Any]:
    """PAN, expiry, track 2, CVV2 and chip data from a CardInput; records what is wrong."""
    source = card.WhichOneof("source")
    out: dict[str, Any] = {"pan": "", "expiry_yymm": "", "track2": "", "cvv2": "",
                           "service_code": "", "psn": "", "de55": b"", "amount": None,
                           "wallet_provider": "", "wallet_token": "", "wallet_presentation": ""}
    if source is None:
        v.add(field, "is required: one of track2, manual, emv, wallet")
    elif source == "track2":
        try:
            t2 = cards.parse_track2(card.track2.data)
        except ValueError:
            v.add(f"{field}.track2.data", "is not track 2 data (PAN=YYMMSSS...)")
            return out
        problem = cards.validate_pan(t2.pan, f"{field}.track2.data PAN")
        if problem:
            v.add(f"{field}.track2.data", problem)
        out.update(pan=t2.pan, expiry_yymm=t2.expiry_yymm, service_code=t2.service_code,
                   track2=card.track2.data.strip(";?").replace("D", "="))
    elif source == "manual":
        problem = cards.validate_pan(card.manual.pan, f"{field}.manual.pan")
        if problem:
            v.add(f"{field}.manual.pan", problem.split(": ", 1)[1])
        exp = card.manual.expiry_yymm
        if len(exp) != 4 or not exp.isdigit() or not 1 <= int(exp[2:]) <= 12:
            v.add(f"{field}.manual.expiry_yymm", "must be YYMM with a month 01-12")
        cvv2 = card.manual.cvv2
        if cvv2 and (not cvv2.isdigit() or len(cvv2) not in (3, 4)):
            v.add(f"{field}.manual.cvv2", "must be 3 or 4 digits")
        out.update(pan=card.manual.pan, expiry_yymm=exp, cvv2=cvv2)
    elif source == "emv":
        out.update(chip_fields(card.emv.tlv, v, f"{field}.emv.tlv"))
    else:
        out.update(wallet_fields(card.wallet, v, f"{field}.wallet"))
    return out


WALLET_PRESENTATIONS = {common_pb2.WALLET_PRESENTATION_QR_CODE: "qr",
                        common_pb2.WALLET_PRESENTATION_TOKEN: "token"}


def wallet_fields(wallet: Any, v: Violations, field: str) -> dict[str, Any]:
    """A customer-presented wallet payment code: provider, the code, how it was presented."""
    provider = wallet.provider
    if not provider or len(provider) > 32 or not provider.replace("_", "").isalnum():
        v.add(f"{field}.provider", "must be 1 to 32 letters, digits or _ (e.g. alipay)")
    token = wallet.token.strip()
    if not 8 <= len(token) <= 256 or not token.isprintable():
        v.add(f"{field}.token", "must be 8 to 256 printable characters (the payment code or "
                                "QR payload)")
    presentation = WALLET_PRESENTATIONS.get(wallet.presentation) or (
        "qr" if "://" in token else "token")
    return {"wallet_provider": provider.lower(), "wallet_token": token,
            "wallet_presentation": presentation}


#: Chip data an online authorisation must carry in DE 55 (EMV Book 4 6.3.3 minimum set).
DE55_REQUIRED = (0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x9F36, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A,
                 0x82, 0x9F1A)
#: Card data the kernel hands over beside DE 55; it leaves in DE 2, 14, 23 and 35 instead.
CARD_TAGS = (0x5A, 0x57, 0x5F24, 0x5F34, 0x5F20, 0x9F1F)


def chip_fields(data: bytes, v: Violations, field: str) -> dict[str, Any]:
    """PAN, expiry, track 2 equivalent, PSN and the DE 55 data from the kernel's TLV."""
    out: dict[str, Any] = {}
    try:
        objects = tlv.decode(data)
    except ValueError as exc:
        v.add(field, str(exc))
        return out
    values = {o.tag: o.value for o in objects if not o.constructed}
    missing = [tlv.tag_hex(t) for t in DE55_REQUIRED if t not in values]
    if missing:
        v.add(field, f"lacks chip data {', '.join(missing)} (an ARQC needs them)")
    track2 = ""
    if 0x57 in values:
        track2 = values[0x57].hex().upper().rstrip("F").replace("D", "=")
        if not _TRACK2_EQUIVALENT.match(track2):
            v.add(f"{field} 57", "is not track 2 equivalent data (PAN D YYMM SSS ...)")
            track2 = ""
    pan = values[0x5A].hex().upper().rstrip("F") if 0x5A in values else track2.split("=")[0]
    if not pan:
        v.add(field, "lacks the PAN (tag 5A or 57)")
    else:
        problem = cards.validate_pan(pan, f"{field} PAN")
        if problem:
            v.add(field, problem)
        elif track2 and track2.split("=")[0] != pan:
            v.add(field, "5A and 57 carry different PANs")
    expiry = values[0x5F24].hex()[:4] if 0x5F24 in values else track2[len(pan) + 1:][:4]
    if len(expiry) != 4 or not expiry.isdigit() or not 1 <= int(expiry[2:]) <= 12:
        v.add(field, "lacks a valid expiry date (tag 5F24 YYMMDD or 57)")
    psn = values[0x5F34].hex() if 0x5F34 in values else ""
    if psn and (len(psn) != 2 or not psn.isdigit()):
        v.add(f"{field} 5F34", "PAN sequence number must be 1 byte of 2 BCD digits")
    out.update(pan=pan, expiry_yymm=expiry, track2=track2, psn=psn,
               service_code=track2[len(pan) + 5:][:3] if track2 else "",
               de55=tlv.encode_all((o.tag, o.value) for o in objects if o.tag not in CARD_TAGS),
               amount=int(values[0x9F02].hex()) if values.get(0x9F02, b"").hex().isdigit()
               else None)
    return out


def check_pin_block(pin: Any, v: Violations, field: str = "pin_block", *,
                    zone_key: bool = False) -> None:
    """A PIN pad's DUKPT PIN block, or (``zone_key``) one under an acquirer's zone PIN key."""
    if len(pin.block) != 8:
        v.add(f"{field}.block", f"must be 8 bytes (TDES), got {len(pin.block)}")
    if pin.format not in (common_pb2.PIN_BLOCK_FORMAT_UNSPECIFIED,
                          common_pb2.PIN_BLOCK_FORMAT_ISO_0):
        v.add(f"{field}.format", "only ISO format 0 is accepted from PIN pads")
    if pin.key_management not in (common_pb2.PIN_KEY_MANAGEMENT_UNSPECIFIED,
                                  common_pb2.PIN_KEY_MANAGEMENT_DUKPT_TDES):
        v.add(f"{field}.key_management", "only TDES DUKPT is accepted")
    if zone_key:
        if pin.ksn:
            v.add(f"{field}.ksn", "must be empty: the PIN block is under a zone PIN key")
    elif len(pin.ksn) != 10:
        v.add(f"{field}.ksn", f"must be 10 bytes (TDES DUKPT KSN), got {len(pin.ksn)}")


def check_mcc(mcc: str, v: Violations) -> None:
    if mcc and (len(mcc) != 4 or not mcc.isdigit()):
        v.add("mcc", "must be 4 digits")
