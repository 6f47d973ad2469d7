"""A POS terminal: builds acquiring requests for one terminal and merchant and sends them.

Every request carries its idempotency key, a :class:`~cardswitch.v1.acquiring_pb2.RequestKey`:
terminal id (DE 41), merchant id (DE 42), the systems trace audit number ``stan`` (DE 11, six
digits, one per request, kept in ``$CARDSWITCH_VAR/terminals/<terminal_id>.stan`` so it keeps
advancing across runs) and the terminal's local date and time ``YYMMDDhhmmss`` (DE 12/13).

Cards are presented as a magstripe swipe (track 2 equivalent data) or keyed by hand (PAN,
expiry, CVV2); a PIN, when given, goes through the :class:`~terminals.pinpad.PinPad` and leaves
as a DUKPT-encrypted block. Answers come back as plain :class:`Outcome` dataclasses for printing.
One ``grpc.aio`` channel is reused for every call, and every call has a deadline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import grpc

from cardswitch.config import var_dir
from cardswitch.embossing import FIELDS as CARD_FIELDS
from cardswitch.embossing import EmbossedCard
from cardswitch.v1 import acquiring_pb2, acquiring_pb2_grpc, common_pb2
from terminals.pinpad import EncryptedPin, PinPad, terminal_lock, terminals_dir, write_private_file

Entry = Literal["swipe", "manual"]
ENTRIES: tuple[Entry, ...] = ("swipe", "manual")
STAN_MAX = 999_999
DEFAULT_TIMEOUT_S = 10.0

_ENTRY_MODES = {"swipe": common_pb2.ENTRY_MODE_MAGSTRIPE, "manual": common_pb2.ENTRY_MODE_MANUAL}


Card = EmbossedCard
"""One card as embossed by the issuer simulator (``cards.json``)."""


def default_cards_path() -> Path:
    return var_dir() / "issuer" / "cards.json"


def load_cards(path: Path | None = None) -> dict[str, Card]:
    """Cards by account id from an embossing file (default ``$CARDSWITCH_VAR/issuer/cards.json``).

    The file holds ``{"cards": [...]}`` (as ``cardswitch issuer seed`` writes it) or a bare
    list of objects with ``account_id, pan, brand, pin, expiry_yymm, service_code, cvv2,
    track2``; other keys are ignored.
    """
    path = path or default_cards_path()
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no embossing file; run `cardswitch issuer seed` first") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(rows, dict):  # the issuer's card file: {"cards": [...]}
        rows = rows.get("cards")
    if not isinstance(rows, list):
        raise ValueError(f"{path}: must be a JSON list of cards or {{\"cards\": [...]}}")
    cards: dict[str, Card] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: card [{i}] must be an object")
        missing = [f for f in CARD_FIELDS if not isinstance(row.get(f), str)]
        if missing:
            raise ValueError(f"{path}: card [{i}] lacks string field(s) {', '.join(missing)}")
        cards[row["account_id"]] = Card(**{f: row[f] for f in CARD_FIELDS})
    return cards


def card_input(card: Card, entry: Entry) -> tuple[common_pb2.CardInput, int]:
    """The card as the terminal read it, and the matching entry mode."""
    if entry == "swipe":
        return common_pb2.CardInput(track2=common_pb2.Track2(data=card.track2)), _ENTRY_MODES[entry]
    if entry == "manual":
        manual = common_pb2.ManualEntry(pan=card.pan, expiry_yymm=card.expiry_yymm, cvv2=card.cvv2)
        return common_pb2.CardInput(manual=manual), _ENTRY_MODES[entry]
    raise ValueError(f"entry: must be one of {', '.join(ENTRIES)}, got {entry!r}")


class StanCounter:
    """Systems trace audit numbers (DE 11): ``000001`` to ``999999``, then round again.

    File-backed counters keep the last STAN in ``<terminal_id>.stan`` under the terminal lock,
    so separate runs (and processes) never hand out the same one in a row.
    """

    def __init__(self, path: Path | None = None, *, last: int = 0, terminal_id: str = "") -> None:
        self._path = path
        self._terminal_id = terminal_id
        self._last = last

    @classmethod
    def for_terminal(cls, terminal_id: str, directory: Path | None = None) -> StanCounter:
        path = terminals_dir(directory) / f"{terminal_id}.stan"
        return cls(path, terminal_id=terminal_id)

    def reserve(self, count: int) -> int:
        """Takes ``count`` consecutive STANs (wrapping) and returns the first as an int."""
        if not 1 <= count <= STAN_MAX:
            raise ValueError(f"count: must be 1 to {STAN_MAX}, got {count}")
        if self._path is None:
            first = self._last % STAN_MAX + 1
            self._last = (self._last + count - 1) % STAN_MAX + 1
            return first
        with terminal_lock(self._terminal_id, self._path.parent):
            try:
                last = int(self._path.read_text().strip() or 0)
            except FileNotFoundError:
                last = 0
            first = last % STAN_MAX + 1
            self._last = (last + count - 1) % STAN_MAX + 1
            write_private_file(self._path, f"{self._last:06d}\n".encode())
        return first

    def next(self) -> str:
        return f"{self.reserve(1):06d}"


def local_date_time(now: float | None = None) -> str:
    """Terminal local date and time as DE 12/13 wants it: ``YYMMDDhhmmss``."""
    return datetime.fromtimestamp(time.time() if now is None else now).strftime("%y%m%d%H%M%S")


@dataclass(frozen=True)
class KeyRef:
    """The terminal-chosen half of a request key: what a timeout reversal points back to."""

    stan: str
    local_date_time: str


@dataclass(frozen=True)
class BalanceLine:
    type: str  # "ledger" or "available"
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Outcome:
    """One answered request, flattened for printing and for scenario checks."""

    name: str
    operation: str
    entry: str
    response_code: str
    reason: str
    approved: bool
    transaction_id: str
    latency_ms: float
    replayed: bool
    key: KeyRef
    balances: tuple[BalanceLine, ...] = ()
    approval_code: str = ""
    rrn: str = ""
    masked_pan: str = ""
    #: For ``retry_same``: whether the resend gave the first answer's transaction id and code.
    replay_consistent: bool | None = None


@dataclass(frozen=True)
class TransactionView:
    """A journal record as ``GetTransaction`` returns it."""

    transaction_id: str
    type: str
    status: str
    amount_minor: int
    currency: str
    masked_pan: str
    entry_mode: str
    response_code: str
    reason: str
    approval_code: str
    rrn: str
    original_transaction_id: str
    key: KeyRef
    reversal_acknowledged: bool
    issuer_link: str = ""
    stood_in: bool = False


def _enum_label(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def open_channel(
    target: str,
    *,
    insecure: bool = False,
    certs_dir: Path | None = None,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    server_name: str | None = None,
) -> Any:
    """A ``grpc.aio`` channel to ``target``: mTLS from ``certs_dir`` (default
    ``$CARDSWITCH_VAR/certs``: ca.pem, client.pem, client.key) or explicit paths, or plaintext
    when ``insecure``."""
    if insecure:
        return grpc.aio.insecure_channel(target)
    base = certs_dir or var_dir() / "certs"
    paths = {"ca": ca or base / "ca.pem", "cert": cert or base / "client.pem",
             "key": key or base / "client.key"}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ValueError(
            f"certs: missing {', '.join(missing)}; run `cardswitch certs init` or pass --insecure"
        )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=paths["ca"].read_bytes(),
        private_key=paths["key"].read_bytes(),
        certificate_chain=paths["cert"].read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.aio.secure_channel(target, credentials, options=options)


class Pos:
    """One terminal (``terminal_id``) of one merchant (``merchant_id``) talking to the switch.

    ``pinpad`` defaults to the terminal's provisioned pad on disk, loaded when a PIN is first
    entered; ``stan`` defaults to the terminal's file-backed counter.
    """

    def __init__(
        self,
        channel: Any,
        terminal_id: str,
        merchant_id: str,
        *,
        pinpad: PinPad | None = None,
        stan: StanCounter | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        mcc: str = "",
        owns_channel: bool = False,
    ) -> None:
        self.channel = channel
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self.timeout_s = timeout_s
        self.mcc = mcc
        self.stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
        self.stan = stan or StanCounter.for_terminal(terminal_id)
        self._pinpad = pinpad
        self._owns_channel = owns_channel

    @classmethod
    def connect(
        cls,
        target: str,
        terminal_id: str,
        merchant_id: str,
        *,
        insecure: bool = False,
        certs_dir: Path | None = None,
        server_name: str | None = None,
        **kwargs: Any,
    ) -> Pos:
        """A POS with its own channel to ``target`` (closed by :meth:`close`)."""
        channel = open_channel(target, insecure=insecure, certs_dir=certs_dir,
                               server_name=server_name)
        return cls(channel, terminal_id, merchant_id, owns_channel=True, **kwargs)

    async def close(self) -> None:
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> Pos:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pinpad(self) -> PinPad:
        if self._pinpad is None:
            self._pinpad = PinPad.load(self.terminal_id)
        return self._pinpad

    def pinpad_if_provisioned(self) -> PinPad | None:
        """The PIN pad, or None when none was given and the terminal was never provisioned."""
        if self._pinpad is None and not PinPad.exists(self.terminal_id):
            return None
        return self.pinpad

    def new_key(self) -> acquiring_pb2.RequestKey:
        return acquiring_pb2.RequestKey(
            terminal_id=self.terminal_id, merchant_id=self.merchant_id,
            stan=self.stan.next(), local_date_time=local_date_time(),
        )

    def _pin_block(self, card: Card, pin: str | None) -> common_pb2.EncryptedPinBlock | None:
        if pin is None:
            return None
        encrypted: EncryptedPin = self.pinpad.encrypt_pin(pin, card.pan)
        return encrypted.to_proto()

    async def _send(
        self, method: Any, request: Any, name: str, operation: str, entry: str, retry_same: bool
    ) -> Outcome:
        start = time.perf_counter()
        response = await method(request, timeout=self.timeout_s)
        first = _outcome(name, operation, entry, request.key, response, start)
        if not retry_same:
            return first
        start = time.perf_counter()
        response = await method(request, timeout=self.timeout_s)
        again = _outcome(name, operation, entry, request.key, response, start)
        consistent = (again.transaction_id == first.transaction_id
                      and again.response_code == first.response_code)
        return replace(again, replay_consistent=consistent)

    async def _authorize(
        self, auth_type: int, operation: str, card: Card, amount_minor: int, currency: str,
        pin: str | None, entry: Entry, name: str, retry_same: bool,
    ) -> Outcome:
        source, entry_mode = card_input(card, entry)
        request = acquiring_pb2.AuthorizeRequest(
            key=self.new_key(), type=auth_type,  # type: ignore[arg-type]
            amount=common_pb2.Money(amount_minor=amount_minor, currency=currency),
            card=source, entry_mode=entry_mode,  # type: ignore[arg-type]
            pin_block=self._pin_block(card, pin), mcc=self.mcc,
        )
        return await self._send(self.stub.Authorize, request, name, operation, entry, retry_same)

    async def purchase(
        self, card: Card, amount_minor: int, currency: str = "USD", *, pin: str | None = None,
        entry: Entry = "swipe", name: str = "purchase", retry_same: bool = False,
    ) -> Outcome:
        return await self._authorize(
            acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE, "purchase", card, amount_minor, currency,
            pin, entry, name, retry_same,
        )

    async def wallet_purchase(
        self, provider: str, code: str, amount_minor: int, currency: str = "USD", *,
        qr: bool = False, name: str = "wallet purchase",
    ) -> Outcome:
        """A purchase paid with a customer-presented wallet code (scanned QR or typed token)."""
        presentation = (common_pb2.WALLET_PRESENTATION_QR_CODE if qr
                        else common_pb2.WALLET_PRESENTATION_TOKEN)
        request = acquiring_pb2.AuthorizeRequest(
            key=self.new_key(), type=acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE,
            amount=common_pb2.Money(amount_minor=amount_minor, currency=currency),
            card=common_pb2.CardInput(wallet=common_pb2.WalletToken(
                provider=provider, token=code, presentation=presentation)),
            entry_mode=common_pb2.ENTRY_MODE_WALLET, mcc=self.mcc)
        return await self._send(self.stub.Authorize, request, name, "purchase", "wallet", False)

    async def pre_authorize(
        self, card: Card, amount_minor: int, currency: str = "USD", *, pin: str | None = None,
        entry: Entry = "swipe", name: str = "preauth", retry_same: bool = False,
    ) -> Outcome:
        return await self._authorize(
            acquiring_pb2.AUTHORIZATION_TYPE_PRE_AUTHORIZATION, "preauth", card, amount_minor,
            currency, pin, entry, name, retry_same,
        )

    async def capture(
        self, original_transaction_id: str, amount_minor: int, currency: str = "USD", *,
        name: str = "capture", retry_same: bool = False,
    ) -> Outcome:
        request = acquiring_pb2.CaptureRequest(
            key=self.new_key(), original_transaction_id=original_transaction_id,
            amount=common_pb2.Money(amount_minor=amount_minor, currency=currency),
        )
        return await self._send(self.stub.Capture, request, name, "capture", "", retry_same)

    async def void(
        self, original_transaction_id: str, *, name: str = "void", retry_same: bool = False
    ) -> Outcome:
        request = acquiring_pb2.ReverseRequest(
            key=self.new_key(), reason=acquiring_pb2.REVERSAL_REASON_VOID,
            original_transaction_id=original_transaction_id,
        )
        return await self._send(self.stub.Reverse, request, name, "void", "", retry_same)

    async def timeout_reversal(
        self, original: KeyRef, *, name: str = "timeout_reversal", retry_same: bool = False
    ) -> Outcome:
        """Reverses a request whose answer never arrived, naming it by its request key."""
        original_key = acquiring_pb2.RequestKey(
            terminal_id=self.terminal_id, merchant_id=self.merchant_id,
            stan=original.stan, local_date_time=original.local_date_time,
        )
        request = acquiring_pb2.ReverseRequest(
            key=self.new_key(), reason=acquiring_pb2.REVERSAL_REASON_TIMEOUT,
            original_key=original_key,
        )
        return await self._send(self.stub.Reverse, request, name, "timeout_reversal", "",
                                retry_same)

    async def refund(
        self, card: Card, amount_minor: int, currency: str = "USD", *, entry: Entry = "swipe",
        original_transaction_id: str = "", name: str = "refund", retry_same: bool = False,
    ) -> Outcome:
        source, entry_mode = card_input(card, entry)
        request = acquiring_pb2.RefundRequest(
            key=self.new_key(), amount=common_pb2.Money(amount_minor=amount_minor,
                                                        currency=currency),
            card=source, entry_mode=entry_mode,  # type: ignore[arg-type]
            original_transaction_id=original_transaction_id, mcc=self.mcc,
        )
        return await self._send(self.stub.Refund, request, name, "refund", entry, retry_same)

    async def balance_inquiry(
        self, card: Card, *, pin: str | None = None, entry: Entry = "swipe",
        name: str = "balance", retry_same: bool = False,
    ) -> Outcome:
        source, entry_mode = card_input(card, entry)
        request = acquiring_pb2.BalanceInquiryRequest(
            key=self.new_key(), card=source, entry_mode=entry_mode,  # type: ignore[arg-type]
            pin_block=self._pin_block(card, pin),
        )
        return await self._send(self.stub.BalanceInquiry, request, name, "balance", entry,
                                retry_same)

    async def get_transaction(self, transaction_id: str) -> TransactionView:
        txn = await self.stub.GetTransaction(
            acquiring_pb2.GetTransactionRequest(transaction_id=transaction_id),
            timeout=self.timeout_s,
        )
        return TransactionView(
            transaction_id=txn.transaction_id,
            type=_enum_label(acquiring_pb2.TransactionType, txn.type, "TRANSACTION_TYPE_"),
            status=_enum_label(acquiring_pb2.TransactionStatus, txn.status,
                               "TRANSACTION_STATUS_"),
            amount_minor=txn.amount.amount_minor, currency=txn.amount.currency,
            masked_pan=txn.masked_pan,
            entry_mode=_enum_label(common_pb2.EntryMode, txn.entry_mode, "ENTRY_MODE_"),
            response_code=txn.result.response_code, reason=txn.result.reason,
            approval_code=txn.approval_code, rrn=txn.rrn,
            original_transaction_id=txn.original_transaction_id,
            key=KeyRef(txn.key.stan, txn.key.local_date_time),
            reversal_acknowledged=txn.reversal_acknowledged,
            issuer_link=txn.issuer_link, stood_in=txn.stood_in,
        )


def _outcome(
    name: str, operation: str, entry: str, key: acquiring_pb2.RequestKey, response: Any,
    start: float,
) -> Outcome:
    latency_ms = (time.perf_counter() - start) * 1000.0
    balances = tuple(
        BalanceLine(_enum_label(common_pb2.BalanceType, b.type, "BALANCE_TYPE_"),
                    b.amount.amount_minor, b.amount.currency)
        for b in getattr(response, "balances", ())
    )
    return Outcome(
        name=name, operation=operation, entry=entry,
        response_code=response.result.response_code, reason=response.result.reason,
        approved=response.result.approved, transaction_id=response.transaction_id,
        latency_ms=latency_ms, replayed=response.replayed,
        key=KeyRef(key.stan, key.local_date_time), balances=balances,
        approval_code=getattr(response, "approval_code", ""), rrn=getattr(response, "rrn", ""),
        masked_pan=getattr(response, "masked_pan", ""),
    )

