"""BER-TLV codec and data object lists (EMV Book 3 Annex B and 5.4).

Worked examples are real card answers (a format 1 GET PROCESSING OPTIONS response, a Visa FCI);
properties cover round trips of generated tags, lengths and nesting, and hostile input, which
must raise ``ValueError`` and nothing else. pyemv's decoder is the independent oracle for random
nested structures.
"""

import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyemv import tlv as pyemv_tlv

from cardswitch import tlv as tlv_module
from cardswitch.tlv import (
    MAX_DEPTH,
    Tlv,
    build_dol,
    decode,
    encode,
    encode_all,
    find,
    flatten,
    parse_dol,
    split_dol_data,
    tag_hex,
)
from tests.oracle import oracle

# --- strategies: well-formed tags of one to three bytes, primitive or constructed ------------

_single_bytes = [b for b in range(0x01, 0xFF) if b & 0x1F != 0x1F]
_multi_first_bytes = [b for b in range(0x1F, 0xFF, 0x20)]  # low five bits all 1, never FF


def tags(constructed: bool | None = None) -> st.SearchStrategy[int]:
    """Valid BER-TLV tags; ``constructed`` picks bit 6 of the first byte (None: either)."""

    def keep(first: int) -> bool:
        return constructed is None or bool(first & 0x20) == constructed

    one = st.sampled_from([b for b in _single_bytes if keep(b)])
    firsts = st.sampled_from([b for b in _multi_first_bytes if keep(b)])
    two = st.builds(lambda a, b: a << 8 | b, firsts, st.integers(0x00, 0x7F))
    three = st.builds(
        lambda a, b, c: a << 16 | b << 8 | c, firsts, st.integers(0x80, 0xFF), st.integers(0, 0x7F)
    )
    return st.one_of(one, two, three)


