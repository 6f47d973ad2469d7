"""The HSM audit log: one hash-chained line per command, so a changed history is detected.

Every command the HSM runs is appended to ``$CARDSWITCH_VAR/hsm/audit.log`` (or
``$CARDSWITCH_HSM_AUDIT_FILE``) as one JSON object per line, UTF-8, keys sorted, no spaces::

    {"command":"TranslatePin","interface":"grpc","keys":[{"kcv":"08D7B4","ref":"zpk.acq",
    "role":"source","usage":"P0"}],"mac":"…64 hex…","prev":"…64 hex…","result":"ok",
    "seq":1,"time":"2025-03-01T09:30:00.123456+00:00"}

A record names the command, the interface it came in on, the keys it used (by label or key id
and check value, never their value), its result (``ok`` or an error code such as
``INVALID_ARGUMENT`` or payShield ``15``) and optional short ``detail`` text, whose PANs are
masked. It never holds key material, a PIN, a PIN block or a PAN.

Each record carries ``prev``, the previous record's ``mac`` (64 zeros for the first record), and
``mac = HMAC-SHA256(audit_key, record without "mac")`` over the same canonical JSON. The audit key
is derived from the LMK (:func:`audit_key`). A bare SHA-256 chain would not do: whoever can edit
the file can recompute every hash after the line they changed. With a keyed MAC, deleting,
inserting, reordering or editing a line is detected by :func:`verify` unless the editor holds the
LMK. What a chain cannot show by itself is that its newest lines were cut off: the last ``seq``
and ``mac`` (:attr:`VerifyReport.last_mac`) must be compared with a copy kept elsewhere for that.

One :class:`AuditLog` per file: it holds an exclusive ``flock`` on it, and is shared by every
interface (gRPC handlers, the TCP host interface, the CLI) of the process.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import hmac
import json
import logging
import os
import queue
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from cardswitch.cards import mask_pans_in
from cardswitch.config import var_dir
from hsm_sim import lmk

_log = logging.getLogger(__name__)

AUDIT_FILE_ENV = "CARDSWITCH_HSM_AUDIT_FILE"
KEY_LABEL = b"cardswitch.hsm.audit.v1"
GENESIS = "0" * 64
INTERFACES = frozenset({"grpc", "host", "cli"})
MAX_DETAIL = 200
MAX_NAME = 64  # command, result, key ref (labels are at most 64 characters)
MAX_TAG = 32  # key role and usage
_FIELDS = frozenset({"seq", "time", "command", "interface", "keys", "result", "prev", "mac"})
_KCV = re.compile(r"[0-9A-Fa-f]{0,6}")
# 16 or more hex digits is the shape of a key, a PIN block or a clear PAN that failed Luhn.
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{16,}")


class AuditError(Exception):
    """The audit log cannot be appended to safely; the message names the file and line."""


class _BadLine(Exception):
    """Why one line of the log is not a valid link of the chain (without its line number)."""


@dataclass(frozen=True)
class KeyUse:
    """A key a command used, as the audit log names it: there is no field for its value.

    ``role`` says what the key did in the command (``source``, ``destination``, ``pvk``),
    ``ref`` is its label or key id, ``kcv`` its check value (at most 6 hex digits) and
    ``usage`` its usage code (TR-31 style, e.g. ``P0``) or key type.
    """

    role: str
    ref: str
    kcv: str = ""
    usage: str = ""


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify`; ``bad_line`` is 1-based and ``reason`` starts with it."""

    ok: bool
    records: int
    bad_line: int | None
    reason: str
    last_mac: str = GENESIS


def audit_key(lmk_key: bytes) -> bytes:
    """The audit chain key: HMAC-SHA256(LMK, ``cardswitch.hsm.audit.v1``), 32 bytes."""
    if len(lmk_key) != lmk.LMK_LENGTH:
        raise ValueError(f"lmk_key: must be {lmk.LMK_LENGTH} bytes, got {len(lmk_key)}")
    return hmac.new(lmk_key, KEY_LABEL, hashlib.sha256).digest()


def default_path() -> Path:
    """``$CARDSWITCH_HSM_AUDIT_FILE`` when set, else ``$CARDSWITCH_VAR/hsm/audit.log``."""
    override = os.environ.get(AUDIT_FILE_ENV, "").strip()
    return Path(override) if override else var_dir() / "hsm" / "audit.log"


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def _mac(key: bytes, record: dict[str, Any]) -> str:
    """The MAC over every field of ``record`` except ``mac`` (so including ``prev``)."""
    body = {name: value for name, value in record.items() if name != "mac"}
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def _scrub(text: str) -> str:
    """``text`` with Luhn-valid PANs masked and long hex runs (keys, PIN blocks) redacted."""
    return _HEX_RUN.sub("<redacted>", mask_pans_in(text))


