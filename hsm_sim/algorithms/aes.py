"""AES (FIPS 197) in ECB and CBC mode, the block operations the other algorithms build on.

ECB here means single blocks as the standards specify them (DUKPT derivation, ISO 9564 format
4), with contexts from :mod:`hsm_sim.algorithms.ecb`; CBC is the key block cipher mode. CMAC
lives in :mod:`hsm_sim.algorithms.mac`.
"""

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hsm_sim.algorithms import ecb

BLOCK_SIZE = 16


def _check_key(key: bytes) -> None:
    if len(key) not in (16, 24, 32):
        raise ValueError(f"key: must be a 16-, 24- or 32-byte AES key, got {len(key)} bytes")


def _check_blocks(data: bytes, name: str) -> None:
    if not data or len(data) % BLOCK_SIZE:
        raise ValueError(f"{name}: must be a non-empty multiple of 16 bytes, got {len(data)}")


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    """Encrypt whole 16-byte blocks under an AES key, each on its own.

    >>> key = bytes.fromhex("000102030405060708090A0B0C0D0E0F")  # FIPS 197 appendix C.1
    >>> encrypt_ecb(key, bytes.fromhex("00112233445566778899AABBCCDDEEFF")).hex()
    '69c4e0d86a7b0430d8cdb78070b4c55a'
    """
    _check_key(key)
    _check_blocks(data, "data")
    return bytes(ecb.context("AES", key, True).update(data))


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    """Decrypt whole 16-byte blocks under an AES key, each on its own.

    >>> key = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    >>> decrypt_ecb(key, bytes.fromhex("69C4E0D86A7B0430D8CDB78070B4C55A")).hex()
    '00112233445566778899aabbccddeeff'
    """
    _check_key(key)
    _check_blocks(data, "data")
    return bytes(ecb.context("AES", key, False).update(data))


def encrypt_cbc(key: bytes, data: bytes, iv: bytes) -> bytes:
    """Encrypt whole 16-byte blocks in CBC mode; no padding is added.

    >>> encrypt_cbc(bytes(16), bytes(32), bytes(16)).hex()[:32]
    '66e94bd4ef8a2c3b884cfa59ca342b2e'
    """
    _check_key(key)
    _check_blocks(data, "data")
    if len(iv) != BLOCK_SIZE:
        raise ValueError(f"iv: must be 16 bytes, got {len(iv)}")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def decrypt_cbc(key: bytes, data: bytes, iv: bytes) -> bytes:
    """Decrypt whole 16-byte blocks in CBC mode; no padding is removed.

    >>> decrypt_cbc(bytes(16), bytes.fromhex("66E94BD4EF8A2C3B884CFA59CA342B2E"), bytes(16)).hex()
    '00000000000000000000000000000000'
    """
    _check_key(key)
    _check_blocks(data, "data")
    if len(iv) != BLOCK_SIZE:
        raise ValueError(f"iv: must be 16 bytes, got {len(iv)}")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()
