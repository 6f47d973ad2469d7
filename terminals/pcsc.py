"""Card readers over real PC/SC: our own pcscd with virtual readers, and a link to a card in one.

pcscd (pcsc-lite) serves every PC/SC client on the machine through one socket
(``/run/pcscd/pcscd.comm``), so there is one daemon, and cardswitch starts it with its own
reader configuration: each entry loads the vsmartcard ``vpcd`` driver, which opens two reader
slots, each listening on a TCP port where a virtual card connects (``terminals/cards/vicc.py``).
Every entry needs its own copy of the driver library: pcscd loads a library once and would
otherwise give the second entry the first one's port.

Readers, as a tester sees them in ``pcsc_scan`` or any PC/SC application:

==============================  ===========  =====
reader name                     interface    port
==============================  ===========  =====
``cardswitch contact 00 00``     contact      40000
``cardswitch contact 00 01``     contact      40001
``cardswitch contactless 00 00`` contactless  40002
``cardswitch contactless 00 01`` contactless  40003
==============================  ===========  =====

The base port moves with ``CARDSWITCH_VPCD_PORT`` (default 40000).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from terminals.emv.apdu import CardRemoved

log = logging.getLogger(__name__)

Interface = Literal["contact", "contactless"]
DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
DRIVER_VERSIONED = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so.0.8")
#: Where the reader configuration and the driver copies live. pcscd runs as root and loads the
#: driver copies, so they must sit where only their owner can write: /run for root.
STATE_DIR = Path(os.environ.get("CARDSWITCH_PCSC_DIR") or (
    "/run/cardswitch-pcsc" if os.geteuid() == 0
    else Path.home() / ".cache" / "cardswitch-pcsc"))
#: The reader configuration: (friendly name, interface); each entry gives two slots.
ENTRIES: tuple[tuple[str, Interface], ...] = (
    ("cardswitch contact", "contact"),
    ("cardswitch contactless", "contactless"),
)
SLOTS_PER_ENTRY = 2
START_TIMEOUT_S = 15.0


class PcscUnavailable(RuntimeError):
    """PC/SC cannot work here; the message says exactly what is missing and how to get it."""


@dataclass(frozen=True)
class Reader:
    """One reader slot as pcscd names it, and the port its virtual card connects to."""

    name: str
    interface: Interface
    port: int


def base_port() -> int:
    return int(os.environ.get("CARDSWITCH_VPCD_PORT", "40000"))


def readers() -> list[Reader]:
    """Every reader slot of cardswitch's configuration."""
    out = []
    for index, (friendly, interface) in enumerate(ENTRIES):
        for slot in range(SLOTS_PER_ENTRY):
            port = base_port() + index * SLOTS_PER_ENTRY + slot
            out.append(Reader(f"{friendly} 00 {slot:02d}", interface, port))
    return out


def reader(interface: Interface, slot: int = 0) -> Reader:
    """The ``slot``-th reader of an interface (0 or 1)."""
    found = [r for r in readers() if r.interface == interface]
    if not 0 <= slot < len(found):
        raise ValueError(f"slot: {interface} readers have slots 0 to {len(found) - 1}, not {slot}")
    return found[slot]


def missing() -> list[str]:
    """What this machine lacks for PC/SC, each with the package that brings it."""
    lacks = []
    if shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists():
        lacks.append("pcscd (Debian package pcscd)")
    if not DRIVER.exists() and not DRIVER_VERSIONED.exists():
        lacks.append(f"the vpcd reader driver {DRIVER} (Debian package vsmartcard-vpcd)")
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        lacks.append("pyscard (`pip install pyscard`, which needs libpcsclite-dev and swig; "
                     "./run installs them)")
    return lacks


def _config_text(library_dir: Path) -> str:
    blocks = []
    for index, (friendly, _interface) in enumerate(ENTRIES):
        channel = base_port() + index * SLOTS_PER_ENTRY
        blocks.append(f'FRIENDLYNAME "{friendly}"\n'
                      f"DEVICENAME   /dev/null:0x{channel:04X}\n"
                      f"LIBPATH      {library_dir / f'libifdvpcd-{index}.so'}\n"
                      f"CHANNELID    0x{channel:04X}\n")
    return "\n".join(blocks)


