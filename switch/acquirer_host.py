"""Acquirer hosts and ATM drivers in: ISO 8583 on a TCP port of the switch, through one pipeline.

An acquirer host connects to the port of its :class:`AcquirerHostConfig` and sends requests in
its configured :class:`~cardswitch.iso8583.Dialect`. Each request becomes the protobuf request
of the gRPC API and goes through the same :class:`~switch.service.AcquiringServicer` method, so
validation, idempotency, routing, PIN translation and the journal are the gRPC path's. The
answer carries the outcome in DE 39 (response code), 38 (approval code), 37 (retrieval reference
number), 54 (balances), 55 (issuer chip data) and, on a decline, a short reason in DE 44.

=========================  ====================================  ===========================
request MTI (x1 repeats)   DE 3 digits 1-2                       servicer call, answer MTI
=========================  ====================================  ===========================
0100                       00                                    Authorize PRE_AUTHORIZATION,
                                                                 0110
0200                       00                                    Authorize PURCHASE, 0210
0100 / 0200                31                                    BalanceInquiry, 0110 / 0210
0200                       20                                    Refund (unreferenced), 0210
0400                       any                                   Reverse VOID, 0410
0420 / 0421                any                                   Reverse TIMEOUT, 0430
0800                       DE 70 001 sign-on, 002 sign-off,      answered here "00";
                           301 echo                              other DE 70 "12"
=========================  ====================================  ===========================

The request key (idempotency) is (DE 41, DE 11, DE 13 MMDD + DE 12 hhmmss in the year nearest
today): a retransmission gets the stored outcome. A reversal names its original by DE 41, the
original STAN in DE 90 (DE 11 when DE 90 is absent) and the original's local date and time,
which the reversal repeats in DE 12/13 (a reversal carries the original's DE 11/12/13/37, as
card schemes have it; DE 90 holds the original's DE 7, which the journal does not keep). Its
own key is a request id made of those three, so a 0420/0421 after a 0400 for the same original
gets the 0400's outcome; the (STAN, local time) the reversal's row stores is DE 11 and DE 7
(transmission date and time), which keeps it apart from the original's row.

Failures, each answered with DE 39 and a DE 44 that names the data elements at fault:

  03 invalid merchant      DE 41 is not a terminal of the switch, or DE 42 not its merchant
                           (not 58, which refuses a known terminal a kind of transaction)
  30 format error          a data element missing, malformed or refused by validation
  12 invalid transaction   an MTI or processing code not taken here; a state conflict
                           (e.g. voiding a captured pre-authorization)
  25 original not found    a void (0400) whose original the journal does not hold
  94 duplicate             AlreadyExists (a key reused for a different request is a "94"
                           outcome of the pipeline itself)
  91 out of time           the servicer gave up for want of time (DEADLINE_EXCEEDED)
  96 system malfunction    anything else (logged, PANs masked)

Bytes that are not a message of the dialect: when the MTI and STAN decoded before the bad
data element, the answer is "30" naming it; otherwise the connection is closed with a WARNING
and the server carries on with its other connections.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import grpc
from prometheus_client import Counter

from cardswitch import currency, errors, iso8583, responses, tlv
from cardswitch.cards import mask_pans_in
from cardswitch.iso8583 import Dialect, Message
from cardswitch.v1 import acquiring_pb2, admin_pb2, common_pb2
from switch.context import TerminalConfig
from switch.service import PIN_SOURCE_ZPK

log = logging.getLogger(__name__)

MESSAGES = Counter("cardswitch_acquirer_messages_total",
                   "ISO 8583 requests from acquirer hosts, by the response code answered "
                   "('closed': unreadable, the connection was dropped)", ["host", "mti", "code"])

#: What an acquirer host's request may take, end to end (it has no gRPC deadline to pass on).
DEFAULT_BUDGET_S = 25.0
#: How long close() lets requests already read finish.
DRAIN_SECONDS = 5.0
DE44_MAX = iso8583.FIELDS["44"].max_len
#: Prefix of a reversal's request id; the rest is terminal:original STAN:original local time.
REVERSAL_ID_PREFIX = "iso8583-reversal:"

#: (request MTI, DE 3 transaction type) -> what the servicer is asked.
KINDS = {("0100", "00"): "preauth", ("0200", "00"): "purchase", ("0100", "31"): "balance",
         ("0200", "31"): "balance", ("0200", "20"): "refund"}
REVERSALS: dict[str, acquiring_pb2.ReversalReason] = {"0400": acquiring_pb2.REVERSAL_REASON_VOID,
             "0420": acquiring_pb2.REVERSAL_REASON_TIMEOUT}
NETWORK_CODES = (iso8583.NMI_SIGN_ON, iso8583.NMI_SIGN_OFF, iso8583.NMI_ECHO)
#: DE 22 digits 1-2 (PAN entry mode), the mirror of the issuer channel's ENTRY_MODES.
ENTRY_MODES = {"01": common_pb2.ENTRY_MODE_MANUAL, "02": common_pb2.ENTRY_MODE_MAGSTRIPE,
               "05": common_pb2.ENTRY_MODE_CHIP, "07": common_pb2.ENTRY_MODE_CONTACTLESS,
               "10": common_pb2.ENTRY_MODE_WALLET, "81": common_pb2.ENTRY_MODE_ECOMMERCE,
               "90": common_pb2.ENTRY_MODE_MAGSTRIPE, "91": common_pb2.ENTRY_MODE_CONTACTLESS}
AMOUNT_TYPES = {common_pb2.BALANCE_TYPE_LEDGER: iso8583.AMOUNT_LEDGER,
                common_pb2.BALANCE_TYPE_AVAILABLE: iso8583.AMOUNT_AVAILABLE}
#: A servicer field path (prefix) -> the data element that carried it; most specific first.
FIELD_DE: tuple[tuple[str, str], ...] = (
    ("key.terminal_id", "41"), ("key.merchant_id", "42"), ("key.stan", "11"),
    ("key.local_date_time", "12/13"), ("original_key.stan", "90"),
    ("original_key.local_date_time", "12/13"), ("original", "90"), ("amount.currency", "49"),
    ("amount", "4"), ("card.track2", "35"), ("card.manual.pan", "2"),
    ("card.manual.expiry_yymm", "14"), ("card.manual.cvv2", "48"), ("card.emv", "55"),
    ("card", "2"), ("pin_block", "52"), ("mcc", "18"), ("entry_mode", "22"), ("type", "3"),
    ("reason", "0"))
MERCHANT_FIELDS = ("key.terminal_id", "key.merchant_id")
#: Request data elements every answer repeats (the acquirer matches on DE 11, 37 and 41).
ECHOED = ("3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49", "70", "90")
#: Fixed-length text elements of an answer: data element -> length.
FIXED_TEXT = {"37": 12, "38": 6}
SHORT_REASONS = {"03": "unknown terminal", "12": "invalid transaction",
                 "25": "original not found", "91": "out of time", "94": "duplicate transmission",
                 "96": "system malfunction"}

ServicerRequest = (acquiring_pb2.AuthorizeRequest | acquiring_pb2.RefundRequest
                   | acquiring_pb2.BalanceInquiryRequest | acquiring_pb2.ReverseRequest)


@dataclass(frozen=True)
class AcquirerHostConfig:
    """One acquirer host as configured (``cardswitch.v1.AcquirerHost``).

    ``zpk_key_ref`` names the zone PIN key its DE 52 PIN blocks are under; ``budget_s`` is the
    time the switch takes to answer one request.
    """

    name: str
    port: int
    dialect: Dialect = iso8583.DEFAULT
    zpk_key_ref: str = ""
    budget_s: float = DEFAULT_BUDGET_S

    @classmethod
    def from_proto(cls, host: admin_pb2.AcquirerHost) -> AcquirerHostConfig:
        """Raises ValueError naming the field when the dialect is not one the codec speaks."""
        return cls(name=host.name, port=host.port, dialect=Dialect.from_proto(host.dialect),
                   zpk_key_ref=host.zpk_key_ref)


class Refusal(Exception):
    """The switch answers without the servicer: a response code and the DE 44 text."""

    def __init__(self, code: str, text: str) -> None:
        self.code, self.text = code, text
        super().__init__(f"{code} {text}")


class Aborted(Exception):
    """The servicer aborted the call, as ``context.abort`` does on the gRPC path."""

    def __init__(self, code: Any, details: str) -> None:
        self.code, self.details = code, details
        super().__init__(f"{getattr(code, 'name', code)}: {details}")


class CallBudget:
    """What the servicer uses of a gRPC ServicerContext: ``time_remaining`` and ``abort``."""

    def __init__(self, budget_s: float) -> None:
        self._deadline = time.monotonic() + budget_s

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    async def abort(self, code: Any, details: str) -> NoReturn:
        raise Aborted(code, details)


class _Registry(Protocol):
    @property
    def terminals(self) -> Mapping[str, TerminalConfig]: ...


class _Deps(Protocol):
    @property
    def registry(self) -> _Registry: ...


class Acquiring(Protocol):
    """What an acquirer host uses of :class:`~switch.service.AcquiringServicer`."""

    @property
    def deps(self) -> _Deps: ...

    async def Authorize(self, request: acquiring_pb2.AuthorizeRequest, context: Any,
                        ) -> acquiring_pb2.AuthorizeResponse: ...

    async def Refund(self, request: acquiring_pb2.RefundRequest, context: Any,
                     ) -> acquiring_pb2.RefundResponse: ...

    async def BalanceInquiry(self, request: acquiring_pb2.BalanceInquiryRequest, context: Any,
                             ) -> acquiring_pb2.BalanceInquiryResponse: ...

    async def Reverse(self, request: acquiring_pb2.ReverseRequest, context: Any,
                      ) -> acquiring_pb2.ReverseResponse: ...


# -- request mapping (pure) -----------------------------------------------------------------


def response_mti(mti: str) -> str | None:
    """The MTI that answers ``mti``; None when ``mti`` is not a request or advice.

    >>> response_mti("0200"), response_mti("0421"), response_mti("0210")
    ('0210', '0430', None)
    """
    if len(mti) != 4 or not mti.isdigit() or mti[2] not in "02" or mti[3] not in "01":
        return None
    return f"{mti[:2]}{int(mti[2]) + 1}0"


def local_date_time(mmdd: str, hhmmss: str, today: dt.date) -> str:
    """``YYMMDDhhmmss`` from DE 13 (MMDD) and DE 12 (hhmmss), in the year that puts the date
    nearest ``today`` (a request of 31 December read on 1 January keeps its year).

    >>> local_date_time("1231", "235959", dt.date(2026, 1, 1))
    '251231235959'
    """
    if len(mmdd) != 4 or len(hhmmss) != 6 or not (mmdd + hhmmss).isdigit():
        raise ValueError(f"local date and time: {mmdd!r} {hhmmss!r} is not MMDD hhmmss")
    month, day = int(mmdd[:2]), int(mmdd[2:])
    hour, minute, second = int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:])
    candidates = []
    for year in (today.year - 1, today.year, today.year + 1):
        with contextlib.suppress(ValueError):
            candidates.append(dt.datetime(year, month, day, hour, minute, second))
    if not candidates:
        raise ValueError(f"local date and time: {mmdd} {hhmmss} is not a real date and time")
    nearest = min(candidates, key=lambda c: abs(c.date() - today))
    return nearest.strftime("%y%m%d%H%M%S")


def _local(message: Message, today: dt.date) -> str:
    try:
        return local_date_time(message.get("13", ""), message.get("12", ""), today)
    except ValueError:
        raise Refusal("30", "DE 12/13 invalid") from None


def _terminal_id(message: Message) -> str:
    return str(message.get("41", "")).rstrip()


def request_key(message: Message, today: dt.date) -> acquiring_pb2.RequestKey:
    return acquiring_pb2.RequestKey(terminal_id=_terminal_id(message),
                                    merchant_id=str(message.get("42", "")).strip(),
                                    stan=message.get("11", ""),
                                    local_date_time=_local(message, today))


def _bcd(digits: str, de: str) -> bytes:
    """Digits (and ``D`` separators) as packed nibbles, an odd count padded with ``F``."""
    try:
        return bytes.fromhex(digits + "F" * (len(digits) % 2))
    except ValueError:
        raise Refusal("30", f"DE {de} invalid") from None


def chip_data(message: Message) -> bytes:
    """DE 55 with the card data that travels beside it added as the tags a kernel hands over
    (DE 2 as 5A, DE 35 as 57, DE 14 as 5F24, DE 23 as 5F34), unless DE 55 has them already.

    >>> chip_data({"55": "9F360200AB", "23": "001"}).hex().upper()
    '9F360200AB5F340101'
    """
    try:
        data = bytes.fromhex(message["55"])
        present = {o.tag for o in tlv.decode(data)}
    except ValueError:
        raise Refusal("30", "DE 55 not BER-TLV") from None
    extra: list[tuple[int, bytes]] = []
    if 0x5A not in present and message.get("2"):
        extra.append((0x5A, _bcd(message["2"], "2")))
    if 0x57 not in present and message.get("35"):
        extra.append((0x57, _bcd(message["35"].replace("=", "D"), "35")))
    expiry = str(message.get("14", ""))
    if 0x5F24 not in present and len(expiry) == 4 and expiry.isdigit():
        month = int(expiry[2:])
        last_day = calendar.monthrange(2000 + int(expiry[:2]), month)[1] if 1 <= month <= 12 else 0
        extra.append((0x5F24, bytes.fromhex(f"{expiry}{last_day:02d}")))
    psn = str(message.get("23", ""))
    if 0x5F34 not in present and psn:
        extra.append((0x5F34, _bcd(psn[-2:], "23")))
    return data + tlv.encode_all(extra)


def card_input(message: Message) -> common_pb2.CardInput:
    """Chip (DE 55), else track 2 (DE 35), else keyed (DE 2, 14, CVV2 in DE 48 tag C2)."""
    if message.get("55"):
        return common_pb2.CardInput(emv=common_pb2.EmvData(tlv=chip_data(message)))
    if message.get("35"):
        return common_pb2.CardInput(track2=common_pb2.Track2(data=message["35"]))
    if message.get("2"):
        try:
            cvv2 = iso8583.decode_de48(message.get("48", "")).get("C2", "")
        except iso8583.MessageError:
            raise Refusal("30", "DE 48 invalid") from None
        return common_pb2.CardInput(manual=common_pb2.ManualEntry(
            pan=message["2"], expiry_yymm=message.get("14", ""), cvv2=cvv2))
    return common_pb2.CardInput()


def pin_block(message: Message) -> common_pb2.EncryptedPinBlock | None:
    """DE 52: an ISO 0 block under the acquirer's zone PIN key (so no DUKPT key management)."""
    if not message.get("52"):
        return None
    try:
        block = bytes.fromhex(message["52"])
    except ValueError:
        raise Refusal("30", "DE 52 invalid") from None
    return common_pb2.EncryptedPinBlock(block=block, format=common_pb2.PIN_BLOCK_FORMAT_ISO_0)


