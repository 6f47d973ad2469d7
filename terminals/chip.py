"""Chip and contactless transactions end to end: a card in a PC/SC reader, the kernel, the switch.

The EMV kernel (:mod:`terminals.emv.kernel`) is synchronous, as PC/SC is: it runs in a worker
thread, talks to the card through :class:`terminals.pcsc.PcscLink`, and reaches the switch
through :class:`SwitchHost`, which hands each online request to the terminal's event loop and
waits for the answer. The card's identity travels beside DE 55 in the same TLV (5A, 57, 5F24,
5F34); the switch takes it out again for DE 2, 35 and 23.

A virtual card (``$CARDSWITCH_VAR/cards/<account id>.card.json``) is inserted into its reader
for one transaction and taken out after it, as a cardholder would.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import grpc

from cardswitch import currency as currencies
from cardswitch import tlv
from cardswitch.v1 import acquiring_pb2, common_pb2
from terminals import pcsc
from terminals.cards import issuance
from terminals.cards.applet import EmvCard
from terminals.cards.vicc import VirtualCardSocket
from terminals.emv import config as emv_config
from terminals.emv import pki
from terminals.emv.config import TerminalConfig
from terminals.emv.kernel import CardLink, Kernel, KernelResult, OnlineHost
from terminals.emv.online import OnlineRequest, OnlineResponse
from terminals.pinpad import PinPad
from terminals.pos import KeyRef

Cvm = Literal["online_pin", "offline_pin", "any"]
_ENTRY = {"chip": common_pb2.ENTRY_MODE_CHIP, "contactless": common_pb2.ENTRY_MODE_CONTACTLESS}
#: Terminal capabilities (9F33) by the cardholder verification a transaction should use.
CAPABILITIES: dict[Cvm, bytes] = {
    "any": bytes.fromhex("E0E8C0"),
    "online_pin": bytes.fromhex("E068C0"),   # online PIN, signature, no CVM; no offline PIN
    "offline_pin": bytes.fromhex("E0A8C0"),  # offline plaintext PIN, signature, no CVM
}


def card_tlv(request: OnlineRequest) -> bytes:
    """The card's identity as the kernel read it, for the switch beside DE 55."""
    pan = request.pan + ("F" if len(request.pan) % 2 else "")
    items = [(0x5A, bytes.fromhex(pan))]
    if request.track2:
        track = request.track2.replace("=", "D")
        items.append((0x57, bytes.fromhex(track + ("F" if len(track) % 2 else ""))))
    if request.expiry_yymm:
        yymm = request.expiry_yymm
        day = calendar.monthrange(2000 + int(yymm[:2]), int(yymm[2:]))[1]
        items.append((0x5F24, bytes.fromhex(f"{yymm}{day:02d}")))
    if request.psn:
        items.append((0x5F34, bytes.fromhex(request.psn)))
    return tlv.encode_all(items)


@dataclass
class Cardholder:
    """The PINs a cardholder types: the same one offline and online unless told otherwise."""

    pin: str | None
    pinpad: PinPad | None

    def offline_pin(self) -> str | None:
        return self.pin

    def online_pin(self, pan: str) -> Any | None:
        if self.pin is None or self.pinpad is None:
            return None
        return self.pinpad.encrypt_pin(self.pin, pan)


