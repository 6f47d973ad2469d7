"""Configurable ISO 8583 dialects: every combination over TCP, golden bytes, configuration.

The golden vectors are assembled by hand from the module docstring's rules, not by the code
under test; LEGACY_SPEC is the spec table the single-dialect module had, so the default dialect
is shown to produce the bytes it always did.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import iso8583 as pyiso8583
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardswitch import iso8583
from cardswitch.iso8583 import FIELDS, FIXED, Dialect, Field, MessageError, swap_tpdu
from cardswitch.v1 import admin_pb2

TPDU = bytes.fromhex("6000030000")
ALL = [Dialect(numeric, bitmap, charset, header, tpdu)  # type: ignore[arg-type]
       for numeric, bitmap, charset, header, tpdu in itertools.product(
           ("ascii", "bcd"), ("binary", "hex"), ("ascii", "ebcdic"), ("binary2", "ascii4"),
           (b"", TPDU))]


def purchase() -> dict[str, str]:
    """A chip purchase with PIN as the switch forwards it, and DE 90 for a secondary bitmap."""
    return {
        "t": "0200", "2": "4761739001010010", "3": "000000", "4": "000000002599",
        "7": "1123145200", "11": "000123", "12": "145200", "13": "1123", "14": "3012",
        "18": "5411", "22": "051", "23": "001", "25": "00", "32": "1234567",
        "35": "4761739001010010=30122011000000000", "37": "632700000042", "41": "TERM0001",
        "42": "MERCHANT000001 ", "43": "CARDSWITCH TEST SHOP    SPRINGFIELD   US",
        "48": iso8583.encode_de48({"C2": "123", "KC": "1A2B3C"}), "49": "840",
        "52": "0123456789ABCDEF",
        "54": iso8583.encode_de54([("01", "840", 250000), ("02", "840", -1500)]),
        "55": "9F2608C2B8A1E5F0D3C4B79F2701809F10120110A00003220000000000000000000000FF"
              "9F3704A1B2C3D4950500000080009A032311239C01005F2A020840820239009F1A020840",
        "90": "0200" + "000122" + "1123145200" + "1234567".zfill(11) + "0" * 11,
    }


ECHO = {"t": "0800", "7": "1123145200", "11": "000124", "70": "301"}


# ---- every combination over a real TCP connection ----------------------------------------

@pytest.mark.parametrize("dialect", ALL, ids=Dialect.describe)
def test_purchase_and_echo_round_trip_over_tcp(dialect: Dialect) -> None:
    received: list[tuple[bytes, dict[str, Any]]] = []

    async def issuer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            tpdu, payload = await dialect.read_frame(reader)
            request = dialect.decode(payload)
            received.append((tpdu, request))
            answer = request | {"t": iso8583.RESPONSE_MTI[request["t"]], "39": "00"}
            writer.write(dialect.frame(dialect.encode(answer), tpdu=swap_tpdu(tpdu)))
        await writer.drain()
        writer.close()

    async def run() -> list[tuple[bytes, dict[str, Any]]]:
        server = await asyncio.start_server(issuer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Both frames in one write: the reader must take exactly one message per frame.
        writer.write(b"".join(dialect.frame(dialect.encode(m)) for m in (purchase(), ECHO)))
        await writer.drain()
        answers = []
        for _ in range(2):
            tpdu, payload = await asyncio.wait_for(dialect.read_frame(reader), 5)
            answers.append((tpdu, dialect.decode(payload)))
        writer.close()
        server.close()
        await server.wait_closed()
        return answers

    answers = asyncio.run(run())
    assert received == [(dialect.tpdu, purchase()), (dialect.tpdu, ECHO)]
    answer_tpdu = bytes.fromhex("6000000003") if dialect.tpdu else b""
    assert answers == [(answer_tpdu, purchase() | {"t": "0210", "39": "00"}),
                       (answer_tpdu, ECHO | {"t": "0810", "39": "00"})]


# ---- golden bytes ------------------------------------------------------------------------

SIGN_ON = {"t": "0800", "7": "0515120000", "11": "000001", "32": "1234567", "70": "001"}
# Fields 1 (secondary bitmap), 7, 11, 32; then 70.
PRIMARY = bytes.fromhex("8220000100000000")
SECONDARY = bytes.fromhex("0400000000000000")
EBCDIC_PRIMARY = bytes.fromhex("F8F2F2F0F0F0F0F1F0F0F0F0F0F0F0F0")
EBCDIC_SECONDARY = bytes.fromhex("F0F4F0F0F0F0F0F0F0F0F0F0F0F0F0F0")
BCD_FIELDS = (b"\x05\x15\x12\x00\x00"  # DE 7
              b"\x00\x00\x01"  # DE 11
              b"\x07\x01\x23\x45\x67"  # DE 32: 7 digits, leading 0 nibble
              b"\x00\x01")  # DE 70

GOLDEN = {
    "ascii/binary/ascii/binary2": (
        b"\x00\x30" + b"0800" + PRIMARY + SECONDARY
        + b"0515120000" + b"000001" + b"07" + b"1234567" + b"001"),
    "bcd/binary/ascii/binary2": (
        b"\x00\x21" + b"\x08\x00" + PRIMARY + SECONDARY + BCD_FIELDS),
    "ascii/hex/ebcdic/ascii4": (
        b"0064" + b"\xf0\xf8\xf0\xf0" + EBCDIC_PRIMARY + EBCDIC_SECONDARY
        + b"\xf0\xf5\xf1\xf5\xf1\xf2\xf0\xf0\xf0\xf0"  # DE 7
        + b"\xf0\xf0\xf0\xf0\xf0\xf1"  # DE 11
        + b"\xf0\xf7" + b"\xf1\xf2\xf3\xf4\xf5\xf6\xf7"  # DE 32
        + b"\xf0\xf0\xf1"),  # DE 70
    "bcd/hex/ebcdic/binary2/tpdu=6000030000": (
        b"\x00\x36" + b"\x60\x00\x03\x00\x00" + b"\x08\x00" + EBCDIC_PRIMARY + EBCDIC_SECONDARY
        + BCD_FIELDS),
}


@pytest.mark.parametrize("spec", list(GOLDEN))
def test_sign_on_is_exactly_the_hand_assembled_bytes(spec: str) -> None:
    dialect = Dialect.parse(spec)
    assert dialect.frame(dialect.encode(SIGN_ON)) == GOLDEN[spec]
    tpdu, payload = read(dialect, GOLDEN[spec])
    assert (tpdu, dialect.decode(payload)) == (dialect.tpdu, SIGN_ON)


def test_bcd_track2_packs_the_separator_as_d_and_pads_with_f() -> None:
    raw = Dialect(numeric="bcd").encode({"t": "0100", "35": "4761739001010010=301220"})
    assert raw[10:] == b"\x23" + bytes.fromhex("4761739001010010D301220F")
    assert Dialect(numeric="bcd").decode(raw)["35"] == "4761739001010010=301220"


def test_bcd_counts_text_and_binary_lengths_in_bytes() -> None:
    raw = Dialect(numeric="bcd").encode({"t": "0110", "44": "card lost", "55": "9F2701"})
    assert raw[10:] == b"\x09card lost" + b"\x00\x03\x9f\x27\x01"


def test_ebcdic_text_is_code_page_500() -> None:
    raw = Dialect(charset="ebcdic").encode({"t": "0110", "39": "05", "41": "Term-01!"})
    assert raw[12:] == b"\xf0\xf5" + b"\xe3\x85\x99\x94\x60\xf0\xf1\x4f"


# ---- the default dialect is the one the switch always spoke -------------------------------

def _legacy(desc: str, max_len: int, len_type: int = 0, data_enc: str = "ascii"
            ) -> dict[str, Any]:
    return {"data_enc": data_enc, "len_enc": "ascii", "len_type": len_type,
            "max_len": max_len, "desc": desc}


LEGACY_SPEC: dict[str, dict[str, Any]] = {
    "h": _legacy("Message Header", 0), "t": _legacy("Message Type", 4),
    "p": _legacy("Bitmap, Primary", 8, data_enc="b"),
    "1": _legacy("Bitmap, Secondary", 8, data_enc="b"),
    "2": _legacy("Primary Account Number (PAN)", 19, 2), "3": _legacy("Processing Code", 6),
    "4": _legacy("Amount, Transaction", 12), "7": _legacy("Transmission Date and Time", 10),
    "11": _legacy("Systems Trace Audit Number", 6), "12": _legacy("Time, Local Transaction", 6),
    "13": _legacy("Date, Local Transaction", 4), "14": _legacy("Date, Expiration", 4),
    "18": _legacy("Merchant Type", 4), "22": _legacy("Point-of-Service Entry Mode", 3),
    "23": _legacy("Card Sequence Number", 3),
    "25": _legacy("Point-of-Service Condition Code", 2),
    "32": _legacy("Acquiring Institution Identification Code", 11, 2),
    "35": _legacy("Track 2 Data", 37, 2), "37": _legacy("Retrieval Reference Number", 12),
    "38": _legacy("Approval Code", 6), "39": _legacy("Response Code", 2),
    "41": _legacy("Card Acceptor Terminal Identification", 8),
    "42": _legacy("Card Acceptor Identification Code", 15),
    "43": _legacy("Card Acceptor Name/Location", 40),
    "44": _legacy("Additional Response Data", 25, 2),
    "48": _legacy("Additional Data - Private", 999, 3),
    "49": _legacy("Currency Code, Transaction", 3),
    "52": _legacy("PIN Data", 8, data_enc="b"),
    "53": _legacy("Security Related Control Information", 16),
    "54": _legacy("Additional Amounts", 120, 3), "55": _legacy("ICC Data", 255, 3, data_enc="b"),
    "70": _legacy("Network Management Information Code", 3),
    "90": _legacy("Original Data Elements", 42), "95": _legacy("Replacement Amounts", 42),
}


def legacy_encode(message: dict[str, str]) -> bytes:
    raw, _ = pyiso8583.encode(dict(message), LEGACY_SPEC)
    return bytes(raw)


@pytest.mark.parametrize("message", [
    purchase(), ECHO, SIGN_ON,
    {"t": "0210", "11": "000123", "37": "632700000042", "38": "A1B2C3", "39": "00",
     "44": "approved", "54": iso8583.encode_de54([("02", "978", 1)])},
    {"t": "0420", "4": "000000001000", "11": "000125", "90": "0" * 42, "95": "0" * 42},
], ids=lambda m: m["t"])
def test_the_default_dialect_encodes_as_the_single_dialect_module_did(
        message: dict[str, str]) -> None:
    assert iso8583.encode(message) == iso8583.DEFAULT.encode(message) == legacy_encode(message)
    assert iso8583.frame(iso8583.encode(message))[2:] == legacy_encode(message)


# ---- configuration -----------------------------------------------------------------------

def test_unspecified_proto_is_the_default_and_to_proto_names_every_axis() -> None:
    assert Dialect.from_proto(admin_pb2.Iso8583Dialect()) == iso8583.DEFAULT
    assert iso8583.DEFAULT.to_proto() == admin_pb2.Iso8583Dialect(
        numeric_encoding=admin_pb2.NUMERIC_ENCODING_ASCII,
        bitmap_encoding=admin_pb2.BITMAP_ENCODING_BINARY,
        character_set=admin_pb2.CHARACTER_SET_ASCII,
        length_header=admin_pb2.LENGTH_HEADER_BINARY_2)


def test_proto_of_an_issuer_with_a_tpdu() -> None:
    msg = admin_pb2.Iso8583Dialect(
        numeric_encoding=admin_pb2.NUMERIC_ENCODING_BCD,
        bitmap_encoding=admin_pb2.BITMAP_ENCODING_HEX,
        character_set=admin_pb2.CHARACTER_SET_EBCDIC,
        length_header=admin_pb2.LENGTH_HEADER_ASCII_4, tpdu="6000030000")
    dialect = Dialect.from_proto(msg)
    assert dialect == Dialect("bcd", "hex", "ebcdic", "ascii4", TPDU)
    assert dialect.describe() == "bcd/hex/ebcdic/ascii4/tpdu=6000030000"


@pytest.mark.parametrize("dialect", ALL, ids=Dialect.describe)
def test_proto_and_text_forms_read_back(dialect: Dialect) -> None:
    assert Dialect.from_proto(dialect.to_proto()) == dialect
    assert Dialect.parse(dialect.describe()) == dialect
    assert Dialect.parse(dialect.describe().replace("/", ",")) == dialect


@pytest.mark.parametrize(("fields", "error"), [
    ({"tpdu": "60000300"}, r"^dialect\.tpdu: must be 10 hex digits"),
    ({"tpdu": "60000300zz"}, r"^dialect\.tpdu: must be 10 hex digits"),
    ({"numeric_encoding": 7}, r"^dialect\.numeric_encoding: unknown value 7$"),
    ({"length_header": 3}, r"^dialect\.length_header: unknown value 3$"),
])
def test_bad_proto_names_the_field(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Dialect.from_proto(admin_pb2.Iso8583Dialect(**fields))


@pytest.mark.parametrize(("text", "error"), [
    ("bcd,hex,ebcdic", "expected numeric,bitmap,charset,length_header"),
    ("bcd,hex,ebcdic,ascii2", "length_header 'ascii2' is not one of binary2|ascii4"),
    ("ebcdic,hex,ascii,ascii4", "numeric 'ebcdic' is not one of ascii|bcd"),
    ("bcd,hex,ebcdic,ascii4,tpdu=60", "tpdu: must be 10 hex digits"),
])
def test_bad_dialect_text_says_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Dialect.parse(text)


def test_blank_text_is_the_default_and_case_does_not_matter() -> None:
    assert Dialect.parse("  ") == iso8583.DEFAULT
    assert Dialect.parse("BCD, Hex, EBCDIC, ASCII4") == Dialect("bcd", "hex", "ebcdic", "ascii4")


def test_constructor_refuses_unknown_choices() -> None:
    with pytest.raises(ValueError, match=r"dialect\.charset: 'latin1' is not one of"):
        Dialect(charset="latin1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"dialect\.tpdu: 4 bytes"):
        Dialect(tpdu=b"\x60\x00\x03\x00")


# ---- framing -----------------------------------------------------------------------------

def read(dialect: Dialect, data: bytes) -> iso8583.Frame:
    async def run() -> iso8583.Frame:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await dialect.read_frame(reader)
    return asyncio.run(run())


def test_swap_tpdu_exchanges_destination_and_source() -> None:
    assert swap_tpdu(bytes.fromhex("6000030011")) == bytes.fromhex("6000110003")
    assert swap_tpdu(b"") == b""
    with pytest.raises(MessageError, match="tpdu: 3 bytes"):
        swap_tpdu(b"\x60\x00\x03")


def test_the_length_header_counts_the_tpdu() -> None:
    dialect = Dialect(length_header="ascii4", tpdu=TPDU)
    assert dialect.frame(b"hello") == b"0010" + TPDU + b"hello"
    assert dialect.frame(b"hi", tpdu=swap_tpdu(TPDU)) == b"0007\x60\x00\x00\x00\x03hi"
    assert read(dialect, b"0010" + TPDU + b"hello") == (TPDU, b"hello")


def test_a_tpdu_the_dialect_does_not_frame_is_refused() -> None:
    with pytest.raises(MessageError, match="tpdu: 5 bytes, this dialect frames 0"):
        iso8583.DEFAULT.frame(b"x", tpdu=TPDU)
    with pytest.raises(MessageError, match="tpdu: 0 bytes, this dialect frames 5"):
        Dialect(tpdu=TPDU).frame(b"x", tpdu=b"")


@pytest.mark.parametrize(("dialect", "data", "error"), [
    (Dialect(length_header="ascii4"), b"GET / HTTP/1.1", r"b'GET ' is not 4 ASCII digits"),
    (Dialect(length_header="ascii4"), b"0000", r"0 is outside 1\.\.8192"),
    (Dialect(tpdu=TPDU), b"\x00\x05" + TPDU, r"5 is outside 6\.\.8192"),
    (Dialect(), b"\x20\x01", r"8193 is outside 1\.\.8192"),
])
def test_impossible_length_prefixes_are_refused(dialect: Dialect, data: bytes,
                                                error: str) -> None:
    with pytest.raises(MessageError, match="length prefix: " + error):
        read(dialect, data)


def test_ascii4_refuses_a_message_beyond_9999_bytes() -> None:
    with pytest.raises(MessageError, match="10000 bytes exceeds the 4-digit length prefix"):
        Dialect(length_header="ascii4").frame(bytes(10_000))


# ---- errors ------------------------------------------------------------------------------

def test_bcd_refuses_what_is_not_digits() -> None:
    with pytest.raises(MessageError, match="field 4: only digits pack as BCD"):
        Dialect(numeric="bcd").encode({"t": "0200", "4": "00000000012A"})
    with pytest.raises(MessageError, match="field 35: only digits and '=' pack as BCD"):
        Dialect(numeric="bcd").encode({"t": "0200", "35": "4761^30122011"})


def test_bcd_nibbles_that_are_not_digits_are_refused() -> None:
    with pytest.raises(MessageError, match="field 11: a nibble is not a decimal digit"):
        Dialect(numeric="bcd").decode(b"\x08\x00" + bytes.fromhex("0020000000000000")
                                      + b"\x00\x0a\x01")


def test_unknown_fields_and_non_text_values_are_refused_on_encode() -> None:
    with pytest.raises(MessageError, match="field '5': not defined in this dialect"):
        iso8583.encode({"t": "0200", "5": "000000001000"})
    with pytest.raises(MessageError, match="field 4: int value, expected str"):
        iso8583.encode({"t": "0200", "4": 1000})


# ---- properties --------------------------------------------------------------------------

def value_of(field: Field) -> st.SearchStrategy[str]:
    """Any value the field spec allows."""
    low = field.max_len if field.prefix == FIXED else 0
    if field.kind == "binary":
        return st.binary(min_size=low, max_size=field.max_len).map(lambda b: b.hex().upper())
    alphabet = {"numeric": st.sampled_from("0123456789"),
                "track2": st.sampled_from("0123456789="),
                "text": st.characters(min_codepoint=0, max_codepoint=0x7F)}[field.kind]
    return st.text(alphabet, min_size=low, max_size=field.max_len)


DATA_ELEMENTS = {n: f for n, f in FIELDS.items() if n.isdigit() and f.kind != "bitmap"}
messages = st.fixed_dictionaries(
    {"t": value_of(FIELDS["t"])}, optional={n: value_of(f) for n, f in DATA_ELEMENTS.items()})


@settings(max_examples=300)
@given(dialect=st.sampled_from(ALL), message=messages)
def test_any_message_within_the_specs_round_trips_in_any_dialect(
        dialect: Dialect, message: dict[str, str]) -> None:
    framed = dialect.frame(dialect.encode(message))
    tpdu, payload = read(dialect, framed)
    assert tpdu == dialect.tpdu
    assert dialect.decode(payload) == message


@given(message=messages)
def test_the_default_dialect_encodes_any_message_as_before(message: dict[str, str]) -> None:
    assert iso8583.encode(message) == legacy_encode(message)


@settings(max_examples=300)
@given(dialect=st.sampled_from(ALL), raw=st.binary(max_size=300))
def test_random_bytes_decode_or_raise_message_error(dialect: Dialect, raw: bytes) -> None:
    try:
        dialect.decode(raw)
    except MessageError:
        pass


@settings(max_examples=300)
@given(dialect=st.sampled_from(ALL), message=messages, data=st.data())
def test_damaged_messages_decode_or_raise_message_error(
        dialect: Dialect, message: dict[str, str], data: st.DataObject) -> None:
    raw = bytearray(dialect.encode(message))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        dialect.decode(bytes(raw[:cut]))
    except MessageError:
        pass
