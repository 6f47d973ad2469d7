"""The issuer's authorisation decisions: one ISO 8583 request in, its response out.

The messages and their fields are read and written by :mod:`issuer_sim.messages`; the
acquirers' zone PIN keys are kept by :mod:`issuer_sim.zone_keys`.

An authorisation goes through three phases so that no database lock is held across an HSM call:

1. read the account (concurrent requests share one SELECT) and decide what needs no secret
   (status, expiry, MCC, PIN tries);
2. ask the HSM to verify the CVV and the PIN block;
3. in one transaction, with the account row locked (``SELECT ... FOR UPDATE``), re-check,
   count PIN tries, check funds and the daily limit, post, and record the authorisation.

Phase 3 decides again from the locked row, so what phases 1 and 2 read may be stale without
harm: PIN tries and balances stay right across processes. In-process, commits on one account
also wait on an asyncio lock, so they queue in the event loop instead of holding database
threads blocked on the row lock; the authorisations that queued while the account's previous
commit ran then go through phase 3 together, decided one after the other in one transaction
(group commit), and if that transaction fails each is committed alone.

Funds and the daily limit are decided from counters on the account row
(:mod:`issuer_sim.open_to_buy`), never by summing its history, and a duplicate request is found
by the unique constraints on the insert: an approved purchase costs one read and its share of a
transaction of lock, orphan look-up, insert, update, commit. Being on every request, that path
runs Core statements built once, on detached model objects (the ORM's identity map and unit of
work cost more CPU than the statements themselves); completions, advices and reversals use the
session.

Advices and repeats. When the issuer cannot be reached the switch approves in its place
(stand-in) and later sends an advice: 0120 for a pre-authorisation, 0220 without DE 90 for a
purchase or refund (a 0220 with DE 90, or POS condition 06, is a completion). The issuer cannot
decline an advice: it posts it even beyond the balance, the daily limit or the card's status,
and records on the authorisation the code it would have answered (``exception_code``). The
switch repeats an advice or reversal advice (0121, 0221, 0421) until it gets an answer; a repeat
is processed as the advice it repeats and posts nothing twice. Answers the issuer gives to an
advice or a repeat:

- definitive (the same message sent again would get the same answer, so the switch stops):
  00 posted or already posted (also when the transaction was reversed first: nothing is then
  posted); 12 an advice of a kind the issuer does not take, or a completion of what is not an
  open pre-auth; 13 amount zero, malformed or above the pre-auth; 14 unknown card or invalid PAN
  (nothing posted: there is no account to post to); 25 a completion whose pre-auth is unknown;
  30 format error; 54 malformed DE 14; 94 the pre-auth captured by another completion, or the
  transaction recorded on another card;
- transient, worth repeating: 91 the HSM did not answer, 96 anything unexpected.

A reversal advice (0420, 0421) is answered 00 whether or not its original is known, 30 if it
names none (no DE 37 nor DE 90, or DE 90 malformed), 96 if something unexpected failed.

A 0100/0200 sent again with the same DE 32, DE 11 and DE 37 (or the same DE 32, DE 41, DE 11 and
DE 7) is declined 94 "duplicate request" and posts nothing: a request is not an advice, the
switch never repeats one (a lost answer is followed by a reversal), and 94 is what ISO 8583 says
for a duplicate transmission. A late original after its stand-in advice is such a duplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import grpc
from sqlalchemy import Connection, Engine, Row, bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cardswitch import currency, db, iso8583, responses
from cardswitch.cardcache import CardCache
from cardswitch.cards import mask_pan
from cardswitch.iso8583 import Message
from cardswitch.v1 import common_pb2, hsm_pb2, hsm_pb2_grpc
from issuer_sim import chip, open_to_buy
from issuer_sim.grouping import Groups
from issuer_sim.messages import (
    REPEATS,
    Decline,
    Declined,
    Outcome,
    Request,
    build_response,
    new_approval_code,
    parse_follow_up,
    parse_request,
    same_institution,
)
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
from issuer_sim.zone_keys import (
    ZMK_REF,
    KeyBlockRejected,
    KeyChangeRefused,
    ZoneKeyHsm,
    ZonePinKeys,
)

log = logging.getLogger(__name__)

#: HSM key labels the issuer works with (created by ``cardswitch issuer seed``); the zone PIN
#: and zone master keys are in :mod:`issuer_sim.zone_keys`.
PVK_REF = "pvk-issuer"
CVK_REF = "cvk-issuer"
DEK_REF = "dek-issuer"
HMAC_REF = "hmac-issuer"

#: A card is PIN-blocked once this many wrong PINs were entered in a row.
MAX_PIN_TRIES = 3
#: At most this many requests share one database call (a look-up, or a transaction).
GROUP_LIMIT = 64
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
#: Stand-in advices: (MTI, processing code) -> what the switch approved; anything else is 12.
ADVICE_KINDS: dict[tuple[str, str], str] = {
    ("0120", iso8583.PROC_PURCHASE): PREAUTH,
    ("0220", iso8583.PROC_PURCHASE): PURCHASE,
    ("0220", iso8583.PROC_REFUND): REFUND,
}
DEBITS = (PURCHASE, PREAUTH)
#: The MTIs of the requests and advices a transaction may first be recorded as (a 0220 also
#: records a completion), and those of a pre-authorisation.
ORIGINALS = ("0100", "0120", "0200", "0220")
PREAUTHS = ("0100", "0120")

NETWORK_CODES = (iso8583.NMI_SIGN_ON, iso8583.NMI_SIGN_OFF, iso8583.NMI_ECHO)


class HsmUnavailable(Exception):
    """The HSM did not answer (down, or past the call's deadline): the issuer answers 91."""


class HsmClient(ZoneKeyHsm, Protocol):
    """The HSM operations the issuer needs, keyed by the issuer's key labels above."""

    async def pan_token(self, pan: str) -> str:
        """The keyed hash of ``pan`` the accounts table is indexed by."""
        ...

    async def verify_cvv(self, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
        ...


class GrpcHsm:
    """:class:`HsmClient` over the HSM's gRPC API, with a deadline on every call."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 2.0) -> None:
        self._stub = hsm_pb2_grpc.HsmServiceStub(channel)
        self._timeout = timeout_s
        self._tokens: CardCache[str] = CardCache()
        # CVV(CVK, PAN, expiry, service code) never changes while the CVK does not: a value the
        # HSM verified once is remembered (keyed without the PAN, see CardCache); a mismatch is
        # always asked again.
        self._verified_cvvs: CardCache[bool] = CardCache()

    @property
    def stub(self) -> Any:
        return self._stub

    async def call(self, method: Any, request: Any) -> Any:
        """``method(request)`` with the deadline; an HSM down or too slow raises HsmUnavailable."""
        try:
            return await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise HsmUnavailable(f"HSM: {exc.code().name}") from exc
            raise

    async def pan_token(self, pan: str) -> str:
        token = self._tokens.get(pan)
        if token is None:
            resp = await self.call(self._stub.ProtectPan, hsm_pb2.ProtectPanRequest(
                hmac_key_ref=HMAC_REF, dek_key_ref=DEK_REF, pan=pan))
            token = str(resp.pan_token)
            self._tokens.put(pan, token)
        return token

    async def verify_pin(self, pan: str, pin_block: bytes, offset: str, zpk_ref: str) -> bool:
        request = hsm_pb2.VerifyPinRequest(
            zpk_key_ref=zpk_ref, pvk_key_ref=PVK_REF, pin_block=pin_block,
            format=common_pb2.PIN_BLOCK_FORMAT_ISO_0, pan=pan, offset=offset)
        try:
            resp = await self.call(self._stub.VerifyPin, request)
        except grpc.aio.AioRpcError as exc:
            # A block that does not decrypt to a format 0 PIN field counts as a wrong PIN.
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return False
            raise
        return bool(resp.verified)

    async def import_zone_pin_key(self, label: str, key_block: str) -> str:
        request = hsm_pb2.ImportKeyRequest(label=label, key_type=hsm_pb2.KEY_TYPE_ZPK,
                                           key_block=key_block, kek_key_ref=ZMK_REF)
        try:
            resp = await self.call(self._stub.ImportKey, request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise KeyBlockRejected(exc.details() or "key block rejected") from exc
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            key = await self.call(self._stub.GetKey, hsm_pb2.GetKeyRequest(key_ref=label))
            return str(key.kcv)
        return str(resp.key.kcv)

    async def verify_cvv(self, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
        card_data = f"{pan}|{expiry_yymm}|{service_code}|{cvv}"
        if self._verified_cvvs.get(card_data):
            return True
        verified = await self._verify_cvv(pan, expiry_yymm, service_code, cvv)
        if verified:
            self._verified_cvvs.put(card_data, True)
        return verified

    async def _verify_cvv(self, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
        request = hsm_pb2.VerifyCvvRequest(cvk_key_ref=CVK_REF, pan=pan, expiry_yymm=expiry_yymm,
                                           service_code=service_code, cvv=cvv)
        try:
            resp = await self.call(self._stub.VerifyCvv, request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return False
            raise
        return bool(resp.verified)


@dataclass(frozen=True)
class Checked:
    """An authorisation through phases 1 and 2, ready to be decided under the account's lock."""

    req: Request
    kind: str
    #: What phases 1 and 2 already declined it for.
    decline: Decline | None
    #: The HSM's verdict on the PIN block; None without one.
    pin_verified: bool | None


@dataclass(frozen=True)
class Advice:
    """A stand-in advice as read: the request, what the switch approved, its decision (DE 39)
    and its approval code (DE 38, "S..." from the switch)."""

    req: Request
    kind: str
    decision: str
    approval_code: str | None


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


def transaction_kind(mti: str, processing_code: str) -> str:
    kind = KINDS.get((mti, processing_code))
    if kind is None:
        raise Declined("12", f"{mti} with DE 3 {processing_code[:6]}")
    return kind


def is_stand_in_advice(message: Message) -> bool:
    """Whether a 0220 is the advice of a purchase or refund approved in stand-in, not a
    completion: a completion names its pre-authorisation (DE 90) or says it is one (DE 25 06)."""
    return "90" not in message and message.get("25") != iso8583.POS_PREAUTH


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


def utc_now() -> datetime:
    """Naive UTC: what the DateTime columns hold on SQLite and PostgreSQL alike."""
    return datetime.now(UTC).replace(tzinfo=None)


T = TypeVar("T")


class Processor:
    """Decides requests against the issuer database, calling the HSM through ``hsm``."""

    def __init__(self, url: str, hsm: HsmClient, *,
                 clock: Callable[[], datetime] = utc_now,
                 chip_issuer: chip.ChipIssuer | None = None) -> None:
        self.hsm = hsm
        self.chip = chip_issuer
        self._clock = clock
        self._engine = _make_engine(url)
        self._sessions: sessionmaker[Session] = db.session_factory(self._engine)
        self._reader = _reader(self._engine)
        self._reads: sessionmaker[Session] = db.session_factory(self._reader)
        # SQLite has one writer; one thread avoids lock upgrades between our own transactions.
        workers = 1 if url.startswith("sqlite") else 8
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="issuer-db")
        #: Phase 1's account look-ups, grouped into one SELECT (one key: any card).
        self._lookups: Groups[str, Account | None] = Groups(self._executor, self._accounts_for,
                                                            GROUP_LIMIT)
        #: Phase 3 per account, grouped into one transaction; its turn also orders completions,
        #: advices and reversals on the account.
        self._commits: Groups[Checked, Outcome] = Groups(self._executor, self._commit_group,
                                                         GROUP_LIMIT)
        self.zone_keys = ZonePinKeys(hsm, self._sessions, self._db, clock)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                partial(fn, *args))

    # ---- entry point ----------------------------------------------------------------------

    async def handle(self, message: Message) -> Message | None:
        """The response to one decoded request, or None for an MTI the dialect cannot answer."""
        mti = message.get("t", "")
        if mti not in iso8583.RESPONSE_MTI:
            return None
        try:
            outcome = await self._dispatch(message)
        except Declined as exc:
            outcome = Outcome.declined(exc.decline)
        except HsmUnavailable:
            log.warning("HSM unavailable: %s STAN %s declined 91", mti, message.get("11", ""))
            outcome = Outcome.declined(Decline("91", "HSM unavailable"))
        except Exception:
            log.exception("%s STAN %s for %s failed; answered 96", mti, message.get("11", ""),
                          mask_pan(str(message.get("2", ""))))
            outcome = Outcome.declined(Decline("96"))
        return build_response(message, outcome)

    async def _dispatch(self, message: Message) -> Outcome:
        mti = message.get("t", "")
        if mti in REPEATS:  # processed as the advice it repeats, which posts nothing twice
            mti = REPEATS[mti]
            message = {**message, "t": mti}
        if mti == "0800":
            return await self._network(message)
        if mti in ("0100", "0200"):
            return await self._authorize(message)
        if mti == "0120" or (mti == "0220" and is_stand_in_advice(message)):
            return await self._advise(message)
        if mti == "0220":
            return await self._complete(message)
        if mti in ("0400", "0420"):
            return await self._reverse(message, advice=mti == "0420")
        return Outcome.declined(Decline("12", f"MTI {mti} not supported"))

    # ---- 0100 / 0200 ----------------------------------------------------------------------

    async def _authorize(self, message: Message) -> Outcome:
        kind = transaction_kind(message.get("t", ""), message.get("3", ""))
        req = parse_request(message, amount_required=kind != BALANCE)
        try:
            chip_request = chip.parse(message, req.pan)
        except chip.ChipDataError as exc:
            raise Declined("30", str(exc)[:25]) from exc
        account = await self._account_for(req.pan)
        if account is None:
            return Outcome.declined(Decline("14", "no such card"))
        # Checks and HSM calls run on a snapshot; the commit re-checks under the row lock.
        issuer_data, decline = None, None
        if chip_request is not None:
            issuer_data, decline = await self._verify_chip(account, req, chip_request)
        decline = decline or account_decline(account, req, kind, self._clock())
        pin_verified = None
        if decline is None:
            decline = await self._verify_card(account, req)
        if decline is None and req.pin_block is not None:
            pin_verified = await self.zone_keys.verify_pin(req.acquirer_id, req.pan,
                                                           req.pin_block, account.pin_offset)
        outcome = await self._commits.submit(account.account_id,
                                             Checked(req, kind, decline, pin_verified))
        if chip_request is None or issuer_data is None:  # no genuine cryptogram, no ARPC
            return outcome
        return await self._chip_answer(account, req, chip_request, outcome, issuer_data)

    async def _verify_chip(self, account: Account, req: Request, chip_request: chip.ChipRequest
                           ) -> tuple[bytes | None, Decline | None]:
        """The ARQC and the ATC: (91 for an approval, or None if the ARQC is wrong; a decline)."""
        if self.chip is None:
            return None, Decline("96", "chip cards not configured")
        issuer_data = await self.chip.verify(req.pan, chip_request)
        if issuer_data is None:
            log.info("ARQC wrong for %s ATC %d", mask_pan(req.pan), chip_request.atc)
            return None, Decline("82", "ARQC wrong")
        if not await self._db(chip.advance_atc, self._engine, account.account_id,
                              chip_request.atc):
            log.info("ATC %d replayed for %s", chip_request.atc, mask_pan(req.pan))
            return issuer_data, Decline("82", "ATC replayed")
        return issuer_data, None

    async def _chip_answer(self, account: Account, req: Request, chip_request: chip.ChipRequest,
                           outcome: Outcome, issuer_data: bytes) -> Outcome:
        """The outcome with DE 55: the ARPC for its response code, and a script when due."""
        assert self.chip is not None
        script = chip.due_script(account)
        emv_data = await self.chip.answer(req.pan, chip_request, outcome.code, issuer_data,
                                          script)
        if script and script == account.pending_script:
            await self._db(chip.clear_script, self._engine, account.account_id, script)
        return dataclasses.replace(outcome, emv_data=emv_data)

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

    async def _account_for(self, pan: str) -> Account | None:
        """A snapshot of the card's account (read unlocked), or None for an unknown card."""
        return await self._lookups.submit("", await self.hsm.pan_token(pan))

    def _accounts_for(self, _key: str,
                      pan_tokens: list[str]) -> list[Account | Exception | None]:
        """One snapshot per card, shared by the group's requests for it: phase 1 only reads."""
        with self._reader.connect() as conn:
            rows = conn.execute(_ACCOUNTS_BY_TOKEN, {"pan_tokens": sorted(set(pan_tokens))})
            found = {row.pan_token: _detached_account(row) for row in rows}
        return [found.get(t) for t in pan_tokens]

    def _commit_group(self, account_id: str,
                      group: list[Checked]) -> list[Outcome | Exception]:
        """Decides ``group`` in one transaction; if it fails (a duplicate, say), each alone."""
        if len(group) > 1:
            try:
                return list(self._commit_authorizations(account_id, group))
            except Exception as exc:
                log.debug("group commit of %d on %s failed (%s); committing each alone",
                          len(group), account_id, type(exc).__name__)
        outcomes: list[Outcome | Exception] = []
        for checked in group:
            try:
                outcomes.append(self._commit_authorization(account_id, checked))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _commit_authorization(self, account_id: str, checked: Checked) -> Outcome:
        try:
            return self._commit_authorizations(account_id, [checked])[0]
        except IntegrityError:
            # The same request (acquirer, terminal, STAN, DE 7) was already recorded: the unique
            # constraint finds it on the insert, so no SELECT looks for it first. Rolling back
            # also forgets any PIN try this attempt counted, as the earlier check did.
            return Outcome.declined(Decline("94", "duplicate request"))

    def _commit_authorizations(self, account_id: str, group: list[Checked]) -> list[Outcome]:
        """Decides each of ``group`` in turn against the locked account, in one transaction."""
        now = self._clock()
        with self._engine.begin() as conn:
            account = _detached_account(
                conn.execute(_LOCK_ACCOUNT, {"account_id": account_id}).one())
            before = _changeable(account)
            orphans = _unmatched_orphans(conn, {c.req.rrn for c in group if c.req.rrn})
            decided = [_decide(account, checked, orphans, now) for checked in group]
            _record(conn, [(auth, orphan) for auth, _, orphan in decided])
            if _changeable(account) != before:
                conn.execute(_SAVE_ACCOUNT, {"key": account_id, **_changeable(account)})
        return [outcome for _, outcome, _ in decided]

    # ---- 0120 / 0220 stand-in advices -----------------------------------------------------

    async def _advise(self, message: Message) -> Outcome:
        """Posts what the switch approved in the issuer's place; it cannot be declined."""
        kind = ADVICE_KINDS.get((message.get("t", ""), message.get("3", "")))
        if kind is None:
            raise Declined("12", f"{message.get('t')} advice DE 3 {message.get('3', '')[:6]}")
        req = parse_request(message)
        decision = message.get("39", "")
        if len(decision) != 2:
            raise Declined("30", "DE 39 missing")
        if not req.rrn or not req.stan:
            raise Declined("30", "DE 11 or DE 37 missing")
        account = await self._account_for(req.pan)
        if account is None:
            return Outcome.declined(Decline("14", "no such card"))
        advice = Advice(req, kind, decision, message.get("38") or None)
        async with self._commits.turn(account.account_id):
            return await self._db(self._commit_advice, account.account_id, advice)

    def _commit_advice(self, account_id: str, advice: Advice) -> Outcome:
        now = self._clock()
        try:
            with self._sessions.begin() as s:
                account = _lock_account(s, account_id)
                earlier = _find_transaction(s, advice.req, account_id)
                if earlier is None:
                    earlier = _record_advice(s, account, advice, now)
                elif (earlier.status == AUTH_DECLINED and not earlier.stood_in
                      and responses.approved(advice.decision)
                      and not _reversed_before_arrival(s, earlier)):
                    # The issuer declined the request, its answer was lost and the switch stood
                    # in: the switch's approval stands.
                    earlier.approval_code, earlier.stood_in = advice.approval_code, True
                    earlier.created_at = now  # counts against today's limit, posted today
                    _post_advice(account, earlier, advice.kind, Decline(earlier.response_code),
                                 now.date())
                # Otherwise posted, declined or reversed already: acknowledged again.
                return Outcome(responses.APPROVED, approval_code=earlier.approval_code,
                               balances=_balances(account))
        except IntegrityError:  # the transaction is recorded on another card's account
            return Outcome.declined(Decline("94", "duplicate request"))

    # ---- 0220 completion ------------------------------------------------------------------

    async def _complete(self, message: Message) -> Outcome:
        """Captures a pre-authorisation: debits the final amount and releases its hold."""
        req = parse_follow_up(message, amount_required=True)
        original = await self._db(self._find_original, req, PREAUTHS)
        if original is None:
            return Outcome.declined(Decline("25", "pre-auth not found"))
        async with self._commits.turn(original.account_id):
            return await self._db(self._commit_completion, original.account_id, req)

    def _commit_completion(self, account_id: str, req: Request) -> Outcome:
        now = self._clock()
        try:
            with self._sessions.begin() as s:
                account = _lock_account(s, account_id)
                earlier = _find_transaction(s, req, account_id, completion=True)
                if earlier is not None:
                    # A repeated advice: acknowledge it again, post nothing twice.
                    return Outcome(responses.APPROVED, approval_code=earlier.approval_code,
                                   balances=_balances(account))
                # Only this account's pre-auths: its row lock is what keeps them unchanged.
                preauth = _find_original_in(s, req, PREAUTHS, account_id=account_id)
                decline = _completion_decline(preauth, req)
                if decline is not None or preauth is None:
                    return Outcome.declined(decline or Decline("25"))
                auth = _new_authorization(account_id, req, now)
                auth.original_id = preauth.id
                auth.ledger_minor = req.amount_minor
                auth.approval_code = preauth.approval_code or new_approval_code()
                open_to_buy.uncount(account, preauth, now.date())
                preauth.hold_minor, preauth.status = 0, AUTH_CAPTURED
                account.balance_minor -= req.amount_minor
                open_to_buy.count(account, auth, now.date())
                s.add(auth)
                return Outcome(responses.APPROVED, approval_code=auth.approval_code,
                               balances=_balances(account))
        except IntegrityError:
            return Outcome.declined(Decline("94", "duplicate request"))

    # ---- 0400 / 0420 ----------------------------------------------------------------------

    async def _reverse(self, message: Message, *, advice: bool) -> Outcome:
        """Undoes an original in full; an advice (0420) is always acknowledged."""
        req = parse_follow_up(message, amount_required=False)
        original = await self._db(self._find_original, req, ORIGINALS)
        account_id = original.account_id if original is not None else None
        if account_id is None and advice and req.pan:
            # Lock the card's account if we know it, so an original in flight cannot slip
            # between our search for it and the orphan we remember.
            try:
                account = await self._account_for(req.pan)
                account_id = account.account_id if account is not None else None
            except HsmUnavailable:
                account_id = None
        if account_id is None:
            return await self._db(self._commit_reversal, None, req, advice)
        async with self._commits.turn(account_id):
            return await self._db(self._commit_reversal, account_id, req, advice)

    def _commit_reversal(self, account_id: str | None, req: Request, advice: bool) -> Outcome:
        now = self._clock()
        try:
            with self._sessions.begin() as s:
                account = _lock_account(s, account_id) if account_id is not None else None
                original = _find_original_in(s, req, ORIGINALS)
                if original is None:
                    if not advice:
                        return Outcome.declined(Decline("25", "original not found"))
                    _remember_orphan(s, req, now)
                    return Outcome(responses.APPROVED)
                if account is None or account.account_id != original.account_id:
                    account = _lock_account(s, original.account_id)
                    # Read before its account was locked: it may have been captured or
                    # reversed since.
                    s.refresh(original)
                _undo(s, account, original, now.date())
                return Outcome(responses.APPROVED)
        except IntegrityError:
            # The same orphan advice recorded concurrently: already remembered.
            return Outcome(responses.APPROVED)

    # ---- 0800 -----------------------------------------------------------------------------

    async def _network(self, message: Message) -> Outcome:
        """Sign-on, sign-off, echo; a zone PIN key exchange (:mod:`issuer_sim.zone_keys`)."""
        code = message.get("70", "")
        if code in NETWORK_CODES:
            return Outcome(responses.APPROVED)
        if code != iso8583.NMI_KEY_CHANGE:
            return Outcome.declined(Decline("12", f"DE 70 {code[:3]} unknown"))
        try:
            kcv = await self.zone_keys.exchange(message)
        except KeyChangeRefused as exc:
            return Outcome.declined(Decline(exc.code, exc.detail))
        return Outcome(responses.APPROVED, additional_data={iso8583.DE48_KEY_CHECK_VALUE: kcv})

    # ---- lookups shared by the phases -----------------------------------------------------

    def _find_original(self, req: Request, mtis: tuple[str, ...]) -> Authorization | None:
        with self._reads() as s:
            return _find_original_in(s, req, mtis)

    def account_view_sync(self, account_id: str) -> AccountView | None:
        with self._reads() as s:
            account = s.get(Account, account_id)
            if account is None:
                return None
            return AccountView(account.account_id, account.last_four, account.status,
                               account.currency, account.balance_minor,
                               account.balance_minor - account.held_minor, account.held_minor,
                               account.pin_tries, account.expiry_yymm)

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


