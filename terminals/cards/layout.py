"""What a card shows the terminal, built from its profile: records, AFL, FCI, data object lists.

Records (SFI, record numbers; the records of SFI 2 take part in offline data authentication when
the card does SDA or DDA):

- SFI 1, record 1: 57 track 2 equivalent data, 5F20 cardholder name (contact only; contactless
  returns 57 in GET PROCESSING OPTIONS);
- SFI 2, record 1: 5A PAN, 5F24 expiry, 5F25 effective date, 5F28 issuer country, 5F34 PSN,
  8C CDOL1, 8D CDOL2, 8E CVM list, 9F07 AUC, 9F0D/9F0E/9F0F IACs, 9F08 application version,
  9F42 application currency, 9F4A static data authentication tag list (82) when SDA or DDA;
- SFI 3, records 1..n: the certificates personalisation supplied (8F 90 92 9F32 93 9F46 9F47
  9F48) and, on a DDA card, 9F49 DDOL, packed in that order into as few records as fit.

Data object lists: CDOL1 is :data:`cardswitch.emv.TERMINAL_AC_DATA` then 9F35 01 (terminal
type), 9F45 02 (data authentication code), 9F34 03 (CVM results). CDOL2 is 8A 02, 95 05,
9F37 04, with 91 0A (ARPC || ARC) after 8A for Mastercard, whose cards check the ARPC there; Visa
and UnionPay cards get it by EXTERNAL AUTHENTICATE. A contact card has no PDOL; a contactless
card asks for 9F66 04, 9F02 06, 9F03 06, 9F1A 02, 95 05, 5F2A 02, 9A 03, 9C 01, 9F37 04.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cardswitch import emv, tlv
from terminals.pcsc import Interface

if TYPE_CHECKING:
    from terminals.cards.profile import CardProfile

#: Application version number 9F08 per brand (VIS 1.4.0, M/Chip 4, PBOC 3.0).
APPLICATION_VERSION: dict[str, bytes] = {"visa": bytes.fromhex("008C"),
                                         "mastercard": bytes.fromhex("0002"),
                                         "unionpay": bytes.fromhex("0030")}
#: Application usage control 9F07: valid for domestic and international goods, services, cash.
AUC = bytes.fromhex("FF00")
CDOL1: tuple[tuple[int, int], ...] = (
    *emv.TERMINAL_AC_DATA, (0x9F35, 1), (0x9F45, 2), (0x9F34, 3),
)
CDOL2: tuple[tuple[int, int], ...] = ((0x8A, 2), (0x95, 5), (0x9F37, 4))
CDOL2_MASTERCARD: tuple[tuple[int, int], ...] = ((0x8A, 2), (0x91, 10), (0x95, 5), (0x9F37, 4))
DDOL: tuple[tuple[int, int], ...] = ((0x9F37, 4),)
PDOL_CONTACTLESS: tuple[tuple[int, int], ...] = (
    (0x9F66, 4), (0x9F02, 6), (0x9F03, 6), (0x9F1A, 2), (0x95, 5), (0x5F2A, 2), (0x9A, 3),
    (0x9C, 1), (0x9F37, 4),
)
#: The certificate tags personalisation may supply, in the order SFI 3 carries them.
CERTIFICATE_TAGS: tuple[int, ...] = (
    0x8F, 0x90, 0x92, 0x9F32, 0x93, 0x9F46, 0x9F47, 0x9F48,
)
SFI_TRACK, SFI_APPLICATION, SFI_CERTIFICATES = 1, 2, 3
#: Largest 70 template body one record carries, so a READ RECORD answer fits a short Le.
MAX_RECORD_BODY = 250


def _bcd(digits: str) -> bytes:
    """Digits packed two to a byte, F-padded to a whole byte (format cn)."""
    return bytes.fromhex(digits + "F" * (len(digits) % 2))


def dol_bytes(entries: tuple[tuple[int, int], ...]) -> bytes:
    """A data object list as the card stores it: each tag then its one-byte length."""
    return b"".join(tlv.encode(tag, b"")[:-1] + bytes([length]) for tag, length in entries)


def track2(profile: CardProfile) -> bytes:
    """57: PAN D YYMM service code discretionary data, F-padded to whole bytes."""
    digits = (f"{profile.pan}D{profile.expiry[:4]}{profile.service_code}"
              f"{profile.track2_discretionary}")
    return _bcd(digits)


def _files(profile: CardProfile) -> list[tuple[int, list[bytes]]]:
    """Each SFI with the data objects its records carry, in order."""
    track = [tlv.encode(0x57, track2(profile)),
             tlv.encode(0x5F20, profile.cardholder_name.encode("ascii", "replace"))]
    application = [
        tlv.encode(0x5A, _bcd(profile.pan)),
        tlv.encode(0x5F24, bytes.fromhex(profile.expiry)),
        tlv.encode(0x5F25, bytes.fromhex(profile.effective)),
        tlv.encode(0x5F28, bytes.fromhex(profile.country_numeric)),
        tlv.encode(0x5F34, bytes.fromhex(profile.psn)),
        tlv.encode(0x8C, dol_bytes(profile.cdol1)),
        tlv.encode(0x8D, dol_bytes(profile.cdol2)),
        tlv.encode(0x8E, profile.cvm_list),
        tlv.encode(0x9F07, AUC),
        tlv.encode(0x9F0D, profile.iac_default),
        tlv.encode(0x9F0E, profile.iac_denial),
        tlv.encode(0x9F0F, profile.iac_online),
        tlv.encode(0x9F08, APPLICATION_VERSION[profile.brand]),
        tlv.encode(0x9F42, bytes.fromhex(profile.currency_numeric)),
    ]
    if profile.oda != "none":
        application.append(tlv.encode(0x9F4A, b"\x82"))
    files = [(SFI_TRACK, track), (SFI_APPLICATION, application)]
    certificates = [tlv.encode(tag, profile.certificates[tlv.tag_hex(tag)])
                    for tag in CERTIFICATE_TAGS if tlv.tag_hex(tag) in profile.certificates]
    if profile.oda == "dda":
        certificates.append(tlv.encode(0x9F49, dol_bytes(DDOL)))
    if certificates:
        files.append((SFI_CERTIFICATES, certificates))
    return files


def _pack(objects: list[bytes]) -> list[bytes]:
    """Data objects packed in order into as few record bodies of MAX_RECORD_BODY as fit."""
    bodies: list[bytes] = [b""]
    for item in objects:
        if bodies[-1] and len(bodies[-1]) + len(item) > MAX_RECORD_BODY:
            bodies.append(b"")
        bodies[-1] += item
    return bodies


def records(profile: CardProfile) -> dict[tuple[int, int], bytes]:
    """Every record of the card, (SFI, record number) to its 70 template."""
    out: dict[tuple[int, int], bytes] = {}
    for sfi, objects in _files(profile):
        for number, body in enumerate(_pack(objects), start=1):
            out[(sfi, number)] = tlv.encode(0x70, body)
    return out


def afl(profile: CardProfile, interface: Interface) -> bytes:
    """Application file locator 94: per SFI, ``SFI<<3, first, last, records in ODA``.

    Contactless leaves out SFI 1: GET PROCESSING OPTIONS already returns track 2.
    """
    counts: dict[int, int] = {}
    for sfi, _number in records(profile):
        counts[sfi] = counts.get(sfi, 0) + 1
    out = bytearray()
    for sfi, count in sorted(counts.items()):
        if interface == "contactless" and sfi == SFI_TRACK:
            continue
        in_oda = count if sfi == SFI_APPLICATION and profile.oda != "none" else 0
        out += bytes([sfi << 3, 1, count, in_oda])
    return bytes(out)


def static_data_to_authenticate(profile: CardProfile) -> bytes:
    """The static data SDA's 93 and DDA's 9F46 sign (Book 3 10.3): the values of the 70
    templates of the ODA records, then the AIP since 9F4A lists 82. Empty without ODA."""
    if profile.oda == "none":
        return b""
    data = b"".join(tlv.decode(record)[0].value
                    for (sfi, _n), record in sorted(records(profile).items())
                    if sfi == SFI_APPLICATION)
    return data + profile.aip


def fci(profile: CardProfile, interface: Interface) -> bytes:
    """The application's FCI: 6F(84 AID, A5(50 label, 87 priority, 9F38 PDOL, 5F2D "en"))."""
    proprietary = [(0x50, profile.application_label.encode("ascii", "replace")),
                   (0x87, bytes([profile.priority]))]
    pdol = profile.pdol(interface)
    if pdol:
        proprietary.append((0x9F38, dol_bytes(pdol)))
    proprietary.append((0x5F2D, b"en"))
    return tlv.encode(0x6F, tlv.encode(0x84, profile.aid)
                      + tlv.encode(0xA5, tlv.encode_all(proprietary)))


def directory_entry(profile: CardProfile) -> bytes:
    """61(4F AID, 50 label, 87 priority): the card's one application in a PSE or PPSE."""
    return tlv.encode(0x61, tlv.encode_all([
        (0x4F, profile.aid),
        (0x50, profile.application_label.encode("ascii", "replace")),
        (0x87, bytes([profile.priority])),
    ]))

