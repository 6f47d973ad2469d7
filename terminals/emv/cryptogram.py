"""GENERATE AC and the rules for the card's answer (EMV Book 3 6.5.5 and 9.3).

The terminal asks for an AAC (decline), a TC (approve offline) or an ARQC (go online); the card
may answer with what was asked or something more cautious, never less: an ARQC request may give
an AAC, a TC request an ARQC or an AAC. The second GENERATE AC asks for a TC or an AAC and gets
no ARQC. The answer is format 1 (``80 CID || ATC || AC || IAD``) or format 2 (a 77 template
with 9F27, 9F36, 9F26 and optionally 9F10).

>>> name(0x80), allowed(requested=0x40, answered=0x80), allowed(requested=0x80, answered=0x40)
('ARQC', True, False)
"""

from __future__ import annotations

from cardswitch.emv import AAC, ARQC, TC
from cardswitch.tlv import decode, split_dol_data
from terminals.emv import apdu
from terminals.emv.session import Abort, Session, parse_card_data, require_ok

NAMES = {AAC: "AAC", TC: "TC", ARQC: "ARQC"}
#: How far each cryptogram commits the card: the card may answer at or below the request.
_COMMITMENT = {AAC: 0, ARQC: 1, TC: 2}
_TYPE_BITS = 0xC0


def name(cryptogram_type: int) -> str:
    return NAMES.get(cryptogram_type & _TYPE_BITS, "RFU")


def allowed(*, requested: int, answered: int) -> bool:
    """Whether the card's cryptogram type is one it may give for the terminal's request."""
    if answered not in _COMMITMENT:
        return False
    return _COMMITMENT[answered] <= _COMMITMENT[requested]


def generate_ac(session: Session, requested: int, dol_tag: int, step: str) -> int:
    """Sends GENERATE AC with the data the card's CDOL (8C or 8D) lists; returns the card's
    cryptogram type. The answer's objects join the card data; the DOL values sent are kept in
    ``session.sent`` for DE 55."""
    dol = session.card.get(dol_tag, b"")
    data = session.dol_data(dol)
    response = session.send(step, apdu.generate_ac(requested, data))
    require_ok(response, step)
    session.sent.update(split_dol_data(dol, data))
    _store_answer(session, response.data, step)
    answered = session.card[0x9F27][0] & _TYPE_BITS
    session.log(step, f"{name(requested)} requested -> {name(answered)}")
    if not allowed(requested=requested, answered=answered):
        raise Abort(f"card error: {name(answered)} answered to a {name(requested)} request")
    return answered


def _store_answer(session: Session, data: bytes, step: str) -> None:
    try:
        objects = decode(data)
    except ValueError as exc:
        raise Abort(f"card data error in the {step} answer: {exc}") from None
    for tag in (0x9F27, 0x9F36, 0x9F26):
        session.card.pop(tag, None)
    if len(objects) == 1 and objects[0].tag == 0x80 and len(objects[0].value) >= 11:
        value = objects[0].value
        session.card.update({0x9F27: value[:1], 0x9F36: value[1:3], 0x9F26: value[3:11]})
        if len(value) > 11:
            session.card[0x9F10] = value[11:]
    elif len(objects) == 1 and objects[0].tag == 0x77:
        session.card.update(parse_card_data(objects[0].value, f"{step} answer"))
    else:
        raise Abort(f"card data error: the {step} answer is neither format 1 nor format 2")
    missing = [f"{t:X}" for t in (0x9F27, 0x9F36, 0x9F26) if not session.card.get(t)]
    if missing:
        raise Abort(f"card data error: the {step} answer lacks {', '.join(missing)}")
