from __future__ import annotations

import pytest

from cardswitch import cards


@pytest.mark.parametrize(("pan", "valid"), [
    ("4111111111111111", True), ("4111111111111112", False), ("5413330089010038", True),
    ("4761739001010010", True), ("", False), ("41111111111111a1", False)])
def test_luhn(pan: str, valid: bool) -> None:
    assert cards.luhn_valid(pan) is valid


def test_validate_pan_names_the_field_and_never_echoes_the_pan() -> None:
    problem = cards.validate_pan("4761739001010011", "card.manual.pan")
    assert problem == "card.manual.pan: fails the Luhn check"
    assert cards.validate_pan("123", "x") == "x: must be 13 to 19 digits, got 3"


def test_masking_in_free_text_only_touches_luhn_valid_runs() -> None:
    text = "card 4761739001010010 at 20261123145200 ref 4761739001010011"
    assert cards.mask_pans_in(text) == ("card 476173******0010 at 20261123145200 "
                                        "ref 4761739001010011")


def test_track2_parsing() -> None:
    t2 = cards.parse_track2(";4761739001010010=30122011000012300000?")
    assert (t2.pan, t2.expiry_yymm, t2.service_code) == ("4761739001010010", "3012", "201")
    with pytest.raises(ValueError, match="track2"):
        cards.parse_track2("4761739001010010")
