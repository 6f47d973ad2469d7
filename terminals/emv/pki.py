"""Offline data authentication PKI: EMV 4.4 Book 2 sections 5 (SDA) and 6 (DDA), RSA with SHA-1.

A scheme certification authority (CA) certifies each issuer's RSA key; the issuer signs the
card's static data (SDA) or certifies a key of the card itself (the ICC key), which signs fresh
terminal data on every INTERNAL AUTHENTICATE (DDA). The terminal trusts only the CA public keys,
found by RID and CA public key index (8F), and walks the chain down.

Every signature is raw RSA over one block as long as the signer's modulus (Book 2 Annex A2.1,
"signature scheme giving message recovery"): header 6A, a format byte, the fields of the
signed object, a SHA-1 hash, trailer BC. The hash covers the block from the format byte up to
the hash, then data that stays outside the block. A key too long for its certificate carries its
rightmost bytes outside, as the remainder (92 for issuer keys, 9F48 for ICC keys), and the hash
covers those too. The formats:

======  ==========================  ==========  ==============================================
format  object                      tag         hash covers after the block's fields
======  ==========================  ==========  ==============================================
02      issuer public key cert.     90          remainder 92, exponent 9F32
03      signed static app. data     93          static data to be authenticated
04      ICC public key certificate  9F46        remainder 9F48, exponent 9F47, static data
05      signed dynamic app. data    9F4B        terminal dynamic data (the DDOL data)
======  ==========================  ==========  ==============================================

Key lengths in bytes: NCA (CA), NI (issuer), NIC (ICC), with NIC <= NI <= NCA <= 248. Exponents
are 3 or 65537. Dates are MMYY in certificates and YYMM for today, years being 20YY; a
certificate is valid to the last day of its expiry month. Verification errors name the step of
Book 2 5.3, 5.4, 6.4 or 6.5.2 that failed, and never print a PAN.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HEADER, TRAILER, PAD = 0x6A, 0xBC, 0xBB
SHA1, RSA = 0x01, 0x01  # hash and public key algorithm indicators (Book 2 Annex B)
ISSUER_CERTIFICATE, SIGNED_STATIC_DATA, ICC_CERTIFICATE, SIGNED_DYNAMIC_DATA = 2, 3, 4, 5
EXPONENTS = (b"\x03", b"\x01\x00\x01")
MAX_MODULUS_BYTES = 248  # 1984 bits
HASH_BYTES = 20

#: Fixed bytes of each block besides the key field or padding (header to trailer).
ISSUER_CERTIFICATE_OVERHEAD = 36
ICC_CERTIFICATE_OVERHEAD = 42
SIGNED_STATIC_DATA_OVERHEAD = 26
SIGNED_DYNAMIC_DATA_OVERHEAD = 25

#: The test PKI's key sizes: each certificate fits in its signer's block.
CA_BITS, ISSUER_BITS, ICC_BITS = 1408, 1152, 1024
TEST_CA_INDEX = 0x92
TEST_CERTIFICATE_EXPIRY = "1249"  # MMYY


@dataclass(frozen=True)
class RsaPublic:
    """An RSA public key as EMV carries it: big-endian modulus and exponent bytes."""

    modulus: bytes
    exponent: bytes

    def __post_init__(self) -> None:
        if not 1 <= len(self.modulus) <= MAX_MODULUS_BYTES or self.modulus[0] == 0:
            raise ValueError(
                f"rsa: modulus must be 1 to {MAX_MODULUS_BYTES} bytes without a leading zero,"
                f" got {len(self.modulus)} bytes"
            )
        if self.exponent not in EXPONENTS:
            raise ValueError(f"rsa: exponent must be 03 or 010001, got {self.exponent.hex()}")

    @property
    def n(self) -> int:
        """The modulus as an integer."""
        return int.from_bytes(self.modulus, "big")

    @property
    def e(self) -> int:
        """The public exponent as an integer."""
        return int.from_bytes(self.exponent, "big")


@dataclass(frozen=True)
class RsaPrivate:
    """An RSA private key: its public half and the private exponent ``d`` (never printed)."""

    public: RsaPublic
    d: int = field(repr=False)

    @classmethod
    def generate(cls, bits: int, exponent: int = 3) -> RsaPrivate:
        """A new random key of ``bits`` bits (1024 to 1984, whole bytes), exponent 3 or 65537."""
        if bits % 8 or not 1024 <= bits <= 8 * MAX_MODULUS_BYTES:
            raise ValueError(f"bits: must be a multiple of 8 from 1024 to 1984, got {bits}")
        if exponent not in (3, 65537):
            raise ValueError(f"exponent: must be 3 or 65537, got {exponent}")
        return cls.from_cryptography(rsa.generate_private_key(exponent, bits))

    @classmethod
    def from_numbers(cls, modulus: int, private_exponent: int, public_exponent: int) -> RsaPrivate:
        """A key from its integers n, d and e."""
        size = (modulus.bit_length() + 7) // 8
        exponent = public_exponent.to_bytes((public_exponent.bit_length() + 7) // 8, "big")
        return cls(RsaPublic(modulus.to_bytes(size, "big"), exponent), private_exponent)

    @classmethod
    def from_cryptography(cls, key: rsa.RSAPrivateKey) -> RsaPrivate:
        """A key from a ``cryptography`` RSA private key."""
        numbers = key.private_numbers()
        return cls.from_numbers(numbers.public_numbers.n, numbers.d, numbers.public_numbers.e)

    def to_cryptography(self) -> rsa.RSAPrivateKey:
        """This key as a ``cryptography`` RSA private key (its primes recovered from n, e, d)."""
        n, e, d = self.public.n, self.public.e, self.d
        p, q = rsa.rsa_recover_prime_factors(n, e, d)
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(e, n),
        )
        return numbers.private_key()

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM, for the test PKI's files (kept mode 0600)."""
        return self.to_cryptography().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, pem: bytes) -> RsaPrivate:
        """A key from unencrypted PEM (PKCS#8 or PKCS#1)."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"pem: holds a {type(key).__name__}, not an RSA private key")
        return cls.from_cryptography(key)


def issuer_certificate(
    ca: RsaPrivate, issuer: RsaPublic, issuer_id: str, expiry_mmyy: str, serial: bytes
) -> tuple[bytes, bytes]:
    """The issuer public key certificate 90 and remainder 92 (b"" when none), Book 2 Table 6.

    ``issuer_id`` is the 3 to 8 leftmost PAN digits the issuer key serves (padded with F).
    """
    _check_digits("issuer_id", issuer_id, 3, 8)
    room = len(ca.public.modulus) - ISSUER_CERTIFICATE_OVERHEAD
    _check_fits("issuer key", issuer, "CA key", ca.public, room)
    key_field, remainder = _split_key(issuer.modulus, room)
    body = (
        bytes([ISSUER_CERTIFICATE]) + _pad_f(issuer_id, 4) + _mmyy(expiry_mmyy)
        + _serial(serial) + bytes([SHA1, RSA, len(issuer.modulus), len(issuer.exponent)])
        + key_field
    )
    return _seal(ca, body, remainder + issuer.exponent), remainder


def recover_issuer_key(
    ca: RsaPublic, certificate: bytes, remainder: bytes, exponent: bytes, pan: str,
    today_yymm: str,
) -> RsaPublic:
    """The issuer public key from its certificate 90, remainder 92 and exponent 9F32 (Book 2 5.3).

    Checks, in order: length, trailer, header, format, algorithms, remainder, hash, issuer
    identifier against the PAN, expiry; the ``ValueError`` names the step that failed.
    """
    what = "issuer public key certificate"
    block = _recover(ca, certificate, what, ISSUER_CERTIFICATE, algorithms_at=11)
    key_length, exponent_length = block[13], block[14]
    key_field = block[15 : len(block) - HASH_BYTES - 1]
    remainder = _check_remainder(what, key_length, key_field, remainder)
    _check_exponent(what, exponent_length, exponent)
    _check_hash(what, block, remainder + exponent)
    issuer_id = block[2:6].hex().upper().rstrip("F")
    if not (3 <= len(issuer_id) <= 8 and issuer_id.isdigit() and pan.startswith(issuer_id)):
        raise ValueError(f"{what}: issuer identifier: {issuer_id} does not begin the PAN")
    _check_expiry(what, block[6:8], today_yymm)
    return RsaPublic(_join_key(key_field, remainder, key_length), exponent)


def sign_static_data(issuer: RsaPrivate, static_data: bytes, dac: bytes) -> bytes:
    """Signed static application data 93 over the static data to authenticate, Book 2 Table 7.

    >>> issuer = RsaPrivate.generate(1024)
    >>> ssad = sign_static_data(issuer, b"static data", bytes.fromhex("DAC1"))
    >>> len(ssad), verify_static_data(issuer.public, ssad, b"static data").hex().upper()
    (128, 'DAC1')
    """
    if len(dac) != 2:
        raise ValueError(f"dac: must be 2 bytes, got {len(dac)}")
    pad = len(issuer.public.modulus) - SIGNED_STATIC_DATA_OVERHEAD
    if pad < 0:
        raise ValueError(f"issuer key: {len(issuer.public.modulus)} bytes is too short to sign")
    body = bytes([SIGNED_STATIC_DATA, SHA1]) + dac + bytes([PAD]) * pad
    return _seal(issuer, body, static_data)


def verify_static_data(issuer: RsaPublic, ssad: bytes, static_data: bytes) -> bytes:
    """The data authentication code 9F45 from a valid 93 (Book 2 5.4); ``ValueError`` otherwise."""
    what = "signed static application data"
    block = _recover(issuer, ssad, what, SIGNED_STATIC_DATA, algorithms_at=2)
    _check_hash(what, block, static_data)
    return block[3:5]


def icc_certificate(
    issuer: RsaPrivate, icc: RsaPublic, pan: str, expiry_mmyy: str, serial: bytes,
    static_data: bytes,
) -> tuple[bytes, bytes]:
    """The ICC public key certificate 9F46 and remainder 9F48 (b"" when none), Book 2 Table 14.

    The certificate binds the key to the PAN (padded with F to 10 bytes) and to the static data.

    >>> issuer, icc = RsaPrivate.generate(1152), RsaPrivate.generate(1024)
    >>> cert, rest = icc_certificate(issuer, icc.public, "4761739001010010", "1230",
    ...                              bytes(3), b"static")
    >>> len(cert), len(rest)
    (144, 26)
    >>> icc.public == recover_icc_key(issuer.public, cert, rest, b"\\x03",
    ...                               "4761739001010010", b"static", "2501")
    True
    """
    _check_digits("pan", pan, 8, 19)
    room = len(issuer.public.modulus) - ICC_CERTIFICATE_OVERHEAD
    _check_fits("ICC key", icc, "issuer key", issuer.public, room)
    key_field, remainder = _split_key(icc.modulus, room)
    body = (
        bytes([ICC_CERTIFICATE]) + _pad_f(pan, 10) + _mmyy(expiry_mmyy) + _serial(serial)
        + bytes([SHA1, RSA, len(icc.modulus), len(icc.exponent)]) + key_field
    )
    return _seal(issuer, body, remainder + icc.exponent + static_data), remainder


def recover_icc_key(
    issuer: RsaPublic, certificate: bytes, remainder: bytes, exponent: bytes, pan: str,
    static_data: bytes, today_yymm: str,
) -> RsaPublic:
    """The ICC public key from 9F46, 9F48 and 9F47 (Book 2 6.4).

    Checks, in order: length, trailer, header, format, algorithms, remainder, hash (which covers
    the static data), PAN, expiry; the ``ValueError`` names the step that failed.
    """
    what = "ICC public key certificate"
    block = _recover(issuer, certificate, what, ICC_CERTIFICATE, algorithms_at=17)
    key_length, exponent_length = block[19], block[20]
    key_field = block[21 : len(block) - HASH_BYTES - 1]
    remainder = _check_remainder(what, key_length, key_field, remainder)
    _check_exponent(what, exponent_length, exponent)
    _check_hash(what, block, remainder + exponent + static_data)
    if block[2:12].hex().upper().rstrip("F") != pan:
        raise ValueError(f"{what}: PAN: the certified PAN is not the card's PAN 5A")
    _check_expiry(what, block[12:14], today_yymm)
    return RsaPublic(_join_key(key_field, remainder, key_length), exponent)


def sign_dynamic_data(icc: RsaPrivate, icc_dynamic_number: bytes, terminal_data: bytes) -> bytes:
    """Signed dynamic application data 9F4B for INTERNAL AUTHENTICATE (DDA), Book 2 Table 17.

    The ICC dynamic data is the dynamic number's length and the number (Table 18); the hash
    covers the block's fields and ``terminal_data``, the DDOL data the terminal sent.

    >>> icc = RsaPrivate.generate(1024)
    >>> sdad = sign_dynamic_data(icc, bytes.fromhex("0102"), bytes.fromhex("CAFEF00D"))
    >>> verify_dynamic_data(icc.public, sdad, bytes.fromhex("CAFEF00D")).hex().upper()
    '0102'
    """
    if not 2 <= len(icc_dynamic_number) <= 8:
        raise ValueError(f"icc_dynamic_number: must be 2 to 8 bytes, got {len(icc_dynamic_number)}")
    dynamic_data = bytes([len(icc_dynamic_number)]) + icc_dynamic_number
    pad = len(icc.public.modulus) - SIGNED_DYNAMIC_DATA_OVERHEAD - len(dynamic_data)
    if pad < 0:
        raise ValueError(f"ICC key: {len(icc.public.modulus)} bytes is too short to sign")
    body = bytes([SIGNED_DYNAMIC_DATA, SHA1, len(dynamic_data)]) + dynamic_data + bytes([PAD]) * pad
    return _seal(icc, body, terminal_data)


def verify_dynamic_data(icc: RsaPublic, sdad: bytes, terminal_data: bytes) -> bytes:
    """The ICC dynamic number 9F4C from a valid 9F4B (Book 2 6.5.2); ``ValueError`` otherwise."""
    what = "signed dynamic application data"
    block = _recover(icc, sdad, what, SIGNED_DYNAMIC_DATA, algorithms_at=2)
    dynamic_length = block[3]
    if dynamic_length > len(block) - SIGNED_DYNAMIC_DATA_OVERHEAD:
        raise ValueError(f"{what}: dynamic data: length {dynamic_length} overruns the block")
    _check_hash(what, block, terminal_data)
    dynamic_data = block[4 : 4 + dynamic_length]
    if not dynamic_data or not 2 <= dynamic_data[0] <= 8 or dynamic_data[0] >= dynamic_length:
        raise ValueError(f"{what}: dynamic data: no ICC dynamic number of 2 to 8 bytes")
    return dynamic_data[1 : 1 + dynamic_data[0]]


class TestPki:
    """A test certification authority and issuer keys, generated once and kept in ``directory``.

    Per RID (5 bytes, A000000003 for Visa) one CA key of :data:`CA_BITS` bits under index
    :data:`TEST_CA_INDEX`; per RID and issuer identifier one issuer key of :data:`ISSUER_BITS`
    bits, certified to :data:`TEST_CERTIFICATE_EXPIRY`. Private keys are PEM files of mode 0600,
    created on first use; concurrent first uses agree on one key (the first file written wins).
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def ca_public(self, rid: bytes) -> tuple[int, RsaPublic]:
        """The CA public key index (8F, 9F22) and key the terminals trust for ``rid``."""
        return TEST_CA_INDEX, self.ca_private(rid).public

    def ca_private(self, rid: bytes) -> RsaPrivate:
        """The CA private key for ``rid``, to certify further test issuers."""
        if len(rid) != 5:
            raise ValueError(f"rid: must be 5 bytes, got {len(rid)}")
        return self._key(f"ca-{rid.hex().upper()}-{TEST_CA_INDEX:02X}", CA_BITS)

    def issuer(self, rid: bytes, issuer_id: str) -> tuple[RsaPrivate, bytes, bytes, bytes]:
        """The issuer key for ``issuer_id`` (3 to 8 leftmost PAN digits) and its 90, 92, 9F32."""
        _check_digits("issuer_id", issuer_id, 3, 8)
        ca = self.ca_private(rid)
        key = self._key(f"issuer-{rid.hex().upper()}-{issuer_id}", ISSUER_BITS)
        serial = hashlib.sha256(rid + issuer_id.encode()).digest()[:3]
        certificate, remainder = issuer_certificate(
            ca, key.public, issuer_id, TEST_CERTIFICATE_EXPIRY, serial
        )
        return key, certificate, remainder, key.public.exponent

    def _key(self, name: str, bits: int) -> RsaPrivate:
        path = self.directory / f"{name}.pem"
        if not path.exists():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")  # mode 0600
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(RsaPrivate.generate(bits).to_pem())
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process wrote it first; use theirs
            finally:
                os.unlink(temporary)
        return RsaPrivate.from_pem(path.read_bytes())


