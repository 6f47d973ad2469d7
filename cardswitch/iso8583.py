"""The cardswitch ISO 8583:1987 dialects between the switch and its issuers, and their framing.

The field layout is data: :data:`FIELDS` names every data element once (name, maximum length,
length prefix, kind). A :class:`Dialect` says how those fields look on the wire and builds its
pyiso8583 spec from the table; :meth:`Dialect.encode`/:meth:`Dialect.decode` obey it. In a
decoded message every field is a str; binary fields (DE 52, DE 55) are upper-case hex. Balances
travel in DE 54 as 20-character amounts (account type, amount type, currency, C/D sign, 12
digits); additional data in DE 48 as tag(2)+length(3)+value subfields.

A dialect has four axes and an optional TPDU (``Dialect.describe()`` spells them in this order,
e.g. ``bcd/hex/ebcdic/ascii4/tpdu=6000030000``; ``ascii/binary/ascii/binary2`` is
:data:`DEFAULT`):

- ``numeric`` -- numeric fields (kind ``numeric``: the MTI, DE 2, 3, 4, 7, 11...) and the
  lengths of variable fields.

  - ``ascii``: one character per digit, in the dialect's ``charset`` (so EBCDIC digits
    ``F0``-``F9`` in an EBCDIC dialect); LL/LLL prefixes are 2/3 such digits counting the
    field's characters, or bytes for binary fields.
  - ``bcd``: packed BCD, two digits per byte. An odd number of digits is right-justified with a
    leading ``0`` nibble (``"051"`` -> ``00 51``). Track 2 (DE 35, kind ``track2``) is packed too,
    its ``=`` separator as the nibble ``D`` and an odd length left-justified with a trailing
    ``F`` nibble. LL/LLL prefixes are 1/2 bytes of BCD counting digits for numeric and track 2
    fields, characters for text fields, bytes for binary fields.

- ``bitmap`` -- ``binary``: 8 bytes per bitmap; ``hex``: 16 upper-case hexadecimal characters
  per bitmap, in the ``charset``.
- ``charset`` -- text fields (kind ``text``: DE 37, 38, 39, 41...) and, in ``ascii`` numeric
  dialects, every digit: ``ascii``, or ``ebcdic`` (code page 500). Binary fields are bytes.
- ``length_header`` -- before each message: ``binary2``, a 2-byte big-endian length, or
  ``ascii4``, 4 ASCII digits (ASCII whatever the ``charset``: it belongs to the transport).

The TPDU (transport protocol data unit) is 5 bytes, id(1) + destination(2) + source(2), sent
between the length header and the message and counted in the length; answers carry it with
destination and source swapped (:func:`swap_tpdu`). It is framing: :meth:`Dialect.frame` adds
it and :meth:`Dialect.read_frame` returns it apart from the message, never encode/decode.

The module-level :func:`encode`, :func:`decode`, :func:`frame` and :func:`read_frame` speak
:data:`DEFAULT`.
"""

from __future__ import annotations

import asyncio
import re
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple

import iso8583

from cardswitch.v1 import admin_pb2

Message = dict[str, Any]

#: Length prefix digits of a field: none, LLVAR, LLLVAR.
FIXED, LLVAR, LLLVAR = 0, 2, 3

Kind = Literal["numeric", "track2", "text", "binary", "bitmap"]


@dataclass(frozen=True)
class Field:
    """One data element. ``max_len`` counts digits (numeric, track2), characters (text) or
    bytes (binary, bitmap); ``prefix`` is the digits of its length prefix (FIXED: none)."""

    name: str
    max_len: int
    prefix: int
    kind: Kind