def _repeat(length: int, pattern: bytes) -> bytes:
    return (pattern * (length // len(pattern) + 1))[:length]


# Mostly short values, sometimes long enough for the 81, 82 and 83 length forms.
values = st.one_of(
    st.binary(max_size=300),
    st.builds(_repeat, st.integers(0, 70_000), st.binary(min_size=1, max_size=8)),
)


def nodes(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Nested data objects as (tag, bytes) leaves and (tag, [children]) templates, tags unique
    among siblings (pyemv returns a dict per level)."""
    leaf = st.tuples(tags(constructed=False), st.binary(max_size=40))
    return st.recursive(
        leaf,
        lambda children: st.tuples(
            tags(constructed=True), st.lists(children, max_size=4, unique_by=lambda n: n[0])
        ),
        max_leaves=max_leaves,
    )


def value_of(node: Any) -> bytes:
    """The value bytes of a node: its own bytes, or its children encoded one after another."""
    content = node[1]
    return content if isinstance(content, bytes) else b"".join(map(to_bytes, content))


def to_bytes(node: Any) -> bytes:
    return encode(node[0], value_of(node))


def to_pyemv(node_list: list[Any]) -> dict[str, Any]:
    """The dict pyemv.tlv.decode returns for these nodes."""
    return {
        tag_hex(tag): content if isinstance(content, bytes) else to_pyemv(content)
        for tag, content in node_list
    }


def pre_order(node_list: list[Any]) -> list[tuple[int, bytes]]:
    """Every object's (tag, value) in document order, parents before children."""
    found: list[tuple[int, bytes]] = []
    for node in node_list:
        found.append((node[0], value_of(node)))
        if not isinstance(node[1], bytes):
            found.extend(pre_order(node[1]))
    return found


top_level = st.lists(nodes(), max_size=5, unique_by=lambda n: n[0])


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(tlv_module).failed == 0


# --- worked examples -------------------------------------------------------------------------


def test_gpo_response_format_1_gives_aip_and_afl() -> None:
    response = bytes.fromhex("80 0E 5C00 08010100 10010101 18010200")
    assert decode(response) == [Tlv(0x80, bytes.fromhex("5C00 08010100 10010101 18010200"))]
    assert not decode(response)[0].constructed


def test_fci_decodes_to_its_templates() -> None:
    fci = bytes.fromhex(
        "6F 21 84 07 A0000000031010"
        " A5 16 50 0B 5649534120435245444954 87 01 01 9F38 03 9F1A02"
    )
    (template,) = decode(fci)
    assert template.tag == 0x6F and template.constructed
    df_name, proprietary = template.children()
    assert df_name == Tlv(0x84, bytes.fromhex("A0000000031010"))
    assert proprietary.children() == [
        Tlv(0x50, b"VISA CREDIT"),
        Tlv(0x87, b"\x01"),
        Tlv(0x9F38, bytes.fromhex("9F1A02")),
    ]
    assert flatten(fci) == {
        0x84: bytes.fromhex("A0000000031010"),
        0x50: b"VISA CREDIT",
        0x87: b"\x01",
        0x9F38: bytes.fromhex("9F1A02"),
    }
    assert find(fci, 0x9F38) == bytes.fromhex("9F1A02")
    assert find(fci, 0xA5) == fci[13:]
    assert find(fci, 0xBF0C) is None


def test_padding_bytes_between_objects_are_skipped() -> None:
    data = bytes.fromhex("0000 9F36 02 0001 FFFF 82 02 1980 00")
    assert decode(data) == [Tlv(0x9F36, b"\x00\x01"), Tlv(0x82, b"\x19\x80")]


def test_multi_byte_tags_read_as_one_integer() -> None:
    data = bytes.fromhex("5F2A 02 0978 BF0C 00 9F8101 01 AA")
    assert [item.tag for item in decode(data)] == [0x5F2A, 0xBF0C, 0x9F8101]
    assert [tag_hex(item.tag) for item in decode(data)] == ["5F2A", "BF0C", "9F8101"]


def test_primitive_object_has_no_children() -> None:
    with pytest.raises(ValueError, match="tlv: tag 9F26 is primitive and has no children"):
        Tlv(0x9F26, bytes(8)).children()


@pytest.mark.parametrize(
    ("length", "length_field"),
    [
        (0, "00"),
        (127, "7F"),
        (128, "8180"),
        (255, "81FF"),
        (256, "820100"),
        (65_535, "82FFFF"),
        (65_536, "83010000"),
    ],
)
def test_length_uses_the_shortest_form(length: int, length_field: str) -> None:
    encoded = encode(0x9F10, bytes(length))
    assert encoded[2 : 2 + len(length_field) // 2].hex().upper() == length_field
    assert decode(encoded) == [Tlv(0x9F10, bytes(length))]


def test_long_form_length_that_is_not_minimal_still_decodes() -> None:
    assert decode(bytes.fromhex("9F36 8102 0001")) == [Tlv(0x9F36, b"\x00\x01")]


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        (0x00, "tag 00 is not a well-formed BER-TLV tag"),
        (0xFF, "tag FF is not a well-formed BER-TLV tag"),
        (0x9F, "tag 9F is not a well-formed BER-TLV tag"),
        (0x0101, "tag 0101 is not a well-formed BER-TLV tag"),
        (0x9F8181, "tag 9F8181 is not a well-formed BER-TLV tag"),
        (0x9F818101, "tag must be 1 to 3 bytes, got 0x9f818101"),
        (-1, "tag must be 1 to 3 bytes"),
    ],
)
def test_encode_refuses_malformed_tags(tag: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode(tag, b"")


def test_encode_refuses_values_beyond_three_length_bytes() -> None:
    with pytest.raises(ValueError, match="value of tag 70 is 16777216 bytes, more than 16777215"):
        encode(0x70, bytes(0x1000000))


# --- malformed input: the message says what and where ---------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("9F26 08 0102030405", "tlv: value of tag 9F26 needs 8 bytes at offset 3, 5 left"),
        ("9F", "tlv: tag 9F at offset 0 is truncated"),
        ("9F81", "tlv: tag 9F81 at offset 0 is truncated"),
        ("9F818101 00", "tlv: tag at offset 0 is longer than 3 bytes"),
        ("82", "tlv: length of tag 82 missing at offset 1"),
        ("70 80 9F3601 00 0000", r"tlv: indefinite length \(80\) of tag 70 at offset 1 is not EMV"),
        ("70 84 00000001 00", "tlv: length of tag 70 at offset 1 has 4 bytes, at most 3"),
        ("9F10 82 01", "tlv: length of tag 9F10 needs 2 bytes at offset 3, 1 left"),
        ("9F36 02 0001 5A", "tlv: length of tag 5A missing at offset 6"),
        ("57 83 FFFFFF", "tlv: value of tag 57 needs 16777215 bytes at offset 5, 0 left"),
    ],
)
def test_malformed_data_names_what_and_where(data: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(bytes.fromhex(data))


def test_nested_errors_give_offsets_in_the_whole_data() -> None:
    data = bytes.fromhex("70 05 9F26 08 0102")
    message = "tlv: value of tag 9F26 needs 8 bytes at offset 5, 2 left"
    with pytest.raises(ValueError, match=message):
        flatten(data)


def nested(depth: int) -> bytes:
    data = encode(0x9F36, b"\x00\x01")
    for _ in range(depth):
        data = encode(0xE0, data)
    return data


def test_nesting_up_to_the_limit_is_walked() -> None:
    assert flatten(nested(MAX_DEPTH - 1)) == {0x9F36: b"\x00\x01"}
    assert find(nested(MAX_DEPTH - 1), 0x9F36) == b"\x00\x01"


def test_nesting_beyond_the_limit_is_refused_without_recursion() -> None:
    with pytest.raises(ValueError, match=f"nests deeper than {MAX_DEPTH} levels"):
        flatten(nested(MAX_DEPTH))
    with pytest.raises(ValueError, match=f"nests deeper than {MAX_DEPTH} levels"):
        find(nested(50_000), 0x9F36)


def test_find_checks_the_whole_data_even_after_a_match() -> None:
    with pytest.raises(ValueError, match="value of tag 5A needs 8 bytes"):
        find(bytes.fromhex("9F36 02 0001 5A 08 4761"), 0x9F36)


# --- properties ------------------------------------------------------------------------------


@given(st.lists(st.tuples(tags(), values), max_size=6))
def test_decode_inverts_encode_all(items: list[tuple[int, bytes]]) -> None:
    assert decode(encode_all(items)) == [Tlv(tag, value) for tag, value in items]


@given(tags(), values)
def test_every_decoded_object_encodes_to_the_same_bytes(tag: int, value: bytes) -> None:
    (item,) = decode(encode(tag, value))
    assert item.to_bytes() == encode(tag, value)


@given(top_level)
def test_nested_templates_round_trip(node_list: list[Any]) -> None:
    data = b"".join(to_bytes(node) for node in node_list)
    assert [(item.tag, item.value) for item in decode(data)] == [
        (node[0], value_of(node)) for node in node_list
    ]
    for item, (_, content) in zip(decode(data), node_list, strict=True):
        if not isinstance(content, bytes):
            assert [child.to_bytes() for child in item.children()] == [
                to_bytes(child) for child in content
            ]


@given(top_level)
def test_flatten_keeps_the_first_of_each_primitive_tag(node_list: list[Any]) -> None:
    expected: dict[int, bytes] = {}
    for tag, value in pre_order(node_list):
        if not tag_is_constructed(tag):
            expected.setdefault(tag, value)
    assert flatten(b"".join(to_bytes(node) for node in node_list)) == expected


@given(top_level, tags())
def test_find_returns_the_first_object_with_the_tag(node_list: list[Any], tag: int) -> None:
    every = pre_order(node_list)
    data = b"".join(to_bytes(node) for node in node_list)
    for wanted in [tag, *(found for found, _ in every)]:
        expected = next((value for found, value in every if found == wanted), None)
        assert find(data, wanted) == expected


def tag_is_constructed(tag: int) -> bool:
    return Tlv(tag, b"").constructed


@given(st.lists(st.tuples(tags(), st.binary(max_size=300)), min_size=1, max_size=4), st.data())
def test_a_truncated_encoding_raises_unless_cut_between_objects(
    items: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    encoded = encode_all(items)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    boundaries = {len(encode_all(items[:count])): count for count in range(len(items))}
    if cut in boundaries:
        assert decode(encoded[:cut]) == [Tlv(tag, value) for tag, value in items[: boundaries[cut]]]
    else:
        with pytest.raises(ValueError, match=r"^tlv: "):
            decode(encoded[:cut])


@settings(max_examples=500, deadline=200)
@given(st.binary(max_size=2_000), tags())
def test_random_bytes_decode_or_raise_value_error_only(data: bytes, tag: int) -> None:
    for parse in (decode, flatten, lambda raw: find(raw, tag), parse_dol):
        try:
            parse(data)
        except ValueError as error:
            assert str(error).startswith("tlv: ")


@settings(max_examples=300, deadline=200)
@given(top_level, st.data())
def test_corrupted_nested_data_raises_value_error_only(
    node_list: list[Any], data: st.DataObject
) -> None:
    encoded = bytearray(b"".join(to_bytes(node) for node in node_list) or b"\x70\x00")
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    try:
        flatten(bytes(encoded))
    except ValueError as error:
        assert str(error).startswith("tlv: ")


# --- pyemv as the independent oracle ---------------------------------------------------------


@oracle
@given(top_level)
def test_nested_decoding_agrees_with_pyemv(node_list: list[Any]) -> None:
    data = b"".join(to_bytes(node) for node in node_list)

    def as_pyemv(items: list[Tlv]) -> dict[str, Any]:
        return {
            tag_hex(item.tag): as_pyemv(item.children()) if item.constructed else item.value
            for item in items
        }

    assert as_pyemv(decode(data)) == pyemv_tlv.decode(data) == to_pyemv(node_list)


@oracle
@given(top_level)
def test_flatten_agrees_with_pyemv_when_tags_do_not_repeat(node_list: list[Any]) -> None:
    primitive_tags = [tag for tag, _ in pre_order(node_list) if not tag_is_constructed(tag)]
    data = b"".join(to_bytes(node) for node in node_list)
    if len(set(primitive_tags)) == len(primitive_tags):  # pyemv keeps the last, we the first
        assert {tag_hex(tag): value for tag, value in flatten(data).items()} == pyemv_tlv.decode(
            data, flatten=True
        )


# --- data object lists ------------------------------------------------------------------------

CDOL1 = bytes.fromhex("9F02 06 9F03 06 9F1A 02 95 05 5F2A 02 9A 03 9C 01 9F37 04")


def test_parse_dol_lists_tags_and_lengths() -> None:
    assert parse_dol(CDOL1) == [
        (0x9F02, 6), (0x9F03, 6), (0x9F1A, 2), (0x95, 5), (0x5F2A, 2), (0x9A, 3), (0x9C, 1),
        (0x9F37, 4),
    ]


def test_parse_dol_refuses_a_tag_without_length() -> None:
    with pytest.raises(ValueError, match="tlv: length of tag 9F37 missing at offset 5"):
        parse_dol(bytes.fromhex("9F02 06 9F37"))


def test_build_dol_takes_values_of_the_listed_length_as_they_are() -> None:
    values = {
        0x9F02: bytes.fromhex("000000001000"), 0x9F03: bytes(6), 0x9F1A: bytes.fromhex("0826"),
        0x95: bytes(5), 0x5F2A: bytes.fromhex("0826"), 0x9A: bytes.fromhex("250131"),
        0x9C: b"\x00", 0x9F37: bytes.fromhex("DEADBEEF"),
    }
    assert build_dol(CDOL1, values).hex().upper() == (
        "000000001000" "000000000000" "0826" "0000000000" "0826" "250131" "00" "DEADBEEF"
    )


def test_build_dol_fills_missing_and_constructed_tags_with_zeros() -> None:
    dol = bytes.fromhex("9F37 04 70 03 9F1A 02")
    values = {0x9F37: bytes.fromhex("01020304"), 0x70: b"\x5a\x01\x47"}
    assert build_dol(dol, values).hex().upper() == "01020304" "000000" "0000"


@pytest.mark.parametrize(
    ("data_format", "value", "length", "expected"),
    [
        ("n", "1000", 6, "000000001000"),  # numeric: leading zeros
        ("n", "000000001000", 4, "00001000"),  # numeric: leftmost bytes dropped
        ("cn", "4761739001010010", 10, "4761739001010010FFFF"),  # compressed numeric: trailing FF
        ("cn", "4761739001010010", 4, "47617390"),
        ("b", "0102", 4, "01020000"),
        ("b", "01020304", 2, "0102"),
        ("an", "4142", 3, "414200"),
        ("an", "414243", 1, "41"),
        ("ans", "41", 2, "4100"),
        ("ans", "414243", 2, "4142"),
        ("n", "1234", 0, ""),
    ],
)
def test_build_dol_fits_each_format_as_book_3_says(
    data_format: str, value: str, length: int, expected: str
) -> None:
    built = build_dol([(0x9F40, length)], {0x9F40: bytes.fromhex(value)}, {0x9F40: data_format})
    assert built.hex().upper() == expected


def test_build_dol_treats_values_of_unknown_format_as_binary() -> None:
    assert build_dol([(0x9F02, 6)], {0x9F02: bytes.fromhex("1000")}).hex() == "100000000000"


def test_build_dol_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="format of tag 9F02 must be one of n, cn, b, an, ans"):
        build_dol([(0x9F02, 6)], {0x9F02: b"\x10"}, {0x9F02: "x"})


def test_split_dol_data_cuts_the_values_back_out() -> None:
    data = bytes.fromhex("000000001000 000000000000 0826 0000000000 0826 250131 00 DEADBEEF")
    assert split_dol_data(CDOL1, data) == {
        0x9F02: bytes.fromhex("000000001000"), 0x9F03: bytes(6), 0x9F1A: bytes.fromhex("0826"),
        0x95: bytes(5), 0x5F2A: bytes.fromhex("0826"), 0x9A: bytes.fromhex("250131"),
        0x9C: b"\x00", 0x9F37: bytes.fromhex("DEADBEEF"),
    }


def test_split_dol_data_refuses_data_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="tlv: DOL data must be 29 bytes as the DOL lists, got 28"):
        split_dol_data(CDOL1, bytes(28))


@given(st.lists(st.tuples(tags(constructed=False), st.binary(max_size=20)), max_size=8))
def test_split_dol_data_inverts_build_dol(items: list[tuple[int, bytes]]) -> None:
    dol = [(tag, len(value)) for tag, value in items]
    first: dict[int, bytes] = {}
    for tag, value in items:
        first.setdefault(tag, value)
    assert split_dol_data(dol, build_dol(dol, first)) == first
    dol_bytes = b"".join(encode(tag, b"")[:-1] + bytes([length]) for tag, length in dol)
    assert parse_dol(dol_bytes) == dol
