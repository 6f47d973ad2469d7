"""The switch <-> issuer ISO 8583 dialect: round trips, sub-field codecs, bad bytes."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardswitch import iso8583


def purchase() -> dict[str, str]:
    return {"t": "0200", "2": "4761739001010010", "3": "000000", "4": "000000002599",
            "7": "1123145200", "11": "000123", "12": "145200", "13": "1123", "18": "5411",
            "22": "021", "25": "00", "32": "123456", "37": "632700000042", "41": "TERM0001",
            "42": "MERCHANT000001 ", "49": "840", "52": "0123456789ABCDEF",
            "48": iso8583.encode_de48({"C2": "123"})}


def test_purchase_round_trips_field_for_field() -> None:
    msg = purchase()
    assert iso8583.decode(iso8583.encode(msg)) == msg


def test_bitmap_is_binary_and_numeric_fields_ascii() -> None:
    raw = iso8583.encode({"t": "0800", "7": "1123145200", "11": "000001", "70": "301"})
    assert raw[:4] == b"0800"
    assert raw[4] & 0x80, "secondary bitmap flagged for DE 70"
    assert raw[20:30] == b"1123145200"


def test_de54_balances_round_trip_with_sign() -> None:
    text = iso8583.encode_de54([("01", "840", 250000), ("02", "840", -1500)])
    assert text == "0001840C0000002500000002840D000000001500"
    assert iso8583.decode_de54(text) == [("01", "840", 250000), ("02", "840", -1500)]


def test_de48_subfields_and_their_errors() -> None:
    assert iso8583.decode_de48("C2003123XX002ab") == {"C2": "123", "XX": "ab"}
    with pytest.raises(iso8583.MessageError, match="runs past the field"):
        iso8583.decode_de48("C2009123")


@pytest.mark.parametrize("raw", [b"garbage!", b"0200", b"0200\xff\xff\xff\xff\xff\xff\xff\xff",
                                 iso8583.encode(purchase())[:-7]])
def test_truncated_or_garbage_bytes_raise_message_error(raw: bytes) -> None:
    with pytest.raises(iso8583.MessageError):
        iso8583.decode(raw)


def test_frame_and_read_frame() -> None:
    payload = iso8583.encode(purchase())
    framed = iso8583.frame(payload)
    assert framed[:2] == len(payload).to_bytes(2, "big")

    async def read() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(framed)
        reader.feed_eof()
        return await iso8583.read_frame(reader)
    assert asyncio.run(read()) == payload


def test_zero_length_prefix_is_refused() -> None:
    async def read() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(b"\x00\x00")
        return await iso8583.read_frame(reader)
    with pytest.raises(iso8583.MessageError, match="length prefix"):
        asyncio.run(read())


@given(stan=st.integers(0, 999_999), amount=st.integers(0, 999_999_999_999),
       rrn=st.text("0123456789", min_size=12, max_size=12))
def test_any_amount_stan_rrn_round_trip(stan: int, amount: int, rrn: str) -> None:
    msg = purchase() | {"11": f"{stan:06d}", "4": f"{amount:012d}", "37": rrn}
    assert iso8583.decode(iso8583.encode(msg)) == msg


def test_bitmap_naming_an_undefined_field_raises_message_error() -> None:
    raw = bytearray(iso8583.encode({"t": "0800", "11": "000001"}))
    raw[4] |= 0x08  # DE 5 is not part of the dialect
    with pytest.raises(iso8583.MessageError, match="field 5"):
        iso8583.decode(bytes(raw))
