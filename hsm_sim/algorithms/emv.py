"""EMV chip cryptography on the issuer side (EMV 4.3 Book 2): card keys, session keys, ARQC, ARPC.

The issuer holds an issuer master key (IMK) per purpose: AC for application cryptograms, SMI and
SMC for the integrity and confidentiality of issuer scripts. Every key below is a 16-byte
double-length TDES key, and every derived key is returned with odd parity, as an HSM shows it.

1. ICC master key, option A (Annex A1.4.1). Take PAN || PAN sequence number (PSN, tag 5F34;
   "00" when the card has none), keep its rightmost 16 digits (left-pad with zeros if shorter)
   and pack them into 8 bytes Y. The key is TDES_IMK(Y) || TDES_IMK(Y XOR FF..FF).
   Option B (a SHA-1 hash for PANs over 16 digits, Visa CVN 18/22) is not offered here; for PANs
   of 16 digits or fewer it gives the same key as option A.
2. Session key, the common session key derivation (Annex A1.3.1). From an 8-byte
   diversification value R, SK = TDES_MK(R with its third byte set to F0) ||
   TDES_MK(R with its third byte set to 0F). The AC session key uses R = ATC || 00 x 6 (Visa CVN
   18/22, Mastercard CVN 20/21); Mastercard CVN 16/17 use R = ATC || 00 00 || unpredictable
   number; the secure-messaging session keys use R = the ARQC.
3. Application cryptogram (ARQC, TC or AAC; section 8.1): ISO/IEC 9797-1 MAC algorithm 3 (the
   retail MAC) under the AC session key (Visa CVN 10: the ICC master key itself) over the data
   the card's CDOL names, padded by method 1 (Visa CVN 10) or method 2 (EMV's own choice; Visa
   CVN 18/22, Mastercard M/Chip).
4. ARPC, the issuer's answer that the card checks (section 8.2). Method 1: TDES of
   ARQC XOR (ARC || 00 x 6), with the 2-byte authorisation response code (ARC). Method 2: the
   first 4 bytes of MAC algorithm 3 (padding method 2) over ARQC || card status update (CSU,
   4 bytes) || proprietary authentication data (0 to 8 bytes).
5. Issuer script MAC (section 9.2): MAC algorithm 3, padding method 2, under the SMI session key
   over the command header, any transaction data the scheme adds, and the command data.
"""

import hmac
from typing import NamedTuple

from hsm_sim.algorithms import mac, tdes
from hsm_sim.algorithms.bits import xor

EMV_PADDING_METHODS = (1, 2)
ARPC2_LENGTH = 4


class SecureMessagingKeys(NamedTuple):
    """Session keys for a transaction's issuer scripts: MAC (integrity), encipherment."""

    integrity: bytes
    confidentiality: bytes


def _odd_parity(key: bytes) -> bytes:
    return bytes(b ^ (1 - b.bit_count() % 2) for b in key)


def _check_length(value: bytes, name: str, size: int) -> None:
    if len(value) != size:
        raise ValueError(f"{name}: must be {size} bytes, got {len(value)}")


def _check_digits(value: str, name: str, low: int, high: int) -> None:
    if not (low <= len(value) <= high and value.isascii() and value.isdigit()):
        wanted = f"{low}" if low == high else f"{low} to {high}"
        raise ValueError(f"{name}: must be {wanted} digits, got {len(value)} characters")


def _check_padding(padding: int) -> None:
    if padding not in EMV_PADDING_METHODS:
        raise ValueError(f"padding: must be 1 or 2 (ISO/IEC 9797-1 method), got {padding!r}")


def icc_master_key_a(imk: bytes, pan: str, psn: str) -> bytes:
    """Derive a card's 16-byte ICC master key from the issuer master key, EMV option A.

    >>> imk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> icc_master_key_a(imk, "12345678901234567", "01").hex().upper()
    '73AD54688CEF2934B0979857E3C719F1'
    """
    _check_length(imk, "imk", 16)
    _check_digits(pan, "pan", 12, 19)
    _check_digits(psn, "psn", 2, 2)
    y = bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))
    return _odd_parity(tdes.encrypt_ecb(imk, y + xor(y, b"\xff" * 8)))


def derive_session_key(icc_master_key: bytes, r: bytes) -> bytes:
    """EMV common session key derivation from any 8-byte diversification value ``r``.

    >>> mk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> derive_session_key(mk, bytes.fromhex("001C000000000000")).hex().upper()
    'E9FB384AF807B940FEDCEA613461B0C4'
    """
    _check_length(icc_master_key, "icc_master_key", 16)
    _check_length(r, "r", 8)
    left = r[:2] + b"\xf0" + r[3:]
    right = r[:2] + b"\x0f" + r[3:]
    return _odd_parity(tdes.encrypt_ecb(icc_master_key, left + right))


