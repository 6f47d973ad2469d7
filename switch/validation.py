"""Request validation: every problem found, each naming its field. Never echoes a PAN or PIN."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cardswitch import cards, currency
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


def card_fields(card: Any, v: Violations, field: str = "card") -> dict[str, str]:
    """PAN, expiry, track 2 and CVV2 from a CardInput; records what is wrong."""
    source = card.WhichOneof("source")
    out = {"pan": "", "expiry_yymm": "", "track2": "", "cvv2": "", "service_code": ""}
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
    else:
        v.add(f"{field}.{source}", "is not supported by this switch yet (chip and wallet "
              "channels are configured separately)")
    return out


def check_pin_block(pin: Any, v: Violations, field: str = "pin_block") -> None:
    if len(pin.block) != 8:
        v.add(f"{field}.block", f"must be 8 bytes (TDES), got {len(pin.block)}")
    if pin.format not in (common_pb2.PIN_BLOCK_FORMAT_UNSPECIFIED,
                          common_pb2.PIN_BLOCK_FORMAT_ISO_0):
        v.add(f"{field}.format", "only ISO format 0 is accepted from PIN pads")
    if pin.key_management not in (common_pb2.PIN_KEY_MANAGEMENT_UNSPECIFIED,
                                  common_pb2.PIN_KEY_MANAGEMENT_DUKPT_TDES):
        v.add(f"{field}.key_management", "only TDES DUKPT is accepted")
    if len(pin.ksn) != 10:
        v.add(f"{field}.ksn", f"must be 10 bytes (TDES DUKPT KSN), got {len(pin.ksn)}")


def check_mcc(mcc: str, v: Violations) -> None:
    if mcc and (len(mcc) != 4 or not mcc.isdigit()):
        v.add("mcc", "must be 4 digits")