def _name(field: str, value: str, limit: int, *, required: bool = True) -> str:
    if required and not value:
        raise ValueError(f"{field}: must not be empty")
    if len(value) > limit:
        raise ValueError(f"{field}: at most {limit} characters, got {len(value)}")
    return _scrub(value)


def _key_entry(index: int, use: KeyUse) -> dict[str, str]:
    field = f"keys[{index}]"
    if not _KCV.fullmatch(use.kcv):
        raise ValueError(f"{field}.kcv: must be at most 6 hex digits (a check value, not a key)")
    return {
        "role": _name(f"{field}.role", use.role, MAX_TAG),
        "ref": _name(f"{field}.ref", use.ref, MAX_NAME),
        "kcv": use.kcv.upper(),
        "usage": _name(f"{field}.usage", use.usage, MAX_TAG, required=False),
    }


def _parse(raw: bytes, key: bytes) -> dict[str, Any]:
    """The record on one line if it is whole, well formed and its MAC verifies."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _BadLine("not JSON (torn write?)") from None
    if not isinstance(record, dict) or not _FIELDS <= record.keys():
        raise _BadLine("not an audit record (fields missing)")
    seq, mac = record["seq"], record["mac"]
    if type(seq) is not int or not isinstance(mac, str) or not isinstance(record["prev"], str):
        raise _BadLine("not an audit record (seq, prev or mac of the wrong type)")
    if not hmac.compare_digest(mac.encode(), _mac(key, record).encode()):
        raise _BadLine("MAC does not verify (edited?)")
    if raw.rstrip(b"\n") != _canonical(record):
        raise _BadLine("not in canonical form (edited?)")
    if not raw.endswith(b"\n"):
        raise _BadLine("ends without a newline (torn write?)")
    return record


def _follows(record: dict[str, Any], line: int, seq: int, mac: str) -> None:
    """Checks ``record`` is the link after the one with ``seq`` and ``mac`` (0, zeros: none)."""
    if record["seq"] != seq + 1:
        if seq == 0:
            raise _BadLine(f"seq {record['seq']} where a log starts at 1 (lines deleted?)")
        cause = "a line was deleted or moved" if record["seq"] > seq else "lines reordered"
        raise _BadLine(f"seq {record['seq']} follows {seq} ({cause})")
    if not hmac.compare_digest(record["prev"].encode(), mac.encode()):
        where = f"line {line - 1}'s mac" if line > 1 else "the start of a log"
        raise _BadLine(f"prev does not match {where} (lines reordered or removed)")


def verify(path: Path, key: bytes) -> VerifyReport:
    """Checks every line of the log at ``path`` is the next whole, authentic link of one chain.

    Stops at the first bad line. :class:`FileNotFoundError` when there is no log.
    """
    records, seq, mac = 0, 0, GENESIS
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                record = _parse(raw, key)
                _follows(record, number, seq, mac)
            except _BadLine as exc:
                return VerifyReport(False, records, number, f"line {number}: {exc}", mac)
            records, seq, mac = records + 1, record["seq"], record["mac"]
    return VerifyReport(True, records, None, "chain intact", mac)


def _last_line(fd: int) -> bytes:
    """The file's last line (with its newline if it has one), read backwards from the end."""
    end = os.lseek(fd, 0, os.SEEK_END)
    tail = b""
    while end > 0:
        start = max(0, end - 4096)
        tail = os.pread(fd, end - start, start) + tail
        end = start
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0:
            return tail[cut + 1 :]
    return tail


def _line_count(path: Path) -> int:
    data = path.read_bytes()
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


