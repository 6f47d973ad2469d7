"""The terminal's EMV configuration, as data: what it is, what it accepts, its limits and keys.

Amounts are in minor units of the terminal's currency. Terminal action codes (TAC) are 5 bytes
laid out as the TVR (:mod:`terminals.emv.tvr`); a TVR bit set in a TAC makes the terminal ask for
that outcome: denial → AAC, online → ARQC, default → the fallback when it cannot go online
(EMV Book 3 10.7). The defaults below are the schemes' published ones for an attended,
online-capable POS; a test or a deployment changes any field with :func:`dataclasses.replace`.

>>> config = TerminalConfig()
>>> config.application(bytes.fromhex("A0000000031010")).brand
'visa'
>>> config.terminal_data()[0x9F1A].hex()
'0250'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cardswitch.emv import AIDS
from terminals.emv.pki import RsaPublic, TestPki

#: Terminal capabilities 9F33 byte 2, the CVMs this terminal can perform (Book 4 A2).
CAPABILITY_PLAINTEXT_PIN = (1, 0x80)
CAPABILITY_ONLINE_PIN = (1, 0x40)
CAPABILITY_SIGNATURE = (1, 0x20)
CAPABILITY_ENCIPHERED_PIN_OFFLINE = (1, 0x10)
CAPABILITY_NO_CVM = (1, 0x08)
#: Terminal capabilities 9F33 byte 3, offline data authentication.
CAPABILITY_SDA = (2, 0x80)
CAPABILITY_DDA = (2, 0x40)
CAPABILITY_CDA = (2, 0x08)

#: Terminal transaction qualifiers 9F66 (Visa qVSDC), (byte index, mask).
TTQ_ONLINE_PIN = (0, 0x04)
TTQ_SIGNATURE = (0, 0x02)
TTQ_ONLINE_CRYPTOGRAM_REQUIRED = (1, 0x80)
TTQ_CVM_REQUIRED = (1, 0x40)


@dataclass(frozen=True)
class ActionCodes:
    """Terminal action codes for one application (Book 3 10.7)."""

    default: bytes
    denial: bytes
    online: bytes

    def __post_init__(self) -> None:
        for name in ("default", "denial", "online"):
            value = getattr(self, name)
            if len(value) != 5:
                raise ValueError(f"TAC {name}: must be 5 bytes like the TVR, got {len(value)}")


#: Visa's published TACs (also used for UnionPay here): online for any ODA failure, expiry,
#: online PIN and every risk management bit; deny a service the card does not allow.
VISA_TACS = ActionCodes(default=bytes.fromhex("DC4000A800"), denial=bytes.fromhex("0010000000"),
                        online=bytes.fromhex("DC4004F800"))
MASTERCARD_TACS = ActionCodes(default=bytes.fromhex("FC50BCA000"),
                              denial=bytes.fromhex("0000000000"),
                              online=bytes.fromhex("FC50BCF800"))


@dataclass(frozen=True)
class ApplicationConfig:
    """One application (AID) the terminal accepts and its parameters."""

    aid: bytes
    brand: str
    #: Application selection indicator: True lets a longer card AID match this one as a prefix.
    partial_selection: bool = True
    #: Terminal application version number 9F09.
    version: bytes = bytes.fromhex("008C")
    tacs: ActionCodes = VISA_TACS
    #: Default DDOL when the card has none (Book 3 6.5.9): the unpredictable number.
    default_ddol: bytes = bytes.fromhex("9F3704")

    def matches(self, card_aid: bytes) -> bool:
        """Whether the card's ADF name selects this application (Book 1 12.3.1)."""
        if card_aid == self.aid:
            return True
        return self.partial_selection and card_aid.startswith(self.aid)


@dataclass(frozen=True)
class RandomSelection:
    """Random transaction selection for online processing (Book 3 10.6.2), percentages 0-99."""

    target_percent: int = 0
    max_target_percent: int = 0
    threshold_minor: int = 0


@dataclass(frozen=True)
class ContactlessLimits:
    """Reader limits (EMV Book A 5.2): at or over the transaction limit the card must be inserted,
    at or over the CVM limit a CVM is required, over the floor limit the reader goes online."""

    transaction_limit_minor: int = 10_000
    cvm_required_limit_minor: int = 5_000
    floor_limit_minor: int = 0


#: Terminal application version numbers 9F09 the schemes publish (VIS 1.4, M/Chip, PBOC 3.0).
SCHEME_VERSIONS = {"visa": bytes.fromhex("008C"), "mastercard": bytes.fromhex("0002"),
                   "unionpay": bytes.fromhex("0030")}


