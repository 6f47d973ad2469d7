"""A software PIN pad: TDES DUKPT (ANSI X9.24-1) PIN encryption, ISO 9564 format 0 blocks.

Provisioning: the pad makes an RSA-2048 key pair, sends its public key to the switch's
``AdminService.ProvisionTerminalKey`` and gets back its initial key serial number (KSN) and its
initial PIN encryption key (IPEK) wrapped under that public key (RSA-OAEP, SHA-256, MGF1-SHA-256,
no label) with the IPEK's key check value (KCV). It unwraps the IPEK, checks the KCV and keeps
``(terminal_id, ipek, ksn)`` as its state. The private key lives only for that one call.

Every PIN gets a fresh KSN (the 21-bit transaction counter steps forward) and so a fresh key; the
new KSN is persisted *before* the encrypted block leaves the pad, so no KSN is ever used twice,
even across crashes or two processes sharing the pad (the state file is re-read under a lock).

The state file ``$CARDSWITCH_VAR/terminals/<terminal_id>.pinpad`` stands in for the pad's
tamper-responsive memory: mode 0600, sealed with AES-256-GCM under a key derived (HKDF-SHA-256)
from a random device secret in ``<terminal_id>.device-secret`` beside it. Honest limit: a
software PIN pad cannot do better than this. Whoever can read both files has the IPEK; a real
pad keeps the secret in hardware that erases itself when opened. The sealing keeps the IPEK out
of backups, greps and casual copies of the state file alone.

For load tests :meth:`PinPad.in_memory` builds a pad from an IPEK and KSN with no files at all,
and :meth:`PinPad.lease` lets a file-backed pad hand out its KSNs a block at a time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cardswitch.config import var_dir
from cardswitch.v1 import admin_pb2, admin_pb2_grpc, common_pb2
from hsm_sim.algorithms import dukpt, kcv, pinblock, tdes

_TERMINAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_MAGIC = b"CSPINPAD1\n"
_NONCE_LENGTH = 12
_SECRET_LENGTH = 32


class EncryptedPin(NamedTuple):
    """What the pad hands the POS: the encrypted ISO format 0 block and the KSN it used."""

    block: bytes
    ksn: bytes

    def to_proto(self) -> common_pb2.EncryptedPinBlock:
        return common_pb2.EncryptedPinBlock(
            block=self.block,
            format=common_pb2.PIN_BLOCK_FORMAT_ISO_0,
            key_management=common_pb2.PIN_KEY_MANAGEMENT_DUKPT_TDES,
            ksn=self.ksn,
        )


def terminals_dir(directory: Path | None = None) -> Path:
    """Where terminal state lives: ``directory`` or ``$CARDSWITCH_VAR/terminals``."""
    path = directory if directory is not None else var_dir() / "terminals"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def check_terminal_id(terminal_id: str) -> str:
    """``terminal_id`` names files, so only letters, digits, ``_`` and ``-`` (1 to 32)."""
    if not _TERMINAL_ID.match(terminal_id):
        raise ValueError(
            f"terminal_id: must be 1 to 32 letters, digits, '_' or '-', got {terminal_id!r}"
        )
    return terminal_id


@contextmanager
def terminal_lock(terminal_id: str, directory: Path | None = None) -> Iterator[None]:
    """An exclusive lock (``flock``) on one terminal's state, across threads and processes."""
    path = terminals_dir(directory) / f"{check_terminal_id(terminal_id)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_private_file(path: Path, data: bytes) -> None:
    """Replaces ``path`` atomically with ``data``, mode 0600, flushed to disk before returning."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _SealedState:
    """The pad's state file, sealed with AES-GCM under a key derived from the device secret."""

    def __init__(self, terminal_id: str, directory: Path | None) -> None:
        self.terminal_id = check_terminal_id(terminal_id)
        self.directory = terminals_dir(directory)
        self.path = self.directory / f"{terminal_id}.pinpad"
        self.secret_path = self.directory / f"{terminal_id}.device-secret"

    def _key(self, create: bool) -> AESGCM:
        if create and not self.secret_path.exists():
            write_private_file(self.secret_path, secrets.token_bytes(_SECRET_LENGTH))
        try:
            secret = self.secret_path.read_bytes()
        except FileNotFoundError:
            raise ValueError(
                f"{self.secret_path}: PIN pad device secret missing; provision the terminal again"
            ) from None
        if len(secret) != _SECRET_LENGTH:
            raise ValueError(f"{self.secret_path}: device secret must be {_SECRET_LENGTH} bytes")
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"cardswitch pinpad state v1|" + self.terminal_id.encode(),
        )
        return AESGCM(hkdf.derive(secret))

    def _aad(self) -> bytes:
        return _MAGIC + self.terminal_id.encode()

    def read(self) -> tuple[bytes, bytes]:
        """The stored ``(ipek, ksn)``; ``ValueError`` if missing, tampered or another pad's."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise ValueError(
                f"{self.path}: no PIN pad state for terminal {self.terminal_id}; "
                "run `cardswitch terminal provision` first"
            ) from None
        if not raw.startswith(_MAGIC) or len(raw) < len(_MAGIC) + _NONCE_LENGTH + 16:
            raise ValueError(f"{self.path}: not a PIN pad state file")
        nonce = raw[len(_MAGIC) : len(_MAGIC) + _NONCE_LENGTH]
        sealed = raw[len(_MAGIC) + _NONCE_LENGTH :]
        try:
            clear = self._key(create=False).decrypt(nonce, sealed, self._aad())
        except Exception as exc:  # InvalidTag: wrong secret, edited file, other terminal's file
            raise ValueError(f"{self.path}: PIN pad state failed its integrity check") from exc
        state: dict[str, Any] = json.loads(clear)
        return bytes.fromhex(state["ipek"]), bytes.fromhex(state["ksn"])

    def write(self, ipek: bytes, ksn: bytes) -> None:
        clear = json.dumps(
            {"v": 1, "terminal_id": self.terminal_id, "ipek": ipek.hex(), "ksn": ksn.hex()}
        ).encode()
        nonce = secrets.token_bytes(_NONCE_LENGTH)
        sealed = self._key(create=True).encrypt(nonce, clear, self._aad())
        write_private_file(self.path, _MAGIC + nonce + sealed)


class PinPad:
    """One terminal's PIN pad: turns a clear PIN and PAN into a DUKPT-encrypted format 0 block.

    Build it with :meth:`in_memory` (no files), :meth:`load` (provisioned state on disk),
    :meth:`install` (store a known IPEK) or :func:`provision` (from the switch).
    """

    def __init__(
        self, terminal_id: str, ipek: bytes, ksn: bytes, state: _SealedState | None = None
    ) -> None:
        if len(ipek) != 16:
            raise ValueError(f"ipek: must be a 16-byte TDES key, got {len(ipek)} bytes")
        dukpt.ksn_counter(ksn)  # validates the length
        self.terminal_id = terminal_id
        self._ipek = ipek
        self._ksn = ksn
        self._state = state
        self._lock = threading.Lock()
        self._source: PinPad | None = None  # set on a lease: the pad whose KSNs it uses
        self._lease_size = self._lease_left = 0

    @classmethod
    def in_memory(cls, terminal_id: str, ipek: bytes, ksn: bytes) -> PinPad:
        """A pad whose state lives only in this process (load tests, benchmarks)."""
        return cls(terminal_id, ipek, ksn)

    @classmethod
    def install(
        cls, terminal_id: str, ipek: bytes, ksn: bytes, directory: Path | None = None
    ) -> PinPad:
        """Seals ``ipek`` and the initial ``ksn`` into the state file; returns the pad."""
        state = _SealedState(terminal_id, directory)
        pad = cls(terminal_id, ipek, ksn, state)
        with terminal_lock(terminal_id, directory):
            state.write(ipek, ksn)
        return pad

    @classmethod
    def load(cls, terminal_id: str, directory: Path | None = None) -> PinPad:
        """The provisioned pad of ``terminal_id`` from its state file."""
        state = _SealedState(terminal_id, directory)
        with terminal_lock(terminal_id, directory):
            ipek, ksn = state.read()
        return cls(terminal_id, ipek, ksn, state)

    @staticmethod
    def exists(terminal_id: str, directory: Path | None = None) -> bool:
        return _SealedState(terminal_id, directory).path.exists()

    @property
    def ksn(self) -> bytes:
        """The KSN of the last PIN encrypted (the initial KSN before the first)."""
        return self._ksn

    @property
    def persistent(self) -> bool:
        return self._state is not None

    def lease(self, count: int = 1000) -> PinPad:
        """An in-memory pad that uses this pad's next KSNs, ``count`` at a time.

        Each block is marked used in this pad (on disk, for a file-backed one) before any KSN
        of it is, so the lease costs one state write per ``count`` PINs instead of one per PIN
        and still never reuses a KSN; what a lease leaves unused is skipped. For load tests.
        """
        if count < 1:
            raise ValueError(f"count: must be at least 1, got {count}")
        leased = PinPad(self.terminal_id, self._ipek, self._ksn)
        leased._source, leased._lease_size = self, count
        return leased

    def _take(self, count: int) -> tuple[bytes, bytes]:
        """Marks the next ``count`` KSNs used; returns the IPEK and the KSN just before them."""
        with self._lock:
            if self._state is None:
                ipek, before = self._ipek, self._ksn
                self._ksn = _advance(before, count)
                return ipek, before
            with terminal_lock(self.terminal_id, self._state.directory):
                ipek, before = self._state.read()
                after = _advance(before, count)
                self._state.write(ipek, after)
            self._ipek, self._ksn = ipek, after
            return ipek, before

    def _next_ksn(self) -> tuple[bytes, bytes]:
        if self._source is None:
            ipek, before = self._take(1)
            return ipek, dukpt.next_ksn(before)
        with self._lock:
            if self._lease_left == 0:
                self._ipek, self._ksn = self._source._take(self._lease_size)
                self._lease_left = self._lease_size
            self._lease_left -= 1
            self._ksn = dukpt.next_ksn(self._ksn)
            return self._ipek, self._ksn

    def encrypt_pin(self, pin: str, pan: str) -> EncryptedPin:
        """Encrypts ``pin`` for card ``pan`` under the next DUKPT PIN key.

        The KSN advances (and is on disk, for a file-backed pad) before the block is returned.
        """
        clear_block = pinblock.encode_iso0(pin, pan)  # bad PIN or PAN: fail before using a KSN
        ipek, ksn = self._next_ksn()
        pin_key = dukpt.tdes_pin_key(ipek, ksn)
        return EncryptedPin(tdes.encrypt_ecb(pin_key, clear_block), ksn)


def _advance(ksn: bytes, count: int) -> bytes:
    for _ in range(count):
        ksn = dukpt.next_ksn(ksn)
    return ksn


def unwrap_initial_key(
    private_key: rsa.RSAPrivateKey, encrypted_initial_key: bytes, expected_kcv: str
) -> bytes:
    """Decrypts the RSA-OAEP-wrapped IPEK and checks its TDES KCV (3 bytes, hex)."""
    try:
        ipek = private_key.decrypt(
            encrypted_initial_key,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
    except ValueError as exc:
        raise ValueError("encrypted_initial_key: RSA-OAEP decryption failed") from exc
    if len(ipek) != 16:
        raise ValueError(f"encrypted_initial_key: must wrap a 16-byte key, got {len(ipek)} bytes")
    actual = kcv.kcv(ipek).hex().upper()
    if actual != expected_kcv.strip().upper():
        raise ValueError(
            f"kcv: the unwrapped key's check value is {actual}, the switch said {expected_kcv!r}"
        )
    return ipek


async def provision(
    channel: Any,
    terminal_id: str,
    *,
    directory: Path | None = None,
    timeout_s: float = 10.0,
) -> PinPad:
    """Loads the terminal's IPEK from the switch over ``channel`` (a ``grpc.aio`` channel).

    The RSA key pair exists only for this call; the IPEK is checked against its KCV and sealed
    into the state file before the pad is returned.
    """
    check_terminal_id(terminal_id)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    response: admin_pb2.ProvisionTerminalKeyResponse = await stub.ProvisionTerminalKey(
        admin_pb2.ProvisionTerminalKeyRequest(
            terminal_id=terminal_id, device_public_key_pem=public_pem
        ),
        timeout=timeout_s,
    )
    ipek = unwrap_initial_key(private_key, response.encrypted_initial_key, response.kcv)
    ksn = bytes(response.initial_ksn)
    if len(ksn) != dukpt.KSN_LENGTH:
        raise ValueError(f"initial_ksn: must be {dukpt.KSN_LENGTH} bytes, got {len(ksn)}")
    return PinPad.install(terminal_id, ipek, ksn, directory)
