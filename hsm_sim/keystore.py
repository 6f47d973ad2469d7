"""The HSM key store: keys at rest in table ``hsm_keys`` as key blocks, in clear only in memory.

Each row holds the key as an ANSI X9.143 (TR-31) version D key block under the LMK, the LMK
being the key block protection key. The block's header carries the key's usage, algorithm,
mode of use and exportability, its type (proprietary block ``01``) and its label (``LB``), all
under the block's MAC: editing a row's columns (turning a BDK into a PVK, say) is caught because
they no longer match the header, and editing the header fails the MAC.

Key types and algorithms are spelled as in the proto enums without their prefix (``ZPK``,
``TDES_2KEY``); :mod:`hsm_sim.usage` says what each type may be and do. A key reference
(``key_ref``) is a key id, a label, or a key block under the LMK given by value (as a payShield
host keeps its keys); labels may not look like key ids and are too short to be key blocks.

A signing key pair (type ``SIGNING``, ``RSA_2048`` or ``ED25519``) rests the same way: its key
block holds the private key as PKCS#8 DER (usage ``S0``, algorithm ``R`` or ``E``, mode ``S``),
and its check value comes from the public key (:mod:`hsm_sim.algorithms.signing`). Its parsed
private key is kept with the cached :class:`Key` (:attr:`Key.signing_key`).

Rows written before key blocks (``wrapped_key``: AES-256-GCM under the LMK) are rewritten as key
blocks the first time the store starts with the LMK.

Methods that touch the database are blocking; async callers run them in a thread. Keys never
change once stored, so the in-memory cache of unwrapped keys needs no invalidation.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cardswitch.db import session_factory
from hsm_sim import lmk, usage
from hsm_sim.algorithms import kcv, keyblock, signing
from hsm_sim.algorithms.bits import xor_all
from hsm_sim.usage import KEY_LENGTHS, Attributes

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


class HsmKey(Base):
    """One stored key; ``key_block`` is the TR-31 version D block under the LMK. The other
    columns repeat the header for listing and are checked against it on every load."""

    __tablename__ = "hsm_keys"
    __table_args__ = (UniqueConstraint("label", name="uq_hsm_keys_label"),)

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    key_type: Mapped[str] = mapped_column(String(16))
    algorithm: Mapped[str] = mapped_column(String(16))
    #: Before key blocks: nonce || AES-256-GCM(LMK, key) || tag; None once rewritten.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    kcv: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    exportable: Mapped[bool] = mapped_column(Boolean, default=False)
    key_block: Mapped[str | None] = mapped_column(Text, nullable=True)
    usage: Mapped[str] = mapped_column(String(2), default="")
    mode_of_use: Mapped[str] = mapped_column(String(1), default="")
    exportability: Mapped[str] = mapped_column(String(1), default="")


#: Which algorithms each key type may have (the spec is :data:`usage.KEY_TYPES`).
ALLOWED_ALGORITHMS: dict[str, frozenset[str]] = {
    name: spec.algorithms for name, spec in usage.KEY_TYPES.items()}
#: Key blocks given by value that this process has unwrapped, most recent last.
BY_VALUE_CACHE = 4096

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")  # fullmatch: no trailing newline
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class LabelTaken(Exception):
    """Another key already has this label."""


class KeyIntegrityError(Exception):
    """A stored key failed to unwrap or to match its check value: the row was altered or the
    LMK is not the one it was stored under. The message names the key, never its value."""


@dataclass(frozen=True)
class KeyInfo:
    """What anyone may know about a key. A key given by value has no id or label (``stored``
    is False)."""

    key_id: str
    label: str
    key_type: str
    algorithm: str
    kcv: str
    created_at: datetime
    usage: str
    mode_of_use: str
    exportability: str
    stored: bool = True

    @property
    def attributes(self) -> Attributes:
        return Attributes(self.key_type, self.algorithm, self.usage, self.mode_of_use,
                          self.exportability)

    @property
    def name(self) -> str:
        """How messages name the key: its label, or its check value for a key given by value."""
        return repr(self.label) if self.label else f"with KCV {self.kcv}"


@dataclass(frozen=True)
class Key(KeyInfo):
    """A key with its clear value; ``clear`` is kept out of ``repr`` so it never reaches a log."""

    clear: bytes = field(repr=False, default=b"")

    @cached_property
    def signing_key(self) -> signing.PrivateKey:
        """A SIGNING key's private key, parsed from ``clear`` (PKCS#8 DER) on first use and kept
        with this key, which the store caches: later signatures skip the parse."""
        return signing.load(self.clear, self.algorithm)


def looks_like_key_block(key_ref: str) -> bool:
    """A reference too long for a label or id, in a key block's shape, is a key given by value."""
    return len(key_ref) > 64 and key_ref[0] in "ABCD" and key_ref[1:5].isdigit()


