"""Message authentication codes of card payments: ISO/IEC 9797-1 padding, the retail MAC and CMAC.

Padding (ISO/IEC 9797-1 section 6.3) brings data to a whole number of cipher blocks:

- method 1 appends zero bytes, none if the data already fills its last block; empty data becomes
  one zero block. Data ending in zeros is therefore ambiguous, which is why EMV prefers method 2;
- method 2 appends 0x80 and then zero bytes, so at least one byte is always added (ISO 7816-4);
- method 3 prefixes one block holding the data's length in bits, then pads as method 1.

The retail MAC (ISO/IEC 9797-1 MAC algorithm 3 with DES, ANSI X9.19) uses a double-length key,
two DES keys A || B. The padded data is chained with single DES under A (CBC, zero IV), and only
the last block goes through TDES A-B-A. That gives TDES strength for the cost of single DES on the
body, and it is the MAC of acquirer messages, EMV application cryptograms and issuer scripts.

CMAC (NIST SP 800-38B, ISO/IEC 9797-1 MAC algorithm 5) is a CBC-MAC whose last block is masked
with a subkey derived from the key, so no padding ambiguity remains. AES-CMAC is the MAC of AES
key blocks and AES check values; TDES-CMAC appears in TR-31 version B key blocks.

A MAC may be truncated to its leftmost ``length`` bytes, never below 4. The ``verify_*`` helpers
compare in constant time and take the length from the MAC presented.
"""

import hmac

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from hsm_sim.algorithms import tdes
from hsm_sim.algorithms.bits import xor

PADDING_METHODS = (1, 2, 3)
MIN_MAC_LENGTH = 4

# SP 800-38B section 5.3: R_64, folded back in when doubling a 64-bit CMAC subkey carries out.
_CMAC_R64 = 0x1B


def _check_method(method: int, name: str) -> None:
    if method not in PADDING_METHODS:
        raise ValueError(f"{name}: must be 1, 2 or 3 (ISO/IEC 9797-1 padding), got {method!r}")


def _check_length(length: int, block_size: int) -> None:
    if not MIN_MAC_LENGTH <= length <= block_size:
        raise ValueError(f"length: must be {MIN_MAC_LENGTH} to {block_size}, got {length}")


def _check_mac(mac: bytes, block_size: int) -> None:
    if not MIN_MAC_LENGTH <= len(mac) <= block_size:
        raise ValueError(f"mac: must be {MIN_MAC_LENGTH} to {block_size} bytes, got {len(mac)}")


def pad(data: bytes, method: int, block_size: int = tdes.BLOCK_SIZE) -> bytes:
    """Pad ``data`` to whole ``block_size`` blocks (8 for DES, 16 for AES) by ISO/IEC 9797-1.

    >>> pad(bytes.fromhex("1234"), 1).hex().upper()
    '1234000000000000'
    >>> pad(bytes.fromhex("1234"), 2).hex().upper()
    '1234800000000000'
    >>> pad(bytes.fromhex("1234"), 3).hex().upper()
    '00000000000000101234000000000000'
    """
    _check_method(method, "method")
    if block_size not in (8, 16):
        raise ValueError(f"block_size: must be 8 or 16, got {block_size}")
    if method == 2:
        data += b"\x80"
    zeros = -len(data) % block_size if data else block_size
    padded = data + bytes(zeros)
    if method == 3:
        length_block = (8 * len(data)).to_bytes(block_size, "big")
        return length_block + padded
    return padded