def _reader(engine: Engine) -> Engine:
    """``engine`` for reads that need no lock (same pool).

    On PostgreSQL it runs in autocommit: a read of one statement is one round trip, without a
    BEGIN before it and a ROLLBACK after. SQLite keeps its transactions (its pool would reset the
    driver's isolation level on returning an autocommit connection) and is local anyway.
    """
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


# The authorisation path's statements, built once.
_ACCOUNTS_BY_TOKEN = select(Account).where(
    Account.pan_token.in_(bindparam("pan_tokens", expanding=True)))
_LOCK_ACCOUNT = (select(Account).where(Account.account_id == bindparam("account_id"))
                 .with_for_update())
#: The account columns phase 3 changes.
_CHANGEABLE = ("balance_minor", "held_minor", "spent_today_minor", "spent_on", "pin_tries")
#: Sets the columns its parameters name (those of _CHANGEABLE) on the account ``key``.
_SAVE_ACCOUNT = update(Account).where(Account.account_id == bindparam("key"))
_INSERTED = tuple(c.key for c in Authorization.__table__.columns if c.key != "id")
_UNMATCHED_ORPHANS = select(OrphanReversal.id, OrphanReversal.rrn, OrphanReversal.acquirer_id,
                            OrphanReversal.original_stan).where(
    OrphanReversal.matched_authorization_id.is_(None))