def _seal(signer: RsaPrivate, body: bytes, hashed_after: bytes) -> bytes:
    """Header, ``body``, SHA-1 of ``body`` and ``hashed_after``, trailer: signed with raw RSA."""
    digest = hashlib.sha1(body + hashed_after).digest()  # noqa: S324 - EMV Book 2 mandates SHA-1
    block = bytes([HEADER]) + body + digest + bytes([TRAILER])
    assert len(block) == len(signer.public.modulus)
    value = int.from_bytes(block, "big")
    if value >= signer.public.n:
        raise ValueError("rsa: the block to sign is not below the signer's modulus")
    return pow(value, signer.d, signer.public.n).to_bytes(len(block), "big")


def _recover(
    key: RsaPublic, signature: bytes, what: str, data_format: int, algorithms_at: int
) -> bytes:
    """The recovered block after the length, trailer, header, format and algorithm checks."""
    size = len(key.modulus)
    if len(signature) != size:
        raise ValueError(
            f"{what}: length: {len(signature)} bytes, the signer's modulus is {size}"
        )
    value = int.from_bytes(signature, "big")
    if value >= key.n:
        raise ValueError(f"{what}: length: the signature is not below the signer's modulus")
    block = pow(value, key.e, key.n).to_bytes(size, "big")
    if block[-1] != TRAILER:
        raise ValueError(f"{what}: trailer: recovered data ends in {block[-1]:02X}, not BC")
    if block[0] != HEADER:
        raise ValueError(f"{what}: header: recovered data begins with {block[0]:02X}, not 6A")
    if block[1] != data_format:
        raise ValueError(f"{what}: format: {block[1]:02X}, not {data_format:02X}")
    if block[algorithms_at] != SHA1:
        raise ValueError(
            f"{what}: hash algorithm: indicator {block[algorithms_at]:02X}, not 01 (SHA-1)"
        )
    if data_format in (ISSUER_CERTIFICATE, ICC_CERTIFICATE) and block[algorithms_at + 1] != RSA:
        raise ValueError(
            f"{what}: public key algorithm: indicator {block[algorithms_at + 1]:02X},"
            " not 01 (RSA)"
        )
    return block