def common_session_key(icc_master_key: bytes, atc: bytes) -> bytes:
    """Derive the AC session key for one transaction from its 2-byte ATC (tag 9F36).

    >>> mk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> common_session_key(mk, bytes.fromhex("001C")).hex().upper()
    'E9FB384AF807B940FEDCEA613461B0C4'
    """
    _check_length(atc, "atc", 2)
    return derive_session_key(icc_master_key, atc + bytes(6))


def ac(session_key: bytes, data: bytes, padding: int = 1) -> bytes:
    """Compute the 8-byte application cryptogram (ARQC, TC or AAC) over the CDOL data.

    ``padding`` is the ISO/IEC 9797-1 method: 1 for Visa CVN 10, 2 for Visa CVN 18/22 and
    Mastercard M/Chip.

    >>> sk = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    >>> data = bytes.fromhex(  # 9F02, 9F03, 9F1A, 95, 5F2A, 9A, 9C, 9F37, 82, 9F36
    ...     "000000002000" "000000000000" "0124" "0000008000" "0124" "110309" "00"
    ...     "3804823E" "5800" "0001"
    ... )
    >>> ac(sk, data, padding=2).hex().upper()
    '3B76CF10FECD8789'
    """
    _check_length(session_key, "session_key", 16)
    _check_padding(padding)
    return mac.retail_mac(session_key, data, padding)


def verify_ac(session_key: bytes, data: bytes, cryptogram: bytes, padding: int = 1) -> bool:
    """Check an 8-byte cryptogram from the card (tag 9F26) in constant time.

    >>> sk = bytes.fromhex("29B33180E567CE38EA4CBC9D753B0E61")
    >>> data = bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")
    >>> verify_ac(sk, data, bytes.fromhex("FA624250B008B59A"), padding=2)
    True
    """
    _check_length(cryptogram, "cryptogram", 8)
    return hmac.compare_digest(ac(session_key, data, padding), cryptogram)


def arpc1(session_key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC method 1: the 8-byte TDES of ARQC XOR (ARC || 00 x 6) under ``session_key``.

    Visa CVN 10 passes the ICC master key itself as ``session_key``.

    >>> sk = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    >>> arqc = bytes.fromhex("1234567890ABCDEF")
    >>> arpc1(sk, arqc, bytes.fromhex("0000")).hex().upper()
    'F5E6F44147E2F1B0'
    """
    _check_length(session_key, "session_key", 16)
    _check_length(arqc, "arqc", 8)
    _check_length(arc, "arc", 2)
    return tdes.encrypt_ecb(session_key, xor(arqc, arc + bytes(6)))


def arpc2(session_key: bytes, arqc: bytes, csu: bytes, proprietary: bytes = b"") -> bytes:
    """ARPC method 2: the first 4 bytes of MAC algorithm 3 over ARQC || CSU || proprietary data.

    >>> sk = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    >>> arqc = bytes.fromhex("1234567890ABCDEF")
    >>> arpc2(sk, arqc, bytes.fromhex("00000000")).hex().upper()
    '9308BEBC'
    """
    _check_length(session_key, "session_key", 16)
    _check_length(arqc, "arqc", 8)
    _check_length(csu, "csu", 4)
    if len(proprietary) > 8:
        raise ValueError(f"proprietary: must be 0 to 8 bytes, got {len(proprietary)}")
    return mac.retail_mac(session_key, arqc + csu + proprietary, 2, ARPC2_LENGTH)


def secure_messaging_keys(
    icc_smi_master_key: bytes, icc_smc_master_key: bytes, arqc: bytes
) -> SecureMessagingKeys:
    """Derive the issuer-script session keys of a transaction, with R = its ARQC.

    >>> smi = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> smc = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
    >>> keys = secure_messaging_keys(smi, smc, bytes.fromhex("1234567890ABCDEF"))
    >>> keys.integrity.hex().upper(), keys.confidentiality.hex().upper()
    ('C26432205E29D0CD4667A219CE9BDA94', '8FE03D32D00E0D7C97B6CE5131234685')
    """
    _check_length(arqc, "arqc", 8)
    return SecureMessagingKeys(
        integrity=derive_session_key(icc_smi_master_key, arqc),
        confidentiality=derive_session_key(icc_smc_master_key, arqc),
    )


def script_mac(smi_session_key: bytes, command: bytes, length: int = 8) -> bytes:
    """MAC an issuer script command (header || transaction data || command data), 4 to 8 bytes.

    >>> sk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> script_mac(sk, bytes.fromhex("8424000008")).hex().upper()
    '0BFFF5DF3FAA24E1'
    """
    _check_length(smi_session_key, "smi_session_key", 16)
    return mac.retail_mac(smi_session_key, command, 2, length)