def _write_config(state: Path) -> Path:
    """The reader.conf.d directory for our pcscd, with one driver copy per entry."""
    library_dir = state / "drivers"
    conf_dir = state / "reader.conf.d"
    library_dir.mkdir(parents=True, exist_ok=True)
    conf_dir.mkdir(parents=True, exist_ok=True)
    source = DRIVER_VERSIONED if DRIVER_VERSIONED.exists() else DRIVER
    for index in range(len(ENTRIES)):
        copy = library_dir / f"libifdvpcd-{index}.so"
        if not copy.exists() or copy.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, copy)
    conf = conf_dir / "cardswitch"
    text = _config_text(library_dir)
    if not conf.exists() or conf.read_text() != text:
        conf.write_text(text)
    return conf_dir


def _running_pcscd() -> list[tuple[int, str]]:
    """(pid, command line) of every pcscd process."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "pcscd":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if cmdline:  # an exited pcscd not yet reaped by its parent has none
            found.append((int(proc.name), cmdline))
    return found


def visible_readers() -> list[str]:
    """Reader names pcscd reports right now (empty when it is not running)."""
    from smartcard import scard

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        return []
    try:
        result, names = scard.SCardListReaders(context, [])
        return list(names) if result == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def wait_for_card(reader_name: str, present: bool, timeout_s: float = 5.0) -> None:
    """Returns once pcscd sees a card in ``reader_name`` (``present``) or an empty reader.

    A virtual card's arrival and departure reach pcscd through its polling, a little later
    than the socket; a terminal that connected in between would talk to the card just gone.
    """
    from smartcard import scard

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        raise PcscUnavailable(f"cannot reach pcscd: {scard.SCardGetErrorMessage(result)}")
    wanted = scard.SCARD_STATE_PRESENT if present else scard.SCARD_STATE_EMPTY
    try:
        deadline = time.monotonic() + timeout_s
        states = [(reader_name, scard.SCARD_STATE_UNAWARE)]
        while True:
            left_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            result, states = scard.SCardGetStatusChange(context, left_ms, states)
            if result == scard.SCARD_S_SUCCESS and states[0][1] & wanted:
                return
            if result not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT) or left_ms == 0:
                raise CardRemoved(f"reader {reader_name!r}: no {'card' if present else 'empty'} "
                                  f"state within {timeout_s:.0f} s "
                                  f"({scard.SCardGetErrorMessage(result).strip()})")
            states = [(name, state & ~scard.SCARD_STATE_CHANGED) for name, state, _ in states]
    finally:
        scard.SCardReleaseContext(context)


def ensure_daemon(state: Path | None = None) -> list[Reader]:
    """Starts cardswitch's pcscd unless it already runs; returns the readers once pcscd lists them.

    Raises :class:`PcscUnavailable` naming what is missing, or the foreign pcscd in the way.
    """
    lacks = missing()
    if lacks:
        raise PcscUnavailable("PC/SC is not available: missing " + "; ".join(lacks))
    state = state or STATE_DIR
    conf_dir = _write_config(state)
    ours = [pid for pid, cmd in _running_pcscd() if str(conf_dir) in cmd]
    others = [(pid, cmd) for pid, cmd in _running_pcscd() if str(conf_dir) not in cmd]
    if others and not ours:
        pid, cmd = others[0]
        raise PcscUnavailable(
            f"pcscd (pid {pid}, `{cmd}`) runs with another reader configuration and owns "
            f"/run/pcscd; stop it (`kill {pid}`) so cardswitch can start its own")
    if not ours:
        _start(state, conf_dir)
    wanted = {r.name for r in readers()}
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if wanted <= set(visible_readers()):
            return readers()
        time.sleep(0.1)
    raise PcscUnavailable(f"pcscd started but did not list the readers {sorted(wanted)} within "
                          f"{START_TIMEOUT_S:.0f} s; see {state / 'pcscd.log'}")


def _start(state: Path, conf_dir: Path) -> None:
    run_dir = Path("/run/pcscd")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise PcscUnavailable(f"pcscd needs to create {run_dir}; run as root or create it "
                              "writable for this user") from None
    pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
    with open(state / "pcscd.log", "ab") as out:
        process = subprocess.Popen([pcscd, "--foreground", "--config", str(conf_dir)],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    (state / "pcscd.pid").write_text(str(process.pid))
    log.info("started pcscd (pid %d) with readers from %s", process.pid, conf_dir)


def stop_daemon(state: Path | None = None) -> bool:
    """Stops the pcscd cardswitch started (to test "pcscd down"); True if one was running."""
    conf_dir = (state or STATE_DIR) / "reader.conf.d"
    stopped = False
    for pid, cmd in _running_pcscd():
        if str(conf_dir) in cmd:
            os.kill(pid, signal.SIGTERM)
            stopped = True
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)
    return stopped


class PcscLink:
    """A terminal's connection to the card in one reader: APDUs over ``SCardTransmit``.

    Handles the T=0 status words a terminal must follow up (61xx: GET RESPONSE, 6Cxx: resend
    with the right Le). A missing card, a removed card or a stopped pcscd raise
    :class:`CardRemoved` or :class:`PcscUnavailable` with the reader's name.
    """

    def __init__(self, reader_name: str, wait_s: float = 3.0) -> None:
        """Connects to the card in ``reader_name``, waiting up to ``wait_s`` for one to arrive
        (pcscd notices a card some hundred milliseconds after it is inserted)."""
        from smartcard import scard

        self._scard: Any = scard
        self.reader_name = reader_name
        result, self._context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if result != scard.SCARD_S_SUCCESS:
            raise PcscUnavailable(f"cannot reach pcscd: {scard.SCardGetErrorMessage(result)} "
                                  "(is it running? `cardswitch card readers` starts it)")
        deadline = time.monotonic() + wait_s
        while True:
            result, self._card, self._protocol = scard.SCardConnect(
                self._context, reader_name, scard.SCARD_SHARE_SHARED,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
            if result == scard.SCARD_S_SUCCESS:
                break
            if result in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED):
                scard.SCardReleaseContext(self._context)
                raise PcscUnavailable(f"reader {reader_name!r}: pcscd is not running "
                                      f"({scard.SCardGetErrorMessage(result).strip()})")
            if result == scard.SCARD_E_UNKNOWN_READER:
                scard.SCardReleaseContext(self._context)
                raise PcscUnavailable(f"no reader named {reader_name!r}; pcscd has: "
                                      f"{', '.join(visible_readers()) or 'none'}")
            if time.monotonic() >= deadline:
                scard.SCardReleaseContext(self._context)
                raise CardRemoved(f"reader {reader_name!r}: no card "
                                  f"({scard.SCardGetErrorMessage(result).strip()})")
            time.sleep(0.02)
        self._pci = (scard.SCARD_PCI_T0 if self._protocol == scard.SCARD_PROTOCOL_T0
                     else scard.SCARD_PCI_T1)
        self.apdus = 0

    def atr(self) -> bytes:
        scard = self._scard
        result, _reader, _state, _protocol, atr = scard.SCardStatus(self._card)
        if result != scard.SCARD_S_SUCCESS:
            raise CardRemoved(f"reader {self.reader_name!r}: {scard.SCardGetErrorMessage(result)}")
        return bytes(atr)

    def _raw(self, apdu: bytes) -> bytes:
        scard = self._scard
        result, response = scard.SCardTransmit(self._card, self._pci, list(apdu))
        if result != scard.SCARD_S_SUCCESS:
            message = scard.SCardGetErrorMessage(result).strip()
            if result in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED):
                raise PcscUnavailable(f"reader {self.reader_name!r}: pcscd stopped ({message})")
            raise CardRemoved(f"reader {self.reader_name!r}: {message}")
        self.apdus += 1
        return bytes(response)

    def transmit(self, apdu: bytes) -> bytes:
        """Sends one command APDU; returns response data || SW1 SW2."""
        response = self._raw(apdu)
        if len(response) >= 2 and response[-2] == 0x6C and len(apdu) >= 5:
            response = self._raw(apdu[:-1] + response[-1:] if len(apdu) > 5
                                 else apdu[:4] + response[-1:])
        data = b""
        while len(response) >= 2 and response[-2] == 0x61:
            data += response[:-2]
            response = self._raw(bytes([apdu[0] & 0x03, 0xC0, 0, 0, response[-1]]))
        return data + response

    def close(self) -> None:
        scard = self._scard
        scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(self._context)

    def __enter__(self) -> PcscLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