#: A group of one RRN (the usual case) spares the expanding IN its rendering on every execution.
_UNMATCHED_ORPHANS_OF_RRN = _UNMATCHED_ORPHANS.where(OrphanReversal.rrn == bindparam("rrn"))
_UNMATCHED_ORPHANS_OF_RRNS = _UNMATCHED_ORPHANS.where(
    OrphanReversal.rrn.in_(bindparam("rrns", expanding=True)))


def _detached_account(row: Row[Any]) -> Account:
    """An account row as a model object outside any session: changing it writes nothing."""
    return Account(**row._mapping)


def _changeable(account: Account) -> dict[str, Any]:
    return {name: getattr(account, name) for name in _CHANGEABLE}


def _record(conn: Connection, decided: list[tuple[Authorization, Row[Any] | None]]) -> None:
    """Inserts a group's authorisations in order, marking the orphans they matched."""
    if all(orphan is None for _, orphan in decided):
        conn.execute(insert(Authorization), [_inserted(auth) for auth, _ in decided])
        return
    for auth, orphan in decided:  # rare: an original that came after its reversal
        auth_id = conn.execute(insert(Authorization).returning(Authorization.id),
                               _inserted(auth)).scalar_one()
        if orphan is not None:
            conn.execute(update(OrphanReversal).where(OrphanReversal.id == orphan.id)
                         .values(matched_authorization_id=auth_id))


