"""The local master key (LMK): the one AES-256 key every stored key rests encrypted under.

A development LMK is made the way a real one is loaded into an HSM: from two or three random
components held by different custodians, combined by XOR. Only each component's key check value
(KCV) is shown, so custodians can confirm what they hold without revealing it. The LMK lives in
``$CARDSWITCH_VAR/hsm/lmk.key`` (32 raw bytes, mode 0600) unless ``CARDSWITCH_LMK_FILE`` says
otherwise.

Keys are wrapped with AES-256-GCM: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``, with
associated data chosen by the caller, so a wrapped key cannot be moved to other attributes.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardswitch.config import var_dir
from hsm_sim.algorithms import kcv
from hsm_sim.algorithms.bits import xor_all

log = logging.getLogger(__name__)

LMK_FILE_ENV = "CARDSWITCH_LMK_FILE"
LMK_LENGTH = 32
NONCE_LENGTH = 12
TAG_LENGTH = 16


class LmkError(Exception):
    """The LMK is missing, malformed, or would be overwritten; the message names the file."""


class UnwrapError(Exception):
    """A wrapped key failed authentication: the blob or its associated data was altered,
    or it was wrapped under another LMK."""


@dataclass(frozen=True)
class NewLmk:
    """The outcome of :func:`create`; ``components`` are clear and shown only on request."""

    path: Path
    kcv: str
    component_kcvs: tuple[str, ...]
    components: tuple[bytes, ...]


def lmk_path() -> Path:
    """``$CARDSWITCH_LMK_FILE`` when set, else ``$CARDSWITCH_VAR/hsm/lmk.key``."""
    override = os.environ.get(LMK_FILE_ENV, "").strip()
    return Path(override) if override else var_dir() / "hsm" / "lmk.key"


def check_value(key: bytes) -> str:
    """The AES key check value of the LMK or one of its components: 6 hex digits (CMAC)."""
    return kcv.kcv(key, algorithm="aes").hex().upper()


def create(components: int = 2, *, force: bool = False, path: Path | None = None) -> NewLmk:
    """Generates ``components`` random 32-byte components, writes their XOR as the LMK (0600).

    Refuses to replace an existing LMK unless ``force``: every key stored under the old one
    becomes unusable.
    """
    if components not in (2, 3):
        raise ValueError(f"components: must be 2 or 3, got {components}")
    path = path or lmk_path()
    if path.exists() and not force:
        raise LmkError(
            f"an LMK already exists at {path}; refusing to overwrite it (keys stored "
            "under it would become unusable). Use --force to replace it."
        )
    parts = tuple(secrets.token_bytes(LMK_LENGTH) for _ in range(components))
    lmk = xor_all(parts)
    _write_private(path, lmk)
    log.info("new LMK at %s (KCV %s)", path, check_value(lmk))
    return NewLmk(path, check_value(lmk), tuple(check_value(p) for p in parts), parts)


def from_components(components: list[bytes], *, force: bool = False,
                    path: Path | None = None) -> NewLmk:
    """Writes the XOR of components entered by their custodians as the LMK (dual control).

    Each component must be 32 bytes and no two may be equal (equal components cancel out).
    """
    if len(components) not in (2, 3):
        raise ValueError(f"components: must be 2 or 3, got {len(components)}")
    for i, part in enumerate(components, start=1):
        if len(part) != LMK_LENGTH:
            raise ValueError(f"component {i}: must be {LMK_LENGTH} bytes ({2 * LMK_LENGTH} hex "
                             f"digits), got {len(part)}")
    if len(set(components)) != len(components):
        raise ValueError("components: two components are equal; each custodian needs their own")
    path = path or lmk_path()
    if path.exists() and not force:
        raise LmkError(f"an LMK already exists at {path}; refusing to overwrite it. "
                       "Use --force to replace it.")
    lmk = xor_all(components)
    _write_private(path, lmk)
    log.info("LMK loaded from %d components at %s (KCV %s)", len(components), path,
             check_value(lmk))
    return NewLmk(path, check_value(lmk), tuple(check_value(p) for p in components),
                  tuple(components))


def _write_private(path: Path, data: bytes) -> None:
    """Writes ``data`` to a 0600 temporary file beside ``path`` and renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: Path | None = None) -> bytes:
    """Reads the LMK; :class:`LmkError` names the file when it is missing or not 32 bytes."""
    path = path or lmk_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LmkError(
            f"no LMK at {path}: run `cardswitch hsm init` first "
            f"(or point {LMK_FILE_ENV} at the LMK file)"
        ) from None
    if len(data) != LMK_LENGTH:
        raise LmkError(f"LMK file {path} must hold {LMK_LENGTH} bytes, got {len(data)}")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "LMK file %s has mode %03o; it should be readable by its owner only (600)", path, mode
        )
    return data


def wrap(lmk: bytes, key: bytes, associated_data: bytes) -> bytes:
    """Encrypts ``key`` under the LMK: nonce || AES-256-GCM ciphertext || tag."""
    nonce = secrets.token_bytes(NONCE_LENGTH)
    return nonce + AESGCM(lmk).encrypt(nonce, key, associated_data)


def unwrap(lmk: bytes, blob: bytes, associated_data: bytes) -> bytes:
    """Inverse of :func:`wrap`; :class:`UnwrapError` if anything was altered."""
    if len(blob) < NONCE_LENGTH + TAG_LENGTH:
        raise UnwrapError(f"wrapped key: too short ({len(blob)} bytes)")
    try:
        return AESGCM(lmk).decrypt(blob[:NONCE_LENGTH], blob[NONCE_LENGTH:], associated_data)
    except InvalidTag:
        raise UnwrapError("wrapped key: authentication failed") from None