def retail_mac(key: bytes, data: bytes, padding: int = 2, length: int = 8) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC) under a 16-byte key A || B.

    Single-DES CBC under A over every padded block, TDES A-B-A on the last; ``padding`` is the
    ISO/IEC 9797-1 method, ``length`` the number of leftmost bytes kept (4 to 8).

    >>> key = bytes.fromhex("7CA110454A1A6E570131D9619DC1376E")
    >>> retail_mac(key, b"Hello World !!!!", padding=1).hex().upper()
    'F09B856213BAB83B'
    >>> retail_mac(key, b"Hello World !!!!", length=4).hex().upper()
    '9C349B19'
    """
    if len(key) != 16:
        raise ValueError(f"key: must be 16 bytes (DES key A || DES key B), got {len(key)}")
    _check_method(padding, "padding")
    _check_length(length, tdes.BLOCK_SIZE)
    padded = pad(data, padding)
    body, last = padded[:-8], padded[-8:]
    key_a = key[:8]
    chained = tdes.encrypt_cbc(key_a + key_a, body)[-8:] if body else bytes(8)
    return tdes.encrypt_ecb(key, xor(chained, last))[:length]


def verify_retail_mac(key: bytes, data: bytes, mac: bytes, padding: int = 2) -> bool:
    """Check a presented retail MAC (4 to 8 bytes) in constant time.

    >>> key = bytes.fromhex("7CA110454A1A6E570131D9619DC1376E")
    >>> verify_retail_mac(key, b"Hello World !!!!", bytes.fromhex("9C349B19"))
    True
    """
    _check_mac(mac, tdes.BLOCK_SIZE)
    return hmac.compare_digest(retail_mac(key, data, padding, len(mac)), mac)


def aes_cmac(key: bytes, data: bytes, length: int = 16) -> bytes:
    """AES-CMAC (NIST SP 800-38B) under a 16-, 24- or 32-byte key, truncated to ``length`` bytes.

    >>> key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    >>> aes_cmac(key, bytes.fromhex("6BC1BEE22E409F96E93D7E117393172A")).hex().upper()
    '070A16B46B4D4144F79BDD9DD04A287C'
    """
    if len(key) not in (16, 24, 32):
        raise ValueError(f"key: an AES key must be 16, 24 or 32 bytes, got {len(key)}")
    _check_length(length, 16)
    cmac = CMAC(algorithms.AES(key))
    cmac.update(data)
    return cmac.finalize()[:length]


def verify_aes_cmac(key: bytes, data: bytes, mac: bytes) -> bool:
    """Check a presented AES-CMAC (4 to 16 bytes) in constant time.

    >>> key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    >>> verify_aes_cmac(key, b"", bytes.fromhex("BB1D6929E95937287FA37D129B756746"))
    True
    """
    _check_mac(mac, 16)
    return hmac.compare_digest(aes_cmac(key, data, len(mac)), mac)


def _double(block: bytes) -> bytes:
    """Multiply an 8-byte block by x in GF(2^64): shift left one bit, fold any carry in."""
    value = int.from_bytes(block, "big") << 1
    if value >> 64:
        value ^= (1 << 64) | _CMAC_R64
    return value.to_bytes(8, "big")


def tdes_cmac(key: bytes, data: bytes, length: int = 8) -> bytes:
    """TDES-CMAC (NIST SP 800-38B) under a 16- or 24-byte key, truncated to ``length`` bytes.

    >>> key = bytes.fromhex("8AA83BF8CBDA10620BC1BF19FBB6CD58BC313D4A371CA8B5")
    >>> tdes_cmac(key, bytes.fromhex("6BC1BEE22E409F96")).hex().upper()
    '8E8F293136283797'
    """
    if len(key) not in (16, 24):
        raise ValueError(f"key: a TDES key must be 16 or 24 bytes, got {len(key)}")
    _check_length(length, tdes.BLOCK_SIZE)
    subkey1 = _double(tdes.encrypt_ecb(key, bytes(8)))
    if data and len(data) % 8 == 0:
        body, last = data[:-8], xor(data[-8:], subkey1)
    else:
        cut = len(data) - len(data) % 8
        body, last = data[:cut], xor(pad(data[cut:], 2), _double(subkey1))
    chained = tdes.encrypt_cbc(key, body)[-8:] if body else bytes(8)
    return tdes.encrypt_ecb(key, xor(chained, last))[:length]


def verify_tdes_cmac(key: bytes, data: bytes, mac: bytes) -> bool:
    """Check a presented TDES-CMAC (4 to 8 bytes) in constant time.

    >>> key = bytes.fromhex("8AA83BF8CBDA10620BC1BF19FBB6CD58BC313D4A371CA8B5")
    >>> verify_tdes_cmac(key, b"", bytes.fromhex("B7A688E122FFAF95"))
    True
    """
    _check_mac(mac, tdes.BLOCK_SIZE)
    return hmac.compare_digest(tdes_cmac(key, data, len(mac)), mac)
