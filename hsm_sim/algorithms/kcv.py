"""Key check values (KCV): a short fingerprint that proves two parties hold the same key.

Conventions, as in ANSI X9.24-1:2017 and PCI PIN requirement 15-1 (and payShield, AWS Payment
Cryptography, TR-31 tooling):

- TDES: the leftmost bytes of the key encrypting one block of eight zero bytes.
- AES: the leftmost bytes of AES-CMAC (NIST SP 800-38B) over one block of sixteen zero bytes.
  AES-ECB of a zero block (an older convention some tools still show) is deliberately not offered.

A 16-byte key can be either kind, so the caller says which with ``algorithm``. X9.24 lets at
most 3 bytes of a TDES check value and 5 bytes of an AES one be disclosed; the default is 3.
"""

from typing import Literal

from hsm_sim.algorithms import mac, tdes

Algorithm = Literal["tdes", "aes"]


def kcv(key: bytes, length: int = 3, *, algorithm: Algorithm = "tdes") -> bytes:
    """Return the ``length``-byte check value of a TDES (16/24-byte) or AES (16/24/32-byte) key.

    >>> kcv(bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")).hex().upper()
    '08D7B4'
    >>> kcv(bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C"), algorithm="aes").hex().upper()
    '7AD386'
    """
    if algorithm == "tdes":
        if len(key) not in (16, 24):
            raise ValueError(f"key: a TDES key must be 16 or 24 bytes, got {len(key)}")
        block_size = tdes.BLOCK_SIZE
    elif algorithm == "aes":
        if len(key) not in (16, 24, 32):
            raise ValueError(f"key: an AES key must be 16, 24 or 32 bytes, got {len(key)}")
        block_size = 16
    else:
        raise ValueError(f"algorithm: must be 'tdes' or 'aes', got {algorithm!r}")
    if not 1 <= length <= block_size:
        raise ValueError(f"length: must be 1 to {block_size} for {algorithm}, got {length}")
    if algorithm == "tdes":
        return tdes.encrypt_ecb(key, bytes(8))[:length]
    return mac.aes_cmac(key, bytes(16))[:length]
