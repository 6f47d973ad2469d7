"""Chip and contactless end to end: virtual cards in real pcscd readers, the kernel, the switch,
the issuer and the HSM, each test asserting the card's state, the journal and the issuer balance.

The demo's chip rows (tests/e2e/test_spine.py) cover the happy paths on both databases; this
module takes the faults: tampered cryptograms both ways, a replayed ATC, the PIN try limit, a
blocked application, a card pulled mid-transaction, and pcscd missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from cardswitch import bootstrap, tlv
from cardswitch.demo import TERMINAL
from cardswitch.launcher import Cluster
from cardswitch.v1 import acquiring_pb2, common_pb2, issuer_pb2, issuer_pb2_grpc
from terminals import chip, pcsc
from terminals.cards import issuance
from terminals.cards.state import state_path
from terminals.cards.vicc import VirtualCardSocket
from terminals.emv.kernel import KernelResult
from terminals.emv.online import OnlineRequest, OnlineResponse
from terminals.pinpad import provision
from terminals.pos import Pos, StanCounter, open_channel

pytestmark = pytest.mark.e2e

PINS = {"acct-visa-ok": "1234", "acct-mc-ok": "9876", "acct-mc-limit": "1357",
        "acct-upi-ok": "8642", "acct-visa-low": "2468", "acct-visa-blocked": "6666"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    try:
        pcsc.ensure_daemon()
    except pcsc.PcscUnavailable as exc:
        pytest.fail(f"PC/SC is required for the chip tests: {exc}")
    var = tmp_path_factory.mktemp("var-chip")
    cluster = Cluster(var=var)
    loop = asyncio.new_event_loop()
    try:
        async def setup() -> Pos:  # the aio channel belongs to the loop that makes it
            await bootstrap.start_all(cluster, [TERMINAL])
            channel = open_channel(cluster.switch, insecure=cluster.insecure,
                                   certs_dir=var / "certs")
            pinpad = await provision(channel, TERMINAL[0], directory=var / "terminals")
            return Pos(channel, *TERMINAL, pinpad=pinpad, owns_channel=True,
                       stan=StanCounter.for_terminal(TERMINAL[0], var / "terminals"))
        pos = loop.run_until_complete(setup())
        yield {"cluster": cluster, "loop": loop, "pos": pos, "var": var}
        loop.run_until_complete(pos.close())
    finally:
        cluster.stop_all()
        loop.close()


def _balance(world: dict[str, Any], account_id: str) -> int:
    with grpc.insecure_channel(world["cluster"].issuer_control) as channel:
        account = issuer_pb2_grpc.IssuerSimServiceStub(channel).GetAccount(
            issuer_pb2.GetAccountRequest(account_id=account_id), timeout=5)
    return next(b.amount.amount_minor for b in account.balances
                if b.type == common_pb2.BALANCE_TYPE_LEDGER)


def _card_state(world: dict[str, Any], account_id: str) -> dict[str, Any]:
    path = state_path(issuance.card_path(account_id, world["var"]))
    return json.loads(path.read_text()) if path.exists() else {}  # type: ignore[no-any-return]


def _status(world: dict[str, Any], transaction_id: str) -> str:
    async def get() -> str:
        return str((await world["pos"].get_transaction(transaction_id)).status)
    return str(world["loop"].run_until_complete(get()))


def _eventually_status(world: dict[str, Any], transaction_id: str, wanted: str) -> str:
    deadline = time.monotonic() + 15
    status = _status(world, transaction_id)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        status = _status(world, transaction_id)
    return status


class Tampering(chip.SwitchHost):
    """The switch host with a hook on what goes out and what comes back."""

    def __init__(self, host: chip.SwitchHost,
                 outgoing: Callable[[OnlineRequest], OnlineRequest] = lambda r: r,
                 incoming: Callable[[OnlineResponse], OnlineResponse] = lambda r: r) -> None:
        super().__init__(host.pos, host.loop, host.currency)
        self.outgoing, self.incoming = outgoing, incoming
        self.sent: list[OnlineRequest] = []

    def authorize(self, request: OnlineRequest) -> OnlineResponse:
        request = self.outgoing(request)
        self.sent.append(request)
        return self.incoming(super().authorize(request))


def _flip(data: bytes, tag: int) -> bytes:
    """``data`` (TLV) with the last byte of ``tag``'s value inverted."""
    items = [(o.tag, o.value) for o in tlv.decode(data)]
    return tlv.encode_all((t, v[:-1] + bytes([v[-1] ^ 0xFF]) if t == tag else v)
                          for t, v in items)


