"""Key blocks, ANSI X9.143 / ASC X9 TR-31:2018: a key wrapped together with what it may be used for.

A key block is printable ASCII: a header saying what the key is for, the encrypted key data in
hex, and a MAC in hex that binds the two, so a PIN key cannot be turned into a data key by
editing its header. The 16-character fixed header, e.g. ``D0112P0AE00E0000``, is:

    D     version id: how the block is protected (the table below)
    0112  length of the whole key block in characters
    P0    key usage (``KEY_USAGES``)
    A     algorithm the key is for (``ALGORITHMS``)
    E     mode of use (``MODES_OF_USE``)
    00    key version number ("00" unused, "c1" component 1, else a version)
    E     exportability (``EXPORTABILITY``)
    00    number of optional blocks
    0     key context (``KEY_CONTEXTS``; TR-31:2018 reserved it as "0")
    0     reserved

Optional blocks follow: a 2-character id, a 2-hex-digit length counting id and length (or "00",
2 hex digits giving the size of the length, then a 4-hex-digit length, for values over 251
characters) and a printable value. A "PB" padding block is appended when needed so the header
fills whole cipher blocks; it carries nothing and is dropped when a header is parsed.

The key data is the key's length in bits (2 bytes), the key, and random padding up to a whole
number of cipher blocks; ``masked_key_length`` adds padding so the block does not show how long
the key is.

- Version B (TDES KBPK of 16 or 24 bytes; key derivation binding): an encryption key and a MAC
  key are derived from the KBPK with TDES-CMAC (NIST SP 800-38B) of counter || 0000 (encryption)
  or 0001 (MAC) || 00 || 0000 (2-key) or 0001 (3-key) || KBPK length in bits, counter 1, 2, ...
  The MAC is TDES-CMAC of header || clear key data (8 bytes); the key data is TDES-CBC
  encrypted with the MAC as IV.
- Version D (AES KBPK of 16, 24 or 32 bytes): the same with AES-CMAC, algorithm 0002/0003/0004
  and a 16-byte MAC.
- Versions A and C (TDES; key variant binding, deprecated): encryption key = KBPK XOR 45..,
  MAC key = KBPK XOR 4D..; the key data is TDES-CBC encrypted with the first 8 header characters
  as IV and the MAC is the first 4 bytes of a TDES CBC-MAC of header || encrypted key data.
"""

import hmac
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from hsm_sim.algorithms import aes, mac, tdes

MAX_BLOCK_LENGTH = 9999

KEY_USAGES: Final[Mapping[str, str]] = {
    "B0": "BDK base derivation key",
    "B1": "initial DUKPT key",
    "B2": "base key variant key",
    "C0": "CVK card verification key",
    "D0": "symmetric data encryption key",
    "D1": "asymmetric data encryption key",
    "D2": "data encryption key for a decimalization table",
    "E0": "EMV issuer master key: application cryptograms",
    "E1": "EMV issuer master key: secure messaging for confidentiality",
    "E2": "EMV issuer master key: secure messaging for integrity",
    "E3": "EMV issuer master key: data authentication code",
    "E4": "EMV issuer master key: dynamic numbers",
    "E5": "EMV issuer master key: card personalization",
    "E6": "EMV issuer master key: other",
    "I0": "initialization vector",
    "K0": "key encryption or wrapping key",
    "K1": "TR-31 key block protection key",
    "K2": "TR-34 asymmetric key",
    "K3": "asymmetric key for key agreement or key wrapping",
    "M0": "ISO 16609 MAC algorithm 1 (TDES)",
    "M1": "ISO 9797-1 MAC algorithm 1",
    "M2": "ISO 9797-1 MAC algorithm 2",
    "M3": "ISO 9797-1 MAC algorithm 3",
    "M4": "ISO 9797-1 MAC algorithm 4",
    "M5": "ISO 9797-1:1999 MAC algorithm 5",
    "M6": "ISO 9797-1:2011 MAC algorithm 5 (CMAC)",
    "M7": "HMAC",
    "M8": "ISO 9797-1:2011 MAC algorithm 6",
    "P0": "PIN encryption key",
    "S0": "asymmetric key pair for digital signature",
    "S1": "asymmetric key pair, CA key",
    "S2": "asymmetric key pair, non-X9.24 key",
    "V0": "PIN verification key, other algorithm",
    "V1": "PIN verification key, IBM 3624",
    "V2": "PIN verification key, Visa PVV",
    "V3": "PIN verification key, X9.132 algorithm 1",
    "V4": "PIN verification key, X9.132 algorithm 2",
}