def money(message: Message) -> common_pb2.Money:
    amount, numeric = str(message.get("4", "")), str(message.get("49", ""))
    if amount and not amount.isdigit():
        raise Refusal("30", "DE 4 invalid")
    found = currency.by_numeric(numeric)
    if numeric and found is None:
        raise Refusal("30", "DE 49 unknown currency")
    return common_pb2.Money(amount_minor=int(amount or 0), currency=found.alpha if found else "")


def reverse_request(message: Message, reason: acquiring_pb2.ReversalReason, today: dt.date,
                    ) -> acquiring_pb2.ReverseRequest:
    """The reversal of the original named by DE 41, DE 90 (or DE 11) and DE 12/13."""
    original_data = str(message.get("90", ""))
    if original_data and not original_data[4:10].isdigit():
        raise Refusal("30", "DE 90 invalid")
    original = request_key(message, today)
    if original_data:
        original.stan = original_data[4:10]
    transmitted = str(message.get("7", ""))
    try:
        own_time = local_date_time(transmitted[:4], transmitted[4:], today)
    except ValueError:
        own_time = dt.datetime.now(dt.UTC).strftime("%y%m%d%H%M%S")
    if own_time == original.local_date_time and message.get("11", "") == original.stan:
        # the reversal repeats the original's STAN; its own row needs a key of its own
        bumped = dt.datetime.strptime(own_time, "%y%m%d%H%M%S") + dt.timedelta(seconds=1)
        own_time = bumped.strftime("%y%m%d%H%M%S")
    key = acquiring_pb2.RequestKey(
        terminal_id=original.terminal_id, merchant_id=original.merchant_id,
        stan=message.get("11", ""), local_date_time=own_time,
        request_id=f"{REVERSAL_ID_PREFIX}{original.terminal_id}:{original.stan}:"
                   f"{original.local_date_time}")
    return acquiring_pb2.ReverseRequest(key=key, reason=reason, original_key=original)