def label_problem(label: str) -> str | None:
    """What is wrong with a label (naming no key material), or None."""
    if not _LABEL.fullmatch(label):
        return (
            "must be 1 to 64 characters: letters, digits and . _ : / -, "
            "starting with a letter or digit"
        )
    if _UUID.fullmatch(label):
        return "must not look like a key id (a UUID)"
    return None


def _odd_parity(key: bytes) -> bytes:
    """Sets each byte's low bit so the byte has an odd number of one-bits (DES key parity)."""
    return bytes((b & 0xFE) | ((b >> 1).bit_count() + 1) % 2 for b in key)


def random_key(algorithm: str) -> bytes:
    """A fresh random key of the algorithm's length; TDES keys get odd parity."""
    clear = secrets.token_bytes(KEY_LENGTHS[algorithm])
    return _odd_parity(clear) if algorithm.startswith("TDES") else clear


def combine_components(components: list[bytes]) -> bytes:
    """The XOR of equal-length key components."""
    return xor_all(components)


def check_value(clear: bytes, algorithm: str) -> str:
    """The key check value, 6 hex digits upper case.

    TDES: the key over a zero block; AES: CMAC of a zero block (both :mod:`kcv`). HMAC keys have
    no standard KCV; here it is the first 3 bytes of HMAC-SHA256(key, 16 zero bytes). A signing
    key pair (``clear`` is its PKCS#8 private key): SHA-256 of its public key
    (:func:`signing.check_value`); ValueError if ``clear`` is not such a key.
    """
    if algorithm in usage.ASYMMETRIC:
        return signing.check_value(signing.load(clear, algorithm))
    if algorithm.startswith("TDES"):
        return kcv.kcv(clear).hex().upper()
    if algorithm.startswith("AES"):
        return kcv.kcv(clear, algorithm="aes").hex().upper()
    return hmac.new(clear, bytes(16), hashlib.sha256).digest()[:3].hex().upper()


def legacy_associated_data(
    key_id: str, label: str, key_type: str, algorithm: str, exportable: bool
) -> bytes:
    """What a pre-key-block wrapped key was bound to (labels cannot contain ``|``)."""
    return f"{key_id}|{label}|{key_type}|{algorithm}|{int(exportable)}".encode()


