"""The card's side of a vpcd reader slot: a virtual card ("vicc") that plugs an EmvCard into pcscd.

The vsmartcard ``vpcd`` driver makes each reader slot listen on a TCP port; a card is inserted
by connecting to it and removed by closing the connection. Every message either way is a 2-byte
big-endian length then the payload. From the reader, a 1-byte payload is a control: 00 power
off, 01 power on, 02 reset (none of them answered), 04 get ATR (answered with the ATR); a longer
payload is a command APDU, answered with the response APDU.

Latency (measured on the project's machines): each message goes out as ONE ``sendall`` of
length and payload, with ``TCP_NODELAY``, and ``TCP_QUICKACK`` is set again after every read
(Linux clears it); otherwise each APDU waits about 40 ms for a delayed ACK.

>>> frame(bytes.fromhex("9000")).hex()
'00029000'
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType

from terminals.cards.applet import EmvCard
from terminals.cards.commands import ins_name

log = logging.getLogger(__name__)

CONTROL_POWER_OFF, CONTROL_POWER_ON, CONTROL_RESET, CONTROL_ATR = 0x00, 0x01, 0x02, 0x04
CONNECT_TIMEOUT_S = 5.0
CONNECT_RETRY_S = 0.1
JOIN_TIMEOUT_S = 5.0
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def frame(payload: bytes) -> bytes:
    """One vpcd message: 2-byte big-endian length, then the payload."""
    return len(payload).to_bytes(2, "big") + payload


class VirtualCardSocket:
    """One EmvCard inserted in one vpcd reader slot, served from a daemon thread.

    ``apdu_count`` and ``apdu_seconds`` (per APDU, from the whole command read to the answer
    sent) are for benchmarks.
    """

    def __init__(self, card: EmvCard, port: int, host: str = "127.0.0.1",
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.card = card
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.apdu_count = 0
        self.apdu_seconds: list[float] = []
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def inserted(self) -> bool:
        """Whether the card is still connected to its reader slot."""
        return self._thread is not None and self._thread.is_alive()

    def insert(self) -> None:
        """Connect to the vpcd port (retrying while pcscd starts) and serve the reader."""
        if self._socket is not None:
            raise RuntimeError(f"vicc {self.host}:{self.port}: card already inserted")
        sock = self._connect()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,),
                                        name=f"vicc-{self.port}", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        """Close the connection (the reader sees the card go) and wait for the thread."""
        sock, thread = self._socket, self._thread
        self._socket = self._thread = None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
        except OSError:
            pass  # the reader already closed it
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
        sock.close()

    def __enter__(self) -> VirtualCardSocket:
        self.insert()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.remove()

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ConnectionError(
                        f"vpcd {self.host}:{self.port}: cannot connect within "
                        f"{self.connect_timeout:g} s ({exc.strerror or exc}); is pcscd running "
                        "with the vpcd driver?") from None
                time.sleep(CONNECT_RETRY_S)
                continue
            sock.settimeout(None)
            return sock

    def _serve(self, sock: socket.socket) -> None:
        try:
            while (message := _receive(sock)) is not None:
                if len(message) == 1:
                    self._control(sock, message[0])
                elif message:
                    self._answer(sock, message)
        except OSError:
            pass  # removed, or the reader went away: either way the card is out
        finally:
            self.card.power_off()
            log.debug("vicc %s:%d: card removed", self.host, self.port)

    def _control(self, sock: socket.socket, control: int) -> None:
        if control == CONTROL_ATR:
            sock.sendall(frame(self.card.atr()))
        elif control == CONTROL_POWER_ON:
            self.card.power_on()
        elif control == CONTROL_POWER_OFF:
            self.card.power_off()
        elif control == CONTROL_RESET:
            self.card.power_off()
            self.card.power_on()
        else:
            log.debug("vicc %s:%d: unknown control %02X ignored", self.host, self.port, control)

    def _answer(self, sock: socket.socket, apdu: bytes) -> None:
        started = time.perf_counter()
        response = self.card.process(apdu)
        sock.sendall(frame(response))
        self.apdu_seconds.append(time.perf_counter() - started)
        self.apdu_count += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s -> %s", ins_name(apdu), response[-2:].hex().upper())


def _receive(sock: socket.socket) -> bytes | None:
    """One vpcd message's payload, or None when the reader closed the connection."""
    header = _read_exactly(sock, 2)
    if header is None:
        return None
    return _read_exactly(sock, int.from_bytes(header, "big"))


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        if not chunk:
            return None
        data += chunk
    return data
