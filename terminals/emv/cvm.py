"""Cardholder verification over the card's CVM list 8E (EMV Book 3 10.5, Annex C3).

The list is amount X (4 bytes), amount Y (4 bytes), then rules of two bytes: the method (bits
6-1) with bit 7 "apply the next rule if this one fails", and the condition under which the rule
applies. The terminal takes the first rule whose condition holds and performs it; success ends
the walk, failure either moves on (bit 7) or ends it as "cardholder verification was not
successful". The CVM results 9F34 record the last rule performed and how it went.

>>> cvm_list = parse_cvm_list(bytes.fromhex("00000000 00000000 4103 1E03 1F00"))
>>> [(hex(r.method), r.condition, r.next_if_failed) for r in cvm_list.rules]
[('0x1', 3, True), ('0x1e', 3, False), ('0x1f', 0, False)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from terminals.emv import apdu
from terminals.emv.config import (
    CAPABILITY_NO_CVM,
    CAPABILITY_ONLINE_PIN,
    CAPABILITY_PLAINTEXT_PIN,
    CAPABILITY_SIGNATURE,
)
from terminals.emv.session import Session

FAIL_CVM = 0x00
PLAINTEXT_PIN = 0x01
ONLINE_PIN = 0x02
PLAINTEXT_PIN_AND_SIGNATURE = 0x03
ENCIPHERED_PIN = 0x04
ENCIPHERED_PIN_AND_SIGNATURE = 0x05
SIGNATURE = 0x1E
NO_CVM_REQUIRED = 0x1F
NO_CVM_PERFORMED = 0x3F

METHODS: Mapping[int, str] = {
    FAIL_CVM: "fail CVM",
    PLAINTEXT_PIN: "offline plaintext PIN",
    ONLINE_PIN: "online PIN",
    PLAINTEXT_PIN_AND_SIGNATURE: "offline plaintext PIN and signature",
    ENCIPHERED_PIN: "offline enciphered PIN",
    ENCIPHERED_PIN_AND_SIGNATURE: "offline enciphered PIN and signature",
    SIGNATURE: "signature",
    NO_CVM_REQUIRED: "no CVM required",
}
#: Which terminal capability (9F33) each method needs; enciphered offline PIN is not offered.
_CAPABILITY = {
    PLAINTEXT_PIN: CAPABILITY_PLAINTEXT_PIN,
    ONLINE_PIN: CAPABILITY_ONLINE_PIN,
    PLAINTEXT_PIN_AND_SIGNATURE: CAPABILITY_PLAINTEXT_PIN,
    SIGNATURE: CAPABILITY_SIGNATURE,
    NO_CVM_REQUIRED: CAPABILITY_NO_CVM,
}
_PIN_METHODS = frozenset({PLAINTEXT_PIN, ONLINE_PIN, PLAINTEXT_PIN_AND_SIGNATURE, ENCIPHERED_PIN,
                          ENCIPHERED_PIN_AND_SIGNATURE})

#: CVM result byte 3 (Book 4 A4).
RESULT_UNKNOWN, RESULT_FAILED, RESULT_SUCCESSFUL = 0x00, 0x01, 0x02
#: 9F34 when the card does not support cardholder verification or has no CVM list.
NOT_PERFORMED = bytes([NO_CVM_PERFORMED, 0x00, RESULT_UNKNOWN])

#: Transaction types 9C the conditions distinguish.
CASH, PURCHASE_WITH_CASHBACK = 0x01, 0x09
#: Guard against a PIN entry that never gives up on a card that never blocks.
MAX_PIN_ATTEMPTS = 15

AIP_CARDHOLDER_VERIFICATION = 0x10


class PinEntry(Protocol):
    """The PIN pad as the kernel uses it."""

    def offline_pin(self) -> str | None:
        """The PIN the cardholder types for offline verification; None = bypass."""
        ...

    def online_pin(self, pan: str) -> Any | None:
        """An encrypted PIN block for the issuer (:class:`terminals.pinpad.EncryptedPin`, opaque
        to the kernel); None = bypass."""
        ...


@dataclass(frozen=True)
class CvmRule:
    method: int
    condition: int
    next_if_failed: bool
    raw: bytes

    @property
    def name(self) -> str:
        return METHODS.get(self.method, f"method {self.method:02X}")


@dataclass(frozen=True)
class CvmList:
    amount_x: int
    amount_y: int
    rules: tuple[CvmRule, ...]


def parse_cvm_list(data: bytes) -> CvmList:
    """The amounts and rules of a CVM list; ``ValueError`` if it is not 8 + 2n bytes."""
    if len(data) < 8 or len(data) % 2:
        raise ValueError(f"CVM list 8E: must be 8 bytes of amounts then 2-byte rules, "
                         f"got {len(data)} bytes")
    rules = tuple(
        CvmRule(data[i] & 0x3F, data[i + 1], bool(data[i] & 0x40), data[i:i + 2])
        for i in range(8, len(data), 2)
    )
    return CvmList(int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big"), rules)


@dataclass
class CvmOutcome:
    """What cardholder verification leaves for the rest of the transaction."""

    results: bytes = NOT_PERFORMED
    online_pin: Any | None = None
    signature_required: bool = False


@dataclass
class _Walk:
    session: Session
    pin_entry: PinEntry
    amount: int
    transaction_type: int
    outcome: CvmOutcome
    pin_bypassed: bool = False


def verify_cardholder(session: Session, pin_entry: PinEntry, amount: int,
                      transaction_type: int) -> CvmOutcome:
    """Walks the CVM list; sets TVR byte 3, TSI and returns the CVM results 9F34."""
    outcome = CvmOutcome()
    if not session.aip[0] & AIP_CARDHOLDER_VERIFICATION:
        session.log("CVM", "not supported by the card")
        return outcome
    try:
        cvm_list = parse_cvm_list(session.card.get(0x8E, b""))
    except ValueError:
        cvm_list = CvmList(0, 0, ())
    if not cvm_list.rules:
        session.tvr.set("ICC data missing")
        session.log("CVM", "no CVM list")
        return outcome
    session.tsi.set("cardholder verification was performed")
    walk = _Walk(session, pin_entry, amount, transaction_type, outcome)
    for rule in cvm_list.rules:
        if not _condition_holds(walk, cvm_list, rule):
            continue
        result = _perform(walk, rule)
        if result != RESULT_FAILED:
            outcome.results = rule.raw + bytes([result])
            session.log("CVM", f"{rule.name} ok")
            return outcome
        outcome.results = rule.raw + bytes([RESULT_FAILED])
        session.log("CVM", f"{rule.name} failed")
        if not rule.next_if_failed:
            break
    else:
        if outcome.results == NOT_PERFORMED:
            outcome.results = bytes([NO_CVM_PERFORMED, 0x00, RESULT_FAILED])
    session.tvr.set("cardholder verification was not successful")
    outcome.signature_required = False
    session.log("CVM", "cardholder verification was not successful")
    return outcome


def _supported(walk: _Walk, method: int) -> bool:
    if method == FAIL_CVM:
        return True
    capability = _CAPABILITY.get(method)
    return capability is not None and walk.session.config.supports(capability)


def _condition_holds(walk: _Walk, cvm_list: CvmList, rule: CvmRule) -> bool:
    """Book 3 Annex C3 conditions; an unknown condition never holds."""
    cash = walk.transaction_type == CASH
    unattended = walk.session.config.unattended
    condition = rule.condition
    if condition == 0x00:
        return True
    if condition == 0x01:
        return cash and unattended
    if condition == 0x02:
        return not cash and walk.transaction_type != PURCHASE_WITH_CASHBACK
    if condition == 0x03:
        return _supported(walk, rule.method)
    if condition == 0x04:
        return cash and not unattended
    if condition == 0x05:
        return walk.transaction_type == PURCHASE_WITH_CASHBACK
    if 0x06 <= condition <= 0x09:
        return _amount_condition(walk, cvm_list, condition)
    return False


def _amount_condition(walk: _Walk, cvm_list: CvmList, condition: int) -> bool:
    """Conditions 06-09 apply only in the application currency 9F42 (Book 3 10.5)."""
    if walk.session.card.get(0x9F42) != walk.session.terminal.get(0x5F2A):
        return False
    limit = cvm_list.amount_x if condition in (0x06, 0x07) else cvm_list.amount_y
    return walk.amount < limit if condition in (0x06, 0x08) else walk.amount > limit


def _perform(walk: _Walk, rule: CvmRule) -> int:
    """Performs one rule's method; returns the CVM result byte."""
    session, method = walk.session, rule.method
    if method not in METHODS:
        session.tvr.set("unrecognised CVM")
        return RESULT_FAILED
    if not _supported(walk, method):
        if method in _PIN_METHODS:
            session.tvr.set("PIN entry required and PIN pad not present or not working")
        return RESULT_FAILED
    if method == FAIL_CVM:
        return RESULT_FAILED
    if method == NO_CVM_REQUIRED:
        return RESULT_SUCCESSFUL
    if method == SIGNATURE:
        walk.outcome.signature_required = True
        return RESULT_UNKNOWN
    if method == ONLINE_PIN:
        return _online_pin(walk)
    result = _offline_pin(walk)
    if method == PLAINTEXT_PIN_AND_SIGNATURE and result == RESULT_SUCCESSFUL:
        walk.outcome.signature_required = True
        return RESULT_UNKNOWN
    return result


