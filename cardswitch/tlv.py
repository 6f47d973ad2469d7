"""BER-TLV, the encoding of every EMV data object (EMV 4.4 Book 3 Annex B), and data object lists.

A data object is a tag, a length and a value:

- the tag is one to three bytes. Bit 6 (0x20) of its first byte marks a *constructed* object,
  whose value is itself a sequence of data objects (a template such as 70 or 77); otherwise the
  object is *primitive*. A first byte whose low five bits are all 1 (``xx011111``) announces more
  tag bytes, and each further byte with bit 8 set announces one more (9F26, 5F2A, BF0C);
- the length is one byte up to 127, else ``81 xx``, ``82 xxxx`` or ``83 xxxxxx``. Indefinite length
  (``80``) does not exist in EMV and longer length fields are refused;
- bytes 00 and FF before, between and after objects are padding and are skipped (Book 3 B1).

Tags travel as one big-endian integer (``0x9F26``); :func:`tag_hex` prints them.

A data object list (DOL: PDOL 9F38, CDOL1 8C, CDOL2 8D, DDOL 9F49, TDOL 97) is a list of tags and
lengths without values. The terminal answers it with the concatenated values, each cut or padded
to the listed length by its format (Book 3 5.4): :func:`build_dol`; the card cuts them apart
again with :func:`split_dol_data`.

Decoding is bounded: nesting deeper than :data:`MAX_DEPTH` levels, truncated or leftover bytes
all raise ``ValueError`` saying what was expected and at which offset, so hostile card or
network data can neither hang nor exhaust the decoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

#: Deepest template nesting :func:`flatten` and :func:`find` accept (EMV uses at most 3).
MAX_DEPTH = 16
#: Longest tag, in bytes (ISO/IEC 7816-4; EMV tags are at most 2).
MAX_TAG_BYTES = 3
#: Longest value a length field can state: three length bytes after 83.
MAX_LENGTH = 0xFFFFFF
#: Data element formats of EMV Book 3 4.3 and how :func:`build_dol` fits each one.
DOL_FORMATS = ("n", "cn", "b", "an", "ans")

_PADDING = (0x00, 0xFF)
_CONSTRUCTED = 0x20
_MORE_TAG_BYTES = 0x1F
_LONG_LENGTH = 0x80


@dataclass(frozen=True, slots=True)
class Tlv:
    """One decoded data object: its tag as an integer and its value bytes.

    >>> first = decode(bytes.fromhex("6F 07 84 05 A000000003"))[0]
    >>> first.constructed, tag_hex(first.tag)
    (True, '6F')
    >>> first.children()
    [Tlv(tag=132, value=b'\\xa0\\x00\\x00\\x00\\x03')]
    """

    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        """Whether the value is itself BER-TLV (bit 6 of the first tag byte)."""
        return _is_constructed(self.tag)

    def children(self) -> list[Tlv]:
        """The data objects inside a constructed object's value, one level down."""
        if not self.constructed:
            raise ValueError(f"tlv: tag {tag_hex(self.tag)} is primitive and has no children")
        return decode(self.value)

    def to_bytes(self) -> bytes:
        """This object encoded again: ``encode(tag, value)``."""
        return encode(self.tag, self.value)


def tag_hex(tag: int) -> str:
    """A tag as EMV writes it, upper-case hex, two digits per tag byte.

    >>> tag_hex(0x9F26), tag_hex(0x5A), tag_hex(0xBF0C)
    ('9F26', '5A', 'BF0C')
    """
    return f"{tag:0{2 * _tag_size(tag)}X}"


def decode(data: bytes) -> list[Tlv]:
    """The data objects of ``data``, one level deep, in order; padding 00/FF is skipped.

    >>> decode(bytes.fromhex("9F02 06 000000001000 00 5A 00"))
    [Tlv(tag=40706, value=b'\\x00\\x00\\x00\\x00\\x10\\x00'), Tlv(tag=90, value=b'')]
    """
    return [Tlv(tag, data[start:end]) for tag, start, end in _objects(data, 0, len(data))]


def encode(tag: int, value: bytes) -> bytes:
    """One data object, with the shortest length field that holds ``len(value)``.

    >>> encode(0x9F26, bytes(8)).hex().upper()
    '9F26080000000000000000'
    >>> encode(0x70, bytes(200))[:3].hex().upper()
    '7081C8'
    """
    _check_tag(tag)
    return tag.to_bytes(_tag_size(tag), "big") + _length_field(tag, len(value)) + value


