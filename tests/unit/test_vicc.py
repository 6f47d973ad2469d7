"""The virtual card's side of vpcd, against a fake vpcd in the test: the test listens where
pcscd's driver would, and speaks its protocol (2-byte length, then a control byte or an APDU)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardswitch import emv as scheme
from hsm_sim.algorithms.emv import icc_master_key_a
from terminals.cards import CardProfile, CardSecrets, EmvCard, VirtualCardSocket
from terminals.cards.vicc import frame

PAN = "4761739001010010"
IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
POWER_OFF, POWER_ON, RESET, GET_ATR = b"\x00", b"\x01", b"\x02", b"\x04"
SELECT_VISA = bytes.fromhex("00A4040007A000000003101000")


def make_card(tmp_path: Path) -> EmvCard:
    profile = CardProfile("visa", PAN, "01", "301231", "240101", "201", "TEST/CARD", "0840",
                          "0840")
    key = icc_master_key_a(IMK, PAN, "01")
    return EmvCard(profile, CardSecrets(key, key, key, "1234"), tmp_path / "card.state.json",
                   "contact")


class FakeVpcd:
    """The reader side: accepts the card's connection and exchanges vpcd messages."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.listener.settimeout(5)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(5)

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(frame(payload))

    def receive(self) -> bytes:
        size = int.from_bytes(self._exactly(2), "big")
        return self._exactly(size)

    def exchange(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.receive()

    def _exactly(self, size: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                raise EOFError("the card closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    reader = FakeVpcd()
    yield reader
    reader.close()


def test_card_answers_power_on_atr_and_apdus_like_a_vpcd_card(tmp_path: Path,
                                                               vpcd: FakeVpcd) -> None:
    card = make_card(tmp_path)
    with VirtualCardSocket(card, vpcd.port) as vicc:
        vpcd.accept()
        vpcd.send(POWER_ON)

        assert vpcd.exchange(GET_ATR) == card.atr()
        answer = vpcd.exchange(SELECT_VISA)
        assert answer[-2:] == b"\x90\x00" and answer[0] == 0x6F
        assert vpcd.exchange(bytes.fromhex("80CA9F3600")) == bytes.fromhex("9F360200009000")

        # the card counts an APDU after its answer is on the wire: give its thread a moment
        deadline = time.monotonic() + 2
        while vicc.apdu_count < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert vicc.apdu_count == 2
        assert len(vicc.apdu_seconds) == 2 and all(s >= 0 for s in vicc.apdu_seconds)


def test_reset_ends_the_transaction_in_progress(tmp_path: Path, vpcd: FakeVpcd) -> None:
    with VirtualCardSocket(make_card(tmp_path), vpcd.port):
        vpcd.accept()
        vpcd.send(POWER_ON)
        vpcd.exchange(SELECT_VISA)

        vpcd.send(RESET)

        assert vpcd.exchange(bytes.fromhex("80A8000002830000"))[-2:] == b"\x69\x85"


def test_remove_closes_the_connection_so_the_reader_sees_the_card_go(tmp_path: Path,
                                                                      vpcd: FakeVpcd) -> None:
    vicc = VirtualCardSocket(make_card(tmp_path), vpcd.port)
    vicc.insert()
    vpcd.accept()
    assert vpcd.exchange(GET_ATR)

    vicc.remove()

    assert not vicc.inserted
    with pytest.raises(EOFError):
        vpcd.receive()


def test_reader_closing_ends_the_card_thread(tmp_path: Path, vpcd: FakeVpcd) -> None:
    vicc = VirtualCardSocket(make_card(tmp_path), vpcd.port)
    vicc.insert()
    vpcd.accept()
    vpcd.send(POWER_ON)
    assert vpcd.conn is not None

    vpcd.conn.close()
    vpcd.conn = None
    deadline = time.monotonic() + 5
    while vicc.inserted and time.monotonic() < deadline:
        time.sleep(0.01)

    assert not vicc.inserted
    vicc.remove()


def test_insert_retries_then_names_the_port_it_could_not_reach(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free once closed: nothing listens there

    vicc = VirtualCardSocket(make_card(tmp_path), port, connect_timeout=0.3)

    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        vicc.insert()


def test_debug_log_names_the_command_and_status_word_never_the_data(
        tmp_path: Path, vpcd: FakeVpcd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="terminals.cards.vicc")
    with VirtualCardSocket(make_card(tmp_path), vpcd.port):
        vpcd.accept()
        vpcd.send(POWER_ON)
        vpcd.exchange(SELECT_VISA)
        vpcd.exchange(bytes.fromhex("002000800826987654FFFFFFFF"))

    assert "SELECT -> 9000" in caplog.text
    assert "VERIFY -> 63C2" in caplog.text
    assert "987654" not in caplog.text
    assert scheme.AIDS["visa"].hex().upper() not in caplog.text.upper()


def test_frames_are_a_two_byte_length_then_the_payload() -> None:
    assert frame(bytes(300))[:2] == b"\x01\x2c"
    assert frame(b"") == b"\x00\x00"
