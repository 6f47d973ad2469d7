"""What personalisation wrote on a virtual EMV card: its profile, its records, its sealed secrets.

A :class:`CardProfile` holds everything the card shows the terminal (it is on the plastic or in
its readable records anyway) and nothing secret; :class:`CardSecrets` holds the ICC master keys,
the offline PIN and the ICC RSA key, which never leave the card.

The records, AFL, FCI and data object lists the terminal sees are built from the profile by
:mod:`terminals.cards.layout` (re-exported here: :func:`records`, :func:`afl`,
:func:`static_data_to_authenticate`), so a profile is the whole personalisation.

The card file (:func:`write_card`, :func:`read_card`) is one JSON document, mode 0600: the
profile in the clear, the secrets sealed with AES-256-GCM under
``HMAC-SHA256(kek, "cardswitch.card.secrets.v1")`` with the profile's canonical JSON as
associated data, so a profile cannot be paired with another card's secrets.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardswitch import emv, tlv
from cardswitch.cards import mask_pan
from terminals.cards.layout import (
    CDOL1,
    CDOL2,
    CDOL2_MASTERCARD,
    CERTIFICATE_TAGS,
    PDOL_CONTACTLESS,
    afl,
    directory_entry,
    dol_bytes,
    fci,
    records,
    static_data_to_authenticate,
    track2,
)
from terminals.emv.pki import RsaPrivate, RsaPublic
from terminals.pcsc import Interface
from terminals.pinpad import write_private_file

__all__ = [
    "CardProfile", "CardSecrets", "afl", "default_aip", "directory_entry", "dol_bytes", "fci",
    "read_card", "records", "static_data_to_authenticate", "track2", "write_card",
]

Brand = Literal["visa", "mastercard", "unionpay"]
Oda = Literal["none", "sda", "dda"]

FILE_FORMAT = "cardswitch.card.v1"
SECRETS_KEY_LABEL = b"cardswitch.card.secrets.v1"
NONCE_LENGTH = 12
KEK_LENGTHS = (16, 24, 32)

DEFAULT_CVN: dict[str, int] = {"visa": 0x0A, "mastercard": 0x10, "unionpay": 0x01}
DEFAULT_LABEL: dict[str, str] = {"visa": "VISA", "mastercard": "MASTERCARD",
                                 "unionpay": "UNIONPAY"}
#: Issuer action codes (default, denial, online), the usual VSDC values.
IAC_DEFAULT = bytes.fromhex("DC4000A800")
IAC_DENIAL = bytes.fromhex("0010000000")
IAC_ONLINE = bytes.fromhex("DC4004F800")
#: CVM list 8E (Book 3 10.5, Annex C3), amounts X = Y = 0, each rule "if the terminal supports
#: the CVM" and "apply the next rule if this one fails": plaintext PIN verified by the ICC,
#: enciphered PIN verified online, signature, no CVM required.
DEFAULT_CVM_LIST = bytes.fromhex("00000000" "00000000" "4103" "4203" "5E03" "1F03")

# Application interchange profile 82, byte 1 (Book 3 Annex C1).
AIP_SDA, AIP_DDA, AIP_CARDHOLDER_VERIFICATION = 0x40, 0x20, 0x10
AIP_TERMINAL_RISK_MANAGEMENT, AIP_ISSUER_AUTHENTICATION = 0x08, 0x04

_DIGITS = re.compile(r"[0-9]+")


def _digits(value: str, name: str, low: int, high: int) -> None:
    if not (low <= len(value) <= high and _DIGITS.fullmatch(value)):
        wanted = str(low) if low == high else f"{low} to {high}"
        raise ValueError(f"{name}: must be {wanted} digits, got {len(value)} characters")



@dataclass(frozen=True)
class CardProfile:
    """The data personalisation wrote on one EMV card; JSON-serialisable, no secrets.

    Fields left at their empty default (``cvn`` None, bytes ``b""``, label ``""``) are filled
    with the brand's default when the profile is built, so a stored profile is explicit.
    """

    brand: Brand
    pan: str
    psn: str
    expiry: str  # 5F24, YYMMDD
    effective: str  # 5F25, YYMMDD
    service_code: str
    cardholder_name: str
    currency_numeric: str  # 9F42, ISO 4217 numeric, 4 digits ("0840")
    country_numeric: str  # 5F28, ISO 3166 numeric, 4 digits
    cvn: int | None = None
    dki: int = 1
    pin_try_limit: int = 3
    application_label: str = ""
    priority: int = 1
    cvm_list: bytes = b""
    iac_default: bytes = b""
    iac_denial: bytes = b""
    iac_online: bytes = b""
    aip: bytes = b""
    oda: Oda = "none"
    certificates: dict[str, bytes] = field(default_factory=dict)
    contactless: bool = False
    #: Track 2 discretionary data after the service code (PVKI, PVV, (i)CVV), digits.
    track2_discretionary: str = ""

    def __post_init__(self) -> None:
        self._check()
        defaults: dict[str, Any] = {
            "cvn": DEFAULT_CVN[self.brand] if self.cvn is None else self.cvn,
            "application_label": self.application_label or DEFAULT_LABEL[self.brand],
            "cvm_list": self.cvm_list or DEFAULT_CVM_LIST,
            "iac_default": self.iac_default or IAC_DEFAULT,
            "iac_denial": self.iac_denial or IAC_DENIAL,
            "iac_online": self.iac_online or IAC_ONLINE,
            "aip": self.aip or default_aip(self.brand, self.oda),
        }
        for name, value in defaults.items():
            object.__setattr__(self, name, value)
        self._check_resolved()

    def _check(self) -> None:
        if self.brand not in DEFAULT_CVN:
            raise ValueError(f"brand: must be one of {', '.join(DEFAULT_CVN)}, got {self.brand!r}")
        _digits(self.pan, "pan", 12, 19)
        _digits(self.psn, "psn", 2, 2)
        for name in ("expiry", "effective"):
            _digits(getattr(self, name), name, 6, 6)
        _digits(self.service_code, "service_code", 3, 3)
        _digits(self.currency_numeric, "currency_numeric", 4, 4)
        _digits(self.country_numeric, "country_numeric", 4, 4)
        if self.track2_discretionary:
            _digits(self.track2_discretionary, "track2_discretionary", 1, 37 - len(self.pan) - 8)
        holder = self.cardholder_name.encode("ascii", "replace")
        if not 2 <= len(holder) <= 26:
            raise ValueError(f"cardholder_name: must be 2 to 26 characters, got {len(holder)}")
        if self.oda not in ("none", "sda", "dda"):
            raise ValueError(f"oda: must be none, sda or dda, got {self.oda!r}")
        if not 0 <= self.dki <= 0xFF:
            raise ValueError(f"dki: must be 0 to 255, got {self.dki}")
        if not 1 <= self.pin_try_limit <= 15:
            raise ValueError(f"pin_try_limit: must be 1 to 15, got {self.pin_try_limit}")
        if not 1 <= self.priority <= 15:
            raise ValueError(f"priority: must be 1 to 15, got {self.priority}")
        known = {tlv.tag_hex(tag) for tag in CERTIFICATE_TAGS}
        for tag in self.certificates:
            if tag not in known:
                raise ValueError(f"certificates: tag {tag!r} is not one of {sorted(known)}")

    def _check_resolved(self) -> None:
        emv.version(self.brand, self.cvn_value)  # raises naming the unsupported CVN
        for name in ("iac_default", "iac_denial", "iac_online"):
            if len(getattr(self, name)) != 5:
                raise ValueError(f"{name}: must be 5 bytes, got {len(getattr(self, name))}")
        if len(self.aip) != 2:
            raise ValueError(f"aip: must be 2 bytes, got {len(self.aip)}")
        if len(self.cvm_list) < 10 or len(self.cvm_list) % 2:
            raise ValueError(f"cvm_list: must be X, Y and whole 2-byte rules, got "
                             f"{len(self.cvm_list)} bytes")
        label = self.application_label.encode("ascii", "replace")
        if not 1 <= len(label) <= 16:
            raise ValueError(f"application_label: must be 1 to 16 characters, got {len(label)}")

    def __repr__(self) -> str:  # never print a clear PAN by accident
        return (f"CardProfile(brand={self.brand!r}, pan={mask_pan(self.pan)!r}, "
                f"cvn={self.cvn_value:02X}, oda={self.oda!r}, contactless={self.contactless})")

    @property
    def cvn_value(self) -> int:
        """The cryptogram version number (always set once the profile is built)."""
        assert self.cvn is not None
        return self.cvn

    @property
    def version(self) -> emv.CryptogramVersion:
        """The scheme's rules for this card's cryptogram version."""
        return emv.version(self.brand, self.cvn_value)

    @property
    def aid(self) -> bytes:
        return emv.AIDS[self.brand]

    @property
    def cdol1(self) -> tuple[tuple[int, int], ...]:
        return CDOL1

    @property
    def cdol2(self) -> tuple[tuple[int, int], ...]:
        return CDOL2_MASTERCARD if self.brand == "mastercard" else CDOL2

    def pdol(self, interface: Interface) -> tuple[tuple[int, int], ...]:
        """The PDOL 9F38 this card's FCI names on ``interface`` (none on contact)."""
        return PDOL_CONTACTLESS if interface == "contactless" else ()

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready values, bytes as upper-case hex."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if isinstance(value, bytes):
                out[name] = value.hex().upper()
            elif name == "certificates":
                out[name] = {tag: cert.hex().upper() for tag, cert in sorted(value.items())}
            else:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CardProfile:
        """The inverse of :meth:`to_dict`; ``ValueError`` names an unknown or bad field."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"profile: unknown fields {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            try:
                if name == "certificates":
                    value = {tag: bytes.fromhex(cert) for tag, cert in value.items()}
                elif known[name].type == "bytes":
                    value = bytes.fromhex(value)
            except (TypeError, ValueError, AttributeError):
                raise ValueError(f"profile: {name} is not hex") from None
            values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:  # a required field is missing
            raise ValueError(f"profile: {exc}") from None

    def canonical_json(self) -> bytes:
        """The profile's JSON with sorted keys and no spaces: the secrets' associated data."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def default_aip(brand: str, oda: str) -> bytes:
    """AIP 82 for a contact card: ODA bits by ``oda``, cardholder verification, terminal risk
    management, and issuer authentication (EXTERNAL AUTHENTICATE) except for Mastercard, whose
    cards take the ARPC in CDOL2.

    >>> default_aip("visa", "dda").hex().upper(), default_aip("mastercard", "sda").hex().upper()
    ('3C00', '5800')
    """
    first = AIP_CARDHOLDER_VERIFICATION | AIP_TERMINAL_RISK_MANAGEMENT
    if brand != "mastercard":
        first |= AIP_ISSUER_AUTHENTICATION
    first |= {"none": 0, "sda": AIP_SDA, "dda": AIP_DDA}[oda]
    return bytes([first, 0])