def _timestamp(moment: datetime) -> str:
    """X9.143 optional block TS: UTC as YYYYMMDDhhmmssZ."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _info(row: HsmKey) -> KeyInfo:
    return KeyInfo(row.key_id, row.label, row.key_type, row.algorithm, row.kcv,
                   _utc(row.created_at), row.usage, row.mode_of_use, row.exportability)


class KeyStore:
    """Stores keys as key blocks under ``lmk_key`` in ``engine``'s ``hsm_keys`` table."""

    def __init__(self, engine: Engine, lmk_key: bytes) -> None:
        self._sessions = session_factory(engine)
        self._lmk = lmk_key
        self._cache: dict[str, Key] = {}
        self._by_value: OrderedDict[str, Key] = OrderedDict()

    def cached(self, key_ref: str) -> Key | None:
        """The unwrapped key if this process has already loaded it (no I/O)."""
        key = self._cache.get(key_ref)
        if key is None and looks_like_key_block(key_ref):
            key = self.from_lmk_block(key_ref)
        return key

    def new_key(self, attributes: Attributes, clear: bytes, label: str = "") -> Key:
        """A key object (not stored): id and time assigned, check value computed."""
        length = KEY_LENGTHS.get(attributes.algorithm)
        if length is not None and len(clear) != length:
            raise ValueError(f"key: {attributes.algorithm} needs {length} bytes, "
                             f"got {len(clear)}")
        return Key(str(uuid.uuid4()) if label else "", label, attributes.key_type,
                   attributes.algorithm, check_value(clear, attributes.algorithm),
                   datetime.now(UTC), attributes.usage, attributes.mode_of_use,
                   attributes.exportability, bool(label), clear)

    def add(self, label: str, key_type: str, algorithm: str, clear: bytes, *,
            mode_of_use: str = "", exportability: str = "") -> Key:
        """Stores a new key as a key block (blocking). :class:`LabelTaken` if the label is used."""
        attributes = usage.new_attributes(key_type, algorithm, mode_of_use, exportability)
        return self.store(self.new_key(attributes, clear, label))

    def store(self, key: Key) -> Key:
        """Writes ``key`` (which has a label) as a row (blocking)."""
        row = HsmKey(key_id=key.key_id, label=key.label, key_type=key.key_type,
                     algorithm=key.algorithm, wrapped_key=None, kcv=key.kcv,
                     created_at=key.created_at, exportable=key.exportability != "N",
                     key_block=self.lmk_block(key), usage=key.usage,
                     mode_of_use=key.mode_of_use, exportability=key.exportability)
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise LabelTaken(f"label: a key labelled {key.label!r} already exists") from None
        self._remember(key)
        log.info("stored %s %s key %s labelled %r (KCV %s, usage %s, mode %s, export %s)",
                 key.key_type, key.algorithm, key.key_id, key.label, key.kcv, key.usage,
                 key.mode_of_use, key.exportability)
        return key

    def lmk_block(self, key: Key) -> str:
        """``key`` as a TR-31 version D block under the LMK, its label and time bound in."""
        blocks: tuple[tuple[str, str], ...] = (("TS", _timestamp(key.created_at)),)
        if key.label:
            blocks = (("LB", key.label), *blocks)
        return keyblock.wrap(self._lmk, usage.header(key.attributes, blocks=blocks), key.clear)

    def from_lmk_block(self, block: str) -> Key:
        """The key a block under the LMK holds (a key given by value); KeyIntegrityError if it
        does not verify under this LMK, ValueError if this HSM has no use for it."""
        key = self._by_value.get(block)
        if key is not None:
            self._by_value.move_to_end(block)
            return key
        try:
            header, clear = keyblock.unwrap(self._lmk, block)
        except ValueError as exc:
            raise KeyIntegrityError(f"key block does not verify under the LMK: {exc}") from None
        key = self._key_from(header, clear)
        self._by_value[block] = key
        if len(self._by_value) > BY_VALUE_CACHE:
            self._by_value.popitem(last=False)
        return key

    @staticmethod
    def _key_from(header: keyblock.Header, clear: bytes, *, label: str = "", key_id: str = "",
                  key_type: str = "") -> Key:
        attributes = usage.from_header(header, len(clear), key_type)
        blocks = dict(header.optional_blocks)
        created = datetime.now(UTC)
        if "TS" in blocks:
            try:
                created = datetime.strptime(blocks["TS"], "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
            except ValueError:
                pass
        return Key(key_id, label or blocks.get("LB", ""), attributes.key_type,
                   attributes.algorithm, check_value(clear, attributes.algorithm), created,
                   attributes.usage, attributes.mode_of_use, attributes.exportability,
                   bool(key_id), clear)

    def import_block(self, kek: Key, block: str, label: str, key_type: str = "") -> Key:
        """A key received as a TR-31 block under ``kek`` (ValueError naming key_block if it does
        not verify or fit), stored under ``label`` (blocking)."""
        try:
            header, clear = keyblock.unwrap(kek.clear, block)
        except ValueError as exc:
            raise ValueError(f"key_block: does not unwrap under the key-encrypting key: "
                             f"{exc}") from None
        if usage.from_header(header, len(clear), key_type).algorithm in usage.ASYMMETRIC:
            raise ValueError("key_block: a signing key pair is made inside this HSM "
                             "(GenerateKeyPair), never imported")
        received = self._key_from(header, clear, key_type=key_type)
        attributes = received.attributes
        return self.store(self.new_key(attributes, clear, label))

    @staticmethod
    def export_block(key: Key, zmk: Key) -> str:
        """``key`` as a TR-31 block under ``zmk``: version D under an AES ZMK, B under TDES."""
        version = "D" if zmk.algorithm in usage.AES else "B"
        return keyblock.wrap(zmk.clear, usage.header(key.attributes, version=version), key.clear)

    def load(self, key_ref: str) -> Key | None:
        """The key named by id, label or key block, unwrapped and cached (blocking); None if
        unknown."""
        key = self.cached(key_ref)
        if key is not None:
            return key
        with self._sessions() as session:
            row = session.scalars(
                select(HsmKey).where(or_(HsmKey.key_id == key_ref, HsmKey.label == key_ref))
            ).first()
            if row is None:
                return None
            key = self._unwrap(row, session)
            session.commit()
        self._remember(key)
        return key

    def list_keys(self, key_type: str | None = None) -> list[KeyInfo]:
        """Every stored key's attributes, by label (blocking)."""
        query = select(HsmKey).order_by(HsmKey.label)
        if key_type is not None:
            query = query.where(HsmKey.key_type == key_type)
        with self._sessions() as session:
            return [_info(row) for row in session.scalars(query)]

    def warm(self) -> tuple[int, list[str]]:
        """Unwraps every stored key into memory (rewriting pre-key-block rows as key blocks);
        returns how many loaded and the ids that failed."""
        failed: list[str] = []
        with self._sessions() as session:
            rows = list(session.scalars(select(HsmKey)))
            for row in rows:
                try:
                    self._remember(self._unwrap(row, session))
                except KeyIntegrityError as exc:
                    log.error("%s", exc)
                    failed.append(row.key_id)
            session.commit()
        return len(rows) - len(failed), failed

    def _unwrap(self, row: HsmKey, session: Any) -> Key:
        if row.key_block is None:
            return self._upgrade(row)
        try:
            header, clear = keyblock.unwrap(self._lmk, row.key_block)
            key = self._key_from(header, clear, label=row.label, key_id=row.key_id)
        except ValueError:
            raise KeyIntegrityError(
                f"key {row.key_id} ({row.label!r}) does not unwrap under the LMK: its key block "
                "was altered or it was stored under another LMK") from None
        label = dict(header.optional_blocks).get("LB", "")
        stored = (row.label, row.key_type, row.algorithm, row.usage, row.mode_of_use,
                  row.exportability, row.kcv)
        actual = (label, key.key_type, key.algorithm, key.usage, key.mode_of_use,
                  key.exportability, key.kcv)
        if stored != actual:
            raise KeyIntegrityError(
                f"key {row.key_id} ({row.label!r}): the row's attributes do not match its key "
                "block (the row was edited)")
        return Key(key.key_id, key.label, key.key_type, key.algorithm, key.kcv,
                   _utc(row.created_at), key.usage, key.mode_of_use, key.exportability, True,
                   clear)

    def _upgrade(self, row: HsmKey) -> Key:
        """Rewrites a pre-key-block row as a key block (the caller's session commits it)."""
        aad = legacy_associated_data(row.key_id, row.label, row.key_type, row.algorithm,
                                     row.exportable)
        try:
            clear = lmk.unwrap(self._lmk, row.wrapped_key or b"", aad)
        except lmk.UnwrapError:
            raise KeyIntegrityError(
                f"key {row.key_id} ({row.label!r}) does not unwrap under the LMK: its row was "
                "altered or it was stored under another LMK") from None
        if check_value(clear, row.algorithm) != row.kcv:
            raise KeyIntegrityError(
                f"key {row.key_id} ({row.label!r}) does not match its stored check value {row.kcv}")
        attributes = usage.new_attributes(row.key_type, row.algorithm,
                                          exportability="E" if row.exportable else "N")
        key = Key(row.key_id, row.label, row.key_type, row.algorithm, row.kcv,
                  _utc(row.created_at), attributes.usage, attributes.mode_of_use,
                  attributes.exportability, True, clear)
        row.key_block, row.wrapped_key = self.lmk_block(key), None
        row.usage, row.mode_of_use = key.usage, key.mode_of_use
        row.exportability = key.exportability
        log.info("rewrote key %s (%r) as a key block under the LMK", row.key_id, row.label)
        return key

    def _remember(self, key: Key) -> None:
        self._cache[key.key_id] = key
        self._cache[key.label] = key