def _inserted(auth: Authorization) -> dict[str, Any]:
    return {name: getattr(auth, name) for name in _INSERTED}


def _lock_account(s: Session, account_id: str) -> Account:
    return s.get_one(Account, account_id, with_for_update=True)


def _find_transaction(s: Session, req: Request, account_id: str, *,
                      completion: bool = False) -> Authorization | None:
    """What the account recorded for the transaction ``req`` names by DE 32, DE 11 and DE 37 (a
    repeat carries a new DE 7): the request or advice, or with ``completion`` the completion."""
    query = select(Authorization).where(
        Authorization.account_id == account_id, Authorization.rrn == req.rrn,
        Authorization.stan == req.stan,
        Authorization.original_id.is_not(None) if completion else
        Authorization.original_id.is_(None))
    return next((a for a in s.scalars(query) if same_institution(a.acquirer_id, req.acquirer_id)),
                None)


def _reversed_before_arrival(s: Session, auth: Authorization) -> bool:
    """Whether ``auth`` was declined because its reversal advice had come first."""
    return s.scalar(select(OrphanReversal.id).where(
        OrphanReversal.matched_authorization_id == auth.id).limit(1)) is not None


def _find_original_in(s: Session, req: Request, mtis: tuple[str, ...], *,
                      account_id: str | None = None) -> Authorization | None:
    """The original a completion or reversal names by RRN (DE 37) and DE 90.

    With DE 90 the original's STAN must match; its MTI and DE 7 break ties. Acquirer ids are
    compared as numbers. With ``account_id``, only that account's authorisations.
    """
    query = select(Authorization).where(Authorization.mti.in_(mtis))
    if account_id is not None:
        query = query.where(Authorization.account_id == account_id)
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


