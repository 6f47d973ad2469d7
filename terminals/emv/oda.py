"""Offline data authentication (EMV Book 3 10.3, Book 2 5 and 6): DDA, else SDA, else none.

Both methods start from the certification authority key the card names (RID of its AID and the
index 8F): it recovers the issuer key from the issuer certificate 90 (with remainder 92 and
exponent 9F32). SDA then checks the signed static application data 93 over the records the AFL
marks (and the AIP when the tag list 9F4A asks for it), giving the data authentication code
9F45. DDA recovers the ICC key from 9F46/9F47/9F48 over the same static data, then has the card
sign the DDOL data with INTERNAL AUTHENTICATE and checks that signature, giving the ICC dynamic
number 9F4C. Any failure only sets TVR bits: the action codes decide what it costs.

CDA is not performed: the terminal's default capabilities do not announce it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from cardswitch.tlv import decode, find, parse_dol
from terminals.emv import apdu, pki
from terminals.emv.config import CAPABILITY_DDA, CAPABILITY_SDA
from terminals.emv.session import Session

AIP_SDA = 0x40
AIP_DDA = 0x20

_SDA_DATA = (0x8F, 0x90, 0x9F32, 0x93)
_DDA_DATA = (0x8F, 0x90, 0x9F32, 0x9F46, 0x9F47)


class OdaFailed(Exception):
    """One step of SDA or DDA failed; the message names it (no card data in it)."""


def authenticate(session: Session, today: date) -> None:
    """Runs the method card and terminal share; sets TVR and TSI bits, logs the result."""
    aip = session.aip[0]
    config = session.config
    if aip & AIP_DDA and config.supports(CAPABILITY_DDA):
        _run(session, "DDA", "DDA failed", lambda: _dda(session, today))
    elif aip & AIP_SDA and config.supports(CAPABILITY_SDA):
        session.tvr.set("SDA selected")
        _run(session, "SDA", "SDA failed", lambda: _sda(session, today))
    else:
        session.tvr.set("offline data authentication was not performed")
        session.log("ODA", "not performed")


def _run(session: Session, method: str, failed_bit: str, check: Callable[[], None]) -> None:
    session.tsi.set("offline data authentication was performed")
    try:
        check()
    except OdaFailed as exc:
        session.tvr.set(failed_bit)
        session.log("ODA", f"{method} failed: {exc}")
        return
    session.log("ODA", f"{method} ok")


def _missing(session: Session, tags: tuple[int, ...]) -> None:
    absent = [f"{tag:X}" for tag in tags if tag not in session.card]
    if absent:
        session.tvr.set("ICC data missing")
        raise OdaFailed(f"card data missing: {', '.join(absent)}")


def _static_data(session: Session) -> bytes:
    """The records marked for ODA, then the AIP if the static data tag list 9F4A names it."""
    if session.static_data_invalid:
        raise OdaFailed("a record for ODA is not a 70 template")
    data = bytes(session.static_data)
    tag_list = session.card.get(0x9F4A)
    if tag_list is None:
        return data
    if tag_list != b"\x82":
        raise OdaFailed("static data authentication tag list 9F4A names more than the AIP")
    return data + session.aip


def _today_yymm(today: date) -> str:
    return today.strftime("%y%m")


def _issuer_key(session: Session, today: date) -> pki.RsaPublic:
    if len(session.card[0x8F]) != 1:
        raise OdaFailed("CA public key index 8F must be 1 byte")
    rid, index = session.aid[:5], session.card[0x8F][0]
    ca = session.config.ca_keys.get((rid, index))
    if ca is None:
        raise OdaFailed(f"no CA public key {index:02X} for RID {rid.hex().upper()}")
    try:
        return pki.recover_issuer_key(ca, session.card[0x90], session.card.get(0x92, b""),
                                      session.card[0x9F32], session.pan, _today_yymm(today))
    except ValueError as exc:
        raise OdaFailed(f"issuer public key: {exc}") from None


def _sda(session: Session, today: date) -> None:
    _missing(session, _SDA_DATA)
    static = _static_data(session)
    issuer = _issuer_key(session, today)
    try:
        session.card[0x9F45] = pki.verify_static_data(issuer, session.card[0x93], static)
    except ValueError as exc:
        raise OdaFailed(f"signed static data: {exc}") from None


def _dda(session: Session, today: date) -> None:
    _missing(session, _DDA_DATA)
    static = _static_data(session)
    issuer = _issuer_key(session, today)
    try:
        icc = pki.recover_icc_key(issuer, session.card[0x9F46], session.card.get(0x9F48, b""),
                                  session.card[0x9F47], session.pan, static, _today_yymm(today))
    except ValueError as exc:
        raise OdaFailed(f"ICC public key: {exc}") from None
    ddol = session.card.get(0x9F49)
    if ddol is None:
        assert session.application is not None
        ddol = session.application.default_ddol
    if 0x9F37 not in (tag for tag, _ in parse_dol(ddol)):
        raise OdaFailed("the DDOL does not include the unpredictable number 9F37")
    ddol_data = session.dol_data(ddol)
    response = session.send("INTERNAL AUTHENTICATE", apdu.internal_authenticate(ddol_data))
    if not response.ok:
        raise OdaFailed(f"INTERNAL AUTHENTICATE answered SW {response.sw_hex()}")
    try:
        sdad = _signed_dynamic_data(response.data)
        session.card[0x9F4C] = pki.verify_dynamic_data(icc, sdad, ddol_data)
    except ValueError as exc:
        raise OdaFailed(f"signed dynamic data: {exc}") from None


def _signed_dynamic_data(data: bytes) -> bytes:
    """9F4B from INTERNAL AUTHENTICATE: format 1 (80) or format 2 (77 with 9F4B)."""
    objects = decode(data)
    if len(objects) == 1 and objects[0].tag == 0x80:
        return objects[0].value
    sdad = find(data, 0x9F4B)
    if sdad is None:
        raise ValueError("INTERNAL AUTHENTICATE answer holds no signed dynamic data")
    return sdad