def _transact(world: dict[str, Any], account_id: str, amount_minor: int, *,
              contactless: bool = False, pin: str | None = None, cvm: chip.Cvm = "any",
              host_hook: Callable[[chip.SwitchHost], chip.SwitchHost] = lambda h: h,
              link_hook: Callable[[Any, VirtualCardSocket], Any] = lambda link, _s: link,
              ) -> tuple[KernelResult, chip.SwitchHost]:
    """One purchase with the account's virtual card, through pcscd, with optional hooks."""
    hosts: list[chip.SwitchHost] = []

    def keep(host: chip.SwitchHost) -> chip.SwitchHost:
        hosts.append(host_hook(host))
        return hosts[-1]
    result = world["loop"].run_until_complete(chip.run(
        world["pos"], account_id, amount_minor, "USD", contactless=contactless, pin=pin,
        cvm=cvm, var=world["var"], wrap_host=keep, wrap_link=link_hook))
    return result, hosts[0]


def test_contact_approval_debits_the_account_and_counts_the_atc(world: dict[str, Any]) -> None:
    before, state = _balance(world, "acct-visa-ok"), _card_state(world, "acct-visa-ok")
    result, _host = _transact(world, "acct-visa-ok", 1111, pin="1234", cvm="online_pin")
    assert (result.outcome, result.online.response_code if result.online else None) == (
        "approved", "00")
    assert _balance(world, "acct-visa-ok") == before - 1111
    after = _card_state(world, "acct-visa-ok")
    assert after["atc"] == state.get("atc", 0) + 1
    assert after["last_online_atc"] == after["atc"]
    assert result.online is not None
    assert _status(world, result.online.transaction_id) == "approved"


def test_contactless_approval_under_the_cvm_limit_needs_no_pin(world: dict[str, Any]) -> None:
    before = _balance(world, "acct-mc-ok")
    result, host = _transact(world, "acct-mc-ok", 700, contactless=True)
    assert result.outcome == "approved"
    assert isinstance(host, chip.SwitchHost)
    assert _balance(world, "acct-mc-ok") == before - 700
    assert result.cvm_results.hex().upper().startswith("1F")  # no CVM
    assert result.online is not None
    assert _status(world, result.online.transaction_id) == "approved"


def test_tampered_arqc_is_declined_by_the_issuer_and_moves_nothing(
        world: dict[str, Any]) -> None:
    before = _balance(world, "acct-upi-ok")

    def tamper(host: chip.SwitchHost) -> chip.SwitchHost:
        return Tampering(host, outgoing=lambda r: replace(r, icc_data=_flip(r.icc_data,
                                                                            0x9F26)))
    result, _host = _transact(world, "acct-upi-ok", 900, pin="8642", host_hook=tamper)
    assert result.online is not None
    assert (result.outcome, result.online.response_code) == ("declined", "82")
    assert "ARQC" in result.reason or _status(world, result.online.transaction_id) == "declined"
    assert _balance(world, "acct-upi-ok") == before
    assert _card_state(world, "acct-upi-ok")["last_online_atc"] != \
        _card_state(world, "acct-upi-ok")["atc"]  # the card never heard a genuine issuer


def test_tampered_arpc_makes_the_card_decline_and_the_switch_reverse(
        world: dict[str, Any]) -> None:
    before = _balance(world, "acct-visa-ok")

    def tamper(host: chip.SwitchHost) -> chip.SwitchHost:
        return Tampering(host, incoming=lambda r: replace(
            r, issuer_emv_data=_flip(r.issuer_emv_data, 0x91)))
    result, _host = _transact(world, "acct-visa-ok", 1313, pin="1234", cvm="online_pin",
                              host_hook=tamper)
    assert result.outcome == "declined_by_card"
    assert result.reversed
    assert result.online is not None and result.online.response_code == "00"
    assert _eventually_status(world, result.online.transaction_id, "reversed") == "reversed"
    assert _balance(world, "acct-visa-ok") == before
    assert _card_state(world, "acct-visa-ok")["issuer_auth_failed"] is True