def _unmatched_orphans(conn: Connection, rrns: set[str]) -> list[Row[Any]]:
    """The orphan reversals still waiting for an original with one of ``rrns``.

    One indexed query after the account is locked, shared by the group commit. An in-process
    set of orphan RRNs would save it but could not see an orphan another process remembered a
    moment ago, and refreshing the set every few seconds would reopen, for those seconds, the
    race the orphan table closes: an advice remembered under the account's lock is always seen
    here.
    """
    if not rrns:
        return []
    if len(rrns) == 1:
        return list(conn.execute(_UNMATCHED_ORPHANS_OF_RRN, {"rrn": next(iter(rrns))}))
    return list(conn.execute(_UNMATCHED_ORPHANS_OF_RRNS, {"rrns": sorted(rrns)}))


def _matching_orphan(orphans: list[Row[Any]], req: Request) -> Row[Any] | None:
    for orphan in orphans:
        if (orphan.rrn == req.rrn and same_institution(orphan.acquirer_id, req.acquirer_id)
                and orphan.original_stan in ("", req.stan)):
            return orphan
    return None


def _decide(account: Account, checked: Checked, orphans: list[Row[Any]],
            now: datetime) -> tuple[Authorization, Outcome, Row[Any] | None]:
    """Phase 3 of one authorisation: re-check, count the PIN try, check funds, post.

    Returns the authorisation to record, the outcome, and the orphan reversal it matched.
    """
    req, kind = checked.req, checked.kind
    decline = checked.decline
    orphan = _matching_orphan(orphans, req)
    if orphan is not None:
        orphans.remove(orphan)
        decline = Decline("94", "reversed before arrival")
    decline = decline or account_decline(account, req, kind, now)
    if decline is None and checked.pin_verified is not None:
        decline = _count_pin_try(account, checked.pin_verified)
    if decline is None and kind in DEBITS:
        decline = _funds_decline(account, req.amount_minor, now.date())
    auth = _new_authorization(account.account_id, req, now)
    if decline is not None:
        auth.response_code, auth.status = decline.code, AUTH_DECLINED
        return auth, Outcome.declined(decline), orphan
    auth.approval_code = new_approval_code()
    _post(account, auth, kind, now.date())
    return auth, Outcome(responses.APPROVED, approval_code=auth.approval_code,
                         balances=_balances(account)), orphan


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
        status=AUTH_APPROVED, created_at=now, stood_in=False, exception_code=None,
        exception_reason=None)