def _check_hash(what: str, block: bytes, hashed_after: bytes) -> None:
    body = block[1 : len(block) - HASH_BYTES - 1]
    digest = hashlib.sha1(body + hashed_after).digest()  # noqa: S324 - EMV Book 2 mandates SHA-1
    if digest != block[len(block) - HASH_BYTES - 1 : -1]:
        raise ValueError(f"{what}: hash: the hash result does not match the signed data")


def _check_remainder(what: str, key_length: int, key_field: bytes, remainder: bytes) -> bytes:
    expected = max(0, key_length - len(key_field))
    if len(remainder) != expected:
        raise ValueError(
            f"{what}: remainder: a {key_length}-byte key needs a {expected}-byte remainder,"
            f" got {len(remainder)} bytes"
        )
    return remainder


def _check_exponent(what: str, exponent_length: int, exponent: bytes) -> None:
    if exponent not in EXPONENTS or len(exponent) != exponent_length:
        raise ValueError(
            f"{what}: exponent: certified as {exponent_length} bytes, got {exponent.hex()}"
            " (must be 03 or 010001)"
        )


def _check_expiry(what: str, mmyy: bytes, today_yymm: str) -> None:
    _check_digits("today_yymm", today_yymm, 4, 4)
    month, year = mmyy.hex()[:2], mmyy.hex()[2:]
    if not (month.isdigit() and year.isdigit() and 1 <= int(month) <= 12):
        raise ValueError(f"{what}: expiry: {mmyy.hex().upper()} is not a MMYY date")
    if year + month < today_yymm:
        raise ValueError(f"{what}: expiry: expired {month}/{year}, today is {today_yymm} (YYMM)")


