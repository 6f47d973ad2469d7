"""The cardswitch ISO 8583:1987 dialect between the switch and its issuers, and its framing.

The field layout is data (a pyiso8583 spec table); :func:`encode`/:func:`decode` obey it. On the
wire each message is preceded by a 2-byte big-endian length (the "length prefix").

Dialect: ASCII numeric fields, binary primary/secondary bitmaps, binary PIN block (DE 52) and
chip data (DE 55); balances in DE 54 as 20-character amounts (account type, amount type,
currency, C/D sign, 12 digits); additional data in DE 48 as tag(2)+length(3)+value subfields.
In a decoded message every field is a str; binary fields (DE 52, DE 55) are upper-case hex.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import iso8583

Message = dict[str, Any]


def _f(desc: str, max_len: int, len_type: int = 0, data_enc: str = "ascii") -> dict[str, Any]:
    return {"data_enc": data_enc, "len_enc": "ascii", "len_type": len_type,
            "max_len": max_len, "desc": desc}


SPEC: dict[str, dict[str, Any]] = {
    "h": _f("Message Header", 0),
    "t": _f("Message Type", 4),
    "p": _f("Bitmap, Primary", 8, data_enc="b"),
    "1": _f("Bitmap, Secondary", 8, data_enc="b"),
    "2": _f("Primary Account Number (PAN)", 19, 2),
    "3": _f("Processing Code", 6),
    "4": _f("Amount, Transaction", 12),
    "7": _f("Transmission Date and Time", 10),
    "11": _f("Systems Trace Audit Number", 6),
    "12": _f("Time, Local Transaction", 6),
    "13": _f("Date, Local Transaction", 4),
    "14": _f("Date, Expiration", 4),
    "18": _f("Merchant Type", 4),
    "22": _f("Point-of-Service Entry Mode", 3),
    "23": _f("Card Sequence Number", 3),
    "25": _f("Point-of-Service Condition Code", 2),
    "32": _f("Acquiring Institution Identification Code", 11, 2),
    "35": _f("Track 2 Data", 37, 2),
    "37": _f("Retrieval Reference Number", 12),
    "38": _f("Approval Code", 6),
    "39": _f("Response Code", 2),
    "41": _f("Card Acceptor Terminal Identification", 8),
    "42": _f("Card Acceptor Identification Code", 15),
    "43": _f("Card Acceptor Name/Location", 40),
    "44": _f("Additional Response Data", 25, 2),
    "48": _f("Additional Data - Private", 999, 3),
    "49": _f("Currency Code, Transaction", 3),
    "52": _f("PIN Data", 8, data_enc="b"),
    "53": _f("Security Related Control Information", 16),
    "54": _f("Additional Amounts", 120, 3),
    "55": _f("ICC Data", 255, 3, data_enc="b"),
    "70": _f("Network Management Information Code", 3),
    "90": _f("Original Data Elements", 42),
    "95": _f("Replacement Amounts", 42),
}

#: Messages the dialect carries, request MTI -> response MTI.
RESPONSE_MTI = {
    "0100": "0110", "0120": "0130", "0200": "0210", "0220": "0230",
    "0400": "0410", "0420": "0430", "0800": "0810",
}

#: Processing codes (DE 3, first two digits: transaction type).
PROC_PURCHASE = "000000"
PROC_REFUND = "200000"
PROC_BALANCE = "310000"

#: POS condition codes (DE 25).
POS_NORMAL = "00"
POS_PREAUTH = "06"

#: Network management codes (DE 70).
NMI_SIGN_ON = "001"
NMI_SIGN_OFF = "002"
NMI_ECHO = "301"

MAX_MESSAGE = 8192


class MessageError(ValueError):
    """The bytes are not a message of this dialect; the text says which field and why."""


def encode(message: Message) -> bytes:
    """Encodes a message dict (field number -> value, ``"t"`` the MTI) to bytes, no prefix."""
    try:
        raw, _ = iso8583.encode(dict(message), SPEC)
    except iso8583.EncodeError as exc:
        raise MessageError(str(exc)) from exc
    return bytes(raw)


def decode(raw: bytes) -> Message:
    """Decodes bytes (no prefix) to a message dict; :class:`MessageError` names the bad field."""
    try:
        message, _ = iso8583.decode(bytearray(raw), SPEC)
    except iso8583.DecodeError as exc:
        raise MessageError(str(exc)) from exc
    except KeyError as exc:  # the bitmap names a field this dialect does not define
        raise MessageError(f"field {exc.args[0]}: not defined in this dialect") from exc
    message.pop("p", None)
    message.pop("1", None)
    return dict(message)


def frame(payload: bytes) -> bytes:
    if len(payload) > 0xFFFF:
        raise MessageError(f"message: {len(payload)} bytes exceeds the 2-byte length prefix")
    return struct.pack(">H", len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Reads one length-prefixed message; raises IncompleteReadError at end of stream."""
    header = await reader.readexactly(2)
    (length,) = struct.unpack(">H", header)
    if length == 0 or length > MAX_MESSAGE:
        raise MessageError(f"length prefix: {length} is outside 1..{MAX_MESSAGE}")
    return await reader.readexactly(length)


def encode_de48(subfields: dict[str, str]) -> str:
    """DE 48 subfields as tag(2) + length(3) + value, e.g. ``{"C2": "123"}`` -> ``C2003123``."""
    out = []
    for tag, value in subfields.items():
        if len(tag) != 2:
            raise MessageError(f"DE 48 tag {tag!r}: must be 2 characters")
        out.append(f"{tag}{len(value):03d}{value}")
    return "".join(out)


def decode_de48(data: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(data):
        if i + 5 > len(data) or not data[i + 2:i + 5].isdigit():
            raise MessageError(f"DE 48: subfield header at offset {i} is malformed")
        tag, length = data[i:i + 2], int(data[i + 2:i + 5])
        if i + 5 + length > len(data):
            raise MessageError(f"DE 48 subfield {tag}: length {length} runs past the field")
        out[tag] = data[i + 5:i + 5 + length]
        i += 5 + length
    return out


#: DE 54 amount types.
AMOUNT_LEDGER = "01"
AMOUNT_AVAILABLE = "02"


def encode_de54(balances: list[tuple[str, str, int]], account_type: str = "00") -> str:
    """Balances ``[(amount_type, currency_numeric, amount_minor)]`` as DE 54 text."""
    parts = []
    for amount_type, currency_n, amount in balances:
        sign = "C" if amount >= 0 else "D"
        parts.append(f"{account_type}{amount_type}{currency_n}{sign}{abs(amount):012d}")
    return "".join(parts)


def decode_de54(data: str) -> list[tuple[str, str, int]]:
    if len(data) % 20:
        raise MessageError(f"DE 54: length {len(data)} is not a multiple of 20")
    out = []
    for i in range(0, len(data), 20):
        chunk = data[i:i + 20]
        sign = chunk[7]
        if sign not in "CD" or not chunk[8:].isdigit():
            raise MessageError(f"DE 54: amount {i // 20 + 1} is malformed")
        amount = int(chunk[8:])
        out.append((chunk[2:4], chunk[4:7], amount if sign == "C" else -amount))
    return out