def _count_pin_try(account: Account, verified: bool) -> Decline | None:
    """A right PIN resets the tries; a wrong one counts, and the last allowed one blocks."""
    if verified:
        account.pin_tries = 0
        return None
    account.pin_tries += 1
    if account.pin_tries >= MAX_PIN_TRIES:
        return Decline("75")
    return Decline("55", f"PIN try {account.pin_tries} of {MAX_PIN_TRIES}")


def _funds_decline(account: Account, amount: int, today: date) -> Decline | None:
    """51 beyond the available balance, 61 beyond what is left of today's limit."""
    if amount > account.balance_minor - account.held_minor:
        return Decline("51")
    if open_to_buy.spent_today(account, today) + amount > account.daily_limit_minor:
        return Decline("61", "daily limit " + currency.format_amount(account.daily_limit_minor,
                                                                    account.currency))
    return None


def _post(account: Account, auth: Authorization, kind: str, today: date) -> None:
    """Applies an approved request to the account and records what it did."""
    if kind == PURCHASE:
        auth.ledger_minor = auth.amount_minor
    elif kind == REFUND:
        auth.ledger_minor = -auth.amount_minor
    elif kind == PREAUTH:
        auth.hold_minor = auth.amount_minor
    account.balance_minor -= auth.ledger_minor
    open_to_buy.count(account, auth, today)