FIELDS: dict[str, Field] = {
    "h": Field("Message Header", 0, FIXED, "text"),
    "t": Field("Message Type", 4, FIXED, "numeric"),
    "p": Field("Bitmap, Primary", 8, FIXED, "bitmap"),
    "1": Field("Bitmap, Secondary", 8, FIXED, "bitmap"),
    "2": Field("Primary Account Number (PAN)", 19, LLVAR, "numeric"),
    "3": Field("Processing Code", 6, FIXED, "numeric"),
    "4": Field("Amount, Transaction", 12, FIXED, "numeric"),
    "7": Field("Transmission Date and Time", 10, FIXED, "numeric"),
    "11": Field("Systems Trace Audit Number", 6, FIXED, "numeric"),
    "12": Field("Time, Local Transaction", 6, FIXED, "numeric"),
    "13": Field("Date, Local Transaction", 4, FIXED, "numeric"),
    "14": Field("Date, Expiration", 4, FIXED, "numeric"),
    "18": Field("Merchant Type", 4, FIXED, "numeric"),
    "22": Field("Point-of-Service Entry Mode", 3, FIXED, "numeric"),
    "23": Field("Card Sequence Number", 3, FIXED, "numeric"),
    "25": Field("Point-of-Service Condition Code", 2, FIXED, "numeric"),
    "32": Field("Acquiring Institution Identification Code", 11, LLVAR, "numeric"),
    "35": Field("Track 2 Data", 37, LLVAR, "track2"),
    "37": Field("Retrieval Reference Number", 12, FIXED, "text"),
    "38": Field("Approval Code", 6, FIXED, "text"),
    "39": Field("Response Code", 2, FIXED, "text"),
    "41": Field("Card Acceptor Terminal Identification", 8, FIXED, "text"),
    "42": Field("Card Acceptor Identification Code", 15, FIXED, "text"),
    "43": Field("Card Acceptor Name/Location", 40, FIXED, "text"),
    "44": Field("Additional Response Data", 25, LLVAR, "text"),
    "48": Field("Additional Data - Private", 999, LLLVAR, "text"),
    "49": Field("Currency Code, Transaction", 3, FIXED, "numeric"),
    "52": Field("PIN Data", 8, FIXED, "binary"),
    "53": Field("Security Related Control Information", 16, FIXED, "numeric"),
    "54": Field("Additional Amounts", 120, LLLVAR, "text"),
    "55": Field("ICC Data", 255, LLLVAR, "binary"),
    "70": Field("Network Management Information Code", 3, FIXED, "numeric"),
    "90": Field("Original Data Elements", 42, FIXED, "numeric"),
    "95": Field("Replacement Amounts", 42, FIXED, "text"),
}

