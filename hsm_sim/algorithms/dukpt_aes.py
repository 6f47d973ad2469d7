"""AES DUKPT, ANSI X9.24-3:2017: per-transaction AES keys from an AES base derivation key (BDK).

A PIN pad is loaded with the initial key that the BDK gives for the pad's 8-byte initial key id
(4-byte BDK id || 4-byte derivation id). Every transaction then uses working keys derived from
the initial key and the KSN's 32-bit transaction counter, so the host needs only the BDK and the
KSN sent with the PIN block.

KSN layout (12 bytes, 96 bits): initial key id (64 bits) || transaction counter (32 bits). The
standard allows only counters with at most 16 one-bits, which gives a device 2,448,023,842
transactions; the last is counter 0xFFFF0000.

Every key here is derived one way (section 6.3.1): AES-ECB encipher 16 bytes of derivation data
under the parent key, once per 128 bits of the new key with key block counter 1, 2, and keep the
leftmost bytes. Derivation data (section 6.3.2, tables 2 and 3):

    version 01 | key block counter | key usage (2) | algorithm (2) | key bits (2) | 8 bytes

where the last 8 bytes are the initial key id for the initial key, and the derivation id ||
the 32-bit counter for intermediate derivation keys and working keys.
"""

from collections.abc import Mapping
from enum import IntEnum
from typing import Final

from hsm_sim.algorithms import aes

KSN_LENGTH = 12
INITIAL_KEY_ID_LENGTH = 8
COUNTER_BITS = 32
COUNTER_MASK = (1 << COUNTER_BITS) - 1
MAX_COUNTER_ONE_BITS = 16


class KeyUsage(IntEnum):
    """Key usage indicator of a working key in the derivation data (section 6.3.2, table 2)."""

    KEY_ENCRYPTION = 0x0002
    PIN_ENCRYPTION = 0x1000
    MAC_GENERATION = 0x2000
    MAC_VERIFICATION = 0x2001
    MAC_BOTH_WAYS = 0x2002
    DATA_ENCRYPT = 0x3000
    DATA_DECRYPT = 0x3001
    DATA_BOTH_WAYS = 0x3002


# Algorithm indicator and key length in bits of each key type (section 6.3.2, table 3).
KEY_TYPES: Final[Mapping[str, tuple[int, int]]] = {
    "AES-128": (0x0002, 128),
    "AES-192": (0x0003, 192),
    "AES-256": (0x0004, 256),
}

_WORKING_KEY_USAGES = frozenset(KeyUsage)
_DERIVATION_DATA_VERSION = 0x01
_USAGE_KEY_DERIVATION = 0x8000
_USAGE_INITIAL_KEY = 0x8001


