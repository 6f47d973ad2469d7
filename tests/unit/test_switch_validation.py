"""Request validation: each problem names its field; a PAN or PIN never appears in the text."""

from __future__ import annotations

import pytest

from cardswitch.v1 import acquiring_pb2, common_pb2
from switch import validation
from switch.validation import Violations


def key(**overrides: str) -> acquiring_pb2.RequestKey:
    fields = {"terminal_id": "TERM0001", "stan": "000123", "local_date_time": "261123101010"}
    return acquiring_pb2.RequestKey(**(fields | overrides))


@pytest.mark.parametrize(("overrides", "field"), [
    ({"terminal_id": ""}, "key.terminal_id"),
    ({"terminal_id": "TERMINAL9"}, "key.terminal_id"),
    ({"stan": "12345"}, "key.stan"),
    ({"stan": "12345a"}, "key.stan"),
    ({"local_date_time": "2611231010"}, "key.local_date_time"),
    ({"local_date_time": "261332101010"}, "key.local_date_time"),
])
def test_request_key_problems_name_their_field(overrides: dict[str, str], field: str) -> None:
    v = Violations()
    validation.check_key(key(**overrides), v)
    assert [f for f, _ in v.items] == [field]


def test_a_good_key_has_no_violations() -> None:
    v = Violations()
    validation.check_key(key(), v)
    assert v.items == []


@pytest.mark.parametrize(("amount", "currency", "expected"), [
    (0, "USD", [("amount.amount_minor", "must be greater than zero")]),
    (-1, "USD", [("amount.amount_minor", "must not be negative")]),
    (10**12, "USD", [("amount.amount_minor", "exceeds the 12-digit maximum 999999999999")]),
    (100, "", [("amount.currency", "is required (ISO 4217 alphabetic code)")]),
    (100, "XYZ", [("amount.currency", "unknown ISO 4217 currency 'XYZ'")]),
    (999_999_999_999, "JPY", []),
])
def test_money(amount: int, currency: str, expected: list[tuple[str, str]]) -> None:
    v = Violations()
    validation.check_money(common_pb2.Money(amount_minor=amount, currency=currency), "amount", v)
    assert v.items == expected


def test_track2_is_split_and_a_bad_one_is_named_without_echoing_it() -> None:
    v = Violations()
    card = common_pb2.CardInput(track2=common_pb2.Track2(data="4761739001010010=30122011234"))
    fields = validation.card_fields(card, v)
    assert v.items == []
    assert (fields["pan"], fields["expiry_yymm"], fields["service_code"]) == (
        "4761739001010010", "3012", "201")
    bad = common_pb2.CardInput(track2=common_pb2.Track2(data="4761739001010010"))
    validation.card_fields(bad, v)
    assert v.items == [("card.track2.data", "is not track 2 data (PAN=YYMMSSS...)")]


def test_manual_entry_problems_are_all_reported_together() -> None:
    v = Violations()
    card = common_pb2.CardInput(manual=common_pb2.ManualEntry(
        pan="4761739001010011", expiry_yymm="3013", cvv2="12"))
    validation.card_fields(card, v)
    assert v.items == [("card.manual.pan", "fails the Luhn check"),
                       ("card.manual.expiry_yymm", "must be YYMM with a month 01-12"),
                       ("card.manual.cvv2", "must be 3 or 4 digits")]
    assert all("4761739001010011" not in d for _, d in v.items)


def test_a_missing_card_is_a_violation() -> None:
    v = Violations()
    validation.card_fields(common_pb2.CardInput(), v)
    assert v.items == [("card", "is required: one of track2, manual, emv, wallet")]


def test_pin_block_must_be_tdes_dukpt_iso0() -> None:
    v = Violations()
    validation.check_pin_block(common_pb2.EncryptedPinBlock(
        block=b"\x00" * 16, format=common_pb2.PIN_BLOCK_FORMAT_ISO_4,
        key_management=common_pb2.PIN_KEY_MANAGEMENT_DUKPT_AES, ksn=b"\x00" * 12), v)
    assert [f for f, _ in v.items] == ["pin_block.block", "pin_block.format",
                                       "pin_block.key_management", "pin_block.ksn"]