#: Messages the dialect carries, request MTI -> response MTI (x21: a repeated advice).
RESPONSE_MTI = {
    "0100": "0110", "0120": "0130", "0121": "0130", "0200": "0210", "0220": "0230",
    "0221": "0230", "0400": "0410", "0420": "0430", "0421": "0430", "0800": "0810",
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
#: Dynamic zone PIN key exchange: the new key block in DE 48 subfield KB, its check value in KC.
NMI_KEY_CHANGE = "161"
NMI_ECHO = "301"

#: DE 48 subfields of a key change (NMI 161).
DE48_KEY_BLOCK = "KB"
DE48_KEY_CHECK_VALUE = "KC"

#: Largest frame read, TPDU included.
MAX_MESSAGE = 8192
TPDU_SIZE = 5


class MessageError(ValueError):
    """The bytes are not a message of this dialect; the text says which field and why."""


class Frame(NamedTuple):
    """One message as read off the wire: its TPDU (b"" in a dialect without) and payload."""

    tpdu: bytes
    payload: bytes


#: Each axis of a dialect: attribute, Iso8583Dialect field, {enum value: choice}, default first.
_AXES: tuple[tuple[str, str, dict[int, str]], ...] = (
    ("numeric", "numeric_encoding", {admin_pb2.NUMERIC_ENCODING_ASCII: "ascii",
                                     admin_pb2.NUMERIC_ENCODING_BCD: "bcd"}),
    ("bitmap", "bitmap_encoding", {admin_pb2.BITMAP_ENCODING_BINARY: "binary",
                                   admin_pb2.BITMAP_ENCODING_HEX: "hex"}),
    ("charset", "character_set", {admin_pb2.CHARACTER_SET_ASCII: "ascii",
                                  admin_pb2.CHARACTER_SET_EBCDIC: "ebcdic"}),
    ("length_header", "length_header", {admin_pb2.LENGTH_HEADER_BINARY_2: "binary2",
                                        admin_pb2.LENGTH_HEADER_ASCII_4: "ascii4"}),
)
_CODEC = {"ascii": "ascii", "ebcdic": "cp500"}
#: What a BCD dialect packs: digits, and for track 2 also the separator (nibble D).
_PACKABLE = {"numeric": re.compile("[0-9]*"), "track2": re.compile("[0-9=]*")}
_TPDU_HEX = re.compile("[0-9A-Fa-f]{10}")
_PARSE_HINT = "numeric,bitmap,charset,length_header[,tpdu=HEX], e.g. bcd,hex,ebcdic,ascii4"


def _tpdu_from_hex(field: str, text: str) -> bytes:
    if text and not _TPDU_HEX.fullmatch(text):
        raise ValueError(f"{field}: must be 10 hex digits (e.g. 6000030000) or empty, "
                         f"got {text!r}")
    return bytes.fromhex(text)


def swap_tpdu(tpdu: bytes) -> bytes:
    """The TPDU of the answer to ``tpdu``: same id, destination and source swapped.

    >>> swap_tpdu(bytes.fromhex("6000030000")).hex()
    '6000000003'
    """
    if len(tpdu) not in (0, TPDU_SIZE):
        raise MessageError(f"tpdu: {len(tpdu)} bytes, expected {TPDU_SIZE} or none")
    return tpdu[:1] + tpdu[3:5] + tpdu[1:3]


@dataclass(frozen=True)
class Dialect:
    """How the fields of :data:`FIELDS` and the framing look on one link (module docstring)."""

    numeric: Literal["ascii", "bcd"] = "ascii"
    bitmap: Literal["binary", "hex"] = "binary"
    charset: Literal["ascii", "ebcdic"] = "ascii"
    length_header: Literal["binary2", "ascii4"] = "binary2"
    #: Sent before every message we originate; b"" for none.
    tpdu: bytes = b""

    def __post_init__(self) -> None:
        for attr, _, choices in _AXES:
            if getattr(self, attr) not in choices.values():
                raise ValueError(f"dialect.{attr}: {getattr(self, attr)!r} is not one of "
                                 + "|".join(choices.values()))
        if len(self.tpdu) not in (0, TPDU_SIZE):
            raise ValueError(f"dialect.tpdu: {len(self.tpdu)} bytes, expected {TPDU_SIZE} "
                             "or none")

    # ---- configuration ------------------------------------------------------------------

    @classmethod
    def from_proto(cls, msg: admin_pb2.Iso8583Dialect) -> Dialect:
        """The dialect a link's configuration names; UNSPECIFIED axes take the defaults."""
        values: dict[str, Any] = {}
        for attr, proto_field, choices in _AXES:
            number = getattr(msg, proto_field)
            if number and number not in choices:
                raise ValueError(f"dialect.{proto_field}: unknown value {number}")
            if number:
                values[attr] = choices[number]
        return cls(**values, tpdu=_tpdu_from_hex("dialect.tpdu", msg.tpdu))

    def to_proto(self) -> admin_pb2.Iso8583Dialect:
        """Every axis explicit, e.g. NUMERIC_ENCODING_ASCII rather than UNSPECIFIED."""
        values: dict[str, Any] = {}
        for attr, proto_field, choices in _AXES:
            values[proto_field] = {c: n for n, c in choices.items()}[getattr(self, attr)]
        return admin_pb2.Iso8583Dialect(**values, tpdu=self.tpdu.hex().upper())

    def describe(self) -> str:
        """E.g. ``bcd/hex/ebcdic/ascii4/tpdu=6000030000``; :meth:`parse` reads it back."""
        words = [getattr(self, attr) for attr, _, _ in _AXES]
        if self.tpdu:
            words.append(f"tpdu={self.tpdu.hex().upper()}")
        return "/".join(words)

    @classmethod
    def parse(cls, text: str) -> Dialect:
        """Reads ``numeric,bitmap,charset,length_header[,tpdu=HEX]`` (``,`` or ``/``); blank
        text is :data:`DEFAULT`.

        >>> Dialect.parse("bcd,hex,ebcdic,ascii4,tpdu=6000030000").describe()
        'bcd/hex/ebcdic/ascii4/tpdu=6000030000'
        """
        if not text.strip():
            return cls()
        words = [w.strip().lower() for w in re.split("[,/]", text)]
        tpdu = ""
        if words[-1].startswith("tpdu="):
            tpdu = words.pop()[len("tpdu="):]
        if len(words) != len(_AXES):
            raise ValueError(f"dialect {text!r}: expected {_PARSE_HINT}")
        values: dict[str, Any] = {}
        for (attr, _, choices), word in zip(_AXES, words, strict=True):
            if word not in choices.values():
                raise ValueError(f"dialect {text!r}: {attr} {word!r} is not one of "
                                 + "|".join(choices.values()))
            values[attr] = word
        return cls(**values, tpdu=_tpdu_from_hex(f"dialect {text!r}: tpdu", tpdu))

    # ---- codec --------------------------------------------------------------------------

    @cached_property
    def spec(self) -> dict[str, dict[str, Any]]:
        """The pyiso8583 spec of this dialect, built from :data:`FIELDS`."""
        return {number: self._field_spec(f) for number, f in FIELDS.items()}

    def _field_spec(self, f: Field) -> dict[str, Any]:
        codec = _CODEC[self.charset]
        spec: dict[str, Any] = {"data_enc": codec, "len_enc": codec, "len_type": f.prefix,
                                "max_len": f.max_len, "desc": f.name}
        bcd = self.numeric == "bcd"
        if f.prefix and bcd:
            spec |= {"len_enc": "bcd", "len_type": (f.prefix + 1) // 2}
        if f.kind == "binary" or (f.kind == "bitmap" and self.bitmap == "binary"):
            spec["data_enc"] = "b"
        elif f.kind == "bitmap":
            spec["max_len"] = 2 * f.max_len
        elif f.kind == "numeric" and bcd:
            spec |= {"data_enc": "b", "len_count": "nibbles", "left_pad": "0"}
        elif f.kind == "track2" and bcd:
            spec |= {"data_enc": "b", "len_count": "nibbles", "right_pad": "F"}
        return spec

    def encode(self, message: Message) -> bytes:
        """Encodes a message dict (field number -> value, ``"t"`` the MTI) to bytes, no TPDU."""
        wire = dict(message)
        for key, value in message.items():
            field = FIELDS.get(key)
            if field is None:
                raise MessageError(f"field {key!r}: not defined in this dialect")
            if not isinstance(value, str):
                raise MessageError(f"field {key}: {type(value).__name__} value, expected str")
            if self.numeric == "bcd" and field.kind in _PACKABLE:
                if not _PACKABLE[field.kind].fullmatch(value):
                    allowed = "digits and '='" if field.kind == "track2" else "digits"
                    raise MessageError(f"field {key}: only {allowed} pack as BCD")
                wire[key] = value.replace("=", "D")
        try:
            raw, _ = iso8583.encode(wire, self.spec)
        except iso8583.EncodeError as exc:
            raise MessageError(str(exc)) from exc
        return bytes(raw)

    def decode(self, raw: bytes) -> Message:
        """Decodes bytes (no TPDU) to a message dict; :class:`MessageError` names the bad field."""
        try:
            message, _ = iso8583.decode(bytearray(raw), self.spec)
        except iso8583.DecodeError as exc:
            raise MessageError(str(exc)) from exc
        except KeyError as exc:  # the bitmap names a field this dialect does not define
            raise MessageError(f"field {exc.args[0]}: not defined in this dialect") from exc
        message.pop("p", None)
        message.pop("1", None)
        if self.numeric == "bcd":
            return {key: self._unpacked(key, value) for key, value in message.items()}
        return dict(message)

    @staticmethod
    def _unpacked(key: str, value: str) -> str:
        """A decoded BCD field as digits (track 2: nibble D back to '=')."""
        kind = FIELDS[key].kind
        if kind == "track2":
            value = value.replace("D", "=")
        if kind in _PACKABLE and not _PACKABLE[kind].fullmatch(value):
            raise MessageError(f"field {key}: a nibble is not a decimal digit")
        return value

    # ---- framing ------------------------------------------------------------------------

    def frame(self, payload: bytes, *, tpdu: bytes | None = None) -> bytes:
        """Length header + TPDU + ``payload``; the length counts TPDU and payload.

        ``tpdu`` defaults to the dialect's own; pass ``swap_tpdu(request_tpdu)`` to answer.
        """
        tpdu = self.tpdu if tpdu is None else tpdu
        if len(tpdu) != len(self.tpdu):
            raise MessageError(f"tpdu: {len(tpdu)} bytes, this dialect frames "
                               f"{len(self.tpdu)}")
        length = len(tpdu) + len(payload)
        if self.length_header == "ascii4":
            if length > 9999:
                raise MessageError(f"message: {length} bytes exceeds the 4-digit length prefix")
            return b"%04d" % length + tpdu + payload
        if length > 0xFFFF:
            raise MessageError(f"message: {length} bytes exceeds the 2-byte length prefix")
        return struct.pack(">H", length) + tpdu + payload

    async def read_frame(self, reader: asyncio.StreamReader) -> Frame:
        """Reads one framed message; raises IncompleteReadError at end of stream."""
        if self.length_header == "ascii4":
            header = await reader.readexactly(4)
            if not header.isdigit():
                raise MessageError(f"length prefix: {header!r} is not 4 ASCII digits")
            length = int(header)
        else:
            (length,) = struct.unpack(">H", await reader.readexactly(2))
        shortest = len(self.tpdu) + 1
        if not shortest <= length <= MAX_MESSAGE:
            raise MessageError(f"length prefix: {length} is outside {shortest}..{MAX_MESSAGE}")
        data = await reader.readexactly(length)
        return Frame(data[:len(self.tpdu)], data[len(self.tpdu):])


#: ASCII numerics, binary bitmaps, ASCII text, 2-byte binary length, no TPDU.
DEFAULT = Dialect()
SPEC = DEFAULT.spec


def encode(message: Message) -> bytes:
    """:meth:`Dialect.encode` in :data:`DEFAULT`."""
    return DEFAULT.encode(message)


def decode(raw: bytes) -> Message:
    """:meth:`Dialect.decode` in :data:`DEFAULT`."""
    return DEFAULT.decode(raw)


def frame(payload: bytes) -> bytes:
    """2-byte big-endian length + ``payload``."""
    return DEFAULT.frame(payload)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Reads one length-prefixed message; raises IncompleteReadError at end of stream."""
    return (await DEFAULT.read_frame(reader)).payload


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


@dataclass(eq=False)
class FrameWriter:
    """One TCP connection's writing side for a server: whole frames only, one writer at a time,
    so answers completed in any order never interleave on the wire."""

    writer: asyncio.StreamWriter
    peer: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, data: bytes) -> bool:
        """Writes one framed message; False when the connection is closing or gone."""
        async with self.lock:
            if self.writer.is_closing():
                return False
            try:
                self.writer.write(data)
                await self.writer.drain()
            except ConnectionError:
                return False
            return True