def test_a_replayed_cryptogram_is_declined_for_its_atc(world: dict[str, Any]) -> None:
    result, host = _transact(world, "acct-mc-ok", 450, contactless=True,
                             host_hook=lambda h: Tampering(h))
    assert result.outcome == "approved"
    assert isinstance(host, Tampering)
    before = _balance(world, "acct-mc-ok")
    replay = host.sent[-1]
    pos = world["pos"]

    async def send_again() -> Any:
        return await pos.stub.Authorize(acquiring_pb2.AuthorizeRequest(
            key=pos.new_key(), type=acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE,
            amount=common_pb2.Money(amount_minor=450, currency="USD"),
            card=common_pb2.CardInput(emv=common_pb2.EmvData(
                tlv=chip.card_tlv(replay) + replay.icc_data)),
            entry_mode=common_pb2.ENTRY_MODE_CONTACTLESS), timeout=10)
    answer = world["loop"].run_until_complete(send_again())
    assert (answer.result.response_code, answer.result.reason) == ("82", "ATC replayed")
    assert _balance(world, "acct-mc-ok") == before


def test_the_pin_try_limit_blocks_offline_pin_on_the_card(world: dict[str, Any]) -> None:
    result, _host = _transact(world, "acct-mc-limit", 800, pin="0000", cvm="offline_pin")
    state = _card_state(world, "acct-mc-limit")
    assert state["pin_try_counter"] == 0
    assert result.tvr[2] & 0x20, f"TVR {result.tvr.hex()} lacks 'PIN try limit exceeded'"
    again, _host = _transact(world, "acct-mc-limit", 800, pin="1357", cvm="offline_pin")
    assert again.tvr[2] & 0x20  # the right PIN cannot help any more: the card refuses VERIFY
    assert _card_state(world, "acct-mc-limit")["pin_try_counter"] == 0


def test_a_blocked_account_blocks_the_application_by_script(world: dict[str, Any]) -> None:
    before = _balance(world, "acct-visa-blocked")
    first, _host = _transact(world, "acct-visa-blocked", 500, pin="6666")
    assert first.online is not None
    assert (first.outcome, first.online.response_code) == ("declined", "62")
    assert _card_state(world, "acct-visa-blocked")["app_blocked"] is True
    second, host = _transact(world, "acct-visa-blocked", 500, pin="6666",
                             host_hook=lambda h: Tampering(h))
    assert (second.outcome, second.reason) == ("aborted", "no supported application")
    assert isinstance(host, Tampering) and host.sent == []
    assert _balance(world, "acct-visa-blocked") == before


def test_a_card_pulled_after_approval_is_reversed(world: dict[str, Any]) -> None:
    before = _balance(world, "acct-upi-ok")

    class PullsBeforeSecondAc:
        def __init__(self, link: Any, socket: VirtualCardSocket) -> None:
            self.link, self.socket, self.generate_acs = link, socket, 0

        def transmit(self, apdu: bytes) -> bytes:
            if apdu[:2] == bytes.fromhex("80AE"):
                self.generate_acs += 1
                if self.generate_acs == 2:
                    self.socket.remove()
                    with contextlib.suppress(pcsc.PcscUnavailable):
                        pcsc.wait_for_card(self.link.reader_name, present=False)
            return bytes(self.link.transmit(apdu))

    result, _host = _transact(world, "acct-upi-ok", 1700, pin="8642",
                              link_hook=lambda link, s: PullsBeforeSecondAc(link, s))
    assert result.outcome == "aborted"
    assert result.reversed
    assert result.online is not None and result.online.approved
    assert _eventually_status(world, result.online.transaction_id, "reversed") == "reversed"
    assert _balance(world, "acct-upi-ok") == before
    state = _card_state(world, "acct-upi-ok")
    # The card counted the transaction and knows it never finished (CVR "last online
    # transaction not completed" on its next cryptogram).
    assert state["online_pending"] is True and state["atc"] == state["last_arqc_atc"]


def test_no_reader_and_pcscd_down_give_clear_errors(world: dict[str, Any]) -> None:
    with pytest.raises(pcsc.PcscUnavailable, match="no reader named 'cardswitch nowhere'"):
        pcsc.PcscLink("cardswitch nowhere")
    assert pcsc.stop_daemon()
    try:
        with pytest.raises(pcsc.PcscUnavailable, match="pcscd"):
            pcsc.PcscLink(pcsc.reader("contact").name)
    finally:
        pcsc.ensure_daemon()
    assert {r.name for r in pcsc.readers()} <= set(pcsc.visible_readers())


def test_missing_pcsc_pieces_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pcsc, "DRIVER", tmp_path / "none.so")
    monkeypatch.setattr(pcsc, "DRIVER_VERSIONED", tmp_path / "none.so.0")
    with pytest.raises(pcsc.PcscUnavailable, match="vsmartcard-vpcd"):
        pcsc.ensure_daemon()