ALGORITHMS: Final[Mapping[str, str]] = {
    "A": "AES",
    "D": "DES",
    "E": "elliptic curve",
    "H": "HMAC",
    "R": "RSA",
    "S": "DSA",
    "T": "TDES",
}

MODES_OF_USE: Final[Mapping[str, str]] = {
    "B": "both encrypt and decrypt, or wrap and unwrap",
    "C": "both generate and verify",
    "D": "decrypt or unwrap only",
    "E": "encrypt or wrap only",
    "G": "generate only",
    "N": "no restrictions beyond those of the key usage",
    "S": "signature only",
    "T": "both sign and decrypt",
    "V": "verify only",
    "X": "derive other keys",
    "Y": "create key variants",
}

EXPORTABILITY: Final[Mapping[str, str]] = {
    "E": "exportable under a trusted key",
    "N": "not exportable",
    "S": "sensitive: exportable under an untrusted key",
}

KEY_CONTEXTS: Final[Mapping[str, str]] = {
    "0": "storage or exchange",
    "1": "storage only",
    "2": "exchange only",
}

# Key lengths in bytes that make sense for a header algorithm; others (HMAC, RSA...) are free.
_KEY_LENGTHS: Final[Mapping[str, tuple[int, ...]]] = {
    "T": (8, 16, 24),
    "D": (8,),
    "A": (16, 24, 32),
}


@dataclass(frozen=True)
class _Version:
    cipher: Literal["TDES", "AES"]
    block_size: int
    mac_length: int
    kbpk_lengths: tuple[int, ...]
    derivation_binding: bool


_VERSIONS: Final[Mapping[str, _Version]] = {
    "A": _Version("TDES", 8, 4, (16, 24), derivation_binding=False),
    "B": _Version("TDES", 8, 8, (16, 24), derivation_binding=True),
    "C": _Version("TDES", 8, 4, (16, 24), derivation_binding=False),
    "D": _Version("AES", 16, 16, (16, 24, 32), derivation_binding=True),
}

# The KBPK's algorithm as written into the key derivation data, by cipher and KBPK length.
_DERIVATION_ALGORITHM: Final[Mapping[tuple[str, int], int]] = {
    ("TDES", 16): 0x0000,
    ("TDES", 24): 0x0001,
    ("AES", 16): 0x0002,
    ("AES", 24): 0x0003,
    ("AES", 32): 0x0004,
}
_FOR_ENCRYPTION = 0x0000
_FOR_MAC = 0x0001

_ALPHANUMERIC = frozenset(string.ascii_letters + string.digits)
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))
_HEX = frozenset(string.hexdigits)