def _default_applications() -> tuple[ApplicationConfig, ...]:
    tacs = {"mastercard": MASTERCARD_TACS}
    return tuple(ApplicationConfig(aid, brand, version=SCHEME_VERSIONS.get(brand, b"\x00\x01"),
                                   tacs=tacs.get(brand, VISA_TACS))
                 for brand, aid in AIDS.items())


@dataclass(frozen=True)
class TerminalConfig:
    """What the terminal is and how it decides (EMV Book 4 Annex A for codes)."""

    #: 9F35: 22 = attended, online with offline capability, merchant-operated; 25 unattended.
    terminal_type: int = 0x22
    #: 9F33: IC, magstripe, manual; plaintext offline PIN, online PIN, signature, no CVM;
    #: SDA and DDA (no CDA: this kernel does not combine DDA with GENERATE AC).
    capabilities: bytes = bytes.fromhex("E0E8C0")
    #: 9F40: goods, services; numeric, command and function keys; print, display; code table 1.
    additional_capabilities: bytes = bytes.fromhex("6000B0A001")
    #: 9F1A and 5F2A as ISO 3166 / ISO 4217 numeric codes; 5F36 the currency exponent.
    country_code: str = "250"
    currency_code: str = "978"
    currency_exponent: int = 2
    merchant_category_code: str = "5411"
    terminal_id: str = "TERM0001"
    ifd_serial: str = "IFD00001"
    merchant_id: str = "MERCHANT0000001"
    applications: tuple[ApplicationConfig, ...] = field(default_factory=_default_applications)
    floor_limit_minor: int = 0
    random_selection: RandomSelection = RandomSelection()
    contactless: ContactlessLimits = ContactlessLimits()
    #: Certification authority public keys by (RID, CA public key index 8F).
    ca_keys: Mapping[tuple[bytes, int], RsaPublic] = field(default_factory=dict)
    unattended: bool = False
    #: 9F66 terminal transaction qualifiers: qVSDC, contact chip, online PIN, signature.
    ttq: bytes = bytes.fromhex("36000000")

    def __post_init__(self) -> None:
        checks = ((self.capabilities, 3, "capabilities 9F33"),
                  (self.additional_capabilities, 5, "additional capabilities 9F40"),
                  (self.ttq, 4, "TTQ 9F66"))
        for value, length, name in checks:
            if len(value) != length:
                raise ValueError(f"{name}: must be {length} bytes, got {len(value)}")
        for code, digits, field_name in ((self.country_code, 3, "country_code"),
                                    (self.currency_code, 3, "currency_code"),
                                    (self.merchant_category_code, 4, "merchant_category_code")):
            if not (code.isascii() and code.isdigit() and len(code) == digits):
                raise ValueError(f"{field_name}: must be {digits} digits, got {code!r}")
        if not 0 <= self.currency_exponent <= 9:
            raise ValueError(f"currency_exponent: must be 0 to 9, got {self.currency_exponent}")

    def application(self, card_aid: bytes) -> ApplicationConfig | None:
        """The terminal application the card's AID selects, exact match first."""
        exact = [a for a in self.applications if a.aid == card_aid]
        if exact:
            return exact[0]
        return next((a for a in self.applications if a.matches(card_aid)), None)

    def supports(self, capability: tuple[int, int]) -> bool:
        """Whether a 9F33 bit (``CAPABILITY_*``) is set."""
        index, mask = capability
        return bool(self.capabilities[index] & mask)

    def terminal_data(self) -> dict[int, bytes]:
        """The terminal's fixed data objects, by tag, as DOLs ask for them."""
        return {
            0x9F35: bytes([self.terminal_type]),
            0x9F33: self.capabilities,
            0x9F40: self.additional_capabilities,
            0x9F1A: bytes.fromhex(self.country_code.rjust(4, "0")),
            0x5F2A: bytes.fromhex(self.currency_code.rjust(4, "0")),
            0x5F36: bytes([self.currency_exponent]),
            0x9F15: bytes.fromhex(self.merchant_category_code),
            0x9F1C: self.terminal_id.encode("ascii"),
            0x9F1E: self.ifd_serial.encode("ascii"),
            0x9F16: self.merchant_id.encode("ascii"),
        }


def ca_keys_from(pki: TestPki, rids: tuple[bytes, ...] | None = None) -> dict[
        tuple[bytes, int], RsaPublic]:
    """The CA public keys of a test PKI, for every scheme RID of :data:`cardswitch.emv.AIDS`."""
    wanted = rids if rids is not None else tuple(dict.fromkeys(aid[:5] for aid in AIDS.values()))
    keys: dict[tuple[bytes, int], RsaPublic] = {}
    for rid in wanted:
        index, key = pki.ca_public(rid)
        keys[(rid, index)] = key
    return keys