def _derive(parent: bytes, key_usage: int, key_type: str, tail: bytes) -> bytes:
    algorithm, bits = KEY_TYPES[key_type]
    fields = key_usage.to_bytes(2, "big") + algorithm.to_bytes(2, "big") + bits.to_bytes(2, "big")
    blocks = range(1, (bits + 127) // 128 + 1)
    # One block under the parent key per 128 bits: the standard's derivation function.
    material = b"".join(
        aes.encrypt_ecb(parent, bytes([_DERIVATION_DATA_VERSION, n]) + fields + tail)
        for n in blocks
    )
    return material[: bits // 8]


def _key_type(key: bytes, name: str) -> str:
    for key_type, (_, bits) in KEY_TYPES.items():
        if len(key) * 8 == bits:
            return key_type
    raise ValueError(f"{name}: must be a 16-, 24- or 32-byte AES key, got {len(key)} bytes")


def _check_initial_key_id(initial_key_id: bytes) -> None:
    if len(initial_key_id) != INITIAL_KEY_ID_LENGTH:
        raise ValueError(
            f"initial_key_id: must be 8 bytes (BDK id || derivation id), got {len(initial_key_id)}"
        )


def _check_counter_bits(counter: int, where: str) -> None:
    ones = counter.bit_count()
    if ones > MAX_COUNTER_ONE_BITS:
        raise ValueError(f"{where} {counter:#x} has {ones} one-bits, X9.24-3 allows at most 16")


def _transaction_counter(ksn: bytes) -> int:
    """Return the counter of a KSN that names a transaction: 1 or more, at most 16 one-bits."""
    counter = aes_ksn_counter(ksn)
    if counter == 0:
        raise ValueError("ksn: counter 0 is the initial key's own slot and never a transaction key")
    _check_counter_bits(counter, "ksn: counter")
    return counter


def aes_ksn_counter(ksn: bytes) -> int:
    """Return the 32-bit transaction counter of a 12-byte AES DUKPT KSN.

    >>> aes_ksn_counter(bytes.fromhex("123456789012345600000005"))
    5
    """
    if len(ksn) != KSN_LENGTH:
        raise ValueError(f"ksn: must be 12 bytes, got {len(ksn)}")
    return int.from_bytes(ksn[INITIAL_KEY_ID_LENGTH:], "big")


def aes_make_ksn(initial_key_id: bytes, counter: int = 0) -> bytes:
    """Assemble a KSN from an 8-byte initial key id and a 32-bit transaction counter.

    >>> aes_make_ksn(bytes.fromhex("1234567890123456"), 1).hex().upper()
    '123456789012345600000001'
    """
    _check_initial_key_id(initial_key_id)
    if not 0 <= counter <= COUNTER_MASK:
        raise ValueError(f"counter: must be 0 to {COUNTER_MASK}, got {counter}")
    _check_counter_bits(counter, "counter:")
    return initial_key_id + counter.to_bytes(COUNTER_BITS // 8, "big")


def aes_next_ksn(ksn: bytes) -> bytes:
    """Return the KSN of the next transaction, skipping counters with more than 16 one-bits.

    With fewer than 16 one-bits the counter steps by one; with exactly 16 it adds its lowest
    set bit, as the originating device's update of its intermediate derivation keys does.

    >>> aes_next_ksn(bytes.fromhex("123456789012345600000000")).hex().upper()
    '123456789012345600000001'
    >>> aes_next_ksn(bytes.fromhex("1234567890123456FFFE2000")).hex().upper()
    '1234567890123456FFFE4000'
    """
    counter = aes_ksn_counter(ksn)
    _check_counter_bits(counter, "ksn: counter")
    step = 1 if counter.bit_count() < MAX_COUNTER_ONE_BITS else counter & -counter
    if counter + step > COUNTER_MASK:
        raise ValueError("ksn: transaction counter exhausted, the device needs a new initial key")
    return aes_make_ksn(ksn[:INITIAL_KEY_ID_LENGTH], counter + step)


def aes_initial_key(bdk: bytes, initial_key_id: bytes) -> bytes:
    """Derive a device's initial key from an AES-128, -192 or -256 BDK and its initial key id.

    The initial key has the BDK's type and length (key usage 0x8001, section 6.3.1).

    >>> bdk = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
    >>> aes_initial_key(bdk, bytes.fromhex("1234567890123456")).hex().upper()
    '1273671EA26AC29AFA4D1084127652A1'
    """
    key_type = _key_type(bdk, "bdk")
    _check_initial_key_id(initial_key_id)
    return _derive(bdk, _USAGE_INITIAL_KEY, key_type, initial_key_id)


def aes_intermediate_key(initial_key: bytes, ksn: bytes) -> bytes:
    """Derive the intermediate derivation key for ``ksn`` from the device's initial key.

    Walks the counter's one-bits from the highest down: each sets its bit in a working counter
    and derives the next key from the previous one (key usage 0x8000), starting at the initial
    key. The result has the initial key's type.

    >>> initial_key = bytes.fromhex("1273671EA26AC29AFA4D1084127652A1")
    >>> ksn = bytes.fromhex("123456789012345600000001")
    >>> aes_intermediate_key(initial_key, ksn).hex().upper()
    '4F21B565BAD9835E112B6465635EAE44'
    """
    key_type = _key_type(initial_key, "initial_key")
    counter = _transaction_counter(ksn)
    derivation_id = ksn[INITIAL_KEY_ID_LENGTH // 2 : INITIAL_KEY_ID_LENGTH]
    key, working_counter = initial_key, 0
    bit = 1 << (COUNTER_BITS - 1)
    while bit:
        if counter & bit:
            working_counter |= bit
            tail = derivation_id + working_counter.to_bytes(COUNTER_BITS // 8, "big")
            key = _derive(key, _USAGE_KEY_DERIVATION, key_type, tail)
        bit >>= 1
    return key


def aes_derive_working_key(initial_key: bytes, ksn: bytes, key_usage: int, key_type: str) -> bytes:
    """Derive the working key of ``key_usage`` (a ``KeyUsage``) and ``key_type`` for ``ksn``.

    ``key_type`` is "AES-128", "AES-192" or "AES-256" and may be no stronger than the initial
    key. The working key is derived from the intermediate derivation key with the full counter.

    >>> initial_key = bytes.fromhex("1273671EA26AC29AFA4D1084127652A1")
    >>> ksn = bytes.fromhex("123456789012345600000001")
    >>> mac_key = aes_derive_working_key(initial_key, ksn, KeyUsage.MAC_GENERATION, "AES-128")
    >>> mac_key.hex().upper()
    'A2DC23DE6FDE0824A2BC321E08E4B8B7'
    """
    derivation_type = _key_type(initial_key, "initial_key")
    if key_usage not in _WORKING_KEY_USAGES:
        raise ValueError(f"key_usage: {key_usage:#06x} is not an X9.24-3 working key usage")
    if key_type not in KEY_TYPES:
        raise ValueError(f"key_type: must be AES-128, AES-192 or AES-256, got {key_type!r}")
    if KEY_TYPES[key_type][1] > KEY_TYPES[derivation_type][1]:
        raise ValueError(f"key_type: {key_type} is stronger than the {derivation_type} initial key")
    intermediate_key = aes_intermediate_key(initial_key, ksn)
    tail = ksn[INITIAL_KEY_ID_LENGTH // 2 :]
    return _derive(intermediate_key, key_usage, key_type, tail)


def aes_pin_key(initial_key: bytes, ksn: bytes) -> bytes:
    """Derive the AES-128 PIN encryption working key (key usage 0x1000) for ``ksn``.

    >>> initial_key = bytes.fromhex("1273671EA26AC29AFA4D1084127652A1")
    >>> aes_pin_key(initial_key, bytes.fromhex("123456789012345600000001")).hex().upper()
    'AF8CB133A78F8DC2D1359F18527593FB'
    """
    return aes_derive_working_key(initial_key, ksn, KeyUsage.PIN_ENCRYPTION, "AES-128")