class AuditLog:
    """Appends MAC-chained records to ``path``; safe to call from many threads.

    Opening continues the chain after the file's last line, after checking that line is whole
    and authentic under ``key``: a torn or forged tail raises :class:`AuditError` rather than
    be built on. Each record is one ``write`` of one line to an ``O_APPEND`` descriptor, then
    ``fsync`` unless ``fsync=False``. Measured on a VM's ext4 disk, fsync takes a record from
    about 35 us to 250-350 us (about 3,000 records a second instead of 29,000); the lock is held
    through it, so asyncio callers with fsync on should call from a worker thread. Once a write
    fails the log refuses further records, so a gap cannot be hidden.
    """

    def __init__(self, path: Path, key: bytes, *, fsync: bool = True) -> None:
        if len(key) != hashlib.sha256().digest_size:
            raise ValueError(f"key: must be 32 bytes (see audit_key), got {len(key)}")
        self.path = path
        self._key = key
        self._fsync = fsync
        self._lock = threading.Lock()
        self._broken = ""
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            self._seq, self._prev = self._continue()
        except BaseException:
            os.close(self._fd)
            raise

    def _continue(self) -> tuple[int, str]:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AuditError(f"audit log {self.path}: already open by another writer") from None
        tail = _last_line(self._fd)
        if not tail:
            return 0, GENESIS
        try:
            record = _parse(tail, self._key)
        except _BadLine as exc:
            raise AuditError(
                f"audit log {self.path}: line {_line_count(self.path)}: {exc}; refusing to "
                "append after it. Run `cardswitch hsm audit verify`, keep the file as evidence "
                "and move it aside to start a new log."
            ) from None
        return int(record["seq"]), str(record["mac"])

    def record(
        self,
        command: str,
        *,
        interface: str,
        keys: Sequence[KeyUse] = (),
        result: str = "ok",
        detail: str = "",
        sync: bool | None = None,
    ) -> None:
        """Appends one record; :class:`ValueError` names a bad argument, :class:`AuditError`
        says the log can no longer be appended to. ``sync=False`` leaves the fsync to a later
        :meth:`sync` (one for a batch); by default the log's ``fsync`` setting decides."""
        if interface not in INTERFACES:
            raise ValueError(f"interface: must be one of {sorted(INTERFACES)}, got {interface!r}")
        if len(detail) > MAX_DETAIL:
            raise ValueError(f"detail: at most {MAX_DETAIL} characters, got {len(detail)}")
        record: dict[str, Any] = {
            "command": _name("command", command, MAX_NAME),
            "interface": interface,
            "keys": [_key_entry(i, use) for i, use in enumerate(keys)],
            "result": _name("result", result, MAX_NAME),
        }
        if detail:
            record["detail"] = _scrub(detail)
        with self._lock:
            if self._broken:
                raise AuditError(f"audit log {self.path}: {self._broken}")
            record["seq"] = self._seq + 1
            record["time"] = datetime.now(UTC).isoformat(timespec="microseconds")
            record["prev"] = self._prev
            record["mac"] = _mac(self._key, record)
            line = _canonical(record) + b"\n"
            try:
                written = os.write(self._fd, line)
                if self._fsync if sync is None else sync:
                    os.fsync(self._fd)
            except OSError as exc:
                self._broken = f"writing record {record['seq']} failed: {exc}"
                raise AuditError(f"audit log {self.path}: {self._broken}") from exc
            if written != len(line):
                self._broken = f"record {record['seq']} was written only in part"
                raise AuditError(f"audit log {self.path}: {self._broken}")
            self._seq, self._prev = record["seq"], record["mac"]

    def sync(self) -> None:
        """Makes every record appended so far durable (one fsync)."""
        with self._lock:
            if self._closed:
                return
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._broken = f"fsync after record {self._seq} failed: {exc}"
                raise AuditError(f"audit log {self.path}: {self._broken}") from exc

    def close(self) -> None:
        """Releases the file; further records raise :class:`AuditError`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._broken = self._broken or "closed"
                os.close(self._fd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AuditWriter:
    """Takes records from the event loop without blocking it; a thread appends them in order.

    The HSM answers a command without waiting for its record's fsync: the writer appends every
    queued record, then fsyncs once for the batch, so auditing costs a queue put per command and
    an fsync per batch rather than per record. What a crash can lose is the last batch (at most
    a few milliseconds of records), never a record in the middle of the chain.
    """

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hsm-audit", daemon=True)
        self._thread.start()

    def submit(self, command: str, *, interface: str, keys: Sequence[KeyUse] = (),
               result: str = "ok", detail: str = "") -> None:
        self._queue.put({"command": command, "interface": interface, "keys": tuple(keys),
                         "result": result, "detail": detail})

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not None:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            for record in batch:
                if record is not None:
                    try:
                        self.log.record(**record, sync=False)
                    except (AuditError, ValueError) as exc:
                        _log.error("audit record for %s not written: %s", record["command"], exc)
            try:
                self.log.sync()
            except AuditError as exc:
                _log.error("%s", exc)
            if batch[-1] is None:
                return

    def close(self) -> None:
        """Writes what is queued, then closes the log."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.log.close()


def register(commands: Any) -> None:
    """Adds ``audit verify [--file PATH]`` to the ``cardswitch hsm`` subparsers."""
    audit = commands.add_parser("audit", help="the HSM's tamper-evident command log")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    check = audit_commands.add_parser("verify", help="check the audit log's MAC chain")
    check.add_argument("--file", type=Path, help=f"the log (default: ${AUDIT_FILE_ENV} or "
                       "$CARDSWITCH_VAR/hsm/audit.log)")
    check.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    """``cardswitch hsm audit verify``: 0 when the chain is intact, else 1 naming the bad line."""
    path = Path(getattr(args, "file", None) or default_path())
    try:
        report = verify(path, audit_key(lmk.load()))
    except lmk.LmkError as exc:
        print(f"cardswitch hsm audit verify: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError:
        print(f"audit log {path}: no such file", file=sys.stderr)
        return 1
    if not report.ok:
        print(f"audit log {path}: {report.reason}", file=sys.stderr)
        return 1
    print(f"audit log {path}: {report.records} records, chain intact")
    return 0
