"""The EMV tag dictionary: each data element's name, format, length and source, kept as data.

The entries live in ``tags.yaml`` beside this module (EMV 4.4 Book 3 Annex A, Book 4, and the
Visa and Mastercard contactless kernels) and are read once, at import. Formats are those of Book 3
4.3: ``n`` numeric BCD, ``cn`` compressed numeric (left-aligned, F-padded), ``b`` binary, ``an``
alphanumeric, ``ans`` alphanumeric and special. The source says who writes the value: the card,
the terminal or the issuer.

Values that hold the PAN, track data, the cardholder's name or PIN data are marked ``sensitive``
and :func:`describe` prints them by length only.

>>> name(0x9F26), FORMATS[0x9F02], TAGS[0x82].max
('Application Cryptogram', 'n', 2)
>>> name(0x9F99)
'unknown tag 9F99'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from cardswitch import tlv

#: Data element formats of EMV Book 3 4.3.
FORMAT_NAMES = ("n", "cn", "b", "an", "ans")
#: Who produces a data element.
SOURCES = ("card", "terminal", "issuer")

_REQUIRED = {"tag", "name", "format", "min", "max", "source"}
_OPTIONAL = {"sensitive"}
_CONTENT_RULES: dict[str, tuple[str, Any]] = {
    "n": ("BCD digits", lambda value: re.fullmatch(r"[0-9]*", value.hex())),
    "cn": ("BCD digits padded with F", lambda value: re.fullmatch(r"[0-9]*f*", value.hex())),
    "an": ("letters and digits", lambda value: value.isascii() and value.isalnum()),
    "ans": ("printable characters", lambda value: all(b >= 0x20 and b != 0x7F for b in value)),
}


@dataclass(frozen=True)
class TagSpec:
    """One data element: ``min`` and ``max`` are lengths of its value in bytes."""

    tag: int
    name: str
    format: str
    min: int
    max: int
    source: str
    sensitive: bool = False


def parse(text: str, where: str = "tags.yaml") -> dict[int, TagSpec]:
    """The tag dictionary in ``text`` (YAML, a list of entries), checked entry by entry.

    >>> parse('- {tag: "9F36", name: ATC, format: b, min: 2, max: 2, source: card}')[0x9F36]
    TagSpec(tag=40758, name='ATC', format='b', min=2, max=2, source='card', sensitive=False)
    """
    entries = yaml.safe_load(text)
    if not isinstance(entries, list):
        raise ValueError(f"{where}: must be a list of tag entries")
    specs: dict[int, TagSpec] = {}
    for index, entry in enumerate(entries):
        spec = _entry(entry, f"{where} entry {index}")
        if spec.tag in specs:
            raise ValueError(f"{where} entry {index}: tag {tlv.tag_hex(spec.tag)} appears twice")
        specs[spec.tag] = spec
    return specs


def _entry(entry: object, where: str) -> TagSpec:
    if not isinstance(entry, dict) or not _REQUIRED <= entry.keys() <= _REQUIRED | _OPTIONAL:
        raise ValueError(f"{where}: must be a mapping of {', '.join(sorted(_REQUIRED))}"
                         " and optionally sensitive")
    text = entry["tag"]
    if not isinstance(text, str) or not re.fullmatch(r"(?:[0-9A-F]{2}){1,3}", text):
        raise ValueError(f"{where}: tag must be upper-case hex in quotes, got {text!r}")
    tag = int(text, 16)
    tlv.encode(tag, b"")  # raises if the tag is not well-formed BER-TLV
    where = f"{where} (tag {text})"
    if entry["format"] not in FORMAT_NAMES:
        raise ValueError(f"{where}: format must be one of {', '.join(FORMAT_NAMES)},"
                         f" got {entry['format']!r}")
    if entry["source"] not in SOURCES:
        raise ValueError(f"{where}: source must be one of {', '.join(SOURCES)},"
                         f" got {entry['source']!r}")
    low, high = entry["min"], entry["max"]
    if not all(type(n) is int for n in (low, high)) or not 0 <= low <= high <= tlv.MAX_LENGTH:
        raise ValueError(f"{where}: min and max must be lengths with min <= max, got {low}, {high}")
    sensitive = entry.get("sensitive", False)
    if not isinstance(sensitive, bool):
        raise ValueError(f"{where}: sensitive must be true or false, got {sensitive!r}")
    return TagSpec(tag, str(entry["name"]), entry["format"], low, high, entry["source"], sensitive)


def _load() -> dict[int, TagSpec]:
    text = resources.files("terminals.emv").joinpath("tags.yaml").read_text(encoding="utf-8")
    return parse(text)


#: Every known data element, by tag.
TAGS: dict[int, TagSpec] = _load()
#: The format of every known data element, as :func:`cardswitch.tlv.build_dol` takes them.
FORMATS: dict[int, str] = {tag: spec.format for tag, spec in TAGS.items()}
#: Tags whose values :func:`describe` never prints.
SENSITIVE: frozenset[int] = frozenset(tag for tag, spec in TAGS.items() if spec.sensitive)


def name(tag: int) -> str:
    """The data element's name, or ``unknown tag 9F99``."""
    spec = TAGS.get(tag)
    return spec.name if spec else f"unknown tag {tlv.tag_hex(tag)}"


