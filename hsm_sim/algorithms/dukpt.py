"""TDES DUKPT, ANSI X9.24-1:2009: per-transaction keys from a base derivation key (BDK).

A PIN pad is loaded with an initial PIN encryption key (IPEK) derived from the BDK and its key
serial number (KSN); every transaction then uses a fresh key derived from the IPEK and the KSN's
21-bit transaction counter, so the host needs only the BDK and the KSN sent with the PIN block.

KSN layout (10 bytes, 80 bits): key set id (40 bits) || device id (19 bits) || counter (21 bits).
The standard allows only counters with at most 10 one-bits, so a device gives at most 1,048,575
transactions before it must be reloaded.
"""

from functools import lru_cache

from hsm_sim.algorithms import tdes
from hsm_sim.algorithms.bits import xor
from hsm_sim.algorithms.dukpt_aes import (
    aes_derive_working_key,
    aes_initial_key,
    aes_intermediate_key,
    aes_ksn_counter,
    aes_make_ksn,
    aes_next_ksn,
    aes_pin_key,
)

KSN_LENGTH = 10
COUNTER_BITS = 21
COUNTER_MASK = (1 << COUNTER_BITS) - 1
DEVICE_ID_BITS = 19
MAX_COUNTER_ONE_BITS = 10

_KEY_MASK = bytes.fromhex("C0C0C0C000000000C0C0C0C000000000")
_PIN_VARIANT = bytes.fromhex("00000000000000FF00000000000000FF")


def _check_ksn(ksn: bytes) -> int:
    if len(ksn) != KSN_LENGTH:
        raise ValueError(f"ksn: must be 10 bytes, got {len(ksn)}")
    return int.from_bytes(ksn, "big")


def _check_key(key: bytes, name: str) -> None:
    if len(key) != 16:
        raise ValueError(f"{name}: must be a 16-byte double-length TDES key, got {len(key)} bytes")


def ksn_counter(ksn: bytes) -> int:
    """Return the 21-bit transaction counter of a 10-byte KSN.

    >>> ksn_counter(bytes.fromhex("FFFF9876543210E00005"))
    5
    """
    return _check_ksn(ksn) & COUNTER_MASK


def make_ksn(key_set_id: bytes, device_id: int, counter: int = 0) -> bytes:
    """Assemble a KSN from a 5-byte key set id, a 19-bit device id and a 21-bit counter.

    >>> make_ksn(bytes.fromhex("FFFF987654"), 0x19087, 1).hex().upper()
    'FFFF9876543210E00001'
    """
    if len(key_set_id) != 5:
        raise ValueError(f"key_set_id: must be 5 bytes, got {len(key_set_id)}")
    if not 0 <= device_id < 1 << DEVICE_ID_BITS:
        raise ValueError(f"device_id: must be 0 to {(1 << DEVICE_ID_BITS) - 1}, got {device_id}")
    if not 0 <= counter <= COUNTER_MASK:
        raise ValueError(f"counter: must be 0 to {COUNTER_MASK}, got {counter}")
    _check_counter_bits(counter, "counter:")
    value = (device_id << COUNTER_BITS) | counter
    return key_set_id + value.to_bytes(KSN_LENGTH - 5, "big")


def _check_counter_bits(counter: int, where: str) -> None:
    ones = counter.bit_count()
    if ones > MAX_COUNTER_ONE_BITS:
        raise ValueError(f"{where} {counter:#x} has {ones} one-bits, X9.24 allows at most 10")


def next_ksn(ksn: bytes) -> bytes:
    """Return the KSN of the next transaction, skipping counters with more than 10 one-bits.

    With fewer than 10 one-bits the counter steps by one; with exactly 10 it adds its lowest
    set bit, as the originating device's future-key process does.

    >>> next_ksn(bytes.fromhex("FFFF9876543210E00000")).hex().upper()
    'FFFF9876543210E00001'
    >>> next_ksn(bytes.fromhex("FFFF9876543210E003FF")).hex().upper()
    'FFFF9876543210E00400'
    """
    value = _check_ksn(ksn)
    counter = value & COUNTER_MASK
    _check_counter_bits(counter, "ksn: counter")
    step = 1 if counter.bit_count() < MAX_COUNTER_ONE_BITS else counter & -counter
    if counter + step > COUNTER_MASK:
        raise ValueError("ksn: transaction counter exhausted, the device needs a new IPEK")
    return (value + step).to_bytes(KSN_LENGTH, "big")


