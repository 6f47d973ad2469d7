"""The EMV tag dictionary (terminals/emv/tags.yaml) and what is read from it."""

import doctest
from importlib import resources

import pytest
import yaml

from cardswitch import tlv
from terminals.emv import tags as tags_module
from terminals.emv.tags import (
    FORMAT_NAMES,
    FORMATS,
    SENSITIVE,
    SOURCES,
    TAGS,
    TagSpec,
    check,
    describe,
    name,
    parse,
)

# Every tag Books 3 and 4 and the Visa and Mastercard contactless kernels use in a transaction.
REQUIRED = (
    "4F 50 57 5A 5F20 5F24 5F25 5F28 5F2A 5F2D 5F30 5F34 61 6F 70 71 72 77 80 82 84 86 87 88 89"
    " 8A 8C 8D 8E 8F 90 91 92 93 94 95 9A 9B 9C 9F01 9F02 9F03 9F06 9F07 9F08 9F09 9F0D 9F0E"
    " 9F0F 9F10 9F11 9F12 9F13 9F15 9F16 9F17 9F18 9F1A 9F1B 9F1C 9F1E 9F1F 9F21 9F22 9F26 9F27"
    " 9F32 9F33 9F34 9F35 9F36 9F37 9F38 9F39 9F40 9F41 9F42 9F44 9F45 9F46 9F47 9F48 9F49 9F4A"
    " 9F4B 9F4C 9F4D 9F53 9F5B 9F66 9F6C 9F6E 9F7C A5 BF0C"
).split()

PAN_HEX = "4761739001010010"


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(tags_module).failed == 0


def test_every_transaction_tag_is_in_the_dictionary() -> None:
    missing = [tag for tag in REQUIRED if int(tag, 16) not in TAGS]
    assert missing == []


def test_the_yaml_lists_each_tag_once() -> None:
    text = resources.files("terminals.emv").joinpath("tags.yaml").read_text(encoding="utf-8")
    listed = [entry["tag"] for entry in yaml.safe_load(text)]
    assert len(listed) == len(set(listed)) == len(TAGS)


def test_every_entry_is_well_formed() -> None:
    for tag, spec in TAGS.items():
        assert spec.tag == tag
        assert spec.format in FORMAT_NAMES and spec.source in SOURCES
        assert 0 <= spec.min <= spec.max
        assert spec.name and not spec.name.startswith("unknown")
        assert tlv.encode(tag, b"")  # a well-formed BER-TLV tag
        assert tlv.Tlv(tag, b"").constructed == (tag in {0x61, 0x6F, 0x70, 0x71, 0x72, 0x77, 0xA5,
                                                         0xBF0C})


def test_worked_entries_match_book_3() -> None:
    assert TAGS[0x9F26] == TagSpec(0x9F26, "Application Cryptogram", "b", 8, 8, "card")
    assert TAGS[0x9F02] == TagSpec(0x9F02, "Amount, Authorised (Numeric)", "n", 6, 6, "terminal")
    assert TAGS[0x5A].format == "cn" and TAGS[0x5A].max == 10 and TAGS[0x5A].sensitive
    assert TAGS[0x91].source == "issuer" and (TAGS[0x91].min, TAGS[0x91].max) == (8, 16)
    assert FORMATS[0x5F2A] == "n" and FORMATS[0x9F1C] == "an" and FORMATS[0x9F16] == "ans"


def test_pan_track_name_and_pin_data_are_sensitive() -> None:
    assert {0x5A, 0x57, 0x5F20, 0x9F1F, 0x99} <= SENSITIVE
    assert 0x9F26 not in SENSITIVE


def test_name_of_known_and_unknown_tags() -> None:
    assert name(0x9F37) == "Unpredictable Number"
    assert name(0x9F99) == "unknown tag 9F99"
    assert name(0xDF01) == "unknown tag DF01"


def test_dictionary_formats_drive_dol_padding() -> None:
    dol = [(0x9F02, 6), (0x5A, 10), (0x9F1C, 10)]
    values = {0x9F02: bytes.fromhex("1000"), 0x5A: bytes.fromhex(PAN_HEX), 0x9F1C: b"TERM0001"}
    assert tlv.build_dol(dol, values, FORMATS).hex().upper() == (
        "000000001000" + PAN_HEX + "FFFF" + b"TERM0001".hex().upper() + "0000"
    )


