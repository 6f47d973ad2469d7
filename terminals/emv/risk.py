"""Processing restrictions, terminal risk management, terminal action analysis (EMV Book 3 10.4,
10.6, 10.7).

Each step only sets TVR bits; the action analysis then turns the TVR into the cryptogram the
terminal asks for. A bit set in the terminal's or the issuer's denial code gives an AAC; in an
online code an ARQC (this terminal can go online); otherwise a TC, and only under the floor
limit. When it cannot go online, the default codes decide between TC and AAC. A missing issuer
action code counts as all ones for default and online, all zeros for denial (Book 3 10.7).

>>> denial = ActionCodePair(terminal=bytes.fromhex("0010000000"), issuer=bytes(5))
>>> denial.hits(bytes.fromhex("0010000000")), denial.hits(bytes.fromhex("8000000000"))
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from cardswitch.emv import AAC, ARQC, TC
from terminals.emv import apdu
from terminals.emv.session import Session

AIP_TERMINAL_RISK_MANAGEMENT = 0x08
#: Terminal types (9F35, Book 4 A1) that are ATMs when they also dispense cash.
ATM_TERMINAL_TYPES = frozenset({0x14, 0x15, 0x16})
CASH, PURCHASE_WITH_CASHBACK, CASH_DISBURSEMENT = 0x01, 0x09, 0x17

# Application usage control 9F07 (Book 3 Annex C2): (byte index, mask).
_AUC_DOMESTIC_CASH, _AUC_INTERNATIONAL_CASH = (0, 0x80), (0, 0x40)
_AUC_DOMESTIC_GOODS, _AUC_INTERNATIONAL_GOODS = (0, 0x20), (0, 0x10)
_AUC_DOMESTIC_SERVICES, _AUC_INTERNATIONAL_SERVICES = (0, 0x08), (0, 0x04)
_AUC_ATMS, _AUC_OTHER_TERMINALS = (0, 0x02), (0, 0x01)
_AUC_DOMESTIC_CASHBACK, _AUC_INTERNATIONAL_CASHBACK = (1, 0x80), (1, 0x40)
_RESTRICTION_BITS = ("ICC and terminal have different application versions",
                     "requested service not allowed for card product",
                     "application not yet effective", "expired application")
_RISK_BITS = ("transaction exceeds floor limit", "transaction selected randomly for online "
              "processing", "lower consecutive offline limit exceeded",
              "upper consecutive offline limit exceeded", "new card")


@dataclass(frozen=True)
class ActionCodePair:
    """The terminal's and the issuer's action codes of one kind, OR-ed when applied."""

    terminal: bytes
    issuer: bytes

    def hits(self, tvr: bytes) -> bool:
        return any(t & (a | b) for t, a, b in zip(tvr, self.terminal, self.issuer, strict=True))


@dataclass(frozen=True)
class ActionCodeSet:
    default: ActionCodePair
    denial: ActionCodePair
    online: ActionCodePair


def action_codes(session: Session) -> ActionCodeSet:
    """The TACs of the selected application with the card's IACs 9F0D/9F0E/9F0F."""
    assert session.application is not None
    tacs = session.application.tacs
    card = session.card
    ones, zeros = b"\xff" * 5, bytes(5)
    return ActionCodeSet(
        default=ActionCodePair(tacs.default, _five(card.get(0x9F0D), ones)),
        denial=ActionCodePair(tacs.denial, _five(card.get(0x9F0E), zeros)),
        online=ActionCodePair(tacs.online, _five(card.get(0x9F0F), ones)),
    )


def _five(value: bytes | None, missing: bytes) -> bytes:
    return value if value is not None and len(value) == 5 else missing


def first_generate_ac(tvr: bytes, codes: ActionCodeSet, *, under_floor: bool) -> int:
    """The cryptogram to ask for in the first GENERATE AC: AAC, ARQC or TC."""
    if codes.denial.hits(tvr):
        return AAC
    if codes.online.hits(tvr) or not under_floor:
        return ARQC
    return TC


def unable_to_go_online(tvr: bytes, codes: ActionCodeSet) -> int:
    """The cryptogram to ask for when the issuer could not be reached: TC or AAC."""
    return AAC if codes.default.hits(tvr) else TC


def check_restrictions(session: Session, transaction_type: int, today: date) -> None:
    """Application versions, usage control and dates (Book 3 10.4)."""
    card, tvr = session.card, session.tvr
    assert session.application is not None
    version = card.get(0x9F08)
    if version is not None and version != session.application.version:
        tvr.set("ICC and terminal have different application versions")
    auc = card.get(0x9F07)
    if auc is not None and len(auc) == 2 and not _usage_allowed(session, auc, transaction_type):
        tvr.set("requested service not allowed for card product")
    effective = _date(card.get(0x5F25))
    if effective is not None and today < effective:
        tvr.set("application not yet effective")
    expiry = _date(card.get(0x5F24))
    if expiry is not None and today > expiry:
        tvr.set("expired application")
    hits = [name for name in _RESTRICTION_BITS if tvr.is_set(name)]
    session.log("RESTRICTIONS", ", ".join(hits) or "none")


