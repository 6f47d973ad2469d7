"""A virtual EMV payment card: one application answering EMV Book 3 commands over one interface.

:class:`EmvCard` takes raw command APDUs and gives raw responses (``data || SW1 SW2``); it never
raises. What it keeps between transactions (ATC, PIN try counter, flags) is a
:class:`~terminals.cards.state.CardState`, stored before any answer that changed it leaves the
card; what it keeps within one transaction (selection, PIN result, ARQC, issuer authentication)
is a session that power off, reset or a new SELECT throws away.

Transaction flow (contact): SELECT (PSE, then the AID), GET PROCESSING OPTIONS (format 2: AIP,
AFL), READ RECORD, optionally VERIFY and INTERNAL AUTHENTICATE, GENERATE AC with CDOL1 data: an
AAC when the terminal asks for one or the application is blocked, else always an ARQC (this card
never approves offline). After the issuer's answer: EXTERNAL AUTHENTICATE (Visa, UnionPay) or
the ARPC inside CDOL2 (Mastercard), issuer scripts, and the second GENERATE AC, which gives a TC
only when the terminal asks for one, the issuer approved (ARC 00, 10 or 11) and the ARPC was
right; otherwise an AAC.

Contactless is one tap (qVSDC-like): SELECT PPSE, SELECT AID (the FCI carries a PDOL), and GET
PROCESSING OPTIONS returns the ARQC with track 2; the terminal may still read SFI 2. There is
no GENERATE AC on this interface.

Cryptograms follow :mod:`cardswitch.emv` so the issuer's HSM verifies them; the CVR layout is in
:mod:`terminals.cards.cryptogram`, the records and data object lists in
:mod:`terminals.cards.layout`. CDA is not supported (GENERATE AC with P1 bit 5 answers 6A86).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cardswitch import emv as scheme
from cardswitch import tlv
from hsm_sim.algorithms import emv
from terminals.cards import commands as c
from terminals.cards.commands import Command, StatusError
from terminals.cards.cryptogram import (
    MAX_SCRIPT_COUNT,
    Cvr,
    ac_key,
    application_cryptogram,
    arpc_matches,
    cvr_length,
)
from terminals.cards.layout import afl, directory_entry, fci, records, track2
from terminals.cards.profile import CardProfile, CardSecrets, read_card
from terminals.cards.scripts import check_mac
from terminals.cards.state import MAX_ATC, CardState, state_path
from terminals.emv import pki
from terminals.pcsc import Interface

log = logging.getLogger(__name__)

#: EMV Book 1 basic ATR for a T=1 card: TB1 00, TC1 00, IFSC 254, BWI 4, CWI 5, TCK.
ATR_CONTACT = bytes.fromhex("3BE000008131FE45EB")
#: PC/SC part 3 ATR of an ISO/IEC 14443-4 card without historical bytes.
ATR_CONTACTLESS = bytes.fromhex("3B80800101")
APPROVED_ARCS = (b"00", b"10", b"11")
UNABLE_TO_GO_ONLINE_ARCS = (b"Y3", b"Z3")
#: Card transaction qualifiers 9F6C: online PIN when the reader needs a CVM.
CTQ = bytes.fromhex("8000")
PIN_BLOCK_CONTROL = 0x2


@dataclass
class _Session:
    """What one transaction has done so far; gone at power off, reset or a new SELECT."""

    selected: str = ""  # "", "pse", "ppse" or "application"
    gpo_done: bool = False
    pin_performed: bool = False
    pin_failed: bool = False
    terminal_values: dict[int, bytes] = field(default_factory=dict)
    atc: bytes = b""
    first_cvr: Cvr | None = None
    #: The first cryptogram of the transaction (ARQC or AAC): issuer scripts are keyed on it.
    first_ac: bytes | None = None
    #: The first cryptogram when it is an ARQC: only then may the issuer authenticate.
    arqc: bytes | None = None
    issuer_auth: bool | None = None
    external_auth_done: bool = False
    second_ac_done: bool = False


class EmvCard:
    """One EMV card application as seen through ``interface`` (contact or contactless)."""

    def __init__(self, profile: CardProfile, secrets: CardSecrets, state_path: Path,
                 interface: Interface) -> None:
        if interface not in ("contact", "contactless"):
            raise ValueError(f"interface: must be contact or contactless, got {interface!r}")
        if interface == "contactless" and not profile.contactless:
            raise ValueError("interface: this card has no contactless interface")
        self.profile = profile
        self.interface: Interface = interface
        self._secrets = secrets
        self._records = records(profile)
        self._afl = afl(profile, interface)
        self._state = CardState.load(state_path, profile)
        self._session = _Session()
        self._lock = threading.Lock()
        self._handlers: dict[int, Callable[[Command], bytes]] = {
            0xA4: self._select, 0xB2: self._read_record, 0xA8: self._get_processing_options,
            0xCA: self._get_data, 0x20: self._verify, 0x88: self._internal_authenticate,
            0xAE: self._generate_ac, 0x82: self._external_authenticate,
            0x1E: self._script, 0x18: self._script, 0x24: self._script,
        }

    @classmethod
    def load(cls, card_path: Path, kek: bytes, interface: Interface) -> EmvCard:
        """The card of a card file, its state in ``<card>.state.json`` beside it."""
        profile, secrets = read_card(card_path, kek)
        return cls(profile, secrets, state_path(card_path), interface)

    def atr(self) -> bytes:
        return ATR_CONTACT if self.interface == "contact" else ATR_CONTACTLESS

    def power_on(self) -> None:
        """A powered card starts with no transaction, as power off left it."""
        self.power_off()

    def power_off(self) -> None:
        """End any transaction in progress; what it counted is already stored."""
        with self._lock:
            self._session = _Session()

    @property
    def state(self) -> CardState:
        """A copy of the persistent state as it stands."""
        with self._lock:
            return replace(self._state)

    def process(self, apdu: bytes) -> bytes:
        """Answer one command APDU with ``data || SW1 SW2``; never raises."""
        with self._lock:
            try:
                cmd = c.parse(apdu)
                return self._dispatch(cmd)
            except StatusError as refusal:
                return c.respond(b"", refusal.sw)
            except Exception as exc:  # a bug must not take the card off the reader
                log.error("card: %s failed: %s", c.ins_name(apdu), type(exc).__name__)
                return c.respond(b"", c.SW_NO_PRECISE_DIAGNOSIS)

    def _dispatch(self, cmd: Command) -> bytes:
        if cmd.cla not in (c.CLA_ISO, c.CLA_PROPRIETARY, c.CLA_SECURE_MESSAGING):
            raise StatusError(c.SW_CLA_NOT_SUPPORTED)
        known = c.COMMANDS.get(cmd.ins)
        if known is None:
            raise StatusError(c.SW_INS_NOT_SUPPORTED)
        if cmd.cla != known[1]:
            raise StatusError(c.SW_CLA_NOT_SUPPORTED)
        return self._handlers[cmd.ins](cmd)

    # ---- selection and reading ----------------------------------------------------------------

    def _select(self, cmd: Command) -> bytes:
        if cmd.p1 != 0x04 or cmd.p2 not in (0x00, 0x02):
            raise StatusError(c.SW_WRONG_P1P2)
        name = cmd.data
        if not name:
            raise StatusError(c.SW_WRONG_LENGTH)
        contact = self.interface == "contact"
        if name == scheme.PSE and contact:
            body = tlv.encode(0x88, bytes([1])) + tlv.encode(0x5F2D, b"en")
            return self._selected("pse", _fci(name, body))
        if name == scheme.PPSE and not contact:
            body = tlv.encode(0xBF0C, directory_entry(self.profile))
            return self._selected("ppse", _fci(name, body))
        aid = self.profile.aid
        if cmd.p2 == 0x00 and len(name) >= 5 and aid.startswith(name):
            sw = c.SW_SELECTED_FILE_INVALIDATED if self._state.app_blocked else c.SW_OK
            return self._selected("application", fci(self.profile, self.interface), sw)
        raise StatusError(c.SW_FILE_NOT_FOUND)

    def _selected(self, what: str, answer: bytes, sw: int = c.SW_OK) -> bytes:
        self._session = _Session(selected=what)
        return c.respond(answer, sw)

    def _read_record(self, cmd: Command) -> bytes:
        sfi, number = cmd.p2 >> 3, cmd.p1
        if cmd.p2 & 0x07 != 0x04 or not 1 <= sfi <= 30 or number == 0:
            raise StatusError(c.SW_WRONG_P1P2)
        cmd.expect_length(0)
        selected = self._session.selected
        if selected == "pse":
            found = {(1, 1): tlv.encode(0x70, directory_entry(self.profile))}
        elif selected == "application":
            found = self._records
        else:
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        record = found.get((sfi, number))
        if record is None:
            raise StatusError(c.SW_RECORD_NOT_FOUND)
        return c.respond(record)

    def _get_data(self, cmd: Command) -> bytes:
        cmd.expect_length(0)
        tag = cmd.p1 << 8 | cmd.p2
        state = self._state
        values = {0x9F36: state.atc.to_bytes(2, "big"),
                  0x9F17: bytes([state.pin_try_counter]),
                  0x9F13: state.last_online_atc.to_bytes(2, "big")}
        if tag not in values:
            raise StatusError(c.SW_DATA_NOT_FOUND)
        return c.respond(tlv.encode(tag, values[tag]))

    # ---- processing options and cardholder verification ---------------------------------------

    def _get_processing_options(self, cmd: Command) -> bytes:
        cmd.expect_p1p2()
        session = self._session
        if session.selected != "application" or session.gpo_done:
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        try:
            objects = tlv.decode(cmd.data)
        except ValueError:
            raise StatusError(c.SW_WRONG_DATA) from None
        if len(objects) != 1 or objects[0].tag != 0x83:
            raise StatusError(c.SW_WRONG_DATA)
        values = _dol_values(self.profile.pdol(self.interface), objects[0].value)
        session.gpo_done = True
        if self.interface == "contact":
            return c.respond(tlv.encode(0x77, tlv.encode_all(
                [(0x82, self.profile.aip), (0x94, self._afl)])))
        ac_type, cryptogram, iad = self._first_cryptogram(want_aac=False, values=values)
        return c.respond(tlv.encode(0x77, tlv.encode_all([
            (0x82, self.profile.aip), (0x94, self._afl), (0x9F36, session.atc),
            (0x9F26, cryptogram), (0x9F27, bytes([ac_type])), (0x9F10, iad),
            (0x57, track2(self.profile)), (0x5F34, bytes.fromhex(self.profile.psn)),
            (0x9F6C, CTQ),
        ])))

    def _verify(self, cmd: Command) -> bytes:
        if cmd.p1 != 0 or cmd.p2 != 0x80:  # 88, enciphered offline PIN, is not supported
            raise StatusError(c.SW_WRONG_P1P2)
        if self._session.selected != "application":
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        cmd.expect_length(8)
        state = self._state
        if state.pin_try_counter == 0:
            raise StatusError(c.SW_AUTH_METHOD_BLOCKED)
        pin = _plaintext_pin(cmd.data)
        self._session.pin_performed = True
        if hmac.compare_digest(pin.encode(), self._secrets.offline_pin.encode()):
            self._session.pin_failed = False
            if state.pin_try_counter != self.profile.pin_try_limit:
                state.pin_try_counter = self.profile.pin_try_limit
                state.save()
            return c.respond(b"")
        self._session.pin_failed = True
        state.pin_try_counter -= 1
        state.save()
        return c.respond(b"", c.SW_PIN_TRIES_LEFT | state.pin_try_counter)

    def _internal_authenticate(self, cmd: Command) -> bytes:
        if self.profile.oda != "dda":
            raise StatusError(c.SW_INS_NOT_SUPPORTED)
        cmd.expect_p1p2()
        if self._session.selected != "application" or self._secrets.icc_rsa is None:
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        cmd.expect_length(4)  # DDOL: 9F37 04
        dynamic_number = self._state.atc.to_bytes(2, "big") + os.urandom(6)
        sdad = pki.sign_dynamic_data(self._secrets.icc_rsa, dynamic_number, cmd.data)
        return c.respond(tlv.encode(0x80, sdad))

    # ---- cryptograms --------------------------------------------------------------------------

    def _generate_ac(self, cmd: Command) -> bytes:
        requested = cmd.p1 & 0xC0
        if cmd.p1 & 0x3F or requested == 0xC0 or cmd.p2 != 0:  # 0x10 is CDA: not supported
            raise StatusError(c.SW_WRONG_P1P2)
        session = self._session
        if self.interface != "contact" or not session.gpo_done:
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        if session.first_cvr is None:
            values = _dol_values(self.profile.cdol1, cmd.data)
            ac_type, cryptogram, iad = self._first_cryptogram(requested == scheme.AAC, values)
        elif session.arqc is not None and not session.second_ac_done:
            ac_type, cryptogram, iad = self._second_cryptogram(requested, cmd.data)
        else:
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        return c.respond(tlv.encode(0x77, tlv.encode_all([
            (0x9F27, bytes([ac_type])), (0x9F36, session.atc), (0x9F26, cryptogram),
            (0x9F10, iad)])))

    def _first_cryptogram(self, want_aac: bool,
                          values: dict[int, bytes]) -> tuple[int, bytes, bytes]:
        """Count the transaction, store the state, then compute the first AC of it."""
        state, session = self._state, self._session
        if state.atc >= MAX_ATC:
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        ac_type = scheme.AAC if want_aac or state.app_blocked else scheme.ARQC
        cvr = Cvr(ac_type, pin_performed=session.pin_performed, pin_failed=session.pin_failed,
                  last_online_not_completed=state.online_pending,
                  pin_try_limit_exceeded=state.pin_try_counter == 0,
                  last_issuer_auth_failed=state.issuer_auth_failed,
                  script_count=state.script_count, script_failed=state.script_failed)
        state.atc += 1
        state.online_pending = ac_type == scheme.ARQC and self.interface == "contact"
        if ac_type == scheme.ARQC:
            state.last_arqc_atc = state.atc
        state.script_count, state.script_failed = 0, False
        state.save()
        session.atc, session.terminal_values, session.first_cvr = (
            state.atc.to_bytes(2, "big"), values, cvr)
        cryptogram, iad = self._cryptogram(values, cvr)
        session.first_ac = cryptogram
        if ac_type == scheme.ARQC:
            session.arqc = cryptogram
        return ac_type, cryptogram, iad

    def _second_cryptogram(self, requested: int, data: bytes) -> tuple[int, bytes, bytes]:
        if requested == scheme.ARQC:
            raise StatusError(c.SW_WRONG_P1P2)
        state, session = self._state, self._session
        assert session.first_cvr is not None and session.arqc is not None
        values = _dol_values(self.profile.cdol2, data)
        arc = values[0x8A]
        issuer_auth = session.issuer_auth
        if self.profile.brand == "mastercard" and any(values[0x91]):
            issuer_auth = self._arpc_matches(values[0x91])
        approve = (requested == scheme.TC and arc in APPROVED_ARCS and issuer_auth is True
                   and not state.app_blocked)
        ac_type = scheme.TC if approve else scheme.AAC
        cvr = replace(session.first_cvr, second_ac=ac_type,
                      issuer_auth_failed=issuer_auth is False,
                      pin_performed=session.pin_performed, pin_failed=session.pin_failed,
                      unable_to_go_online=arc in UNABLE_TO_GO_ONLINE_ARCS,
                      script_count=state.script_count, script_failed=state.script_failed)
        state.online_pending = False
        if issuer_auth is not None:
            self._record_issuer_authentication(issuer_auth)
        state.save()
        session.second_ac_done = True
        terminal_values = {**session.terminal_values, 0x95: values[0x95],
                           0x9F37: values[0x9F37]}
        cryptogram, iad = self._cryptogram(terminal_values, cvr)
        return ac_type, cryptogram, iad

    def _cryptogram(self, terminal_values: dict[int, bytes], cvr: Cvr) -> tuple[bytes, bytes]:
        """(AC, 9F10) of this transaction's ATC over ``terminal_values`` with ``cvr``."""
        version = self.profile.version
        iad = version.iad(self.profile.dki, cvr.encode(cvr_length(version)))
        key = ac_key(version, self._secrets.icc_mk_ac, self._session.atc)
        cryptogram = application_cryptogram(version, key, terminal_values, self.profile.aip,
                                             self._session.atc, iad)
        return cryptogram, iad

    # ---- issuer authentication and scripts ----------------------------------------------------

    def _arpc_matches(self, issuer_auth_data: bytes) -> bool:
        version, session = self.profile.version, self._session
        assert session.arqc is not None
        key = ac_key(version, self._secrets.icc_mk_ac, session.atc)
        return arpc_matches(version, key, session.arqc, issuer_auth_data)

    def _record_issuer_authentication(self, verified: bool) -> None:
        """The issuer answered (ARPC right): 9F13 takes this ATC. Caller saves the state."""
        self._state.issuer_auth_failed = not verified
        if verified:
            self._state.last_online_atc = int.from_bytes(self._session.atc, "big")

    def _external_authenticate(self, cmd: Command) -> bytes:
        if self.profile.brand == "mastercard":  # M/Chip takes the ARPC in CDOL2 instead
            raise StatusError(c.SW_INS_NOT_SUPPORTED)
        cmd.expect_p1p2()
        session = self._session
        if session.arqc is None or session.second_ac_done or session.external_auth_done:
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        if self.profile.version.arpc_method == 1:
            cmd.expect_length(10)
        else:
            cmd.expect_length(*range(8, 17))
        verified = self._arpc_matches(cmd.data)
        session.external_auth_done, session.issuer_auth = True, verified
        self._record_issuer_authentication(verified)
        self._state.save()
        return c.respond(b"", c.SW_OK if verified else c.SW_VERIFICATION_FAILED)

    def _script(self, cmd: Command) -> bytes:
        if cmd.ins == 0x24 and cmd.p1 == 0 and cmd.p2 in (0x01, 0x02):
            raise StatusError(c.SW_FUNCTION_NOT_SUPPORTED)  # PIN change: not on this card
        cmd.expect_p1p2()
        session, state = self._session, self._state
        if session.first_ac is None:
            raise StatusError(c.SW_CONDITIONS_NOT_SATISFIED)
        keys = emv.secure_messaging_keys(self._secrets.icc_mk_smi, self._secrets.icc_mk_smc,
                                         session.first_ac)
        state.script_count = min(state.script_count + 1, MAX_SCRIPT_COUNT)
        try:
            if check_mac(cmd, keys.integrity, session.atc, session.first_ac):
                raise StatusError(c.SW_WRONG_LENGTH)  # these commands carry only their MAC
        except StatusError:
            state.script_failed = True
            state.save()
            raise
        if cmd.ins == 0x1E:
            state.app_blocked = True
        elif cmd.ins == 0x18:
            state.app_blocked = False
        else:
            state.pin_try_counter = self.profile.pin_try_limit
        state.save()
        return c.respond(b"")


def _fci(name: bytes, proprietary: bytes) -> bytes:
    """6F(84 DF name, A5 proprietary template) of a PSE or PPSE."""
    return tlv.encode(0x6F, tlv.encode(0x84, name) + tlv.encode(0xA5, proprietary))


def _dol_values(dol: tuple[tuple[int, int], ...], data: bytes) -> dict[int, bytes]:
    """DOL-related data cut into tag values; 6700 when it is not as long as the DOL says."""
    if len(data) != sum(length for _tag, length in dol):
        raise StatusError(c.SW_WRONG_LENGTH)
    return tlv.split_dol_data(dol, data)


def _plaintext_pin(block: bytes) -> str:
    """The PIN of a plaintext offline PIN block (Book 3 6.5.12): ``2N`` then N BCD digits,
    F-filled to 8 bytes. 6A80 when it is not one."""
    digits = block.hex().upper()
    length = int(digits[1], 16)
    pin, filler = digits[2 : 2 + length], digits[2 + length :]
    if (int(digits[0], 16) != PIN_BLOCK_CONTROL or not 4 <= length <= 12
            or not pin.isdigit() or filler != "F" * len(filler)):
        raise StatusError(c.SW_WRONG_DATA)
    return pin