def encode_all(items: Iterable[tuple[int, bytes]]) -> bytes:
    """Several data objects, concatenated in the given order.

    >>> encode_all([(0x9C, b"\\x00"), (0x5F2A, bytes.fromhex("0978"))]).hex().upper()
    '9C01005F2A020978'
    """
    return b"".join(encode(tag, value) for tag, value in items)


def flatten(data: bytes) -> dict[int, bytes]:
    """Every primitive object at any depth, tag to value; the first occurrence of a tag wins.

    >>> flatten(bytes.fromhex("77 0B 9F27 01 80 9F36 02 0011 82 00"))
    {40743: b'\\x80', 40758: b'\\x00\\x11', 130: b''}
    """
    found: dict[int, bytes] = {}
    for tag, start, end in _walk(data):
        if not _is_constructed(tag):
            found.setdefault(tag, data[start:end])
    return found


def find(data: bytes, tag: int) -> bytes | None:
    """The value of the first object tagged ``tag`` at any depth (pre-order), or None.

    The whole of ``data`` is checked, so malformed data raises even after a match.

    >>> fci = bytes.fromhex("6F 0F 84 07 A0000000031010 A5 04 50 02 5649")
    >>> find(fci, 0x50), find(fci, 0xA5).hex().upper(), find(fci, 0x9F38)
    (b'VI', '50025649', None)
    """
    match: bytes | None = None
    for found, start, end in _walk(data):
        if match is None and found == tag:
            match = data[start:end]
    return match


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """The (tag, length) entries of a data object list.

    >>> [(tag_hex(tag), length) for tag, length in parse_dol(bytes.fromhex("9F02 06 9F37 04"))]
    [('9F02', 6), ('9F37', 4)]
    """
    entries: list[tuple[int, int]] = []
    offset = 0
    while offset < len(dol):
        tag, offset = _read_tag(dol, offset, len(dol))
        length, offset = _read_length(dol, offset, len(dol), tag)
        entries.append((tag, length))
    return entries


def build_dol(
    dol: bytes | Sequence[tuple[int, int]],
    values: Mapping[int, bytes],
    formats: Mapping[int, str] | None = None,
) -> bytes:
    """The terminal's answer to a DOL: each listed value fitted to its listed length (Book 3 5.4).

    A tag missing from ``values``, or constructed, gives zeros. A value of the wrong length is
    fitted by its format in ``formats`` (tag to ``n``, ``cn``, ``b``, ``an`` or ``ans``; ``b`` if
    unknown): ``n`` pads zeros on the left and drops leftmost bytes; ``cn`` pads FF on the right;
    every other format pads zeros on the right; all but ``n`` drop rightmost bytes.

    >>> pdol = bytes.fromhex("9F02 06 5A 0A 9F37 04 9F66 04")
    >>> values = {0x9F02: bytes.fromhex("1000"), 0x5A: bytes.fromhex("4761739001010010"),
    ...           0x9F37: bytes.fromhex("0102030405")}
    >>> build_dol(pdol, values, {0x9F02: "n", 0x5A: "cn"}).hex().upper()
    '0000000010004761739001010010FFFF0102030400000000'
    """
    entries = parse_dol(dol) if isinstance(dol, bytes | bytearray) else list(dol)
    formats = formats or {}
    parts: list[bytes] = []
    for tag, length in entries:
        value = values.get(tag)
        if value is None or _is_constructed(tag):
            parts.append(bytes(length))
        else:
            parts.append(_fit(tag, value, length, formats.get(tag, "b")))
    return b"".join(parts)


def split_dol_data(dol: bytes | Sequence[tuple[int, int]], data: bytes) -> dict[int, bytes]:
    """Cut DOL-related data back into values, as the card does; the first of a repeated tag wins.

    >>> split_dol_data(bytes.fromhex("9F37 04 9C 01"), bytes.fromhex("0A0B0C0D 00"))
    {40759: b'\\n\\x0b\\x0c\\r', 156: b'\\x00'}
    """
    entries = parse_dol(dol) if isinstance(dol, bytes | bytearray) else list(dol)
    expected = sum(length for _, length in entries)
    if len(data) != expected:
        raise ValueError(
            f"tlv: DOL data must be {expected} bytes as the DOL lists, got {len(data)}"
        )
    values: dict[int, bytes] = {}
    offset = 0
    for tag, length in entries:
        values.setdefault(tag, data[offset : offset + length])
        offset += length
    return values