def to_request(message: Message, today: dt.date) -> ServicerRequest:
    """The servicer request for a decoded 0100/0200/0400/0420 (or its repeat)."""
    mti = str(message.get("t", ""))
    base = mti[:3] + "0"
    if base in REVERSALS:
        return reverse_request(message, REVERSALS[base], today)
    proc = str(message.get("3", ""))
    if len(proc) != 6 or not proc.isdigit():
        raise Refusal("30", "DE 3 invalid")
    if base not in {b for b, _ in KINDS}:
        raise Refusal("12", f"MTI {mti} not taken")
    kind = KINDS.get((base, proc[:2]))
    if kind is None:
        raise Refusal("12", f"DE 3 {proc[:2]} not taken")
    key, card = request_key(message, today), card_input(message)
    entry_mode = ENTRY_MODES.get(str(message.get("22", ""))[:2], common_pb2.ENTRY_MODE_UNSPECIFIED)
    mcc = str(message.get("18", ""))
    if kind == "balance":
        return acquiring_pb2.BalanceInquiryRequest(key=key, card=card, entry_mode=entry_mode,
                                                   pin_block=pin_block(message))
    if kind == "refund":
        return acquiring_pb2.RefundRequest(key=key, amount=money(message), card=card,
                                           entry_mode=entry_mode, mcc=mcc)
    auth_type = (acquiring_pb2.AUTHORIZATION_TYPE_PRE_AUTHORIZATION if kind == "preauth"
                 else acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE)
    return acquiring_pb2.AuthorizeRequest(key=key, type=auth_type, amount=money(message),
                                          card=card, entry_mode=entry_mode,
                                          pin_block=pin_block(message), mcc=mcc)