def _record_advice(s: Session, account: Account, advice: Advice, now: datetime) -> Authorization:
    """Records a stand-in advice the issuer sees first: posted, unless the switch declined in
    stand-in or the transaction's reversal advice came first."""
    auth = _new_authorization(account.account_id, advice.req, now)
    auth.approval_code, auth.stood_in = advice.approval_code, True
    orphan = _matching_orphan(_unmatched_orphans(s.connection(), {advice.req.rrn}), advice.req)
    if orphan is not None:
        auth.status = AUTH_REVERSED
    elif not responses.approved(advice.decision):
        auth.status, auth.response_code = AUTH_DECLINED, advice.decision
    else:
        _post_advice(account, auth, advice.kind, _advice_exception(account, advice, now),
                     now.date())
    s.add(auth)
    if orphan is not None:
        s.flush()
        s.execute(update(OrphanReversal).where(OrphanReversal.id == orphan.id)
                  .values(matched_authorization_id=auth.id))
    return auth


def _advice_exception(account: Account, advice: Advice, now: datetime) -> Decline | None:
    """What the issuer would have declined a stood-in approval for: the account, or funds and
    the daily limit for a debit."""
    decline = account_decline(account, advice.req, advice.kind, now)
    if decline is None and advice.kind in DEBITS:
        decline = _funds_decline(account, advice.req.amount_minor, now.date())
    return decline


