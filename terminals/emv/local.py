"""A card and its issuer in one process, for the kernel's tests and ``./run bench emv``.

Cards are personalised from fixed development issuer master keys (ICC master keys by EMV
option A, as the HSM's ``DeriveIccKeys`` makes them), and :class:`LocalIssuer` checks each
ARQC as the issuer's HSM would (IMK -> ICC master key -> session key, data rebuilt from DE 55
by :meth:`cardswitch.emv.CryptogramVersion.ac_data`) and answers with an ARPC the card checks,
with no network in between. Development keys only; the real issuer is ``issuer_sim``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from cardswitch.cards import luhn_check_digit
from cardswitch.emv import version_of
from cardswitch.tlv import encode, flatten
from hsm_sim.algorithms.emv import (
    arpc1,
    arpc2,
    common_session_key,
    icc_master_key_a,
    secure_messaging_keys,
    verify_ac,
)
from terminals.cards.issuance import certify
from terminals.cards.profile import CardProfile, CardSecrets
from terminals.emv import pki
from terminals.emv.online import OnlineRequest, OnlineResponse

IMK_AC = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
IMK_SMI = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
IMK_SMC = bytes.fromhex("89ABCDEF0123456776543210FEDCBA98")
PIN = "1234"
PSN = "01"
#: One Luhn-valid development PAN per brand.
PANS = {brand: prefix + luhn_check_digit(prefix) for brand, prefix in (
    ("visa", "476173900101001"), ("mastercard", "541333008901001"),
    ("unionpay", "621094800000002"))}
#: Builds the scripts 71/72 of an answer: (ATC, ARQC, SMI session key) -> TLV.
ScriptMaker = Callable[[bytes, bytes, bytes], bytes]


def brand_of(pan: str) -> str:
    """The brand of one of :data:`PANS`."""
    return next(brand for brand, known in PANS.items() if known == pan)


def secrets_for(brand: str = "visa", pin: str = PIN, *,
                icc_rsa: pki.RsaPrivate | None = None) -> CardSecrets:
    """The card secrets of ``brand``'s development PAN: ICC keys from the development IMKs."""
    pan = PANS[brand]
    return CardSecrets(icc_mk_ac=icc_master_key_a(IMK_AC, pan, PSN),
                       icc_mk_smi=icc_master_key_a(IMK_SMI, pan, PSN),
                       icc_mk_smc=icc_master_key_a(IMK_SMC, pan, PSN), offline_pin=pin,
                       icc_rsa=icc_rsa)


def personalise(test_pki: pki.TestPki, *, brand: str = "visa", oda: str = "dda",
                contactless: bool = False, today: date | None = None,
                ) -> tuple[CardProfile, CardSecrets]:
    """A card of ``brand`` with its ODA certificates from ``test_pki``, and its secrets."""
    profile = CardProfile(brand, PANS[brand], PSN, "291231", "240101",  # type: ignore[arg-type]
                          "201", "CARDSWITCH/TEST", "0978", "0250", oda=oda,  # type: ignore[arg-type]
                          contactless=contactless)
    profile, icc_rsa = certify(profile, test_pki, today)
    return profile, secrets_for(brand, icc_rsa=icc_rsa)


@dataclass
class LocalIssuer:
    """An :class:`~terminals.emv.online.OnlineHost` that verifies ARQCs and answers ARPCs.

    A wrong ARQC is answered 05; ``wrong_arpc`` spoils the ARPC to test the card's check.
    """

    response_code: str = "00"
    wrong_arpc: bool = False
    scripts: ScriptMaker | None = None
    arqc_valid: list[bool] = field(default_factory=list)
    requests: list[OnlineRequest] = field(default_factory=list)
    reversals: list[str] = field(default_factory=list)

    def authorize(self, request: OnlineRequest) -> OnlineResponse:
        self.requests.append(request)
        values = flatten(request.icc_data)
        version = version_of(brand_of(request.pan), values[0x9F10])
        icc_mk = icc_master_key_a(IMK_AC, request.pan, request.psn or "00")
        key = common_session_key(icc_mk, values[0x9F36]) if version.session_key else icc_mk
        arqc = values[0x9F26]
        valid = verify_ac(key, version.ac_data(values), arqc, version.padding)
        self.arqc_valid.append(valid)
        code = self.response_code if valid else "05"
        if version.arpc_method == 1:
            authentication = arpc1(key, arqc, code.encode()) + code.encode()
        else:
            csu = bytes(4)
            authentication = arpc2(key, arqc, csu) + csu
        if self.wrong_arpc:
            authentication = bytes([authentication[0] ^ 0x01]) + authentication[1:]
        issuer_data = encode(0x91, authentication)
        if self.scripts is not None:
            smi = icc_master_key_a(IMK_SMI, request.pan, request.psn or "00")
            smc = icc_master_key_a(IMK_SMC, request.pan, request.psn or "00")
            integrity = secure_messaging_keys(smi, smc, arqc).integrity
            issuer_data += self.scripts(values[0x9F36], arqc, integrity)
        return OnlineResponse(approved=code == "00", response_code=code,
                              issuer_emv_data=issuer_data, transaction_id="T1")

    def reverse(self, request: OnlineRequest, response: OnlineResponse, reason: str) -> None:
        self.reversals.append(reason)