# -- answer mapping (pure) ------------------------------------------------------------------


def _fixed(de: str, value: str) -> str:
    width = FIXED_TEXT[de]
    return value[:width].ljust(width)


def outcome_fields(response: Any, request: Message) -> Message:
    """DE 39, 38, 37, 54, 55 and (declined) 44 from a servicer response."""
    result = response.result
    code = result.response_code or "96"
    out: Message = {"39": code}
    if approval := getattr(response, "approval_code", ""):
        out["38"] = _fixed("38", approval)
    if (rrn := getattr(response, "rrn", "")) and "37" not in request:
        out["37"] = _fixed("37", rrn)
    amounts = []
    for balance in getattr(response, "balances", ()):
        found = currency.by_alpha(balance.amount.currency)
        if balance.type in AMOUNT_TYPES and found is not None:
            amounts.append((AMOUNT_TYPES[balance.type], found.numeric,
                            balance.amount.amount_minor))
    if amounts:
        proc = str(request.get("3", ""))
        out["54"] = iso8583.encode_de54(amounts, account_type=proc[2:4] or "00")
    if chip := getattr(response, "issuer_emv_data", b""):
        out["55"] = chip.hex().upper()
    if not responses.approved(code):
        out["44"] = mask_pans_in(result.reason or responses.reason(code))[:DE44_MAX]
    return out


