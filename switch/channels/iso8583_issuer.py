"""The issuer channel: ISO 8583:1987 over one persistent TCP connection per link.

Many requests are in flight on the connection at once; answers are matched to requests by
(response MTI, STAN, RRN), so they may come back in any order. The link signs on (0800/001)
when it connects and carries financial traffic only once the issuer accepted the sign-on; it
reconnects with backoff when it drops, and echoes (0800/301) when idle. A signed-off link
(0800/002, from the admin API) carries no financial traffic until it signs on again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from typing import Any

from prometheus_client import Counter, Gauge

from cardswitch import currency, iso8583, responses
from cardswitch.iso8583 import Message
from switch.context import (
    ChannelResult,
    LinkBroken,
    LinkConfig,
    LinkDown,
    LinkTimeout,
    TxnContext,
)

log = logging.getLogger(__name__)

LINK_UP = Gauge("cardswitch_issuer_link_up", "1 when the issuer link is connected", ["link"])
MESSAGES = Counter("cardswitch_issuer_messages_total", "ISO 8583 messages", ["link", "mti", "dir"])
LATE = Counter("cardswitch_issuer_late_responses_total", "answers after their timeout", ["link"])

ENTRY_MODES = {"magstripe": "021", "manual": "012", "chip": "051", "contactless": "071",
               "wallet": "101", "ecommerce": "812"}
BALANCE_TYPES = {iso8583.AMOUNT_LEDGER: "ledger", iso8583.AMOUNT_AVAILABLE: "available"}
ECHO_IDLE_SECONDS = 30.0

Key = tuple[str, str, str]


def _transmission_dt(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%m%d%H%M%S")


class LinkClient:
    """One multiplexed connection to an issuer host."""

    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        self.dialect = iso8583.Dialect.from_proto(config.dialect)
        self._pending: dict[Key, asyncio.Future[Message]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stan = itertools.count(1)
        self._last_traffic = 0.0
        self._signed_on = asyncio.Event()
        self.state = "CONNECTING"
        #: False after an explicit sign-off: the link stays connected but carries no requests.
        self.wanted = True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"link-{self.config.name}")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop(LinkDown("link closed"))

    def in_flight(self) -> int:
        return len(self._pending)

    async def wait_up(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def signed_on(self) -> bool:
        return self._signed_on.is_set()

    def public_state(self) -> str:
        """UP only when connected and signed on; CONNECTING while connected and not yet."""
        if self.state != "UP":
            return self.state
        return "UP" if self.signed_on else "CONNECTING"

    async def send(self, message: Message, timeout: float) -> Message:
        """Sends a request and waits up to ``timeout`` s for its answer."""
        if message["t"] != "0800" and not self._signed_on.is_set():
            if self.wanted and self._connected.is_set():
                # just connected: the sign-on answer is on its way
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._signed_on.wait(), min(0.5, timeout / 2))
            if not self._signed_on.is_set():
                state = "signed off" if not self.wanted else self.public_state().lower()
                raise LinkDown(f"link {self.config.name} is {state}")
        if not self._connected.is_set() or self._writer is None:
            raise LinkDown(f"link {self.config.name} is {self.state.lower()}")
        key = (iso8583.RESPONSE_MTI[message["t"]], message.get("11", ""), message.get("37", ""))
        if key in self._pending:
            raise LinkBroken(f"link {self.config.name}: request {key} already in flight")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            data = self.dialect.frame(self.dialect.encode(message))
            async with self._write_lock:
                self._writer.write(data)
                await self._writer.drain()
            MESSAGES.labels(self.config.name, message["t"], "out").inc()
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise LinkTimeout(f"link {self.config.name}: no answer within "
                              f"{timeout * 1000:.0f} ms") from exc
        except (ConnectionError, OSError) as exc:
            raise LinkBroken(f"link {self.config.name}: {type(exc).__name__}") from exc
        finally:
            self._pending.pop(key, None)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.config.host, self.config.port)
            except OSError as exc:
                self._set_state("DOWN")
                log.warning("link %s: connect failed (%s); retry in %.1fs",
                            self.config.name, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            self._writer = writer
            self._connected.set()
            self._set_state("UP")
            echo = asyncio.create_task(self._sign_on_and_echo())
            try:
                await self._read(reader)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                log.warning("link %s: connection lost", self.config.name)
            except iso8583.MessageError as exc:
                log.error("link %s: unreadable message from issuer (%s); reconnecting",
                          self.config.name, exc)
            finally:
                echo.cancel()
                self._signed_on.clear()
                self._connected.clear()
                self._writer = None
                self._set_state("DOWN")
                writer.close()
                self._drop(LinkBroken(f"link {self.config.name}: connection lost"))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self.dialect.read_frame(reader)
            message = self.dialect.decode(frame.payload)
            self._last_traffic = loop.time()
            MESSAGES.labels(self.config.name, message.get("t", "?"), "in").inc()
            key = (message.get("t", ""), message.get("11", ""), message.get("37", ""))
            future = self._pending.get(key)
            if future is None or future.done():
                LATE.labels(self.config.name).inc()
                log.warning("link %s: answer %s STAN %s RRN %s matches no waiting request "
                            "(late after timeout: its reversal is already queued)",
                            self.config.name, key[0], key[1], key[2])
                continue
            future.set_result(message)

    async def _sign_on_and_echo(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.2
        while self.wanted and not self._signed_on.is_set():
            with contextlib.suppress(Exception):
                await self.sign_on(5.0)
            if not self._signed_on.is_set():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        while True:
            await asyncio.sleep(ECHO_IDLE_SECONDS / 3)
            if loop.time() - self._last_traffic > ECHO_IDLE_SECONDS:
                with contextlib.suppress(Exception):
                    await self.network(iso8583.NMI_ECHO, 5.0)

    async def sign_on(self, timeout: float) -> bool:
        self.wanted = True
        ok = await self.network(iso8583.NMI_SIGN_ON, timeout)
        if ok:
            self._signed_on.set()
            log.info("link %s: signed on", self.config.name)
        return ok

    async def sign_off(self, timeout: float) -> bool:
        self.wanted = False
        self._signed_on.clear()
        return await self.network(iso8583.NMI_SIGN_OFF, timeout)

    async def network(self, code: str, timeout: float,
                      extra: dict[str, str] | None = None) -> bool:
        answer = await self.network_message(code, timeout, extra)
        return answer.get("39") == responses.APPROVED

    async def network_message(self, code: str, timeout: float,
                              extra: dict[str, str] | None = None) -> Message:
        """Sends an 0800 with network management code ``code`` (DE 70); returns the 0810."""
        stan = f"{next(self._stan) % 1_000_000:06d}"
        message: Message = {"t": "0800", "7": _transmission_dt(), "11": stan, "70": code,
                            **(extra or {})}
        return await self.send(message, timeout)

    def _drop(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)

    def _set_state(self, state: str) -> None:
        self.state = state
        LINK_UP.labels(self.config.name).set(1 if state == "UP" else 0)


class IssuerChannel:
    """The :class:`switch.channels.base.Channel` for an ISO 8583 issuer link."""

    def __init__(self, config: LinkConfig) -> None:
        self.name = config.name
        self.config = config
        self.client = LinkClient(config)
        self.client.start()

    def state(self) -> tuple[str, int]:
        return self.client.public_state(), self.client.in_flight()

    @property
    def signed_on(self) -> bool:
        return self.client.signed_on

    async def change_key(self, key_block: str, kcv: str, timeout: float) -> tuple[str, str]:
        """Dynamic zone PIN key exchange (0800/161): the new ZPK under the ZMK, with its check
        value; returns the issuer's (DE 39, check value it computed)."""
        answer = await self.client.network_message(
            iso8583.NMI_KEY_CHANGE, timeout,
            {"32": self.config.acquirer_id,
             "48": iso8583.encode_de48({"KB": key_block, "KC": kcv})})
        echoed = iso8583.decode_de48(answer.get("48", "")).get("KC", "")
        return answer.get("39", ""), echoed

    async def advise(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        """0120/0220 (or the repeats 0121/0221): the issuer is told about a stood-in approval."""
        original = ctx.original or {}
        preauth = original.get("type") == "preauth"
        mti = ("0120" if preauth else "0220")
        if ctx.repeat:
            mti = mti[:3] + "1"
        msg = self._financial(ctx, mti, iso8583.PROC_PURCHASE,
                              iso8583.POS_PREAUTH if preauth else iso8583.POS_NORMAL)
        msg["11"] = original["stan"]
        msg["37"] = original["rrn"]
        msg["38"] = original.get("approval_code") or "000000"
        msg["39"] = original.get("response_code") or responses.APPROVED
        return _result(await self.client.send(msg, timeout))

    async def close(self) -> None:
        await self.client.close()

    async def echo(self, timeout: float) -> bool:
        return await self.client.network(iso8583.NMI_ECHO, timeout)

    async def sign_on(self, timeout: float) -> bool:
        return await self.client.sign_on(timeout)

    async def sign_off(self, timeout: float) -> bool:
        return await self.client.sign_off(timeout)

    async def authorize(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        mti = "0100" if ctx.kind == "preauth" else "0200"
        msg = self._financial(ctx, mti, iso8583.PROC_PURCHASE,
                              iso8583.POS_PREAUTH if ctx.kind == "preauth" else iso8583.POS_NORMAL)
        return _result(await self.client.send(msg, timeout))

    async def balance(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        msg = self._financial(ctx, "0100", iso8583.PROC_BALANCE, iso8583.POS_NORMAL)
        return _result(await self.client.send(msg, timeout))

    async def refund(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        msg = self._financial(ctx, "0200", iso8583.PROC_REFUND, iso8583.POS_NORMAL)
        return _result(await self.client.send(msg, timeout))

    async def capture(self, ctx: TxnContext, timeout: float) -> ChannelResult:
        original = ctx.original or {}
        msg = self._financial(ctx, "0220", iso8583.PROC_PURCHASE, iso8583.POS_PREAUTH)
        msg["37"] = original["rrn"]
        msg["38"] = original.get("approval_code") or "000000"
        msg["90"] = self._original_data(original, "0100")
        return _result(await self.client.send(msg, timeout))

    async def reverse(self, ctx: TxnContext, timeout: float, *, advice: bool) -> ChannelResult:
        """0400 (void) or 0420 (advice, e.g. after a timeout) for ``ctx.original``."""
        original = ctx.original or {}
        orig_mti = {"preauth": "0100", "balance": "0100"}.get(original["type"], "0200")
        proc = iso8583.PROC_REFUND if original["type"] == "refund" else iso8583.PROC_PURCHASE
        mti = ("0421" if ctx.repeat else "0420") if advice else "0400"
        msg = self._financial(ctx, mti, proc, iso8583.POS_NORMAL)
        msg["4"] = f"{original['amount_minor']:012d}"
        msg["11"] = original["stan"]
        msg["37"] = original["rrn"]
        msg["90"] = self._original_data(original, orig_mti)
        msg["95"] = "0" * 42
        return _result(await self.client.send(msg, timeout))

    def _original_data(self, original: dict[str, Any], mti: str) -> str:
        return (f"{mti}{original['stan']}{original['transmission_dt']}"
                f"{self.config.acquirer_id:0>11}{'0' * 11}")

    def _financial(self, ctx: TxnContext, mti: str, proc: str, pos_condition: str) -> Message:
        term = ctx.terminal
        msg: Message = {
            "t": mti,
            "2": ctx.pan,
            "3": proc,
            "4": f"{ctx.amount_minor:012d}",
            "7": ctx.transmission_dt,
            "11": ctx.stan,
            "12": ctx.local_date_time[6:12],
            "13": ctx.local_date_time[2:6],
            "18": ctx.mcc,
            "22": ENTRY_MODES.get(ctx.entry_mode, "000")[:2] + ("1" if ctx.zone_pin_block else "2"),
            "25": pos_condition,
            "32": self.config.acquirer_id,
            "37": ctx.rrn,
            "41": term.terminal_id,
            "42": f"{term.merchant_id:<15}",
            "43": f"{term.name_location:<40}"[:40],
            "49": ctx.currency_numeric,
        }
        if ctx.expiry_yymm and not ctx.track2:
            msg["14"] = ctx.expiry_yymm
        if ctx.track2:
            msg["35"] = ctx.track2
        if ctx.cvv2:
            msg["48"] = iso8583.encode_de48({"C2": ctx.cvv2})
        if ctx.zone_pin_block:
            msg["52"] = ctx.zone_pin_block.hex().upper()
        if ctx.emv_tlv:
            msg["55"] = ctx.emv_tlv.hex().upper()
        if ctx.psn:
            msg["23"] = ctx.psn.zfill(3)
        return msg


def _result(answer: Message) -> ChannelResult:
    code = answer.get("39", "")
    if len(code) != 2:
        raise LinkBroken("issuer answer has no response code (DE 39)")
    balances = []
    if answer.get("54"):
        for amount_type, cur_n, amount in iso8583.decode_de54(answer["54"]):
            cur = currency.by_numeric(cur_n)
            if amount_type in BALANCE_TYPES and cur:
                balances.append((BALANCE_TYPES[amount_type], cur.alpha, amount))
    return ChannelResult(
        response_code=code,
        approval_code=answer.get("38", "").strip(),
        reason=answer.get("44", "").strip() or responses.reason(code),
        balances=balances,
        issuer_emv_data=bytes.fromhex(answer["55"]) if answer.get("55") else b"",
    )