def _bypass(walk: _Walk) -> int:
    """PIN bypass: this and every later PIN method of the walk count as bypassed (Book 3
    10.5.1)."""
    walk.pin_bypassed = True
    walk.session.tvr.set("PIN entry required, PIN pad present, but PIN was not entered")
    walk.session.log("CVM", "PIN bypassed")
    return RESULT_FAILED


def _online_pin(walk: _Walk) -> int:
    if walk.pin_bypassed:
        return _bypass(walk)
    block = walk.pin_entry.online_pin(walk.session.pan)
    if block is None:
        return _bypass(walk)
    walk.outcome.online_pin = block
    walk.session.tvr.set("online PIN entered")
    return RESULT_UNKNOWN


def _offline_pin(walk: _Walk) -> int:
    session = walk.session
    if walk.pin_bypassed:
        return _bypass(walk)
    if _pin_try_counter(session) == 0:
        session.tvr.set("PIN try limit exceeded")
        return RESULT_FAILED
    for attempt in range(MAX_PIN_ATTEMPTS):
        pin = walk.pin_entry.offline_pin()
        if pin is None and attempt:
            session.log("CVM", "PIN entry given up after a wrong PIN")
            return RESULT_FAILED
        if pin is None:
            return _bypass(walk)
        try:
            block = apdu.plaintext_pin_block(pin)
        except ValueError:
            session.log("CVM", "PIN entry malformed, not sent")
            return _bypass(walk)
        response = session.send("VERIFY", apdu.verify_plaintext_pin(block))
        if response.ok:
            return RESULT_SUCCESSFUL
        if response.sw >> 4 == 0x63C and response.sw & 0x0F:
            session.log("CVM", f"wrong PIN, {response.sw & 0x0F} tries left")
            continue
        if response.sw >> 4 == 0x63C or response.sw in (apdu.SW_AUTH_METHOD_BLOCKED,
                                                         apdu.SW_REFERENCE_DATA_INVALIDATED):
            session.tvr.set("PIN try limit exceeded")
        return RESULT_FAILED
    return RESULT_FAILED


def _pin_try_counter(session: Session) -> int | None:
    """The PIN try counter 9F17 by GET DATA, or None when the card does not give it."""
    response = session.send("GET DATA 9F17", apdu.get_data(0x9F17))
    if not response.ok:
        return None
    value = response.data
    if len(value) >= 4 and value[:3] == b"\x9f\x17\x01":
        return value[3]
    return None
