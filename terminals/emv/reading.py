"""Initiate application processing and read application data (EMV Book 3 10.1 and 10.2).

GET PROCESSING OPTIONS carries the PDOL data (9F38) and returns the application interchange
profile 82 and application file locator 94, in format 1 (``80 AIP||AFL``) or format 2 (a 77
template, which a contactless card fills with its cryptogram too). Each AFL entry is 4 bytes:
SFI in bits 8-4, first record, last record, and how many records from the first take part in
offline data authentication. Records of SFI 1-10 must be one 70 template; for ODA their template
value counts, while a record of SFI 11-30 counts whole (Book 3 10.3).

>>> [(e.sfi, e.first, e.last, e.oda_records) for e in parse_afl(bytes.fromhex("08010100 10010301"))]
[(1, 1, 1, 0), (2, 1, 3, 1)]
"""

from __future__ import annotations

from dataclasses import dataclass

from cardswitch.tlv import decode
from terminals.emv import apdu
from terminals.emv.session import Abort, Session, TryAnotherApplication, require_ok

#: The card data objects every contact application must have (Book 3 7.2).
MANDATORY_CONTACT = (0x5F24, 0x5A, 0x8C, 0x8D)


@dataclass(frozen=True)
class AflEntry:
    sfi: int
    first: int
    last: int
    oda_records: int


def parse_afl(afl: bytes) -> list[AflEntry]:
    """The application file locator's entries; ``ValueError`` naming the bad entry."""
    if len(afl) % 4:
        raise ValueError(f"AFL 94: must be a multiple of 4 bytes, got {len(afl)}")
    entries = []
    for offset in range(0, len(afl), 4):
        sfi, first, last, oda = afl[offset] >> 3, afl[offset + 1], afl[offset + 2], afl[offset + 3]
        if not (1 <= sfi <= 30 and 1 <= first <= last and oda <= last - first + 1):
            raise ValueError(f"AFL 94: entry {offset // 4 + 1} ({afl[offset:offset + 4].hex()}) "
                             "is not SFI 1-30, first <= last, ODA count within the range")
        entries.append(AflEntry(sfi, first, last, oda))
    return entries


def get_processing_options(session: Session, extra: dict[int, bytes] | None = None) -> bytes:
    """Sends GPO with the PDOL data, ``extra`` terminal data added first; the AIP, AFL and any
    format 2 objects join the card data. Returns the PDOL data sent.

    Raises :class:`TryAnotherApplication` on SW 6985.
    """
    if extra:
        session.terminal.update(extra)
    pdol_data = session.dol_data(session.card.get(0x9F38, b""))
    response = session.send("GPO", apdu.get_processing_options(pdol_data))
    if response.sw == apdu.SW_CONDITIONS_NOT_SATISFIED:
        raise TryAnotherApplication
    require_ok(response, "GET PROCESSING OPTIONS")
    try:
        objects = decode(response.data)
    except ValueError as exc:
        raise Abort(f"card data error in the GPO answer: {exc}") from None
    if len(objects) != 1 or objects[0].tag not in (0x80, 0x77):
        raise Abort("card data error: GPO answer is neither format 1 (80) nor format 2 (77)")
    answer = objects[0]
    if answer.tag == 0x80:
        if len(answer.value) < 2:
            raise Abort("card data error: GPO format 1 shorter than the AIP")
        session.card[0x82] = answer.value[:2]
        session.card[0x94] = answer.value[2:]
        session.read_tags.update((0x82, 0x94))
        session.log("GPO", "format 1")
    else:
        session.add_card_data(answer.value, "GPO answer", unique=True)
        session.log("GPO", "format 2")
    session.require(0x82)
    return pdol_data


def read_application_data(session: Session, *, unique: bool = True) -> None:
    """READ RECORD every record the AFL lists; collects the ODA static data on the way.

    ``unique`` refuses a tag the GPO answer or an earlier record already gave (Book 3 10.2);
    contactless cards repeat the track 2 data of their GPO answer, so one-tap reading allows it.
    """
    try:
        entries = parse_afl(session.card.get(0x94, b""))
    except ValueError as exc:
        raise Abort(f"card data error: {exc}") from None
    for entry in entries:
        for record in range(entry.first, entry.last + 1):
            for_oda = record < entry.first + entry.oda_records
            _read_record(session, entry.sfi, record, for_oda, unique)


def _read_record(session: Session, sfi: int, record: int, for_oda: bool, unique: bool) -> None:
    step = f"READ RECORD {sfi}.{record}"
    response = session.send(step, apdu.read_record(sfi, record))
    require_ok(response, step)
    try:
        objects = decode(response.data)
    except ValueError as exc:
        raise Abort(f"card data error in record {sfi}.{record}: {exc}") from None
    template = objects[0] if len(objects) == 1 and objects[0].tag == 0x70 else None
    if template is None and sfi <= 10:
        raise Abort(f"card data error: record {sfi}.{record} is not a 70 template")
    if template is not None:
        session.add_card_data(template.value, f"record {sfi}.{record}", unique=unique)
    if not for_oda:
        return
    if sfi <= 10 and template is not None:
        session.static_data += template.value
    elif template is not None:
        session.static_data += response.data
    else:
        session.static_data_invalid = True
