"""What each kind of key is for: the HSM's key-usage policy, kept as data.

Every key rests as a TR-31 key block whose header carries its usage (``P0`` PIN encryption,
``C0`` card verification, ``S0`` signature...), algorithm, mode of use (``B`` both ways, ``G``
generate only, ``V`` verify only, ``X`` derive, ``S`` sign...) and exportability (``E``, ``N``,
``S``). The key *type* (``ZPK``, ``TPK``, ...) is this HSM's name for a usage in a role; it
rides in the proprietary optional block ``01`` because TR-31 has one usage, ``P0``, for both zone
and terminal PIN keys.

:data:`KEY_TYPES` says, per type, its usage, the algorithms and modes it may have and its
defaults. Each command states what it needs with a :class:`Need`; :func:`check` enforces it and
its messages name the field, the key, what the key is, and what the command needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_sim.algorithms import keyblock

TDES = frozenset({"TDES_2KEY", "TDES_3KEY"})
AES = frozenset({"AES_128", "AES_192", "AES_256"})
#: Asymmetric key pairs (:mod:`hsm_sim.algorithms.signing`): the key is PKCS#8 DER, no set length.
ASYMMETRIC = frozenset({"RSA_2048", "ED25519"})

KEY_LENGTHS: dict[str, int] = {
    "TDES_2KEY": 16, "TDES_3KEY": 24, "AES_128": 16, "AES_192": 24, "AES_256": 32,
    "HMAC_SHA256": 32,
}
#: Header algorithm letter of each algorithm; the key's length tells TDES 2-key from 3-key.
ALGORITHM_LETTER = {"TDES_2KEY": "T", "TDES_3KEY": "T", "AES_128": "A", "AES_192": "A",
                    "AES_256": "A", "HMAC_SHA256": "H", "RSA_2048": "R", "ED25519": "E"}
_FROM_LETTER = {("T", 16): "TDES_2KEY", ("T", 24): "TDES_3KEY", ("A", 16): "AES_128",
                ("A", 24): "AES_192", ("A", 32): "AES_256", ("H", 32): "HMAC_SHA256"}
#: The one RSA size and the one curve (E, elliptic curve) this HSM has; parsing the key checks it.
_ASYMMETRIC_FROM_LETTER = {"R": "RSA_2048", "E": "ED25519"}
#: The proprietary optional block that names this HSM's key type.
TYPE_BLOCK = "01"


@dataclass(frozen=True)
class KeyTypeSpec:
    usages: tuple[str, ...]  # the first is the one new keys get
    algorithms: frozenset[str]
    modes: frozenset[str]
    default_mode: str
    default_exportability: str
    description: str

    def usage_for(self, algorithm: str) -> str:
        """The usage a new key of this type gets (a MAC key's depends on its cipher)."""
        if self.usages == ("M3", "M6"):
            return "M6" if algorithm in AES else "M3"
        return self.usages[0]


KEY_TYPES: dict[str, KeyTypeSpec] = {
    "BDK": KeyTypeSpec(("B0",), frozenset({"TDES_2KEY"}) | AES, frozenset("X"), "X", "N",
                       "DUKPT base derivation key"),
    "ZPK": KeyTypeSpec(("P0",), TDES | AES, frozenset("BED"), "B", "E", "zone PIN key"),
    "TPK": KeyTypeSpec(("P0",), TDES | AES, frozenset("BED"), "B", "E", "terminal PIN key"),
    "ZMK": KeyTypeSpec(("K0", "K1"), TDES | AES, frozenset("BED"), "B", "N",
                       "zone master key (key-encrypting key)"),
    "PVK": KeyTypeSpec(("V0", "V1", "V2"), TDES, frozenset("CGV"), "C", "N",
                       "PIN verification key"),
    "CVK": KeyTypeSpec(("C0",), frozenset({"TDES_2KEY"}), frozenset("CGV"), "C", "N",
                       "card verification key"),
    "DEK": KeyTypeSpec(("D0",), frozenset({"AES_256"}), frozenset("BED"), "B", "N",
                       "data encryption key"),
    "HMAC": KeyTypeSpec(("M7",), frozenset({"HMAC_SHA256"}), frozenset("CGV"), "C", "N",
                        "keyed-hash key"),
    # Retail MAC (ISO 9797-1 algorithm 3) is defined for a double-length key: K1 || K2.
    "TAK": KeyTypeSpec(("M3", "M6"), frozenset({"TDES_2KEY"}) | AES, frozenset("CGV"), "C", "E",
                       "MAC key"),
    "IMK_AC": KeyTypeSpec(("E0",), frozenset({"TDES_2KEY"}), frozenset("X"), "X", "N",
                          "EMV issuer master key for application cryptograms"),
    "IMK_SMI": KeyTypeSpec(("E2",), frozenset({"TDES_2KEY"}), frozenset("X"), "X", "N",
                           "EMV issuer master key for secure messaging integrity"),
    "IMK_SMC": KeyTypeSpec(("E1",), frozenset({"TDES_2KEY"}), frozenset("X"), "X", "N",
                           "EMV issuer master key for secure messaging confidentiality"),
    # Made only by GenerateKeyPair: the private key is never imported nor exported.
    "SIGNING": KeyTypeSpec(("S0",), ASYMMETRIC, frozenset("S"), "S", "N",
                           "asymmetric key pair for signatures"),
}
#: The type a key block from elsewhere gets when it has no type block and none is asked for.
TYPE_OF_USAGE = {"B0": "BDK", "P0": "ZPK", "K0": "ZMK", "K1": "ZMK", "V0": "PVK", "V1": "PVK",
                 "V2": "PVK", "C0": "CVK", "D0": "DEK", "M7": "HMAC", "M3": "TAK", "M6": "TAK",
                 "E0": "IMK_AC", "E2": "IMK_SMI", "E1": "IMK_SMC", "S0": "SIGNING"}


class UsageError(Exception):
    """A key used against its usage, mode of use or exportability; the message says which."""


@dataclass(frozen=True)
class Attributes:
    """What a key is, as its key block header says."""

    key_type: str
    algorithm: str
    usage: str
    mode_of_use: str
    exportability: str


#: The ICC master keys a card is personalised with (DeriveIccKeys), by the type of the issuer
#: master key each is derived from. X9.143 has no key usage for card keys, so each keeps its
#: IMK's usage, which names its purpose, and mode X, the only mode X9.143 gives the E usages (the
#: card derives its session keys from it, EMV Book 2 A1.3); exportable (E) because the
#: personaliser passes it on to the card. No :data:`KEY_TYPES` entry has these types, so a card
#: key under a ZMK never imports back as an issuer master key.
ICC_MASTER_KEYS: dict[str, Attributes] = {
    "IMK_AC": Attributes("ICC_AC", "TDES_2KEY", "E0", "X", "E"),
    "IMK_SMI": Attributes("ICC_SMI", "TDES_2KEY", "E2", "X", "E"),
    "IMK_SMC": Attributes("ICC_SMC", "TDES_2KEY", "E1", "X", "E"),
}


@dataclass(frozen=True)
class Need:
    """What a command needs of one key: its type(s), usable modes, and optionally usages."""

    types: tuple[str, ...]
    modes: str
    usages: tuple[str, ...] = ()
    algorithms: frozenset[str] = frozenset()


def new_attributes(key_type: str, algorithm: str, mode_of_use: str = "",
                   exportability: str = "") -> Attributes:
    """Attributes of a new key, defaults filled in; ValueError naming the field if not allowed."""
    spec = KEY_TYPES.get(key_type)
    if spec is None:
        raise ValueError(f"key_type: unknown key type {key_type!r}; one of {', '.join(KEY_TYPES)}")
    if algorithm not in spec.algorithms:
        allowed = ", ".join(sorted(spec.algorithms))
        raise ValueError(f"algorithm: a {key_type} key must be one of {allowed}, not {algorithm}")
    mode = mode_of_use or spec.default_mode
    if mode not in spec.modes:
        raise ValueError(f"mode_of_use: a {key_type} key may have mode "
                         f"{', '.join(sorted(spec.modes))}, not {mode!r}")
    export = exportability or spec.default_exportability
    if export not in keyblock.EXPORTABILITY:
        raise ValueError(f"exportability: must be E, N or S, not {export!r}")
    return Attributes(key_type, algorithm, spec.usage_for(algorithm), mode, export)


def from_header(header: keyblock.Header, key_length: int, key_type: str = "") -> Attributes:
    """The attributes a key block's header gives its key; ValueError when this HSM has no use
    for such a key. ``key_type`` (or the header's type block) settles P0: ZPK or TPK."""
    blocks = dict(header.optional_blocks)
    key_type = key_type or blocks.get(TYPE_BLOCK, "") or TYPE_OF_USAGE.get(header.key_usage, "")
    spec = KEY_TYPES.get(key_type)
    if spec is None:
        raise ValueError(f"key_block: key usage {header.key_usage} "
                         f"({keyblock.KEY_USAGES.get(header.key_usage, 'unknown')}) has no use "
                         "in this HSM")
    if header.key_usage not in spec.usages:
        raise ValueError(f"key_block: usage {header.key_usage} does not fit a {key_type} key "
                         f"({'/'.join(spec.usages)})")
    algorithm = (_FROM_LETTER.get((header.algorithm, key_length))
                 or _ASYMMETRIC_FROM_LETTER.get(header.algorithm))
    if algorithm is None or algorithm not in spec.algorithms:
        raise ValueError(f"key_block: a {key_length}-byte key of algorithm {header.algorithm} "
                         f"cannot be a {key_type} key")
    if header.mode_of_use not in spec.modes:
        raise ValueError(f"key_block: mode of use {header.mode_of_use} does not fit a "
                         f"{key_type} key ({', '.join(sorted(spec.modes))})")
    return Attributes(key_type, algorithm, header.key_usage, header.mode_of_use,
                      header.exportability)


def header(attributes: Attributes, *, version: str = "D",
           blocks: tuple[tuple[str, str], ...] = ()) -> keyblock.Header:
    """The TR-31 header of a key with ``attributes``, with its type block and ``blocks``."""
    return keyblock.Header(
        version, attributes.usage, ALGORITHM_LETTER[attributes.algorithm],
        attributes.mode_of_use, "00", attributes.exportability,
        optional_blocks=((TYPE_BLOCK, attributes.key_type), *blocks))


def check(field: str, shown: str, attributes: Attributes, need: Need, command: str) -> None:
    """Raises :class:`UsageError` unless a key fits ``need`` for ``command``."""
    if attributes.key_type not in need.types:
        wanted = " or ".join(need.types)
        raise UsageError(
            f"{field}: key {shown} is a {attributes.key_type} ({attributes.usage}, "
            f"{keyblock.KEY_USAGES.get(attributes.usage, '')}); {command} needs a {wanted}")
    if need.usages and attributes.usage not in need.usages:
        raise UsageError(f"{field}: key {shown} has usage {attributes.usage}; {command} needs "
                         f"usage {' or '.join(need.usages)}")
    if need.algorithms and attributes.algorithm not in need.algorithms:
        raise UsageError(f"{field}: key {shown} is {attributes.algorithm}; {command} needs "
                         f"{' or '.join(sorted(need.algorithms))}")
    if attributes.mode_of_use not in need.modes:
        raise UsageError(
            f"{field}: key {shown} has mode of use {attributes.mode_of_use} "
            f"({keyblock.MODES_OF_USE.get(attributes.mode_of_use, '')}); {command} needs mode "
            f"{' or '.join(need.modes)}")


def check_exportable(field: str, shown: str, attributes: Attributes) -> None:
    if attributes.exportability not in ("E", "S"):
        raise UsageError(f"{field}: key {shown} is not exportable (exportability "
                         f"{attributes.exportability}); it can never leave this HSM")


# What each command needs of its keys: the key types and the modes of use that allow the
# operation (B both ways, E encrypt/wrap, D decrypt/unwrap, C/G/V generate and verify, X derive,
# S sign).
DERIVE = Need(("BDK",), "X")
PIN_DECRYPT = Need(("ZPK", "TPK"), "BD")
ZPK_ENCRYPT = Need(("ZPK", "TPK"), "BE")
IBM3624_VERIFY = Need(("PVK",), "CV", ("V0", "V1"))
IBM3624_GENERATE = Need(("PVK",), "CG", ("V0", "V1"))
PVV_VERIFY = Need(("PVK",), "CV", ("V0", "V2"))
PVV_GENERATE = Need(("PVK",), "CG", ("V0", "V2"))
CVK_GENERATE = Need(("CVK",), "CG")
CVK_VERIFY = Need(("CVK",), "CV")
HMAC_GENERATE = Need(("HMAC",), "CG")
DEK_ENCRYPT = Need(("DEK",), "BE")
DEK_DECRYPT = Need(("DEK",), "BD")
MAC_GENERATE = Need(("TAK",), "CG")
MAC_VERIFY = Need(("TAK",), "CV")
ARQC = Need(("IMK_AC",), "X")
ICC_AC_DERIVE = Need(("IMK_AC",), "X")
ICC_SMI_DERIVE = Need(("IMK_SMI",), "X")
ICC_SMC_DERIVE = Need(("IMK_SMC",), "X")
SCRIPT_MAC = Need(("IMK_SMI",), "X")
KEK_WRAP = Need(("ZMK",), "BE")
KEK_UNWRAP = Need(("ZMK",), "BD")
SIGN = Need(("SIGNING",), "S")
PUBLIC_KEY = Need(("SIGNING",), "S")  # every signing key has mode S, the only one it may have