def _fit(tag: int, value: bytes, length: int, data_format: str) -> bytes:
    if data_format not in DOL_FORMATS:
        raise ValueError(
            f"tlv: format of tag {tag_hex(tag)} must be one of {', '.join(DOL_FORMATS)},"
            f" got {data_format!r}"
        )
    if len(value) == length:
        return value
    if data_format == "n":
        if len(value) > length:
            return value[len(value) - length :]
        return bytes(length - len(value)) + value
    fill = b"\xff" if data_format == "cn" else b"\x00"
    return value[:length] + fill * (length - len(value))


def _tag_size(tag: int) -> int:
    return max(1, (tag.bit_length() + 7) // 8)


def _is_constructed(tag: int) -> bool:
    first = tag >> (8 * (_tag_size(tag) - 1))
    return bool(first & _CONSTRUCTED)


def _check_tag(tag: int) -> None:
    """A tag is valid when its bytes read back as exactly one tag and do not start as padding."""
    size = _tag_size(tag)
    if tag < 0 or size > MAX_TAG_BYTES:
        raise ValueError(f"tlv: tag must be 1 to {MAX_TAG_BYTES} bytes, got {tag:#x}")
    raw = tag.to_bytes(size, "big")
    try:
        parsed, end = _read_tag(raw, 0, size)
    except ValueError:
        parsed, end = -1, 0
    if raw[0] in _PADDING or parsed != tag or end != size:
        raise ValueError(f"tlv: tag {tag_hex(tag)} is not a well-formed BER-TLV tag")


def _length_field(tag: int, length: int) -> bytes:
    if length < _LONG_LENGTH:
        return bytes([length])
    if length > MAX_LENGTH:
        raise ValueError(
            f"tlv: value of tag {tag_hex(tag)} is {length} bytes, more than {MAX_LENGTH}"
        )
    size = (length.bit_length() + 7) // 8
    return bytes([_LONG_LENGTH | size]) + length.to_bytes(size, "big")


def _read_tag(data: bytes, offset: int, end: int) -> tuple[int, int]:
    """The tag starting at ``offset`` and the offset after it."""
    start = offset
    tag = data[offset]
    offset += 1
    if tag & _MORE_TAG_BYTES == _MORE_TAG_BYTES:
        while True:
            if offset >= end:
                raise ValueError(f"tlv: tag {tag_hex(tag)} at offset {start} is truncated")
            byte = data[offset]
            tag = (tag << 8) | byte
            offset += 1
            if offset - start > MAX_TAG_BYTES:
                raise ValueError(
                    f"tlv: tag at offset {start} is longer than {MAX_TAG_BYTES} bytes"
                )
            if not byte & 0x80:
                break
    return tag, offset


def _read_length(data: bytes, offset: int, end: int, tag: int) -> tuple[int, int]:
    """The length field of ``tag`` starting at ``offset`` and the offset after it."""
    if offset >= end:
        raise ValueError(f"tlv: length of tag {tag_hex(tag)} missing at offset {offset}")
    first = data[offset]
    if first < _LONG_LENGTH:
        return first, offset + 1
    size = first & 0x7F
    if size == 0:
        raise ValueError(
            f"tlv: indefinite length (80) of tag {tag_hex(tag)} at offset {offset} is not EMV"
        )
    if size > 3:
        raise ValueError(
            f"tlv: length of tag {tag_hex(tag)} at offset {offset} has {size} bytes, at most 3"
        )
    if offset + 1 + size > end:
        raise ValueError(
            f"tlv: length of tag {tag_hex(tag)} needs {size} bytes at offset {offset + 1},"
            f" {end - offset - 1} left"
        )
    return int.from_bytes(data[offset + 1 : offset + 1 + size], "big"), offset + 1 + size


def _objects(data: bytes, offset: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(tag, value start, value end) of each object in ``data[offset:end]``, offsets absolute."""
    while offset < end:
        if data[offset] in _PADDING:
            offset += 1
            continue
        tag, offset = _read_tag(data, offset, end)
        length, offset = _read_length(data, offset, end, tag)
        if offset + length > end:
            raise ValueError(
                f"tlv: value of tag {tag_hex(tag)} needs {length} bytes at offset {offset},"
                f" {end - offset} left"
            )
        yield tag, offset, offset + length
        offset += length


def _walk(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Every object at any depth in pre-order, without recursion; nesting capped at MAX_DEPTH."""
    stack: list[Iterator[tuple[int, int, int]]] = [_objects(data, 0, len(data))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        yield item
        tag, start, end = item
        if _is_constructed(tag) and end > start:
            if len(stack) >= MAX_DEPTH:
                raise ValueError(
                    f"tlv: tag {tag_hex(tag)} at offset {start} nests deeper than"
                    f" {MAX_DEPTH} levels"
                )
            stack.append(_objects(data, start, end))