def _choice(name: str, value: str, allowed: Mapping[str, object]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")


def _joined(lengths: tuple[int, ...]) -> str:
    *head, last = map(str, lengths)
    return f"{', '.join(head)} or {last}" if head else last


@dataclass(frozen=True)
class Header:
    """A key block header; the length field is not kept, it is computed when rendering.

    >>> header = Header.parse("B0000B0TX12S0100KS1800604B120F9292800000")
    >>> header.key_usage, header.mode_of_use, header.key_version, header.optional_blocks
    ('B0', 'X', '12', (('KS', '00604B120F9292800000'),))
    >>> Header("D", "P0", "A", "E").render()
    'D0016P0AE00N0000'
    """

    version_id: str
    key_usage: str
    algorithm: str
    mode_of_use: str
    key_version: str = "00"
    exportability: str = "N"
    optional_blocks: tuple[tuple[str, str], ...] = ()
    key_context: str = "0"

    def __post_init__(self) -> None:
        _choice("version_id", self.version_id, _VERSIONS)
        if self.key_usage not in KEY_USAGES:
            raise ValueError(f"key_usage: unknown key usage {self.key_usage!r}")
        _choice("algorithm", self.algorithm, ALGORITHMS)
        _choice("mode_of_use", self.mode_of_use, MODES_OF_USE)
        if len(self.key_version) != 2 or not _ALPHANUMERIC.issuperset(self.key_version):
            raise ValueError(f"key_version: must be 2 letters or digits, got {self.key_version!r}")
        _choice("exportability", self.exportability, EXPORTABILITY)
        _choice("key_context", self.key_context, KEY_CONTEXTS)
        seen: set[str] = set()
        for block_id, value in self.optional_blocks:
            _check_optional_block(block_id, value, seen)

    @classmethod
    def parse(cls, text: str) -> "Header":
        """Read a header (and its optional blocks) from the start of a header or a key block.

        >>> Header.parse("D0112P0AE00E0000B826").exportability
        'E'
        """
        return _parse_header(text)[0]

    def render(self, block_length: int | None = None) -> str:
        """Write the header, adding a padding block if needed; ``block_length`` fills the length
        field and defaults to the header's own length, as for a header standing alone.

        >>> blocks = (("KS", "VM9A"), ("TS", "2018-06-18T20:42:39.22"))
        >>> Header("D", "C0", "A", "V", "A1", optional_blocks=blocks).render()
        'D0064C0AVA1N0300KS08VM9ATS1A2018-06-18T20:42:39.22PB0E0000000000'
        """
        blocks = "".join(_render_optional_block(*block) for block in self.optional_blocks)
        count = len(self.optional_blocks)
        block_size = _VERSIONS[self.version_id].block_size
        if (16 + len(blocks)) % block_size:
            fill = -(16 + len(blocks) + 4) % block_size
            blocks += f"PB{4 + fill:02X}" + "0" * fill
            count += 1
        if count > 99:
            raise ValueError(f"optional_blocks: at most 99 with the padding block, got {count}")
        length = 16 + len(blocks) if block_length is None else block_length
        if length > MAX_BLOCK_LENGTH:
            raise ValueError(f"length: must be at most {MAX_BLOCK_LENGTH} characters, got {length}")
        return (
            f"{self.version_id}{length:04d}{self.key_usage}{self.algorithm}{self.mode_of_use}"
            f"{self.key_version}{self.exportability}{count:02d}{self.key_context}0{blocks}"
        )


def _check_optional_block(block_id: str, value: str, seen: set[str]) -> None:
    if len(block_id) != 2 or not _ALPHANUMERIC.issuperset(block_id):
        raise ValueError(f"optional_blocks: id must be 2 letters or digits, got {block_id!r}")
    if block_id == "PB":
        raise ValueError("optional_blocks: PB is the padding block, added when rendering")
    if block_id in seen:
        raise ValueError(f"optional_blocks: {block_id} appears more than once")
    _check_printable(block_id, value)
    seen.add(block_id)


def _check_printable(block_id: str, value: str) -> None:
    if not _PRINTABLE.issuperset(value):
        raise ValueError(f"optional block {block_id}: value must be printable ASCII, got {value!r}")


def _render_optional_block(block_id: str, value: str) -> str:
    if len(value) + 4 <= 0xFF:
        return f"{block_id}{len(value) + 4:02X}{value}"
    if len(value) + 10 <= 0xFFFF:
        return f"{block_id}0002{len(value) + 10:04X}{value}"
    raise ValueError(f"optional block {block_id}: value must be at most 65525 characters")


def _hex_number(text: str, width: int, name: str) -> int:
    if width == 0 or len(text) != width or not _HEX.issuperset(text):
        raise ValueError(f"{name}: must be {width} hex digits, got {text!r}")
    return int(text, 16)


def _digits(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{name}: must be {len(text)} digits, got {text!r}")
    return int(text)


def _parse_header(text: str) -> tuple[Header, int]:
    """Return the header at the start of ``text`` and how many characters it takes."""
    if len(text) < 16:
        raise ValueError(f"header: must be at least 16 characters, got {len(text)}")
    _digits(text[1:5], "length")
    count = _digits(text[12:14], "number_of_optional_blocks")
    if text[15] != "0":
        raise ValueError(f"reserved: must be '0', got {text[15]!r}")
    blocks: list[tuple[str, str]] = []
    position = 16
    for index in range(count):
        block_id = text[position : position + 2]
        if len(block_id) != 2:
            raise ValueError(f"optional_blocks: header says {count}, text ends after {index}")
        name = f"optional block {block_id}"
        start = position + 4
        length = _hex_number(text[position + 2 : start], 2, f"{name} length")
        if length == 0:  # extended length: the size of the length, then the length
            size = _hex_number(text[start : start + 2], 2, f"{name} length of length")
            length = _hex_number(text[start + 2 : start + 2 + 2 * size], 2 * size, f"{name} length")
            start += 2 + 2 * size
        end = position + length
        if end < start:
            raise ValueError(f"{name}: length {length} is shorter than its id and length fields")
        if end > len(text):
            raise ValueError(f"{name}: length {length} runs past the end of the text")
        value = text[start:end]
        _check_printable(block_id, value)
        if block_id == "PB" and index != count - 1:
            raise ValueError("optional block PB: the padding block must be the last block")
        if block_id != "PB":
            blocks.append((block_id, value))
        position = end
    header = Header(
        version_id=text[0],
        key_usage=text[5:7],
        algorithm=text[7],
        mode_of_use=text[8],
        key_version=text[9:11],
        exportability=text[11],
        optional_blocks=tuple(blocks),
        key_context=text[14],
    )
    return header, position


def _check_kbpk(version_id: str, kbpk: bytes) -> _Version:
    version = _VERSIONS[version_id]
    if len(kbpk) not in version.kbpk_lengths:
        wanted = _joined(version.kbpk_lengths)
        raise ValueError(f"kbpk: must be {wanted} bytes for version {version_id}, got {len(kbpk)}")
    return version


def _check_key(header: Header, key: bytes) -> None:
    lengths = _KEY_LENGTHS.get(header.algorithm)
    if lengths is not None and len(key) not in lengths:
        raise ValueError(
            f"key: must be {_joined(lengths)} bytes for algorithm {header.algorithm} "
            f"({ALGORITHMS[header.algorithm]}), got {len(key)}"
        )


def _check_strength(header: Header, version: _Version, kbpk: bytes, key: bytes) -> None:
    """A key must not be protected by a weaker key (X9.24-1): no AES key under a TDES KBPK, and
    no key longer than a KBPK of its own cipher."""
    key_cipher = {"T": "TDES", "D": "TDES", "A": "AES"}.get(header.algorithm)
    if key_cipher == "AES" and version.cipher == "TDES":
        raise ValueError(f"key: an AES key needs an AES KBPK (version D), got {header.version_id}")
    if key_cipher == version.cipher and len(key) > len(kbpk):
        raise ValueError(
            f"key: a {len(key)}-byte key needs a KBPK at least as long, got {len(kbpk)}"
        )


def _cmac(cipher: str, key: bytes, data: bytes) -> bytes:
    return mac.aes_cmac(key, data) if cipher == "AES" else mac.tdes_cmac(key, data)


def _encrypt_cbc(cipher: str, key: bytes, iv: bytes, data: bytes) -> bytes:
    if cipher == "TDES":
        return tdes.encrypt_cbc(key, data, iv)
    return aes.encrypt_cbc(key, data, iv)


def _decrypt_cbc(cipher: str, key: bytes, iv: bytes, data: bytes) -> bytes:
    if cipher == "TDES":
        return tdes.decrypt_cbc(key, data, iv)
    return aes.decrypt_cbc(key, data, iv)


def _derive(version: _Version, kbpk: bytes, purpose: int) -> bytes:
    """Derive the key block encryption or MAC key from the KBPK (key derivation binding)."""
    algorithm = _DERIVATION_ALGORITHM[(version.cipher, len(kbpk))]
    derived = b""
    counter = 1
    while len(derived) < len(kbpk):
        data = (
            bytes([counter])
            + purpose.to_bytes(2, "big")
            + b"\x00"
            + algorithm.to_bytes(2, "big")
            + (len(kbpk) * 8).to_bytes(2, "big")
        )
        derived += _cmac(version.cipher, kbpk, data)
        counter += 1
    return derived[: len(kbpk)]


def _variants(kbpk: bytes) -> tuple[bytes, bytes]:
    """The key block encryption and MAC keys of the key variant binding method."""
    return bytes(b ^ 0x45 for b in kbpk), bytes(b ^ 0x4D for b in kbpk)


def _variant_mac(kbak: bytes, header: bytes, encrypted: bytes) -> bytes:
    return tdes.encrypt_cbc(kbak, header + encrypted)[-8:][:4]


def _protect(version: _Version, kbpk: bytes, header: bytes, key_data: bytes) -> tuple[bytes, bytes]:
    """Return the encrypted key data and the MAC."""
    if version.derivation_binding:
        kbek, kbak = _derive(version, kbpk, _FOR_ENCRYPTION), _derive(version, kbpk, _FOR_MAC)
        mac = _cmac(version.cipher, kbak, header + key_data)[: version.mac_length]
        return _encrypt_cbc(version.cipher, kbek, mac, key_data), mac
    kbek, kbak = _variants(kbpk)
    encrypted = _encrypt_cbc(version.cipher, kbek, header[:8], key_data)
    return encrypted, _variant_mac(kbak, header, encrypted)


def _unprotect(
    version: _Version, kbpk: bytes, header: bytes, encrypted: bytes, mac: bytes
) -> bytes:
    """Return the clear key data once the MAC verifies."""
    if version.derivation_binding:
        kbek, kbak = _derive(version, kbpk, _FOR_ENCRYPTION), _derive(version, kbpk, _FOR_MAC)
        key_data = _decrypt_cbc(version.cipher, kbek, mac, encrypted)
        expected = _cmac(version.cipher, kbak, header + key_data)[: version.mac_length]
    else:
        kbek, kbak = _variants(kbpk)
        expected = _variant_mac(kbak, header, encrypted)
        key_data = _decrypt_cbc(version.cipher, kbek, header[:8], encrypted)
    if not hmac.compare_digest(expected, mac):
        raise ValueError("keyblock: MAC does not verify")
    return key_data


def wrap(
    kbpk: bytes,
    header: str | Header,
    key: bytes,
    *,
    masked_key_length: int | None = None,
    random_pad: bytes | None = None,
) -> str:
    """Wrap ``key`` under ``kbpk`` in a key block; the header's length field is recomputed.

    ``masked_key_length`` (bytes, at least the key's length) pads the key data as if the key
    were that long. ``random_pad`` replaces the padding from ``os.urandom``, for tests; it must
    be exactly as long as the padding needed. TR-31:2018 A.7.2.2, example 1b:

    >>> kbpk = bytes.fromhex("DD7515F2BFC17F85CE48F3CA25CB21F6")
    >>> key = bytes.fromhex("3F419E1CB7079442AA37474C2EFBF8B8")
    >>> pad = bytes.fromhex("1C2965473CE2")
    >>> block = wrap(kbpk, "B0000P0TE00E0000", key, random_pad=pad)
    >>> block[:16], block[16:64], block[64:]
    ('B0080P0TE00E0000', '94B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F534117', '6EED7B727B8A248E')
    """
    parsed = header if isinstance(header, Header) else Header.parse(header)
    version = _check_kbpk(parsed.version_id, kbpk)
    _check_key(parsed, key)
    _check_strength(parsed, version, kbpk, key)
    masked = len(key) if masked_key_length is None else masked_key_length
    if masked < len(key):
        raise ValueError(f"masked_key_length: must be at least the key's {len(key)}, got {masked}")
    pad_length = masked - len(key) + (-(2 + masked) % version.block_size)
    pad = os.urandom(pad_length) if random_pad is None else random_pad
    if len(pad) != pad_length:
        raise ValueError(f"random_pad: must be {pad_length} bytes here, got {len(pad)}")
    key_data = (len(key) * 8).to_bytes(2, "big") + key + pad
    header_length = len(parsed.render())
    text = parsed.render(header_length + 2 * (len(key_data) + version.mac_length))
    encrypted, mac = _protect(version, kbpk, text.encode("ascii"), key_data)
    return text + encrypted.hex().upper() + mac.hex().upper()


def _payload(text: str, name: str) -> bytes:
    for index, character in enumerate(text):
        if character not in _HEX:
            raise ValueError(f"{name}: must be hex digits, got {character!r} at index {index}")
    return bytes.fromhex(text)


def unwrap(kbpk: bytes, block: str) -> tuple[Header, bytes]:
    """Check a key block's MAC under ``kbpk`` and return its header and the clear key.

    >>> kbpk = bytes.fromhex("DD7515F2BFC17F85CE48F3CA25CB21F6")
    >>> header, key = unwrap(kbpk, "B0080P0TE00E0000"
    ...     "94B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E")
    >>> header.key_usage, key.hex().upper()
    ('P0', '3F419E1CB7079442AA37474C2EFBF8B8')
    """
    header, header_length = _parse_header(block)
    version = _check_kbpk(header.version_id, kbpk)
    if int(block[1:5]) != len(block):
        raise ValueError(f"length: header says {int(block[1:5])} characters, got {len(block)}")
    if header_length % version.block_size:
        raise ValueError(
            f"header: must be a multiple of {version.block_size} characters for version "
            f"{header.version_id}, got {header_length}"
        )
    mac_digits = 2 * version.mac_length
    data_digits = len(block) - header_length - mac_digits
    if data_digits <= 0 or data_digits % (2 * version.block_size):
        raise ValueError(
            f"key_data: must be a non-empty multiple of {2 * version.block_size} hex digits for "
            f"version {header.version_id}, got {max(data_digits, 0)}"
        )
    encrypted = _payload(block[header_length:-mac_digits], "key_data")
    mac = _payload(block[-mac_digits:], "mac")
    key_data = _unprotect(version, kbpk, block[:header_length].encode("ascii"), encrypted, mac)
    key_bits = int.from_bytes(key_data[:2], "big")
    if key_bits == 0 or key_bits % 8 or key_bits // 8 > len(key_data) - 2:
        raise ValueError(
            f"key_length: must be 8 to {8 * (len(key_data) - 2)} bits in whole bytes, "
            f"got {key_bits}"
        )
    key = key_data[2 : 2 + key_bits // 8]
    _check_key(header, key)
    return header, key
