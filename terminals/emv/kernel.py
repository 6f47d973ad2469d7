"""The terminal EMV kernel: one chip or contactless transaction from card to issuer and back.

Contact (EMV Books 1-4), in order: application selection (:mod:`~terminals.emv.selection`),
GET PROCESSING OPTIONS and READ RECORD (:mod:`~terminals.emv.reading`), offline data
authentication (:mod:`~terminals.emv.oda`), processing restrictions, cardholder verification
(:mod:`~terminals.emv.cvm`), terminal risk management and action analysis
(:mod:`~terminals.emv.risk`), the first GENERATE AC (:mod:`~terminals.emv.cryptogram`); for an
ARQC the authorisation (:mod:`~terminals.emv.online`), issuer authentication and scripts
(:mod:`~terminals.emv.issuer`) and the second GENERATE AC. Contactless one tap:
:mod:`~terminals.emv.contactless`.

Outcomes (:data:`Outcome`):

- ``approved``: the issuer approved and (contact) the card agreed with a TC;
- ``declined``: the issuer declined;
- ``approved_offline``: the card approved without the issuer (a TC at the first GENERATE AC,
  or at the second after the issuer could not be reached);
- ``declined_offline``: declined without the issuer's word: the terminal or the card chose an
  AAC at the first GENERATE AC, the issuer was unreachable and the default action declined, or
  a contactless card answered with something other than an ARQC;
- ``declined_by_card``: the issuer approved but the card answered the second GENERATE AC with an
  AAC; the authorisation was reversed;
- ``aborted``: no decision: no supported application, card removed, card or data error, over
  the contactless limit. If the issuer had approved, the authorisation was reversed.

Nothing here logs or raises with a clear PAN or PIN; the step log masks the PAN.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from cardswitch.emv import AAC, ARQC, TC
from terminals.emv import contactless, cryptogram, issuer, oda, reading, risk, selection
from terminals.emv.apdu import CardLink, CardRemoved
from terminals.emv.config import TerminalConfig
from terminals.emv.cvm import CvmOutcome, PinEntry, verify_cardholder
from terminals.emv.issuer import IssuerData, ScriptResult
from terminals.emv.online import (
    DE55_CONTACTLESS_TAGS,
    DE55_TAGS,
    EntryMode,
    OnlineHost,
    OnlineRequest,
    OnlineResponse,
    expiry_yymm,
    icc_data,
    pan_sequence_number,
    track2_equivalent,
)
from terminals.emv.session import Abort, Session, TryAnotherApplication

__all__ = [
    "CardLink", "CardRemoved", "Kernel", "KernelResult", "OnlineHost", "OnlineRequest",
    "OnlineResponse", "Outcome", "PinEntry", "ScriptResult", "TerminalConfig",
]

Outcome = Literal["approved", "declined", "approved_offline", "declined_offline",
                  "declined_by_card", "aborted"]
#: Authorisation response codes the terminal makes up itself (Book 4 A6).
UNABLE_ONLINE_APPROVED, UNABLE_ONLINE_DECLINED = b"Y3", b"Z3"
REVERSAL_CARD_DECLINED = "card declined after issuer approval"
REVERSAL_CARD_REMOVED = "card removed"
REVERSAL_CARD_ERROR = "card error after issuer approval"
MAX_AMOUNT = 999_999_999_999
#: 9F39 POS entry mode: 05 chip, 07 contactless chip.
_ENTRY_MODE_CODES: dict[EntryMode, bytes] = {"chip": b"\x05", "contactless": b"\x07"}


@dataclass
class KernelResult:
    """How the transaction ended, with the EMV data to print, store or clear.

    ``icc_data`` is DE 55 of the last cryptogram the card made (the one to clear for an
    approval); ``script_results`` one entry per issuer script; ``steps`` the step log.
    """

    outcome: Outcome
    reason: str
    tvr: bytes = bytes(5)
    tsi: bytes = bytes(2)
    cvm_results: bytes = bytes(3)
    cid: int = 0
    cryptogram: bytes = b""
    atc: bytes = b""
    aid: bytes = b""
    brand: str = ""
    masked_pan: str = ""
    online: OnlineResponse | None = None
    icc_data: bytes = b""
    script_results: list[ScriptResult] = field(default_factory=list)
    reversed: bool = False
    signature_required: bool = False
    steps: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Transaction:
    session: Session
    amount: int
    entry_mode: EntryMode
    cvm: CvmOutcome = field(default_factory=CvmOutcome)
    request: OnlineRequest | None = None
    response: OnlineResponse | None = None
    reversed: bool = False
    script_results: list[ScriptResult] = field(default_factory=list)

    @property
    def issuer_approved(self) -> bool:
        return self.response is not None and self.response.approved and not (
            self.response.unable_to_go_online)


class Kernel:
    """Runs transactions for one terminal against the card on ``card``."""

    def __init__(self, config: TerminalConfig, card: CardLink, pin: PinEntry, host: OnlineHost,
                 *, today: date | None = None,
                 unpredictable_number: Callable[[], bytes] | None = None,
                 random_percent: Callable[[], int] | None = None,
                 sequence_counter: int | None = None) -> None:
        """``random_percent`` draws 1..99 for random selection; ``sequence_counter`` is the
        transaction sequence counter 9F41 (omitted when None)."""
        self.config = config
        self.card = card
        self.pin = pin
        self.host = host
        self.today = today
        self.unpredictable_number = unpredictable_number or (lambda: secrets.token_bytes(4))
        self.random_percent = random_percent or (lambda: secrets.randbelow(99) + 1)
        self.sequence_counter = sequence_counter

    def run(self, amount_minor: int, *, transaction_type: int = 0x00,
            contactless: bool = False) -> KernelResult:
        """One transaction of ``amount_minor`` (9F02) of type ``transaction_type`` (9C)."""
        if not 0 <= amount_minor <= MAX_AMOUNT:
            raise ValueError(f"amount_minor: must be 0 to {MAX_AMOUNT}, got {amount_minor}")
        if not 0 <= transaction_type <= 0x99:
            raise ValueError(f"transaction_type: must be one BCD byte, got {transaction_type}")
        entry_mode: EntryMode = "contactless" if contactless else "chip"
        session = Session(self.config, self.card)
        session.terminal.update(self._terminal_data(amount_minor, transaction_type, entry_mode))
        tx = _Transaction(session, amount_minor, entry_mode)
        try:
            if contactless:
                return self._one_tap(tx)
            return self._contact(tx, transaction_type)
        except CardRemoved:
            session.log("CARD REMOVED")
            return self._abort(tx, REVERSAL_CARD_REMOVED, REVERSAL_CARD_REMOVED)
        except Abort as stop:
            session.log("ABORT", stop.reason)
            return self._abort(tx, stop.reason, REVERSAL_CARD_ERROR)

    # -- contact ----------------------------------------------------------------------------

    def _contact(self, tx: _Transaction, transaction_type: int) -> KernelResult:
        session, today = tx.session, self._today()
        candidates = selection.contact_candidates(session)
        while True:
            chosen = selection.choose(session, candidates)
            session.terminal[0x9F09] = chosen.application.version
            try:
                reading.get_processing_options(session)
                break
            except TryAnotherApplication:
                session.log("GPO", "conditions not satisfied, next application")
                candidates.remove(chosen)
                session.card.clear()
        reading.read_application_data(session)
        session.require(*reading.MANDATORY_CONTACT)
        session.log("CARD", session.masked_pan)
        oda.authenticate(session, today)
        risk.check_restrictions(session, transaction_type, today)
        tx.cvm = verify_cardholder(session, self.pin, tx.amount, transaction_type)
        session.terminal[0x9F34] = tx.cvm.results
        risk.manage_risk(session, tx.amount, self.random_percent)
        codes = risk.action_codes(session)
        under_floor = tx.amount < self.config.floor_limit_minor
        requested = risk.first_generate_ac(session.tvr.value, codes, under_floor=under_floor)
        session.tsi.set("card risk management was performed")
        answered = cryptogram.generate_ac(session, requested, 0x8C, "GEN AC 1")
        if answered == AAC:
            return self._result(tx, "declined_offline", "card declined offline (AAC)")
        if answered == TC:
            return self._result(tx, "approved_offline", "card approved offline (TC)")
        return self._go_online(tx, codes)

    def _go_online(self, tx: _Transaction, codes: risk.ActionCodeSet) -> KernelResult:
        session = tx.session
        tx.request = self._request(tx)
        tx.response = self.host.authorize(tx.request)
        response = tx.response
        if response.unable_to_go_online:
            session.log("ONLINE", "unable to go online")
            requested = risk.unable_to_go_online(session.tvr.value, codes)
            arc = UNABLE_ONLINE_APPROVED if requested == TC else UNABLE_ONLINE_DECLINED
            return self._second_generate_ac(tx, requested, arc, IssuerData(None, ()))
        session.log("ONLINE", f"{'approved' if response.approved else 'declined'} "
                              f"{response.response_code}")
        try:
            issuer_data = IssuerData.parse(response.issuer_emv_data)
        except ValueError as exc:
            session.log("ISSUER DATA", f"ignored, not BER-TLV: {exc}")
            issuer_data = IssuerData(None, ())
        issuer.authenticate(session, issuer_data)
        tx.script_results += issuer.run_scripts(session, issuer_data,
                                                issuer.BEFORE_FINAL_GENERATE_AC)
        arc = _response_code(response.response_code)
        return self._second_generate_ac(tx, TC if response.approved else AAC, arc, issuer_data)

    def _second_generate_ac(self, tx: _Transaction, requested: int, arc: bytes,
                            issuer_data: IssuerData) -> KernelResult:
        session = tx.session
        session.terminal[0x8A] = arc
        answered = cryptogram.generate_ac(session, requested, 0x8D, "GEN AC 2")
        try:
            tx.script_results += issuer.run_scripts(session, issuer_data,
                                                    issuer.AFTER_FINAL_GENERATE_AC)
        except CardRemoved:
            session.log("CARD REMOVED", "after the final GENERATE AC, scripts not delivered")
        return self._completion(tx, answered)

    def _completion(self, tx: _Transaction, answered: int) -> KernelResult:
        response = tx.response
        assert response is not None
        if response.unable_to_go_online:
            if answered == TC:
                return self._result(tx, "approved_offline", "unable to go online, card approved")
            return self._result(tx, "declined_offline", "unable to go online, card declined")
        if not response.approved:
            return self._result(tx, "declined",
                                f"issuer declined: response code {response.response_code}")
        if answered == TC:
            return self._result(tx, "approved", f"approved: response code "
                                                f"{response.response_code}")
        self._reverse(tx, REVERSAL_CARD_DECLINED)
        return self._result(tx, "declined_by_card",
                            f"{REVERSAL_CARD_DECLINED}{_card_decline_cause(tx.session)}")

    # -- contactless ------------------------------------------------------------------------

    def _one_tap(self, tx: _Transaction) -> KernelResult:
        session = tx.session
        tap = contactless.read_card(session, self.pin, tx.amount)
        tx.cvm = tap.cvm
        session.terminal[0x9F34] = tap.cvm.results
        if tap.cryptogram_type == AAC:
            return self._result(tx, "declined_offline", "card declined offline (AAC)")
        if tap.cryptogram_type != ARQC:
            return self._result(tx, "declined_offline",
                                "card approved offline, but this reader cannot perform fDDA")
        tx.request = self._request(tx)
        tx.response = response = self.host.authorize(tx.request)
        if response.unable_to_go_online:
            return self._result(tx, "declined_offline", "unable to go online")
        if not response.approved:
            return self._result(tx, "declined",
                                f"issuer declined: response code {response.response_code}")
        return self._result(tx, "approved", f"approved: response code {response.response_code}")

    # -- shared -----------------------------------------------------------------------------

    def _today(self) -> date:
        return self.today or date.today()

    def _terminal_data(self, amount: int, transaction_type: int,
                       entry_mode: EntryMode) -> dict[int, bytes]:
        today = self._today()
        data = self.config.terminal_data()
        data.update({
            0x9F02: bytes.fromhex(f"{amount:012d}"),
            0x9F03: bytes(6),
            0x9A: bytes.fromhex(today.strftime("%y%m%d")),
            0x9F21: bytes.fromhex(datetime.now().strftime("%H%M%S")),
            0x9C: bytes.fromhex(f"{transaction_type:02X}"),
            0x9F37: self._unpredictable_number(),
            0x9F34: bytes(3),
            0x9F39: _ENTRY_MODE_CODES[entry_mode],
        })
        if self.sequence_counter is not None:
            data[0x9F41] = bytes.fromhex(f"{self.sequence_counter % 100_000_000:08d}")
        return data

    def _unpredictable_number(self) -> bytes:
        number = self.unpredictable_number()
        if len(number) != 4:
            raise ValueError(f"unpredictable_number: must give 4 bytes, gave {len(number)}")
        return number

    def _request(self, tx: _Transaction) -> OnlineRequest:
        session = tx.session
        values = {**session.values(), **session.sent}
        tags = DE55_TAGS + (DE55_CONTACTLESS_TAGS if tx.entry_mode == "contactless" else ())
        return OnlineRequest(
            pan=session.pan, psn=pan_sequence_number(values), expiry_yymm=expiry_yymm(values),
            track2=track2_equivalent(values.get(0x57, b"")), icc_data=icc_data(values, tags),
            amount_minor=tx.amount, currency_numeric=self.config.currency_code,
            entry_mode=tx.entry_mode, pin=tx.cvm.online_pin)

    def _reverse(self, tx: _Transaction, reason: str) -> None:
        if tx.reversed or not tx.issuer_approved:
            return
        assert tx.request is not None and tx.response is not None
        self.host.reverse(tx.request, tx.response, reason)
        tx.reversed = True
        tx.session.log("REVERSAL", reason)

    def _abort(self, tx: _Transaction, reason: str, reversal_reason: str) -> KernelResult:
        self._reverse(tx, reversal_reason)
        return self._result(tx, "aborted", reason)

    def _result(self, tx: _Transaction, outcome: Outcome, reason: str) -> KernelResult:
        session = tx.session
        card = session.card
        values = {**session.values(), **session.sent}
        tags = DE55_TAGS + (DE55_CONTACTLESS_TAGS if tx.entry_mode == "contactless" else ())
        session.log("OUTCOME", f"{outcome}: {reason}")
        return KernelResult(
            outcome=outcome, reason=reason, tvr=session.tvr.value, tsi=session.tsi.value,
            cvm_results=session.terminal.get(0x9F34, bytes(3)),
            cid=card[0x9F27][0] if card.get(0x9F27) else 0,
            cryptogram=card.get(0x9F26, b""), atc=card.get(0x9F36, b""), aid=session.aid,
            brand=session.application.brand if session.application else "",
            masked_pan=session.masked_pan, online=tx.response,
            icc_data=icc_data(values, tags) if 0x9F26 in card else b"",
            script_results=tx.script_results, reversed=tx.reversed,
            signature_required=tx.cvm.signature_required and outcome.startswith("approved"),
            steps=session.steps)


def _response_code(code: str) -> bytes:
    """The issuer's response code as the 2 ASCII bytes of the ARC 8A."""
    if len(code) != 2 or not code.isascii() or not code.isprintable():
        raise Abort(f"issuer response code: must be 2 ASCII characters, got {len(code)}")
    return code.encode("ascii")


def _card_decline_cause(session: Session) -> str:
    if session.tvr.is_set("issuer authentication failed"):
        return ": issuer authentication failed (ARPC wrong)"
    if session.tvr.is_set("script processing failed before final GENERATE AC"):
        return ": issuer script failed"
    return ""