def violation_fields(violations: list[tuple[str, str]]) -> Message:
    """``03`` when the terminal or merchant is at fault, else ``30``; DE 44 lists the DEs.

    >>> violation_fields([("amount.currency", "is required"), ("card.track2.data", "bad")])
    {'39': '30', '44': 'invalid DE 49,35'}
    """
    elements: list[str] = []
    for name, _ in violations:
        de = next((d for prefix, d in FIELD_DE if name.startswith(prefix)), "?")
        if de not in elements:
            elements.append(de)
    merchant = any(name.startswith(MERCHANT_FIELDS) for name, _ in violations)
    return {"39": "03" if merchant else "30",
            "44": f"invalid DE {','.join(elements)}"[:DE44_MAX]}


def network_fields(message: Message) -> Message:
    """0810: "00" to sign-on, sign-off and echo; "12" to any other DE 70."""
    code = message.get("70", "")
    if code in NETWORK_CODES:
        return {"39": responses.APPROVED}
    return {"39": "12", "44": f"DE 70 {str(code)[:3]} not taken"}


def failure_fields(exc: Exception) -> Message:
    """The one place an exception from mapping or the servicer becomes a response code."""
    if isinstance(exc, Refusal):
        return {"39": exc.code, "44": exc.text[:DE44_MAX]}
    if isinstance(exc, errors.FieldViolations):
        return violation_fields(exc.violations)
    if isinstance(exc, errors.NotFound):
        code = "25"
    elif isinstance(exc, errors.Conflict):
        code = "12"
    elif isinstance(exc, errors.AlreadyExists):
        code = "94"
    elif isinstance(exc, Aborted) and exc.code in (grpc.StatusCode.DEADLINE_EXCEEDED,
                                                   grpc.StatusCode.UNAVAILABLE):
        code = "91"
    else:
        code = "96"
    return {"39": code, "44": SHORT_REASONS[code]}