# --- check -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        (0x9F26, bytes(7), r"tag 9F26 \(Application Cryptogram\): must be 8 bytes, got 7"),
        (0x4F, bytes(4), r"tag 4F \(Application Identifier \(AID\) - card\): must be 5 to 16 bytes,"
                         " got 4"),
        (0x91, bytes(17), r"tag 91 \(Issuer Authentication Data\): must be 8 to 16 bytes, got 17"),
        (0x9F02, bytes.fromhex("00000000100A"),
         r"tag 9F02 \(Amount, Authorised \(Numeric\)\): format n allows only BCD digits"),
        (0x5A, bytes.fromhex("4761739001010010F1"),
         r"tag 5A \(Application Primary Account Number \(PAN\)\): format cn allows only BCD"
         " digits padded with F"),
        (0x9F1C, b"TERM 001", r"tag 9F1C \(Terminal Identification\): format an allows only"
                              " letters and digits"),
        (0x50, b"VISA\x00", r"tag 50 \(Application Label\): format ans allows only printable"),
    ],
)
def test_check_names_the_tag_its_name_and_the_rule(tag: int, value: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        check(tag, value)


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (0x9F26, bytes(8)),
        (0x9F02, bytes.fromhex("000000001000")),
        (0x5A, bytes.fromhex(PAN_HEX)),
        (0x5A, bytes.fromhex("4761739001010010123F")),
        (0x9F1C, b"TERM0001"),
        (0x50, b"VISA CREDIT"),
        (0x9F10, b""),
        (0xDF01, bytes(300)),  # proprietary: not checked
    ],
)
def test_check_accepts_valid_values(tag: int, value: bytes) -> None:
    check(tag, value)


def test_check_never_shows_the_value() -> None:
    with pytest.raises(ValueError) as error:
        check(0x5A, bytes.fromhex(PAN_HEX + "A1"))
    assert PAN_HEX not in str(error.value).upper()


# --- describe ---------------------------------------------------------------------------------

RECORD = tlv.encode(0x70, tlv.encode_all([
    (0x57, bytes.fromhex("4761739001010010D30122011234567899")),
    (0x5A, bytes.fromhex(PAN_HEX)),
    (0x5F20, b"CARD/TEST"),
    (0x9F1F, b"1234567890"),
    (0x5F24, bytes.fromhex("301231")),
    (0x50, b"VISA"),
    (0xDF01, b"\x01\x02"),
]))


def test_describe_prints_one_indented_line_per_object_and_hides_sensitive_values() -> None:
    assert describe(RECORD) == [
        "70 READ RECORD Response Message Template (71 bytes)",
        "  57 Track 2 Equivalent Data (17 bytes, value hidden)",
        "  5A Application Primary Account Number (PAN) (8 bytes, value hidden)",
        "  5F20 Cardholder Name (9 bytes, value hidden)",
        "  9F1F Track 1 Discretionary Data (10 bytes, value hidden)",
        "  5F24 Application Expiration Date (3 bytes): 301231",
        "  50 Application Label (4 bytes): 56495341 'VISA'",
        "  DF01 unknown (2 bytes): 0102",
    ]


def test_describe_never_prints_the_pan_or_track_data() -> None:
    text = "\n".join(describe(RECORD + tlv.encode(0x99, bytes.fromhex("1234FFFFFFFFFFFF"))))
    for secret in (PAN_HEX, "D30122011234567899", "CARD/TEST", "1234567890", "1234FFFF"):
        assert secret not in text.upper()


def test_describe_nests_templates() -> None:
    fci = bytes.fromhex("6F 10 84 07 A0000000031010 A5 05 87 01 01 88 00")
    assert describe(fci) == [
        "6F File Control Information (FCI) Template (16 bytes)",
        "  84 Dedicated File (DF) Name (7 bytes): A0000000031010",
        "  A5 File Control Information (FCI) Proprietary Template (5 bytes)",
        "    87 Application Priority Indicator (1 bytes): 01",
        "    88 Short File Identifier (SFI) (0 bytes): ",
    ]


def test_describe_refuses_malformed_data() -> None:
    with pytest.raises(ValueError, match="tlv: value of tag 5A needs 8 bytes at offset 4, 2 left"):
        describe(bytes.fromhex("70 04 5A 08 4761"))


# --- parse: the YAML is checked entry by entry ---------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('{tag: "9F26", name: AC, format: x, min: 8, max: 8, source: card}',
         r"entry 0 \(tag 9F26\): format must be one of n, cn, b, an, ans, got 'x'"),
        ('{tag: "9F26", name: AC, format: b, min: 8, max: 8, source: acquirer}',
         r"entry 0 \(tag 9F26\): source must be one of card, terminal, issuer, got 'acquirer'"),
        ('{tag: "9F26", name: AC, format: b, min: 9, max: 8, source: card}',
         r"entry 0 \(tag 9F26\): min and max must be lengths with min <= max, got 9, 8"),
        ('{tag: 9F26, name: AC, format: b, min: 8, max: 8, source: card, extra: 1}',
         "entry 0: must be a mapping of format, max, min, name, source, tag"),
        ('{tag: "9f26", name: AC, format: b, min: 8, max: 8, source: card}',
         "entry 0: tag must be upper-case hex in quotes, got '9f26'"),
        ('{tag: "9F", name: AC, format: b, min: 8, max: 8, source: card}',
         "tag 9F is not a well-formed BER-TLV tag"),
    ],
)
def test_parse_names_the_bad_entry(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(f"- {entry}")


def test_parse_refuses_a_tag_listed_twice() -> None:
    entry = '- {tag: "9F26", name: AC, format: b, min: 8, max: 8, source: card}\n'
    with pytest.raises(ValueError, match=r"tags\.yaml entry 1: tag 9F26 appears twice"):
        parse(entry + entry)
