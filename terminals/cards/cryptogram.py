"""The card's cryptography: card verification results, application cryptograms, ARPC checks.

Card verification results (CVR) as these cards write them into 9F10, VIS-style, three bytes
(Visa, UnionPay); Mastercard's six-byte CVR is the same three bytes then ``00 00 00``:

====  ======  ==============================================================================
byte  bits    meaning
====  ======  ==============================================================================
1     8-7     AC returned in the second GENERATE AC: 00 AAC, 01 TC, 10 not requested
1     6-5     AC returned in the first GENERATE AC (or contactless GPO): 00 AAC, 01 TC,
              10 ARQC
1     4       issuer authentication performed and failed (this transaction)
1     3       offline PIN verification performed
1     2       offline PIN verification failed
1     1       unable to go online (ARC Z3 or Y3 in the second GENERATE AC)
2     8       last online transaction not completed (no second GENERATE AC after its ARQC)
2     7       PIN try limit exceeded (PIN try counter 0)
2     4       issuer authentication failed on the last online transaction
3     8-5     issuer script commands received in the last transaction (0 to 15)
3     4       issuer script processing failed in the last transaction
====  ======  ==============================================================================

Every other bit is 0. "Last transaction" bits describe the one before in the first GENERATE
AC; in the second, the script bits count this transaction's scripts so far.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from cardswitch import emv as scheme
from hsm_sim.algorithms import emv

_FIRST_AC_BITS = {scheme.AAC: 0x00, scheme.TC: 0x10, scheme.ARQC: 0x20}
_SECOND_AC_BITS = {scheme.AAC: 0x00, scheme.TC: 0x40, None: 0x80}
MAX_SCRIPT_COUNT = 15


@dataclass(frozen=True)
class Cvr:
    """Card verification results of one cryptogram (layout in the module docstring)."""

    first_ac: int
    second_ac: int | None = None
    issuer_auth_failed: bool = False
    pin_performed: bool = False
    pin_failed: bool = False
    unable_to_go_online: bool = False
    last_online_not_completed: bool = False
    pin_try_limit_exceeded: bool = False
    last_issuer_auth_failed: bool = False
    script_count: int = 0
    script_failed: bool = False

    def encode(self, length: int) -> bytes:
        """The CVR as ``length`` bytes (3, or 6 for Mastercard).

        >>> Cvr(scheme.ARQC, pin_performed=True, script_count=2).encode(3).hex().upper()
        'A40020'
        """
        first = (_SECOND_AC_BITS[self.second_ac] | _FIRST_AC_BITS[self.first_ac]
                 | 0x08 * self.issuer_auth_failed | 0x04 * self.pin_performed
                 | 0x02 * self.pin_failed | 0x01 * self.unable_to_go_online)
        second = (0x80 * self.last_online_not_completed | 0x40 * self.pin_try_limit_exceeded
                  | 0x08 * self.last_issuer_auth_failed)
        third = min(self.script_count, MAX_SCRIPT_COUNT) << 4 | 0x08 * self.script_failed
        return bytes([first, second, third]) + bytes(length - 3)


def cvr_length(version: scheme.CryptogramVersion) -> int:
    return 6 if version.brand == "mastercard" else 3


def ac_key(version: scheme.CryptogramVersion, icc_mk_ac: bytes, atc: bytes) -> bytes:
    """The key this version MACs with: the ICC master key itself (Visa CVN 10, UnionPay 01) or
    the common session key of the ATC. The ARPC is checked under the same key."""
    return emv.common_session_key(icc_mk_ac, atc) if version.session_key else icc_mk_ac


def application_cryptogram(
    version: scheme.CryptogramVersion, key: bytes, terminal_values: Mapping[int, bytes],
    aip: bytes, atc: bytes, iad: bytes,
) -> bytes:
    """The 8-byte AC over the scheme's AC data: terminal values, AIP 82, ATC 9F36 and 9F10."""
    values = {**terminal_values, 0x82: aip, 0x9F36: atc, 0x9F10: iad}
    return emv.ac(key, version.ac_data(values), padding=version.padding)


def arpc_matches(version: scheme.CryptogramVersion, key: bytes, arqc: bytes,
                 issuer_auth_data: bytes) -> bool:
    """Whether the issuer authentication data 91 holds the right ARPC for ``arqc``.

    Method 1: 91 is ARPC (8) || ARC (2). Method 2: ARPC (4) || CSU (4) || proprietary (0-8).
    A 91 of the wrong length for the method is simply wrong.
    """
    if version.arpc_method == 1:
        if len(issuer_auth_data) != 10:
            return False
        expected = emv.arpc1(key, arqc, issuer_auth_data[8:])
        return hmac.compare_digest(expected, issuer_auth_data[:8])
    if not 8 <= len(issuer_auth_data) <= 16:
        return False
    expected = emv.arpc2(key, arqc, issuer_auth_data[4:8], issuer_auth_data[8:])
    return hmac.compare_digest(expected, issuer_auth_data[:4])