class SwitchHost:
    """The kernel's :class:`~terminals.emv.online.OnlineHost`: the switch's acquiring API."""

    def __init__(self, pos: Any, loop: asyncio.AbstractEventLoop, currency: str) -> None:
        self.pos = pos
        self.loop = loop
        self.currency = currency
        self.authorize_key: acquiring_pb2.RequestKey | None = None

    def _wait(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(
            timeout=self.pos.timeout_s + 5)

    def authorize(self, request: OnlineRequest) -> OnlineResponse:
        return self._wait(self._authorize(request))  # type: ignore[no-any-return]

    async def _authorize(self, request: OnlineRequest) -> OnlineResponse:
        self.authorize_key = self.pos.new_key()
        message = acquiring_pb2.AuthorizeRequest(
            key=self.authorize_key, type=acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE,
            amount=common_pb2.Money(amount_minor=request.amount_minor, currency=self.currency),
            card=common_pb2.CardInput(emv=common_pb2.EmvData(
                tlv=card_tlv(request) + request.icc_data)),
            entry_mode=_ENTRY[request.entry_mode], mcc=self.pos.mcc)
        if request.pin is not None:
            message.pin_block.CopyFrom(request.pin.to_proto())
        try:
            response = await self.pos.stub.Authorize(message, timeout=self.pos.timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # it may have been approved
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await self.pos.timeout_reversal(_key_ref(self.authorize_key))
            return OnlineResponse(approved=False, response_code="",
                                  unable_to_go_online=True)
        return OnlineResponse(approved=response.result.approved,
                              response_code=response.result.response_code,
                              issuer_emv_data=bytes(response.issuer_emv_data),
                              transaction_id=response.transaction_id)

    def reverse(self, request: OnlineRequest, response: OnlineResponse, reason: str) -> None:
        self._wait(self._reverse(response))

    async def _reverse(self, response: OnlineResponse) -> None:
        message = acquiring_pb2.ReverseRequest(
            key=self.pos.new_key(), reason=acquiring_pb2.REVERSAL_REASON_CHIP_DECLINED,
            original_transaction_id=response.transaction_id)
        await self.pos.stub.Reverse(message, timeout=self.pos.timeout_s)


def response_code(result: KernelResult) -> str:
    """The issuer's response code when the card went online, else the terminal's own (Book 4
    A6: Y1/Z1 offline, Y3/Z3 unable to go online), or ``--`` when nothing was decided."""
    if result.online is not None and not result.online.unable_to_go_online:
        return result.online.response_code
    return {"approved_offline": "Y1", "declined_offline": "Z1"}.get(result.outcome, "--")


def _key_ref(key: acquiring_pb2.RequestKey) -> KeyRef:
    return KeyRef(key.stan, key.local_date_time)


def terminal_config(pos: Any, currency: str, *, cvm: Cvm = "any",
                    var: Path | None = None) -> TerminalConfig:
    """The kernel's configuration for ``pos``: its ids, currency, and the test PKI's CA keys."""
    cur = currencies.by_alpha(currency)
    numeric = cur.numeric if cur else "840"
    return replace(TerminalConfig(), terminal_id=pos.terminal_id,
                   merchant_id=f"{pos.merchant_id:<15}"[:15], country_code="840",
                   currency_code=numeric[-3:], capabilities=CAPABILITIES[cvm],
                   ca_keys=emv_config.ca_keys_from(pki.TestPki(issuance.pki_dir(var))),
                   unattended=True)


@contextlib.contextmanager
def inserted(account_id: str, interface: pcsc.Interface, slot: int = 0,
             var: Path | None = None) -> Iterator[tuple[VirtualCardSocket, pcsc.Reader]]:
    """The account's virtual card in a reader of ``interface`` for the block's duration."""
    reader = pcsc.reader(interface, slot)
    card = EmvCard.load(issuance.card_path(account_id, var), issuance.read_kek(var), interface)
    pcsc.wait_for_card(reader.name, present=False)
    with VirtualCardSocket(card, reader.port) as socket:
        pcsc.wait_for_card(reader.name, present=True)
        yield socket, reader
    pcsc.wait_for_card(reader.name, present=False)


async def run(pos: Any, account_id: str, amount_minor: int, currency: str, *,
              contactless: bool = False, pin: str | None = None, cvm: Cvm = "any",
              slot: int = 0, var: Path | None = None,
              wrap_host: Callable[[SwitchHost], OnlineHost] = lambda host: host,
              wrap_link: Callable[[pcsc.PcscLink, VirtualCardSocket], CardLink] = (
                  lambda link, _socket: link),
              ) -> KernelResult:
    """One chip (or contactless) purchase with the account's card, through pcscd.

    ``var`` is the runtime directory holding the cards and the test PKI (default
    ``$CARDSWITCH_VAR``). ``wrap_host`` and ``wrap_link`` may stand between the kernel and the
    switch or the card (fault tests tamper with cryptograms or pull the card there)."""
    interface: pcsc.Interface = "contactless" if contactless else "contact"
    host = wrap_host(SwitchHost(pos, asyncio.get_running_loop(), currency))
    config = terminal_config(pos, currency, cvm=cvm, var=var)
    cardholder = Cardholder(pin, pos.pinpad_if_provisioned())

    def transact() -> KernelResult:
        with inserted(account_id, interface, slot, var) as (socket, reader), \
                pcsc.PcscLink(reader.name) as link:
            return Kernel(config, wrap_link(link, socket), cardholder, host).run(
                amount_minor, contactless=contactless)

    return await asyncio.to_thread(transact)