@dataclass(frozen=True)
class CardSecrets:
    """What the card keeps and never shows: ICC master keys, offline PIN, ICC RSA key."""

    icc_mk_ac: bytes
    icc_mk_smi: bytes
    icc_mk_smc: bytes
    offline_pin: str
    icc_rsa: RsaPrivate | None = None

    def __post_init__(self) -> None:
        for name in ("icc_mk_ac", "icc_mk_smi", "icc_mk_smc"):
            if len(getattr(self, name)) != 16:
                raise ValueError(f"{name}: must be 16 bytes, got {len(getattr(self, name))}")
        _digits(self.offline_pin, "offline_pin", 4, 12)

    def __repr__(self) -> str:  # never print a key or the PIN by accident
        return f"CardSecrets(icc_rsa={'yes' if self.icc_rsa else 'no'})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "icc_mk_ac": self.icc_mk_ac.hex(), "icc_mk_smi": self.icc_mk_smi.hex(),
            "icc_mk_smc": self.icc_mk_smc.hex(), "offline_pin": self.offline_pin,
            "icc_rsa": None if self.icc_rsa is None else _rsa_to_dict(self.icc_rsa),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CardSecrets:
        rsa = data.get("icc_rsa")
        return cls(
            icc_mk_ac=bytes.fromhex(data["icc_mk_ac"]),
            icc_mk_smi=bytes.fromhex(data["icc_mk_smi"]),
            icc_mk_smc=bytes.fromhex(data["icc_mk_smc"]),
            offline_pin=data["offline_pin"],
            icc_rsa=None if rsa is None else _rsa_from_dict(rsa),
        )


