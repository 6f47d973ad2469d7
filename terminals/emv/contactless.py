"""One-tap contactless (Visa qVSDC style; EMV Book A 5 limits, Book C-3 flow).

The card stays in the field for a fraction of a second, so everything the card does happens in
one exchange: SELECT PPSE, SELECT the application, GET PROCESSING OPTIONS (whose PDOL carries
the terminal transaction qualifiers 9F66 and the transaction data) returns the cryptogram at
once in a 77 template (9F26, 9F27, 9F36, 9F10, 57, 5F34, card transaction qualifiers 9F6C),
then READ RECORD fetches what the GPO answer left out (PAN 5A, expiry 5F24). Cardholder
verification is decided by the reader from the amount and the card's 9F6C; the issuer's answer
cannot reach the card any more: no second GENERATE AC, no scripts.

Limits, at or over which (Book A 5.2): the transaction limit sends the cardholder to the chip
reader; the CVM required limit asks for a CVM; over the floor limit the reader wants online.
This reader does not perform fDDA, so it accepts no offline approval.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardswitch.emv import TC
from cardswitch.tlv import split_dol_data
from terminals.emv import reading, selection
from terminals.emv.config import (
    TTQ_CVM_REQUIRED,
    TTQ_ONLINE_CRYPTOGRAM_REQUIRED,
    TTQ_ONLINE_PIN,
    TTQ_SIGNATURE,
)
from terminals.emv.cryptogram import name
from terminals.emv.cvm import (
    NO_CVM_PERFORMED,
    NO_CVM_REQUIRED,
    ONLINE_PIN,
    RESULT_FAILED,
    RESULT_SUCCESSFUL,
    RESULT_UNKNOWN,
    SIGNATURE,
    CvmOutcome,
    PinEntry,
)
from terminals.emv.session import Abort, Session, TryAnotherApplication

OVER_LIMIT = "over contactless limit, insert the card"
#: Card transaction qualifiers 9F6C (Visa), (byte index, mask).
CTQ_ONLINE_PIN_REQUIRED = (0, 0x80)
CTQ_SIGNATURE_REQUIRED = (0, 0x40)
CTQ_CONSUMER_DEVICE_CVM = (1, 0x80)
#: Visa IAD (06 DKI CVN 03 CVR): the CVR byte after its length byte gives the first
#: cryptogram type in bits 6-5 when 9F27 is absent (VIS CVR byte 2).
_IAD_CVR_BYTE2 = 4


@dataclass(frozen=True)
class Tap:
    """What the card left behind: its cryptogram type and the verification decided."""

    cryptogram_type: int
    cvm: CvmOutcome


def read_card(session: Session, pin_entry: PinEntry, amount: int) -> Tap:
    """Everything done while the card is in the field, and the CVM decision after it."""
    candidates = selection.contactless_candidates(session)
    while True:
        chosen = selection.choose(session, candidates)
        if amount >= session.config.contactless.transaction_limit_minor:
            raise Abort(OVER_LIMIT)
        try:
            pdol_data = reading.get_processing_options(session, {0x9F66: _ttq(session, amount)})
            break
        except TryAnotherApplication:
            session.log("GPO", "conditions not satisfied, next application")
            candidates.remove(chosen)
            session.card.clear()
    session.sent.update(split_dol_data(session.card.get(0x9F38, b""), pdol_data))
    if 0x94 in session.card and not (0x5A in session.card and 0x5F24 in session.card):
        reading.read_application_data(session, unique=False)
    if not session.pan:
        session.require(0x5A)
    cryptogram_type = _cryptogram_type(session)
    session.log("GPO", f"card -> {name(cryptogram_type)}")
    session.log("CARD READ", "remove the card")
    if cryptogram_type == TC:
        return Tap(cryptogram_type, CvmOutcome())
    return Tap(cryptogram_type, _verify_cardholder(session, pin_entry, amount))


def _set(value: bytearray, flag: tuple[int, int]) -> None:
    value[flag[0]] |= flag[1]


def _is_set(value: bytes, flag: tuple[int, int]) -> bool:
    return len(value) > flag[0] and bool(value[flag[0]] & flag[1])


def _ttq(session: Session, amount: int) -> bytes:
    """The TTQ for this transaction: CVM required and online cryptogram required by amount."""
    limits = session.config.contactless
    ttq = bytearray(session.config.ttq)
    if amount >= limits.cvm_required_limit_minor:
        _set(ttq, TTQ_CVM_REQUIRED)
    if amount > limits.floor_limit_minor:
        _set(ttq, TTQ_ONLINE_CRYPTOGRAM_REQUIRED)
    return bytes(ttq)


def _cryptogram_type(session: Session) -> int:
    """9F27, or (qVSDC may leave it out) bits 6-5 of the Visa CVR's second byte."""
    session.require(0x9F26, 0x9F36)
    cid = session.card.get(0x9F27)
    if cid:
        return cid[0] & 0xC0
    iad = session.card.get(0x9F10, b"")
    if len(iad) <= _IAD_CVR_BYTE2:
        session.tvr.set("ICC data missing")
        raise Abort("card data missing: 9F27")
    return ((iad[_IAD_CVR_BYTE2] >> 4) & 0x03) << 6


def _verify_cardholder(session: Session, pin_entry: PinEntry, amount: int) -> CvmOutcome:
    """None under the CVM required limit; over it consumer device CVM if the card did it, else
    online PIN unless the card asks for signature only, else signature."""
    ttq = session.terminal[0x9F66]
    ctq = session.card.get(0x9F6C, b"")
    outcome = CvmOutcome(results=bytes([NO_CVM_REQUIRED, 0, RESULT_SUCCESSFUL]))
    if not _is_set(ttq, TTQ_CVM_REQUIRED):
        session.log("CVM", "none under the CVM required limit")
        return outcome
    if _is_set(ctq, CTQ_CONSUMER_DEVICE_CVM):
        session.log("CVM", "consumer device CVM")
        outcome.results = bytes([NO_CVM_PERFORMED, 0, RESULT_SUCCESSFUL])
        return outcome
    signature_only = (_is_set(ctq, CTQ_SIGNATURE_REQUIRED)
                      and not _is_set(ctq, CTQ_ONLINE_PIN_REQUIRED))
    if _is_set(ttq, TTQ_ONLINE_PIN) and not signature_only:
        return _online_pin(session, pin_entry, outcome)
    if _is_set(ttq, TTQ_SIGNATURE):
        session.log("CVM", "signature")
        outcome.results = bytes([SIGNATURE, 0, RESULT_UNKNOWN])
        outcome.signature_required = True
        return outcome
    raise Abort("CVM required and none the card and reader share, insert the card")


def _online_pin(session: Session, pin_entry: PinEntry, outcome: CvmOutcome) -> CvmOutcome:
    block = pin_entry.online_pin(session.pan)
    if block is None:
        session.log("CVM", "online PIN bypassed")
        session.tvr.set("PIN entry required, PIN pad present, but PIN was not entered")
        outcome.results = bytes([ONLINE_PIN, 0, RESULT_FAILED])
        return outcome
    session.log("CVM", "online PIN")
    session.tvr.set("online PIN entered")
    outcome.online_pin = block
    outcome.results = bytes([ONLINE_PIN, 0, RESULT_UNKNOWN])
    return outcome
