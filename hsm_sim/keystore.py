"""The HSM key store: keys at rest under the LMK in table ``hsm_keys``, in clear only in memory.

Each row holds a key wrapped with AES-256-GCM under the LMK (see :mod:`hsm_sim.lmk`) whose
associated data is ``key_id|label|key_type|algorithm|exportable``: editing a row's usage (say,
turning a BDK into a PVK) makes it fail to unwrap rather than silently change what it may do.

Key types and algorithms are spelled as in the proto enums without their prefix (``ZPK``,
``TDES_2KEY``). :data:`ALLOWED_ALGORITHMS` is the spec of which algorithm each type may have.
A key reference (``key_ref``) is a key id or a label; labels may not look like key ids.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce

from sqlalchemy import Boolean, DateTime, Engine, LargeBinary, String, UniqueConstraint, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cardswitch.db import session_factory
from hsm_sim import lmk
from hsm_sim.algorithms import kcv

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


class HsmKey(Base):
    """One stored key; ``wrapped_key`` is nonce || AES-256-GCM(LMK, clear key) || tag."""

    __tablename__ = "hsm_keys"
    __table_args__ = (UniqueConstraint("label", name="uq_hsm_keys_label"),)

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    key_type: Mapped[str] = mapped_column(String(16))
    algorithm: Mapped[str] = mapped_column(String(16))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    kcv: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    exportable: Mapped[bool] = mapped_column(Boolean, default=False)


KEY_LENGTHS: dict[str, int] = {
    "TDES_2KEY": 16,
    "TDES_3KEY": 24,
    "AES_128": 16,
    "AES_192": 24,
    "AES_256": 32,
    "HMAC_SHA256": 32,
}

# Which algorithms each key type may have: what the commands that use the type can run with.
ALLOWED_ALGORITHMS: dict[str, frozenset[str]] = {
    "BDK": frozenset({"TDES_2KEY"}),  # TDES DUKPT (X9.24-1:2009)
    "ZPK": frozenset({"TDES_2KEY", "TDES_3KEY"}),  # ISO 9564 formats 0, 1 and 3
    "ZMK": frozenset({"TDES_2KEY", "TDES_3KEY", "AES_128", "AES_192", "AES_256"}),
    "PVK": frozenset({"TDES_2KEY", "TDES_3KEY"}),  # IBM 3624
    "CVK": frozenset({"TDES_2KEY"}),  # Visa CVV: key A || key B
    "DEK": frozenset({"AES_256"}),  # AES-256-GCM PAN ciphertext
    "HMAC": frozenset({"HMAC_SHA256"}),  # PAN tokens
}

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")  # fullmatch: no trailing newline
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class LabelTaken(Exception):
    """Another key already has this label."""


class KeyIntegrityError(Exception):
    """A stored key failed to unwrap or to match its check value: the row was altered or the
    LMK is not the one it was stored under. The message names the key, never its value."""


@dataclass(frozen=True)
class KeyInfo:
    """What anyone may know about a key."""

    key_id: str
    label: str
    key_type: str
    algorithm: str
    kcv: str
    created_at: datetime
    exportable: bool


@dataclass(frozen=True)
class Key(KeyInfo):
    """A key with its clear value; ``clear`` is kept out of ``repr`` so it never reaches a log."""

    clear: bytes = field(repr=False, default=b"")


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
    return reduce(lambda a, b: bytes(x ^ y for x, y in zip(a, b, strict=True)), components)


def check_value(clear: bytes, algorithm: str) -> str:
    """The key check value, 6 hex digits upper case.

    TDES: the key over a zero block; AES: CMAC of a zero block (both :mod:`kcv`). HMAC keys have
    no standard KCV; here it is the first 3 bytes of HMAC-SHA256(key, 16 zero bytes).
    """
    if algorithm.startswith("TDES"):
        return kcv.kcv(clear).hex().upper()
    if algorithm.startswith("AES"):
        return kcv.kcv(clear, algorithm="aes").hex().upper()
    return hmac.new(clear, bytes(16), hashlib.sha256).digest()[:3].hex().upper()


def associated_data(
    key_id: str, label: str, key_type: str, algorithm: str, exportable: bool
) -> bytes:
    """The attributes a wrapped key is bound to (labels cannot contain ``|``)."""
    return f"{key_id}|{label}|{key_type}|{algorithm}|{int(exportable)}".encode()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _info(row: HsmKey) -> KeyInfo:
    return KeyInfo(
        row.key_id,
        row.label,
        row.key_type,
        row.algorithm,
        row.kcv,
        _utc(row.created_at),
        row.exportable,
    )


class KeyStore:
    """Stores keys wrapped under ``lmk_key`` in ``engine``'s ``hsm_keys`` table."""

    def __init__(self, engine: Engine, lmk_key: bytes) -> None:
        self._sessions = session_factory(engine)
        self._lmk = lmk_key
        self._cache: dict[str, Key] = {}

    def cached(self, key_ref: str) -> Key | None:
        """The unwrapped key if this process has already loaded it (no I/O)."""
        return self._cache.get(key_ref)

    def add(
        self, label: str, key_type: str, algorithm: str, clear: bytes, *, exportable: bool = False
    ) -> Key:
        """Wraps and stores a new key (blocking). :class:`LabelTaken` if the label is in use."""
        if algorithm not in ALLOWED_ALGORITHMS[key_type]:
            raise ValueError(f"algorithm: a {key_type} key cannot be {algorithm}")
        if len(clear) != KEY_LENGTHS[algorithm]:
            raise ValueError(
                f"key: {algorithm} needs {KEY_LENGTHS[algorithm]} bytes, got {len(clear)}"
            )
        key = Key(
            str(uuid.uuid4()),
            label,
            key_type,
            algorithm,
            check_value(clear, algorithm),
            datetime.now(UTC),
            exportable,
            clear,
        )
        aad = associated_data(key.key_id, label, key_type, algorithm, exportable)
        row = HsmKey(
            key_id=key.key_id,
            label=label,
            key_type=key_type,
            algorithm=algorithm,
            wrapped_key=lmk.wrap(self._lmk, clear, aad),
            kcv=key.kcv,
            created_at=key.created_at,
            exportable=exportable,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise LabelTaken(f"label: a key labelled {label!r} already exists") from None
        self._remember(key)
        log.info(
            "stored %s %s key %s labelled %r (KCV %s)",
            key_type,
            algorithm,
            key.key_id,
            label,
            key.kcv,
        )
        return key

    def load(self, key_ref: str) -> Key | None:
        """The key named by id or label, unwrapped and cached (blocking); None if unknown."""
        key = self._cache.get(key_ref)
        if key is not None:
            return key
        with self._sessions() as session:
            row = session.scalars(
                select(HsmKey).where(or_(HsmKey.key_id == key_ref, HsmKey.label == key_ref))
            ).first()
        if row is None:
            return None
        key = self._unwrap(row)
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
        """Unwraps every stored key into memory; returns how many loaded and the ids that failed."""
        failed: list[str] = []
        with self._sessions() as session:
            rows = list(session.scalars(select(HsmKey)))
        for row in rows:
            try:
                self._remember(self._unwrap(row))
            except KeyIntegrityError as exc:
                log.error("%s", exc)
                failed.append(row.key_id)
        return len(rows) - len(failed), failed

    def _unwrap(self, row: HsmKey) -> Key:
        aad = associated_data(row.key_id, row.label, row.key_type, row.algorithm, row.exportable)
        try:
            clear = lmk.unwrap(self._lmk, row.wrapped_key, aad)
        except lmk.UnwrapError:
            raise KeyIntegrityError(
                f"key {row.key_id} ({row.label!r}) does not unwrap under the LMK: its row was "
                "altered or it was stored under another LMK"
            ) from None
        if check_value(clear, row.algorithm) != row.kcv:
            raise KeyIntegrityError(
                f"key {row.key_id} ({row.label!r}) does not match its stored check value {row.kcv}"
            )
        info = _info(row)
        return Key(
            info.key_id,
            info.label,
            info.key_type,
            info.algorithm,
            info.kcv,
            info.created_at,
            info.exportable,
            clear,
        )

    def _remember(self, key: Key) -> None:
        self._cache[key.key_id] = key
        self._cache[key.label] = key