def _date(value: bytes | None) -> date | None:
    """A YYMMDD date (n6, BCD); years 50-99 are 19xx (Book 4 6.7.3)."""
    if value is None or len(value) != 3:
        return None
    digits = value.hex()
    if not digits.isdigit():
        return None
    year = int(digits[:2])
    try:
        return date(1900 + year if year >= 50 else 2000 + year, int(digits[2:4]), int(digits[4:]))
    except ValueError:
        return None


def _usage_allowed(session: Session, auc: bytes, transaction_type: int) -> bool:
    def bit(flag: tuple[int, int]) -> bool:
        return bool(auc[flag[0]] & flag[1])

    atm = session.config.terminal_type in ATM_TERMINAL_TYPES and bool(
        session.config.additional_capabilities[0] & 0x80)
    if not bit(_AUC_ATMS if atm else _AUC_OTHER_TERMINALS):
        return False
    issuer_country = session.card.get(0x5F28)
    if issuer_country is None:
        return True
    domestic = issuer_country == session.terminal.get(0x9F1A)
    if transaction_type in (CASH, CASH_DISBURSEMENT):
        return bit(_AUC_DOMESTIC_CASH if domestic else _AUC_INTERNATIONAL_CASH)
    goods_or_services = (bit(_AUC_DOMESTIC_GOODS) or bit(_AUC_DOMESTIC_SERVICES) if domestic
                         else bit(_AUC_INTERNATIONAL_GOODS) or bit(_AUC_INTERNATIONAL_SERVICES))
    if transaction_type == PURCHASE_WITH_CASHBACK:
        cashback = bit(_AUC_DOMESTIC_CASHBACK if domestic else _AUC_INTERNATIONAL_CASHBACK)
        return goods_or_services and cashback
    return goods_or_services


def manage_risk(session: Session, amount: int, random_percent: Callable[[], int]) -> None:
    """Floor limit, random selection and velocity checking (Book 3 10.6)."""
    if not session.aip[0] & AIP_TERMINAL_RISK_MANAGEMENT:
        session.log("RISK", "not requested by the card")
        return
    session.tsi.set("terminal risk management was performed")
    floor = session.config.floor_limit_minor
    if amount >= floor:
        session.tvr.set("transaction exceeds floor limit")
    elif _randomly_selected(session, amount, floor, random_percent()):
        session.tvr.set("transaction selected randomly for online processing")
    _check_velocity(session)
    hits = [name for name in _RISK_BITS if session.tvr.is_set(name)]
    session.log("RISK", ", ".join(hits) or "none")


def _randomly_selected(session: Session, amount: int, floor: int, drawn: int) -> bool:
    """Book 3 10.6.2: a fixed target under the threshold, rising to the maximum at the floor."""
    rules = session.config.random_selection
    if amount < rules.threshold_minor:
        return drawn <= rules.target_percent
    span = max(floor - rules.threshold_minor, 1)
    target = rules.target_percent + (
        (rules.max_target_percent - rules.target_percent) * (amount - rules.threshold_minor)
        / span)
    return drawn <= target


def _check_velocity(session: Session) -> None:
    """Compares ATC with the last online ATC, only when the card gives both offline limits."""
    lower, upper = session.card.get(0x9F14), session.card.get(0x9F23)
    if lower is None or upper is None:
        return
    atc = _get_data(session, 0x9F36)
    last_online = _get_data(session, 0x9F13)
    if atc is None or last_online is None:
        session.tvr.set("lower consecutive offline limit exceeded")
        session.tvr.set("upper consecutive offline limit exceeded")
        return
    offline_count = atc - last_online
    if offline_count > int.from_bytes(lower, "big"):
        session.tvr.set("lower consecutive offline limit exceeded")
    if offline_count > int.from_bytes(upper, "big"):
        session.tvr.set("upper consecutive offline limit exceeded")
    if last_online == 0:
        session.tvr.set("new card")


def _get_data(session: Session, tag: int) -> int | None:
    response = session.send(f"GET DATA {tag:X}", apdu.get_data(tag))
    prefix = tag.to_bytes(2, "big") + b"\x02"
    if not response.ok or len(response.data) != 5 or not response.data.startswith(prefix):
        return None
    return int.from_bytes(response.data[3:], "big")