def tdes_ipek(bdk: bytes, ksn: bytes) -> bytes:
    """Derive the 16-byte initial PIN encryption key (IPEK) of a device from the BDK.

    The counter bits of ``ksn`` are ignored, so any KSN of the device gives its IPEK.

    >>> bdk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> tdes_ipek(bdk, bytes.fromhex("FFFF9876543210E00008")).hex().upper()
    '6AC292FAA1315B4D858AB3A3D7D5933A'
    """
    _check_key(bdk, "bdk")
    initial = (_check_ksn(ksn) & ~COUNTER_MASK).to_bytes(KSN_LENGTH, "big")[:8]
    left = tdes.encrypt_ecb(bdk, initial)
    right = tdes.encrypt_ecb(xor(bdk, _KEY_MASK), initial)
    return left + right


@lru_cache(maxsize=8192)
def _non_reversible(key: bytes, data: bytes) -> bytes:
    """X9.24's non-reversible key generation: the next key from ``key`` and 8 bytes of KSN.

    Memoized: a device's transactions share every step but the last with earlier counters
    (counter n's path is its parent's plus one bit), so a host deriving keys for a busy PIN pad
    computes one new step per transaction instead of up to ten.
    """

    def half(k: bytes) -> bytes:
        return xor(tdes.des_encrypt_block(k[:8], xor(data, k[8:])), k[8:])

    return half(xor(key, _KEY_MASK)) + half(key)


def forget_derivations() -> None:
    """Empties the memo of derivation steps (for measurements that must start cold)."""
    _non_reversible.cache_clear()


def tdes_derive_key(ipek: bytes, ksn: bytes) -> bytes:
    """Derive the current transaction key for ``ksn`` from the device's IPEK (no variant).

    Walks the counter's one-bits from the highest down, one non-reversible step per bit.

    >>> ipek = bytes.fromhex("6AC292FAA1315B4D858AB3A3D7D5933A")
    >>> tdes_derive_key(ipek, bytes.fromhex("FFFF9876543210E00001")).hex().upper()
    '042666B49184CFA368DE9628D0397BC9'
    """
    _check_key(ipek, "ipek")
    value = _check_ksn(ksn)
    counter = value & COUNTER_MASK
    if counter == 0:
        raise ValueError("ksn: counter 0 is the IPEK's own slot and never a transaction key")
    _check_counter_bits(counter, "ksn: counter")
    # The rightmost 64 KSN bits with the counter cleared; counter bits are set back one by one.
    register = value & 0xFFFFFFFFFFFFFFFF & ~COUNTER_MASK
    key = ipek
    bit = 1 << (COUNTER_BITS - 1)
    while bit:
        if counter & bit:
            register |= bit
            key = _non_reversible(key, register.to_bytes(8, "big"))
        bit >>= 1
    return key


def tdes_pin_key(ipek: bytes, ksn: bytes) -> bytes:
    """Derive the PIN encryption key for ``ksn``: the current key XOR the PIN variant.

    >>> ipek = bytes.fromhex("6AC292FAA1315B4D858AB3A3D7D5933A")
    >>> tdes_pin_key(ipek, bytes.fromhex("FFFF9876543210E00001")).hex().upper()
    '042666B49184CF5C68DE9628D0397B36'
    """
    return xor(tdes_derive_key(ipek, ksn), _PIN_VARIANT)


# AES DUKPT (ANSI X9.24-3:2017) lives in dukpt_aes; its functions are re-exported here so that
# callers find both DUKPT variants under one name.
__all__ = [
    "COUNTER_BITS",
    "COUNTER_MASK",
    "DEVICE_ID_BITS",
    "KSN_LENGTH",
    "MAX_COUNTER_ONE_BITS",
    "aes_derive_working_key",
    "aes_initial_key",
    "aes_intermediate_key",
    "aes_ksn_counter",
    "aes_make_ksn",
    "aes_next_ksn",
    "aes_pin_key",
    "forget_derivations",
    "ksn_counter",
    "make_ksn",
    "next_ksn",
    "tdes_derive_key",
    "tdes_ipek",
    "tdes_pin_key",
]