def _rsa_to_dict(key: RsaPrivate) -> dict[str, str]:
    return {"modulus": key.public.modulus.hex().upper(),
            "exponent": key.public.exponent.hex().upper(), "d": f"{key.d:X}"}


def _rsa_from_dict(data: dict[str, str]) -> RsaPrivate:
    public = RsaPublic(bytes.fromhex(data["modulus"]), bytes.fromhex(data["exponent"]))
    return RsaPrivate(public, int(data["d"], 16))


# ---- the card file ----------------------------------------------------------------------------


def _secrets_key(kek: bytes) -> AESGCM:
    if len(kek) not in KEK_LENGTHS:
        raise ValueError(f"kek: must be 16, 24 or 32 bytes, got {len(kek)}")
    return AESGCM(hmac.new(kek, SECRETS_KEY_LABEL, sha256).digest())


def write_card(path: Path, profile: CardProfile, secrets: CardSecrets, kek: bytes) -> None:
    """Write one card file atomically, mode 0600: profile in the clear, secrets sealed."""
    nonce = os.urandom(NONCE_LENGTH)
    sealed = _secrets_key(kek).encrypt(
        nonce, json.dumps(secrets.to_dict()).encode(), profile.canonical_json())
    document = {"format": FILE_FORMAT, "profile": profile.to_dict(),
                "secrets": (nonce + sealed).hex().upper()}
    write_private_file(path, (json.dumps(document, indent=2) + "\n").encode())


def read_card(path: Path, kek: bytes) -> tuple[CardProfile, CardSecrets]:
    """Read a card file; ``ValueError`` naming the file when it is not one or the KEK is wrong."""
    key = _secrets_key(kek)
    try:
        document = json.loads(path.read_bytes())
        if document.get("format") != FILE_FORMAT:
            raise ValueError(f"format is {document.get('format')!r}, not {FILE_FORMAT}")
        profile = CardProfile.from_dict(document["profile"])
        blob = bytes.fromhex(document["secrets"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"card file {path}: not a card file ({_describe(exc)})") from None
    try:
        clear = key.decrypt(blob[:NONCE_LENGTH], blob[NONCE_LENGTH:], profile.canonical_json())
    except (InvalidTag, ValueError):
        raise ValueError(f"card file {path}: secrets do not open under this KEK") from None
    return profile, CardSecrets.from_dict(json.loads(clear))


def _describe(exc: Exception) -> str:
    """An exception's text for an error message; it names fields, never echoes card data."""
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
