"""The issuer's authorisation decisions: one ISO 8583 request in, its response out.

Vocabulary: *STAN* (DE 11) numbers a request per acquirer, *RRN* (DE 37) names a transaction
across its messages (pre-auth, completion, reversal), *DE 90* (original data elements) points a
completion or reversal at its original: MTI(4) + STAN(6) + DE 7(10) + acquirer(11) + forwarder(11).

An authorisation goes through three phases so that no database lock is held across an HSM call:

1. read the account and decide what needs no secret (status, expiry, MCC, PIN tries);
2. ask the HSM to verify the CVV and the PIN block;
3. in one transaction, with the account row locked (``SELECT ... FOR UPDATE``), re-check,
   count PIN tries, check funds and the daily limit, post, and record the authorisation.

Phase 3 decides again from the locked row, so what phases 1 and 2 read may be stale without
harm: PIN tries and balances stay right across processes. In-process, commits on one account
also wait on an asyncio lock, so they queue in the event loop instead of holding database
threads blocked on the row lock.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import grpc
from sqlalchemy import Engine, case, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cardswitch import currency, db, iso8583, responses
from cardswitch.cards import Track2, mask_pan, parse_track2, validate_pan
from cardswitch.iso8583 import Message
from cardswitch.v1 import common_pb2, hsm_pb2, hsm_pb2_grpc
from issuer_sim.models import (
    AUTH_APPROVED,
    AUTH_CAPTURED,
    AUTH_DECLINED,
    AUTH_REVERSED,
    STATUS_ACTIVE,
    Account,
    Authorization,
    OrphanReversal,
)

log = logging.getLogger(__name__)

#: HSM key labels the issuer works with (created by ``cardswitch issuer seed``).
ZPK_REF = "zpk-issuer"
PVK_REF = "pvk-issuer"
CVK_REF = "cvk-issuer"
DEK_REF = "dek-issuer"
HMAC_REF = "hmac-issuer"

#: A card is PIN-blocked once this many wrong PINs were entered in a row.
MAX_PIN_TRIES = 3
CVV2_SERVICE_CODE = "000"

PURCHASE, REFUND, PREAUTH, BALANCE = "purchase", "refund", "preauth", "balance"
#: (MTI, processing code) -> transaction kind; anything else is declined 12.
#: A 0100 purchase is a pre-authorisation (hold) whether or not DE 25 says "06".
KINDS: dict[tuple[str, str], str] = {
    ("0200", iso8583.PROC_PURCHASE): PURCHASE,
    ("0200", iso8583.PROC_REFUND): REFUND,
    ("0100", iso8583.PROC_PURCHASE): PREAUTH,
    ("0100", iso8583.PROC_BALANCE): BALANCE,
}
DEBITS = (PURCHASE, PREAUTH)

#: Request fields a response carries back unchanged (DE 2 only on financial responses).
ECHOED = ("3", "4", "7", "11", "12", "13", "37", "41", "42", "49")
NETWORK_ECHOED = ("7", "11", "70")
NETWORK_CODES = (iso8583.NMI_SIGN_ON, iso8583.NMI_SIGN_OFF, iso8583.NMI_ECHO)

#: Short texts for DE 44 (25 characters at most) where the response-code reason is longer.
SHORT_REASONS = {
    "25": "original not found",
    "57": "not permitted to card",
    "61": "exceeds daily limit",
    "75": "PIN tries exceeded",
    "82": "CVV check failed",
    "91": "issuer inoperative",
}

_AMOUNT = re.compile(r"^[0-9]{12}$")
_YYMM = re.compile(r"^[0-9]{2}(0[1-9]|1[0-2])$")


class HsmUnavailable(Exception):
    """The HSM did not answer (down, or past the call's deadline): the issuer answers 91."""


class HsmClient(Protocol):
    """The HSM operations the issuer needs, keyed by the issuer's key labels above."""

    async def pan_token(self, pan: str) -> str:
        """The keyed hash of ``pan`` the accounts table is indexed by."""
        ...

    async def verify_pin(self, pan: str, pin_block: bytes, offset: str) -> bool:
        """Whether an ISO format 0 PIN block under the issuer ZPK matches the IBM 3624 offset."""
        ...

    async def verify_cvv(self, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
        ...


class GrpcHsm:
    """:class:`HsmClient` over the HSM's gRPC API, with a deadline on every call."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 2.0) -> None:
        self._stub = hsm_pb2_grpc.HsmServiceStub(channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout_s

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise HsmUnavailable(f"HSM: {exc.code().name}") from exc
            raise

    async def pan_token(self, pan: str) -> str:
        resp = await self._call(self._stub.ProtectPan, hsm_pb2.ProtectPanRequest(
            hmac_key_ref=HMAC_REF, dek_key_ref=DEK_REF, pan=pan))
        return str(resp.pan_token)

    async def verify_pin(self, pan: str, pin_block: bytes, offset: str) -> bool:
        request = hsm_pb2.VerifyPinRequest(
            zpk_key_ref=ZPK_REF, pvk_key_ref=PVK_REF, pin_block=pin_block,
            format=common_pb2.PIN_BLOCK_FORMAT_ISO_0, pan=pan, offset=offset)
        try:
            resp = await self._call(self._stub.VerifyPin, request)
        except grpc.aio.AioRpcError as exc:
            # A block that does not decrypt to a format 0 PIN field counts as a wrong PIN.
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return False
            raise
        return bool(resp.verified)

    async def verify_cvv(self, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
        request = hsm_pb2.VerifyCvvRequest(cvk_key_ref=CVK_REF, pan=pan, expiry_yymm=expiry_yymm,
                                           service_code=service_code, cvv=cvv)
        try:
            resp = await self._call(self._stub.VerifyCvv, request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return False
            raise
        return bool(resp.verified)


@dataclass(frozen=True)
class Decline:
    """A response code other than 00 with the fact behind it (DE 44, at most 25 characters)."""

    code: str
    detail: str = ""

    def text(self) -> str:
        return (self.detail or SHORT_REASONS.get(self.code) or responses.reason(self.code))[:25]


class Declined(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code} {detail}")
        self.decline = Decline(code, detail)


@dataclass(frozen=True)
class OriginalData:
    """DE 90: which request a completion or reversal refers to."""

    mti: str
    stan: str
    transmission_dt: str
    acquirer_id: str

    @classmethod
    def parse(cls, de90: str) -> OriginalData:
        if len(de90) != 42 or not de90.isdigit():
            raise Declined("30", "DE 90 malformed")
        return cls(de90[0:4], de90[4:10], de90[10:20], de90[20:31])


@dataclass(frozen=True)
class Request:
    """The fields of a financial request the issuer decides on."""

    mti: str
    processing_code: str
    amount_minor: int
    pan: str
    rrn: str
    stan: str
    transmission_dt: str
    acquirer_id: str
    terminal_id: str
    mcc: str
    expiry_yymm: str | None
    track2: Track2 | None
    cvv2: str | None
    pin_block: bytes | None
    original: OriginalData | None


@dataclass(frozen=True)
class Outcome:
    code: str
    detail: str = ""
    approval_code: str | None = None
    #: (ledger, available, ISO 4217 alpha) after the request, for DE 54.
    balances: tuple[int, int, str] | None = None

    @classmethod
    def declined(cls, decline: Decline) -> Outcome:
        return cls(decline.code, decline.text())


@dataclass(frozen=True)
class AccountView:
    """What the control API shows about an account."""

    account_id: str
    last_four: str
    status: str
    currency: str
    ledger_minor: int
    available_minor: int
    holds_minor: int
    pin_tries: int
    expiry_yymm: str


def same_institution(left: str, right: str) -> bool:
    """Acquirer ids compare as numbers: DE 90 zero-pads them to 11 digits, DE 32 does not."""
    return not left or not right or left.lstrip("0") == right.lstrip("0")


def parse_amount(message: Message, *, required: bool = True) -> int:
    raw = message.get("4")
    if raw is None and not required:
        return 0
    if raw is None or not _AMOUNT.match(raw):
        raise Declined("13", "DE 4 not 12 digits")
    amount = int(raw)
    if amount == 0 and required:
        raise Declined("13", "DE 4 is zero")
    return amount


def parse_request(message: Message, *, amount_required: bool = True) -> Request:
    """Reads a financial request; :class:`Declined` (13, 14, 30, 54) names the wrong field."""
    amount = parse_amount(message, required=amount_required)
    track2 = None
    if "35" in message:
        try:
            track2 = parse_track2(message["35"])
        except ValueError as exc:
            raise Declined("30", "DE 35 malformed") from exc
    pan = message.get("2") or (track2.pan if track2 else "")
    if validate_pan(pan) or (track2 is not None and track2.pan != pan):
        raise Declined("14", "PAN missing or invalid")
    expiry = message.get("14")
    if expiry is not None and not _YYMM.match(expiry):
        raise Declined("54", "DE 14 malformed")
    cvv2 = None
    if "48" in message:
        try:
            cvv2 = iso8583.decode_de48(message["48"]).get("C2")
        except iso8583.MessageError as exc:
            raise Declined("30", "DE 48 malformed") from exc
    return _request(message, amount, pan, expiry=expiry, track2=track2, cvv2=cvv2,
                    pin_block=bytes.fromhex(message["52"]) if "52" in message else None)


def parse_follow_up(message: Message, *, amount_required: bool) -> Request:
    """Reads a completion or reversal: the references to its original (DE 37, DE 90) and the
    amount; the card data is optional (the original was already checked)."""
    raw_amount = message.get("4", "")
    if amount_required:
        amount = parse_amount(message)
    else:
        amount = int(raw_amount) if _AMOUNT.match(raw_amount) else 0
    pan = message.get("2", "")
    req = _request(message, amount, "" if validate_pan(pan) else pan)
    if not req.rrn and req.original is None:
        raise Declined("30", "no DE 37 nor DE 90")
    return req


def _request(message: Message, amount: int, pan: str, *, expiry: str | None = None,
             track2: Track2 | None = None, cvv2: str | None = None,
             pin_block: bytes | None = None) -> Request:
    return Request(
        mti=message.get("t", ""),
        processing_code=message.get("3", ""),
        amount_minor=amount,
        pan=pan,
        rrn=message.get("37", ""),
        stan=message.get("11", ""),
        transmission_dt=message.get("7", ""),
        acquirer_id=message.get("32", ""),
        terminal_id=message.get("41", ""),
        mcc=message.get("18", ""),
        expiry_yymm=expiry,
        track2=track2,
        cvv2=cvv2,
        pin_block=pin_block,
        original=OriginalData.parse(message["90"]) if "90" in message else None,
    )


def transaction_kind(mti: str, processing_code: str) -> str:
    kind = KINDS.get((mti, processing_code))
    if kind is None:
        raise Declined("12", f"{mti} with DE 3 {processing_code[:6]}")
    return kind


def account_decline(account: Account, req: Request, kind: str, now: datetime) -> Decline | None:
    """What the account alone says: status, expiry, MCC, a PIN-blocked card."""
    status_codes = {"lost": "41", "stolen": "43", "blocked": "62", "suspended": "05"}
    if account.status != STATUS_ACTIVE:
        return Decline(status_codes.get(account.status, "05"), f"card {account.status}")
    this_month = now.strftime("%y%m")
    presented = [e for e in (req.expiry_yymm, req.track2.expiry_yymm if req.track2 else None)
                 if e is not None]
    if any(e != account.expiry_yymm for e in presented):
        return Decline("54", "expiry date mismatch")
    if account.expiry_yymm < this_month:
        return Decline("54", f"card expired {account.expiry_yymm}")
    blocked = {m.strip() for m in account.blocked_mccs.split(",") if m.strip()}
    if req.mcc in blocked:
        return Decline("57", f"MCC {req.mcc} blocked")
    if req.pin_block is not None and account.pin_tries >= MAX_PIN_TRIES:
        return Decline("75")
    return None


def build_response(request: Message, code: str, *, detail: str = "",
                   approval_code: str | None = None,
                   balances: tuple[int, int, str] | None = None) -> Message:
    """The response to ``request``: its echoed fields, DE 39, and 38/44/54 as the code says."""
    mti = request.get("t", "")
    response: Message = {"t": iso8583.RESPONSE_MTI[mti]}
    if mti == "0800":
        response.update({f: request[f] for f in NETWORK_ECHOED if f in request})
        response["39"] = code
        return response
    if "2" in request:
        response["2"] = request["2"]
    response.update({f: request[f] for f in ECHOED if f in request})
    response["39"] = code
    if responses.approved(code):
        if approval_code:
            response["38"] = approval_code
        if balances is not None:
            ledger, available, alpha = balances
            cur = currency.by_alpha(alpha)
            numeric = cur.numeric if cur else request.get("49", "000")
            response["54"] = iso8583.encode_de54([(iso8583.AMOUNT_LEDGER, numeric, ledger),
                                                  (iso8583.AMOUNT_AVAILABLE, numeric, available)])
    else:
        response["44"] = (detail or Decline(code).text())[:25]
    return response


def new_approval_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def utc_now() -> datetime:
    """Naive UTC: what the DateTime columns hold on SQLite and PostgreSQL alike."""
    return datetime.now(UTC).replace(tzinfo=None)


T = TypeVar("T")


class Processor:
    """Decides requests against the issuer database, calling the HSM through ``hsm``."""

    def __init__(self, url: str, hsm: HsmClient, *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.hsm = hsm
        self._clock = clock
        self._engine = _make_engine(url)
        self._sessions: sessionmaker[Session] = db.session_factory(self._engine)
        # SQLite has one writer; one thread avoids lock upgrades between our own transactions.
        workers = 1 if url.startswith("sqlite") else 8
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="issuer-db")
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                partial(fn, *args))

    def _lock(self, account_id: str) -> asyncio.Lock:
        lock = self._locks.get(account_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[account_id] = lock
        return lock

    # ---- entry point ----------------------------------------------------------------------

    async def handle(self, message: Message) -> Message | None:
        """The response to one decoded request, or None for an MTI the dialect cannot answer."""
        mti = message.get("t", "")
        if mti not in iso8583.RESPONSE_MTI:
            return None
        try:
            if mti == "0800":
                known = message.get("70") in NETWORK_CODES
                return build_response(message, responses.APPROVED if known else "12")
            if mti in ("0100", "0200"):
                outcome = await self._authorize(message)
            elif mti == "0220":
                outcome = await self._complete(message)
            elif mti in ("0400", "0420"):
                outcome = await self._reverse(message, advice=mti == "0420")
            else:
                outcome = Outcome.declined(Decline("12", f"MTI {mti} not supported"))
        except Declined as exc:
            outcome = Outcome.declined(exc.decline)
        except HsmUnavailable:
            log.warning("HSM unavailable: %s STAN %s declined 91", mti, message.get("11", ""))
            outcome = Outcome.declined(Decline("91", "HSM unavailable"))
        except Exception:
            log.exception("%s STAN %s for %s failed; answered 96", mti, message.get("11", ""),
                          mask_pan(str(message.get("2", ""))))
            outcome = Outcome.declined(Decline("96"))
        return build_response(message, outcome.code, detail=outcome.detail,
                              approval_code=outcome.approval_code, balances=outcome.balances)

    # ---- 0100 / 0200 ----------------------------------------------------------------------

    async def _authorize(self, message: Message) -> Outcome:
        kind = transaction_kind(message.get("t", ""), message.get("3", ""))
        req = parse_request(message, amount_required=kind != BALANCE)
        account = await self._db(self._account_for, await self.hsm.pan_token(req.pan))
        if account is None:
            return Outcome.declined(Decline("14", "no such card"))
        # Checks and HSM calls run on a snapshot; the commit re-checks under the row lock.
        decline = account_decline(account, req, kind, self._clock())
        pin_verified = None
        if decline is None:
            decline = await self._verify_card(account, req)
        if decline is None and req.pin_block is not None:
            pin_verified = await self.hsm.verify_pin(req.pan, req.pin_block, account.pin_offset)
        # Waiting here rather than on the row lock keeps database threads free for others.
        async with self._lock(account.account_id):
            return await self._db(self._commit_authorization, account.account_id, req, kind,
                                  decline, pin_verified)

    async def _verify_card(self, account: Account, req: Request) -> Decline | None:
        """CVV2 (DE 48 tag C2) and the CVV in track 2's discretionary data, when present."""
        if req.cvv2 is not None and not await self.hsm.verify_cvv(
                req.pan, account.expiry_yymm, CVV2_SERVICE_CODE, req.cvv2):
            return Decline("82", "CVV2 mismatch")
        track = req.track2
        # Discretionary data: PVKI(1) + PVV(4) + CVV(3) + ...; absent on some cards.
        if track is not None and len(track.discretionary) >= 8 and not await self.hsm.verify_cvv(
                req.pan, track.expiry_yymm, track.service_code, track.discretionary[5:8]):
            return Decline("82", "track 2 CVV mismatch")
        return None

    def _account_for(self, pan_token: str) -> Account | None:
        with self._sessions() as s:
            return s.scalar(select(Account).where(Account.pan_token == pan_token))

    def _commit_authorization(self, account_id: str, req: Request, kind: str,
                              decline: Decline | None, pin_verified: bool | None) -> Outcome:
        now = self._clock()
        try:
            with self._sessions.begin() as s:
                account = _lock_account(s, account_id)
                if _find_request(s, req) is not None:
                    return Outcome.declined(Decline("94", "duplicate request"))
                orphan = _matching_orphan(s, req)
                if orphan is not None:
                    decline = Decline("94", "reversed before arrival")
                decline = decline or account_decline(account, req, kind, now)
                if decline is None and pin_verified is not None:
                    decline = _count_pin_try(account, pin_verified)
                holds = _open_holds(s, account_id)
                if decline is None and kind in DEBITS:
                    decline = _funds_decline(s, account, holds, req.amount_minor, now)
                auth = _new_authorization(account_id, req, now)
                if decline is None:
                    _post(account, auth, kind)
                else:
                    auth.response_code, auth.status = decline.code, AUTH_DECLINED
                s.add(auth)
                s.flush()
                if orphan is not None:
                    orphan.matched_authorization_id = auth.id
                if decline is not None:
                    return Outcome.declined(decline)
                holds += auth.hold_minor
                return Outcome(responses.APPROVED, approval_code=auth.approval_code,
                               balances=(account.balance_minor, account.balance_minor - holds,
                                         account.currency))
        except IntegrityError:
            # Another process recorded the same request between our check and our insert.
            return Outcome.declined(Decline("94", "duplicate request"))

    # ---- 0220 -----------------------------------------------------------------------------

    async def _complete(self, message: Message) -> Outcome:
        """Captures a pre-authorisation: debits the final amount and releases its hold."""
        req = parse_follow_up(message, amount_required=True)
        original = await self._db(self._find_original, req, ("0100",))
        if original is None:
            return Outcome.declined(Decline("25", "pre-auth not found"))
        async with self._lock(original.account_id):
            return await self._db(self._commit_completion, original.account_id, req)

    def _commit_completion(self, account_id: str, req: Request) -> Outcome:
        now = self._clock()
        try:
            with self._sessions.begin() as s:
                account = _lock_account(s, account_id)
                earlier = _find_request(s, req)
                if earlier is not None:
                    if earlier.mti == "0220" and earlier.status == AUTH_APPROVED:
                        # A repeated advice: acknowledge it again, post nothing twice.
                        return Outcome(responses.APPROVED, approval_code=earlier.approval_code,
                                       balances=_balances(s, account))
                    return Outcome.declined(Decline("94", "duplicate request"))
                preauth = _find_original_in(s, req, ("0100",))
                decline = _completion_decline(preauth, req)
                if decline is not None or preauth is None:
                    return Outcome.declined(decline or Decline("25"))
                auth = _new_authorization(account_id, req, now)
                auth.original_id = preauth.id
                auth.ledger_minor = req.amount_minor
                auth.approval_code = preauth.approval_code or new_approval_code()
                account.balance_minor -= req.amount_minor
                preauth.hold_minor, preauth.status = 0, AUTH_CAPTURED
                s.add(auth)
                s.flush()
                return Outcome(responses.APPROVED, approval_code=auth.approval_code,
                               balances=_balances(s, account))
        except IntegrityError:
            return Outcome.declined(Decline("94", "duplicate request"))

    # ---- 0400 / 0420 ----------------------------------------------------------------------

    async def _reverse(self, message: Message, *, advice: bool) -> Outcome:
        """Undoes an original in full; an advice (0420) is always acknowledged."""
        req = parse_follow_up(message, amount_required=False)
        original = await self._db(self._find_original, req, ("0100", "0200", "0220"))
        account_id = original.account_id if original is not None else None
        if account_id is None and advice and req.pan:
            # Lock the card's account if we know it, so an original in flight cannot slip
            # between our search for it and the orphan we remember.
            try:
                account = await self._db(self._account_for, await self.hsm.pan_token(req.pan))
                account_id = account.account_id if account is not None else None
            except HsmUnavailable:
                account_id = None
        if account_id is None:
            return await self._db(self._commit_reversal, None, req, advice)
        async with self._lock(account_id):
            return await self._db(self._commit_reversal, account_id, req, advice)

    def _commit_reversal(self, account_id: str | None, req: Request, advice: bool) -> Outcome:
        now = self._clock()
        try:
            with self._sessions.begin() as s:
                if account_id is not None:
                    _lock_account(s, account_id)
                original = _find_original_in(s, req, ("0100", "0200", "0220"))
                if original is None:
                    if not advice:
                        return Outcome.declined(Decline("25", "original not found"))
                    _remember_orphan(s, req, now)
                    return Outcome(responses.APPROVED)
                _undo(s, _lock_account(s, original.account_id), original)
                return Outcome(responses.APPROVED)
        except IntegrityError:
            # The same orphan advice recorded concurrently: already remembered.
            return Outcome(responses.APPROVED)

    # ---- lookups shared by the phases -----------------------------------------------------

    def _find_original(self, req: Request, mtis: tuple[str, ...]) -> Authorization | None:
        with self._sessions() as s:
            return _find_original_in(s, req, mtis)

    def account_view_sync(self, account_id: str) -> AccountView | None:
        with self._sessions() as s:
            account = s.get(Account, account_id)
            if account is None:
                return None
            holds = _open_holds(s, account_id)
            return AccountView(account.account_id, account.last_four, account.status,
                               account.currency, account.balance_minor,
                               account.balance_minor - holds, holds, account.pin_tries,
                               account.expiry_yymm)

    async def account_view(self, account_id: str) -> AccountView | None:
        return await self._db(self.account_view_sync, account_id)


def _make_engine(url: str) -> Engine:
    engine = db.make_engine(url)
    if url.startswith("sqlite"):
        # Take SQLite's write lock when a transaction starts, not on its first write: two
        # processes (server and seeding) then wait for each other instead of failing.
        @event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _lock_account(s: Session, account_id: str) -> Account:
    return s.execute(select(Account).where(Account.account_id == account_id)
                     .with_for_update()).scalar_one()


def _find_request(s: Session, req: Request) -> Authorization | None:
    """The authorisation recorded for this very request (same acquirer, terminal, STAN, DE 7)."""
    return s.scalar(select(Authorization).where(
        Authorization.acquirer_id == req.acquirer_id, Authorization.terminal_id == req.terminal_id,
        Authorization.stan == req.stan, Authorization.transmission_dt == req.transmission_dt))


def _find_original_in(s: Session, req: Request, mtis: tuple[str, ...]) -> Authorization | None:
    """The original a completion or reversal names by RRN (DE 37) and DE 90.

    With DE 90 the original's STAN must match; its MTI and DE 7 break ties. Acquirer ids are
    compared as numbers.
    """
    query = select(Authorization).where(Authorization.mti.in_(mtis))
    od = req.original
    if req.rrn:
        query = query.where(Authorization.rrn == req.rrn)
    elif od is not None:
        query = query.where(Authorization.stan == od.stan,
                            Authorization.transmission_dt == od.transmission_dt)
    else:
        return None
    acquirer = od.acquirer_id if od is not None else req.acquirer_id
    rows = [a for a in s.scalars(query.order_by(Authorization.id.desc()))
            if same_institution(a.acquirer_id, acquirer)]
    if od is not None:
        rows = [a for a in rows if a.stan == od.stan]
        exact = [a for a in rows if a.mti == od.mti and a.transmission_dt == od.transmission_dt]
        rows = exact or rows
    return rows[0] if rows else None


def _matching_orphan(s: Session, req: Request) -> OrphanReversal | None:
    if not req.rrn:
        return None
    for orphan in s.scalars(select(OrphanReversal).where(
            OrphanReversal.rrn == req.rrn, OrphanReversal.matched_authorization_id.is_(None))):
        if (same_institution(orphan.acquirer_id, req.acquirer_id)
                and orphan.original_stan in ("", req.stan)):
            return orphan
    return None


def _remember_orphan(s: Session, req: Request, now: datetime) -> None:
    od = req.original
    orphan = OrphanReversal(
        rrn=req.rrn, acquirer_id=(od.acquirer_id if od else req.acquirer_id).lstrip("0"),
        original_mti=od.mti if od else "", original_stan=od.stan if od else "",
        original_transmission_dt=od.transmission_dt if od else "",
        amount_minor=req.amount_minor, received_at=now)
    exists = s.scalar(select(OrphanReversal.id).where(
        OrphanReversal.rrn == orphan.rrn, OrphanReversal.acquirer_id == orphan.acquirer_id,
        OrphanReversal.original_stan == orphan.original_stan,
        OrphanReversal.original_transmission_dt == orphan.original_transmission_dt))
    if exists is None:
        s.add(orphan)


def _new_authorization(account_id: str, req: Request, now: datetime) -> Authorization:
    return Authorization(
        account_id=account_id, mti=req.mti, processing_code=req.processing_code, rrn=req.rrn,
        acquirer_id=req.acquirer_id, stan=req.stan, transmission_dt=req.transmission_dt,
        terminal_id=req.terminal_id, amount_minor=req.amount_minor, hold_minor=0,
        ledger_minor=0, approval_code=None, response_code=responses.APPROVED,
        status=AUTH_APPROVED, created_at=now)


def _count_pin_try(account: Account, verified: bool) -> Decline | None:
    """A right PIN resets the tries; a wrong one counts, and the last allowed one blocks."""
    if verified:
        account.pin_tries = 0
        return None
    account.pin_tries += 1
    if account.pin_tries >= MAX_PIN_TRIES:
        return Decline("75")
    return Decline("55", f"PIN try {account.pin_tries} of {MAX_PIN_TRIES}")


def _open_holds(s: Session, account_id: str) -> int:
    return int(s.scalar(select(func.coalesce(func.sum(Authorization.hold_minor), 0)).where(
        Authorization.account_id == account_id, Authorization.hold_minor > 0,
        Authorization.status == AUTH_APPROVED)) or 0)


def _debits_today(s: Session, account_id: str, now: datetime) -> int:
    """Approved debits since midnight UTC: amounts posted or still held, reversals excluded."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    debit = case((Authorization.ledger_minor > 0, Authorization.ledger_minor), else_=0)
    return int(s.scalar(select(func.coalesce(func.sum(debit + Authorization.hold_minor), 0))
                        .where(Authorization.account_id == account_id,
                               Authorization.created_at >= midnight,
                               Authorization.status.in_((AUTH_APPROVED, AUTH_CAPTURED))))
               or 0)


def _funds_decline(s: Session, account: Account, holds: int, amount: int,
                   now: datetime) -> Decline | None:
    if amount > account.balance_minor - holds:
        return Decline("51")
    spent = _debits_today(s, account.account_id, now)
    if spent + amount > account.daily_limit_minor:
        return Decline("61", "daily limit " + currency.format_amount(account.daily_limit_minor,
                                                                    account.currency))
    return None


def _post(account: Account, auth: Authorization, kind: str) -> None:
    """Applies an approved request to the account and records what it did."""
    auth.approval_code = new_approval_code()
    if kind == PURCHASE:
        auth.ledger_minor = auth.amount_minor
    elif kind == REFUND:
        auth.ledger_minor = -auth.amount_minor
    elif kind == PREAUTH:
        auth.hold_minor = auth.amount_minor
    account.balance_minor -= auth.ledger_minor


def _completion_decline(preauth: Authorization | None, req: Request) -> Decline | None:
    if preauth is None:
        return Decline("25", "pre-auth not found")
    if preauth.processing_code != iso8583.PROC_PURCHASE:
        return Decline("12", "original not a pre-auth")
    if preauth.status == AUTH_CAPTURED:
        return Decline("94", "pre-auth already captured")
    if preauth.status != AUTH_APPROVED or preauth.hold_minor <= 0:
        return Decline("12", f"pre-auth {preauth.status}")
    if req.amount_minor > preauth.hold_minor:
        return Decline("13", "exceeds pre-auth amount")
    return None


def _undo(s: Session, account: Account, auth: Authorization) -> None:
    """Reverses ``auth`` in full, once: credits back what it debited, releases its hold."""
    if auth.status == AUTH_CAPTURED:
        for completion in s.scalars(select(Authorization).where(
                Authorization.original_id == auth.id, Authorization.status == AUTH_APPROVED)):
            account.balance_minor += completion.ledger_minor
            completion.status = AUTH_REVERSED
    if auth.status in (AUTH_APPROVED, AUTH_CAPTURED):
        account.balance_minor += auth.ledger_minor
        auth.hold_minor = 0
        auth.status = AUTH_REVERSED


def _balances(s: Session, account: Account) -> tuple[int, int, str]:
    s.flush()
    holds = _open_holds(s, account.account_id)
    return account.balance_minor, account.balance_minor - holds, account.currency