def unreadable_fields(exc: BaseException) -> tuple[Message, str] | None:
    """What decoded before the bad data element (only MTI, STAN, 37 and 41), and its number;
    None when that does not include the MTI and the STAN.

    The codec chains pyiso8583's DecodeError, which holds the partial message (``doc_dec``) and
    the failing field, as the cause of its MessageError.
    """
    cause = exc.__cause__
    partial, bad = getattr(cause, "doc_dec", None), str(getattr(cause, "field", ""))
    if not isinstance(partial, dict) or bad in ("t", "11") or not (
            partial.get("t") and partial.get("11")):
        return None
    return {de: partial[de] for de in ("t", "11", "37", "41") if de in partial and de != bad}, bad


# -- the server -----------------------------------------------------------------------------


class AcquirerHostServer:
    """Listens for one acquirer host; every request read is answered in its own task."""

    def __init__(self, config: AcquirerHostConfig, servicer: Acquiring) -> None:
        self.config = config
        self.servicer = servicer
        self._server: asyncio.Server | None = None
        self._connections: set[iso8583.FrameWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (a free one when the configured port is 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError(f"acquirer host {self.config.name}: not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1") -> None:
        """Listens; SO_REUSEPORT lets every switch worker process share the port."""
        self._server = await asyncio.start_server(self._handle, host, self.config.port,
                                                  reuse_port=True)
        log.info("acquirer host %s listening on %s:%d (%s)", self.config.name, host, self.port,
                 self.config.dialect.describe())

    async def close(self) -> None:
        """Stops accepting, lets requests already read finish (up to DRAIN_SECONDS), closes."""
        if self._server is not None:
            self._server.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=DRAIN_SECONDS)
        for connection in list(self._connections):
            connection.writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def answer(self, message: Message) -> Message | None:
        """The answer to one decoded message; None for one that is not a request."""
        mti = str(message.get("t", ""))
        reply_mti = response_mti(mti)
        if reply_mti is None:
            log.warning("acquirer host %s: MTI %r is not a request; not answered",
                        self.config.name, mti[:4])
            return None
        reply: Message = {"t": reply_mti} | {de: message[de] for de in ECHOED if de in message}
        try:
            reply |= await self._decide(message)
        except Exception as exc:
            reply |= failure_fields(exc)
            self._log_failure(message, reply["39"], exc)
        return reply

    async def _decide(self, message: Message) -> Message:
        if str(message["t"])[:3] == "080":
            return network_fields(message)
        terminal_id = _terminal_id(message)
        if not terminal_id:
            raise Refusal("30", "DE 41 missing")
        if terminal_id not in self.servicer.deps.registry.terminals:
            raise Refusal("03", "unknown terminal (DE 41)")
        request = to_request(message, dt.datetime.now(dt.UTC).date())
        budget = CallBudget(self.config.budget_s)
        token = PIN_SOURCE_ZPK.set(self.config.zpk_key_ref)
        try:
            response = await self._call(request, budget)
        finally:
            PIN_SOURCE_ZPK.reset(token)
        return outcome_fields(response, message)

    async def _call(self, request: ServicerRequest, budget: CallBudget) -> Any:
        if isinstance(request, acquiring_pb2.AuthorizeRequest):
            return await self.servicer.Authorize(request, budget)
        if isinstance(request, acquiring_pb2.RefundRequest):
            return await self.servicer.Refund(request, budget)
        if isinstance(request, acquiring_pb2.BalanceInquiryRequest):
            return await self.servicer.BalanceInquiry(request, budget)
        return await self.servicer.Reverse(request, budget)

    def _log_failure(self, message: Message, code: str, exc: Exception) -> None:
        where = (f"acquirer host {self.config.name}: {message.get('t')} terminal "
                 f"{_terminal_id(message)!r} STAN {message.get('11', '')!r} answered {code}")
        if code == "96":
            log.error("%s: %s", where, mask_pans_in(f"{type(exc).__name__}: {exc}"))
        else:
            log.info("%s: %s", where, mask_pans_in(str(exc)))

    # -- connections --------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = "{}:{}".format(*writer.get_extra_info("peername", ("?", 0))[:2])
        connection = iso8583.FrameWriter(writer, peer)
        self._connections.add(connection)
        log.info("acquirer host %s: connection from %s", self.config.name, peer)
        try:
            await self._read(reader, connection)
        finally:
            self._connections.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info("acquirer host %s: connection from %s closed", self.config.name, peer)

    async def _read(self, reader: asyncio.StreamReader, connection: iso8583.FrameWriter) -> None:
        """Reads requests until end of stream, or until bytes that cannot be answered."""
        pending: set[asyncio.Task[None]] = set()
        dialect = self.config.dialect
        while True:
            try:
                frame = await dialect.read_frame(reader)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    self._drop(connection, f"stream ended inside a message ({len(exc.partial)} "
                               "bytes)")
                break
            except iso8583.MessageError as exc:
                self._drop(connection, str(exc))
                break
            except ConnectionError:
                break
            try:
                message, bad = dialect.decode(frame.payload), ""
            except Exception as exc:  # garbage must never take the server down
                salvaged = unreadable_fields(exc)
                if salvaged is None:
                    self._drop(connection, mask_pans_in(f"{type(exc).__name__}: {exc}"))
                    break
                message, bad = salvaged
            task = asyncio.create_task(self._serve(message, bad, frame.tpdu, connection))
            for tasks in (self._tasks, pending):
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if pending:  # answer what was read before the end (or the garbage)
            await asyncio.wait(pending, timeout=self.config.budget_s)

    def _drop(self, connection: iso8583.FrameWriter, why: str) -> None:
        MESSAGES.labels(self.config.name, "unreadable", "closed").inc()
        log.warning("acquirer host %s: %s sent bytes that are not a message (%s); closing the "
                    "connection", self.config.name, connection.peer, why)

    async def _serve(self, message: Message, bad: str, tpdu: bytes,
                     connection: iso8583.FrameWriter) -> None:
        mti = str(message.get("t", ""))
        if bad:
            reply_mti = response_mti(mti)
            reply = None if reply_mti is None else (
                message | {"t": reply_mti, "39": "30", "44": f"DE {bad} unreadable"})
        else:
            reply = await self.answer(message)
        label = mti if response_mti(mti) else "other"
        if reply is None:
            MESSAGES.labels(self.config.name, label, "unanswered").inc()
            return
        dialect = self.config.dialect
        try:
            data = dialect.frame(dialect.encode(reply), tpdu=iso8583.swap_tpdu(tpdu))
        except iso8583.MessageError as exc:
            log.error("acquirer host %s: the answer to %s STAN %s does not encode (%s)",
                      self.config.name, mti, message.get("11", ""), mask_pans_in(str(exc)))
            MESSAGES.labels(self.config.name, label, "unsent").inc()
            return
        sent = await connection.send(data)
        MESSAGES.labels(self.config.name, label, reply["39"] if sent else "unsent").inc()