def check(tag: int, value: bytes) -> None:
    """Raise ``ValueError`` unless ``value`` has a length and content its tag allows.

    Unknown tags (proprietary data) are not checked. Messages never show the value.

    >>> check(0x9F26, bytes(7))
    Traceback (most recent call last):
    ...
    ValueError: tag 9F26 (Application Cryptogram): must be 8 bytes, got 7
    """
    spec = TAGS.get(tag)
    if spec is None:
        return
    if not spec.min <= len(value) <= spec.max:
        lengths = f"{spec.min}" if spec.min == spec.max else f"{spec.min} to {spec.max}"
        raise ValueError(f"tag {tlv.tag_hex(tag)} ({spec.name}): must be {lengths} bytes,"
                         f" got {len(value)}")
    rule = _CONTENT_RULES.get(spec.format)
    if rule is not None and not rule[1](value):
        raise ValueError(f"tag {tlv.tag_hex(tag)} ({spec.name}): format {spec.format} allows"
                         f" only {rule[0]}")


def describe(data: bytes) -> list[str]:
    """One line per data object of ``data`` for printing, nested objects indented two spaces.

    Sensitive values (PAN, track data, name, PIN) show their length only.

    >>> for line in describe(bytes.fromhex("70 10 5A 08 4761739001010010 5F24 03 301231")):
    ...     print(line)
    70 READ RECORD Response Message Template (16 bytes)
      5A Application Primary Account Number (PAN) (8 bytes, value hidden)
      5F24 Application Expiration Date (3 bytes): 301231
    """
    tlv.flatten(data)  # the whole data is well-formed, errors giving offsets into all of it
    lines: list[str] = []
    _describe(data, 0, lines)
    return lines


def _describe(data: bytes, depth: int, lines: list[str]) -> None:
    if depth >= tlv.MAX_DEPTH:
        raise ValueError(f"tlv: data nests deeper than {tlv.MAX_DEPTH} levels")
    for item in tlv.decode(data):
        spec = TAGS.get(item.tag)
        head = f"{'  ' * depth}{tlv.tag_hex(item.tag)} {spec.name if spec else 'unknown'}"
        size = f"{len(item.value)} bytes"
        if item.tag in SENSITIVE:
            lines.append(f"{head} ({size}, value hidden)")
        elif item.constructed:
            lines.append(f"{head} ({size})")
            _describe(item.value, depth + 1, lines)
        elif spec is not None and spec.format in ("an", "ans"):
            text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in item.value)
            lines.append(f"{head} ({size}): {item.value.hex().upper()} {text!r}")
        else:
            lines.append(f"{head} ({size}): {item.value.hex().upper()}")