def _post_advice(account: Account, auth: Authorization, kind: str, exception: Decline | None,
                 today: date) -> None:
    """Posts a stood-in approval whatever the issuer would have said, noting what that was."""
    auth.status, auth.response_code = AUTH_APPROVED, responses.APPROVED
    if exception is not None:
        auth.exception_code, auth.exception_reason = exception.code, exception.text()
    _post(account, auth, kind, today)


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


def _undo(s: Session, account: Account, auth: Authorization, today: date) -> None:
    """Reverses ``auth`` in full, once: credits back what it debited, releases its hold."""
    if auth.status == AUTH_CAPTURED:
        for completion in s.scalars(select(Authorization).where(
                Authorization.original_id == auth.id, Authorization.status == AUTH_APPROVED)):
            open_to_buy.uncount(account, completion, today)
            account.balance_minor += completion.ledger_minor
            completion.status = AUTH_REVERSED
    if auth.status in (AUTH_APPROVED, AUTH_CAPTURED):
        open_to_buy.uncount(account, auth, today)
        account.balance_minor += auth.ledger_minor
        auth.hold_minor = 0
        auth.status = AUTH_REVERSED


def _balances(account: Account) -> tuple[int, int, str]:
    """(ledger, available, currency) for DE 54."""
    return account.balance_minor, account.balance_minor - account.held_minor, account.currency
