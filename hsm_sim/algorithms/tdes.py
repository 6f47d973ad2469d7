"""Triple DES (TDEA, ANSI X9.52) in ECB and CBC mode, and single DES as TDES with K1=K2=K3.

Double-length keys (K1||K2) are run as the three-key form K1||K2||K1, which is the same cipher;
``cryptography`` deprecates two-key and one-key TripleDES objects, so the expansion happens here.
ECB contexts come from :mod:`hsm_sim.algorithms.ecb`, which keeps them per thread and key.
"""

import warnings

from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hsm_sim.algorithms import ecb

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography < 43 keeps TripleDES beside AES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

BLOCK_SIZE = 8


def _three_key(key: bytes, name: str) -> bytes:
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise ValueError(f"{name}: must be 16 or 24 bytes, got {len(key)}")


def _check_blocks(data: bytes, name: str) -> None:
    if not data or len(data) % BLOCK_SIZE:
        raise ValueError(f"{name}: must be a non-empty multiple of 8 bytes, got {len(data)}")


def _ecb(key24: bytes) -> Cipher[modes.ECB]:
    # ECB is the point here: payment cryptography is specified block by block.
    return Cipher(TripleDES(key24), modes.ECB())  # noqa: S305


def _check_iv(iv: bytes) -> None:
    if len(iv) != BLOCK_SIZE:
        raise ValueError(f"iv: must be 8 bytes, got {len(iv)}")


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    """Encrypt ``data`` (whole 8-byte blocks, at least one) under a 16- or 24-byte TDES key, ECB.

    >>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> encrypt_ecb(key, bytes(8)).hex().upper()
    '08D7B4FB629D0885'
    """
    key24 = _three_key(key, "key")
    _check_blocks(data, "data")
    return bytes(ecb.context("TDES", key24, True).update(data))


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    """Decrypt ``data`` (whole 8-byte blocks, at least one) under a 16- or 24-byte TDES key, ECB.

    >>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> decrypt_ecb(key, bytes.fromhex("08D7B4FB629D0885")).hex()
    '0000000000000000'
    """
    key24 = _three_key(key, "key")
    _check_blocks(data, "data")
    return bytes(ecb.context("TDES", key24, False).update(data))


def encrypt_cbc(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    """Encrypt ``data`` (whole 8-byte blocks, at least one) in CBC mode; no padding is added.

    >>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> encrypt_cbc(key, bytes(16)).hex().upper()
    '08D7B4FB629D08850A121DC33DFB5947'
    """
    _check_iv(iv)
    cipher = Cipher(TripleDES(_three_key(key, "key")), modes.CBC(iv))
    _check_blocks(data, "data")
    encryptor = cipher.encryptor()
    return encryptor.update(data) + encryptor.finalize()


def decrypt_cbc(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    """Decrypt ``data`` (whole 8-byte blocks, at least one) in CBC mode; no padding is removed.

    >>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> decrypt_cbc(key, bytes.fromhex("08D7B4FB629D08850A121DC33DFB5947")).hex()
    '00000000000000000000000000000000'
    """
    _check_iv(iv)
    cipher = Cipher(TripleDES(_three_key(key, "key")), modes.CBC(iv))
    _check_blocks(data, "data")
    decryptor = cipher.decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _check_single(key8: bytes, block8: bytes) -> None:
    if len(key8) != BLOCK_SIZE:
        raise ValueError(f"key8: must be 8 bytes, got {len(key8)}")
    if len(block8) != BLOCK_SIZE:
        raise ValueError(f"block8: must be 8 bytes, got {len(block8)}")


def des_encrypt_block(key8: bytes, block8: bytes) -> bytes:
    """Encrypt one 8-byte block with single DES (an 8-byte key; parity bits are ignored).

    >>> des_encrypt_block(bytes.fromhex("0123456789ABCDEF"), bytes(8)).hex().upper()
    'D5D44FF720683D0D'
    """
    _check_single(key8, block8)
    return bytes(ecb.context("TDES", key8 * 3, True).update(block8))


def des_decrypt_block(key8: bytes, block8: bytes) -> bytes:
    """Decrypt one 8-byte block with single DES (an 8-byte key; parity bits are ignored).

    >>> key8 = bytes.fromhex("0123456789ABCDEF")
    >>> des_decrypt_block(key8, bytes.fromhex("D5D44FF720683D0D")).hex()
    '0000000000000000'
    """
    _check_single(key8, block8)
    return bytes(ecb.context("TDES", key8 * 3, False).update(block8))