def _check_fits(what: str, key: RsaPublic, signer_what: str, signer: RsaPublic, room: int) -> None:
    if len(key.modulus) > len(signer.modulus) or room < 1:
        raise ValueError(
            f"{what}: {len(key.modulus)} bytes cannot be certified by a"
            f" {len(signer.modulus)}-byte {signer_what}"
        )


def _check_digits(name: str, digits: str, shortest: int, longest: int) -> None:
    if not (shortest <= len(digits) <= longest and digits.isascii() and digits.isdigit()):
        count = f"{shortest}" if shortest == longest else f"{shortest} to {longest}"
        raise ValueError(f"{name}: must be {count} digits, got {len(digits)} characters")


def _split_key(modulus: bytes, room: int) -> tuple[bytes, bytes]:
    """The key field (leftmost bytes, padded with BB to ``room``) and the remainder."""
    if len(modulus) <= room:
        return modulus + bytes([PAD]) * (room - len(modulus)), b""
    return modulus[:room], modulus[room:]


def _join_key(key_field: bytes, remainder: bytes, key_length: int) -> bytes:
    return (key_field + remainder)[:key_length]


def _pad_f(digits: str, size: int) -> bytes:
    return bytes.fromhex(digits.ljust(2 * size, "F"))


def _mmyy(expiry_mmyy: str) -> bytes:
    _check_digits("expiry_mmyy", expiry_mmyy, 4, 4)
    if not 1 <= int(expiry_mmyy[:2]) <= 12:
        raise ValueError(f"expiry_mmyy: month must be 01 to 12, got {expiry_mmyy[:2]}")
    return bytes.fromhex(expiry_mmyy)


def _serial(serial: bytes) -> bytes:
    if len(serial) != 3:
        raise ValueError(f"serial: must be 3 bytes, got {len(serial)}")
    return serial
