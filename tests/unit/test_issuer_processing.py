"""The issuer's decisions, one response code at a time, against a fake HSM and a real database.

Every test sends decoded ISO 8583 requests to :class:`issuer_sim.processing.Processor` and checks
the exact response fields and the account afterwards. SQLite always; PostgreSQL too, each test
in its own schema (``tests/conftest.py``). One test takes a zone PIN key through the real HSM.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from cardswitch import db, iso8583
from cardswitch.v1 import hsm_pb2
from hsm_sim.algorithms import tdes
from hsm_sim.algorithms.pinblock import encode_iso0
from issuer_sim import processing, seed
from issuer_sim.models import Account, Authorization
from issuer_sim.processing import HsmUnavailable, Processor
from issuer_sim.zone_keys import ZMK_REF, ZPK_REF, KeyBlockRejected
from tests.conftest import pg_schema
from tests.hsm_support import fresh_hsm_home, running_hsm

PAN = "4761739001010010"
OTHER_PAN = "5413330089010038"
PIN = "1234"
CVV2 = "321"
TRACK_CVV = "654"
NOW = datetime(2026, 5, 15, 12, 0, 0)
_stans = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'issuer.db'}"
    else:
        yield from pg_schema()


class FakeHsm:
    """Knows each card's PIN and CVVs in clear. A zone PIN key is 8 bytes a PIN block is XORed
    with (``zpk-issuer`` all zeros: its blocks are clear format 0 blocks); a key block is
    ``KB:`` and the key in hex, its check value the first 6 hex digits of the key's SHA-256."""

    def __init__(self) -> None:
        self.up = True
        self.pins = {PAN: PIN, OTHER_PAN: "9876"}
        self.cvvs = {(PAN, "3012", "000"): CVV2, (PAN, "3012", "201"): TRACK_CVV}
        self.zone_keys = {ZPK_REF: bytes(8)}
        self.calls: list[str] = []

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if not self.up:
            raise HsmUnavailable("HSM: UNAVAILABLE")

    async def pan_token(self, pan: str) -> str:
        self._check("pan_token")
        return token(pan)

    async def verify_pin(self, pan: str, pin_block: bytes, offset: str, zpk_ref: str) -> bool:
        self._check(f"verify_pin {zpk_ref}")
        return xor(pin_block, self.zone_keys[zpk_ref]) == encode_iso0(self.pins[pan], pan)

    async def import_zone_pin_key(self, label: str, key_block: str) -> str:
        self._check("import_zone_pin_key")
        if not key_block.startswith("KB:"):
            raise KeyBlockRejected("key_block: MAC does not verify")
        key = bytes.fromhex(key_block[3:])
        self.zone_keys.setdefault(label, key)
        return check_value(self.zone_keys[label])

    async def verify_cvv(self, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
        self._check("verify_cvv")
        return self.cvvs.get((pan, expiry_yymm, service_code)) == cvv


def token(pan: str) -> str:
    return hashlib.sha256(pan.encode()).hexdigest()


def xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def check_value(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:6].upper()


@pytest.fixture
def hsm() -> FakeHsm:
    return FakeHsm()


@pytest.fixture
def issuer(database_url: str, hsm: FakeHsm) -> Iterator[Processor]:
    db.upgrade(database_url, "issuer_sim")
    add_account(database_url, "acct-ok", PAN, balance_minor=100_000, daily_limit_minor=60_000)
    add_account(database_url, "acct-other", OTHER_PAN, expiry_yymm="2911")
    proc = Processor(database_url, hsm, clock=lambda: NOW)
    yield proc
    proc.close()


def add_account(url: str, account_id: str, pan: str, **overrides: Any) -> None:
    values: dict[str, Any] = dict(
        account_id=account_id, pan_token=token(pan), last_four=pan[-4:],
        encrypted_pan=b"\x00" * 16, expiry_yymm="3012", service_code="201", status="active",
        currency="USD", balance_minor=100_000, daily_limit_minor=100_000, pin_offset="0000",
        pin_tries=0, blocked_mccs="", created_at=NOW)
    values.update(overrides)
    engine = db.make_engine(url)
    with db.session_factory(engine).begin() as s:
        s.add(Account(**values))
    engine.dispose()


def set_account(issuer: Processor, account_id: str, **values: Any) -> None:
    with issuer._sessions.begin() as s:
        account = s.get_one(Account, account_id)
        for name, value in values.items():
            setattr(account, name, value)


def request(mti: str = "0200", proc: str = "000000", amount: int | None = 1000,
            pan: str = PAN, **fields: str) -> dict[str, str]:
    stan = f"{next(_stans):06d}"
    msg = {"t": mti, "2": pan, "3": proc, "7": "0515120000", "11": stan, "12": "120000",
           "13": "0515", "14": "3012", "18": "5411", "22": "012", "25": "00", "32": "1234567",
           "37": f"612000{stan}", "41": "TERM0001", "42": "MERCHANT0000001", "49": "840"}
    if amount is not None:
        msg["4"] = f"{amount:012d}"
    msg.update(fields)
    return {k: v for k, v in msg.items() if v != ""}


def original_data(original: dict[str, str]) -> str:
    return (original["t"] + original["11"] + original["7"] + original["32"].zfill(11)
            + "0" * 11)


def follow_up(mti: str, original: dict[str, str], amount: int | None = None,
              **fields: str) -> dict[str, str]:
    """A completion or reversal of ``original``: same RRN, DE 90 pointing at it."""
    amt = int(original["4"]) if amount is None else amount
    return request(mti, original["3"], amt, original["2"], **{
        "37": original["37"], "90": original_data(original), **fields})


def send(issuer: Processor, msg: dict[str, str]) -> dict[str, str]:
    response = asyncio.run(issuer.handle(msg))
    assert response is not None
    return response


def balances(response: dict[str, str]) -> tuple[int, int]:
    (t1, c1, ledger), (t2, c2, available) = iso8583.decode_de54(response["54"])
    assert (t1, t2, c1, c2) == ("01", "02", "840", "840")
    return ledger, available


def view(issuer: Processor, account_id: str = "acct-ok") -> processing.AccountView:
    account = asyncio.run(issuer.account_view(account_id))
    assert account is not None
    return account


def pin_block(pin: str, pan: str = PAN, zone_key: bytes = bytes(8)) -> str:
    """The PIN block the switch sends, under ``zone_key`` (by default ``zpk-issuer``)."""
    return xor(encode_iso0(pin, pan), zone_key).hex().upper()


# ---- approvals -------------------------------------------------------------------------------

def test_purchase_is_approved_debits_the_ledger_and_echoes_the_request(issuer: Processor) -> None:
    msg = request(amount=2500)
    response = send(issuer, msg)
    assert response["t"] == "0210"
    assert response["39"] == "00"
    assert len(response["38"]) == 6 and response["38"].isdigit()
    assert "44" not in response
    for field in ("2", "3", "4", "7", "11", "12", "13", "37", "41", "42", "49"):
        assert response[field] == msg[field]
    assert balances(response) == (97_500, 97_500)
    assert view(issuer).ledger_minor == 97_500


def test_refund_credits_the_ledger(issuer: Processor) -> None:
    response = send(issuer, request(proc="200000", amount=4000))
    assert (response["39"], balances(response)) == ("00", (104_000, 104_000))


def test_balance_inquiry_answers_ledger_and_available(issuer: Processor) -> None:
    send(issuer, request("0100", amount=3000, **{"25": "06"}))
    response = send(issuer, request("0100", "310000", amount=None))
    assert response["t"] == "0110"
    assert (response["39"], balances(response)) == ("00", (100_000, 97_000))


def test_network_management_echo_sign_on_and_sign_off_are_answered_00(
        issuer: Processor) -> None:
    for code in ("001", "002", "301"):
        response = send(issuer, {"t": "0800", "7": "0515120000", "11": "000777", "70": code})
        assert response == {"t": "0810", "7": "0515120000", "11": "000777", "70": code,
                            "39": "00"}


def test_correct_pin_approves_and_resets_pin_tries(issuer: Processor) -> None:
    assert send(issuer, request(**{"52": pin_block("9999")}))["39"] == "55"
    assert view(issuer).pin_tries == 1
    assert send(issuer, request(**{"52": pin_block(PIN)}))["39"] == "00"
    assert view(issuer).pin_tries == 0


def test_correct_cvv2_and_track2_cvv_approve(issuer: Processor) -> None:
    cvv2 = iso8583.encode_de48({"C2": CVV2})
    assert send(issuer, request(**{"48": cvv2}))["39"] == "00"
    track = f"{PAN}=3012201" + "1" + "0000" + TRACK_CVV + "000000"
    assert send(issuer, request(**{"35": track, "14": ""}))["39"] == "00"


def test_track2_without_discretionary_data_is_not_a_cvv_failure(
        issuer: Processor, hsm: FakeHsm) -> None:
    response = send(issuer, request(**{"35": f"{PAN}=3012201", "14": ""}))
    assert response["39"] == "00"
    assert "verify_cvv" not in hsm.calls


# ---- declines, one per response code ---------------------------------------------------------

def test_unknown_pan_is_declined_14(issuer: Processor) -> None:
    response = send(issuer, request(pan="4111111111111111"))
    assert (response["39"], response["44"]) == ("14", "no such card")
    assert "38" not in response and "54" not in response


def test_pan_failing_luhn_is_declined_14_without_asking_the_hsm(
        issuer: Processor, hsm: FakeHsm) -> None:
    response = send(issuer, request(pan="4761739001010011"))
    assert (response["39"], response["44"]) == ("14", "PAN missing or invalid")
    assert hsm.calls == []


def test_unknown_network_management_code_is_declined_12(issuer: Processor) -> None:
    response = send(issuer, {"t": "0800", "7": "0515120000", "11": "000778", "70": "999"})
    assert (response["t"], response["39"]) == ("0810", "12")


def test_message_outside_the_dialect_gets_no_answer(issuer: Processor) -> None:
    assert asyncio.run(issuer.handle({"t": "0300", "11": "000001"})) is None


@pytest.mark.parametrize(("status", "code"), [
    ("lost", "41"), ("stolen", "43"), ("blocked", "62"), ("suspended", "05")])
def test_card_status_declines(issuer: Processor, status: str, code: str) -> None:
    set_account(issuer, "acct-ok", status=status)
    response = send(issuer, request())
    assert (response["39"], response["44"]) == (code, f"card {status}")
    assert view(issuer).ledger_minor == 100_000


def test_expired_card_is_declined_54(issuer: Processor) -> None:
    set_account(issuer, "acct-ok", expiry_yymm="2604")
    response = send(issuer, request(**{"14": "2604"}))
    assert (response["39"], response["44"]) == ("54", "card expired 2604")


def test_expiry_not_matching_the_card_is_declined_54(issuer: Processor) -> None:
    assert send(issuer, request(**{"14": "3101"}))["39"] == "54"
    track = f"{PAN}=2912201"
    assert send(issuer, request(**{"35": track, "14": ""}))["39"] == "54"


@pytest.mark.parametrize(("mti", "proc"), [("0200", "310000"), ("0100", "200000"),
                                           ("0200", "010000")])
def test_processing_code_not_allowed_for_the_mti_is_declined_12(
        issuer: Processor, mti: str, proc: str) -> None:
    assert send(issuer, request(mti, proc))["39"] == "12"


def test_mti_of_the_dialect_the_issuer_does_not_take_is_declined_12(
        issuer: Processor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(iso8583.RESPONSE_MTI, "0300", "0310")
    response = send(issuer, request("0300"))
    assert (response["t"], response["39"]) == ("0310", "12")


@pytest.mark.parametrize("raw", ["000000000000", "00000000012A", "1000"])
def test_zero_or_malformed_amount_is_declined_13(issuer: Processor, raw: str) -> None:
    response = send(issuer, request(**{"4": raw}))
    assert response["39"] == "13"


def test_missing_amount_is_declined_13(issuer: Processor) -> None:
    assert send(issuer, request(amount=None))["39"] == "13"


def test_blocked_merchant_category_is_declined_57(issuer: Processor) -> None:
    set_account(issuer, "acct-ok", blocked_mccs="5411, 7995")
    response = send(issuer, request(**{"18": "7995"}))
    assert (response["39"], response["44"]) == ("57", "MCC 7995 blocked")


def test_wrong_pin_is_declined_55_and_counts_a_try(issuer: Processor) -> None:
    response = send(issuer, request(**{"52": pin_block("4321")}))
    assert (response["39"], response["44"]) == ("55", "PIN try 1 of 3")
    assert view(issuer).pin_tries == 1
    assert view(issuer).ledger_minor == 100_000


def test_third_wrong_pin_and_every_pin_after_it_are_declined_75(issuer: Processor) -> None:
    codes = [send(issuer, request(**{"52": pin_block("0000")}))["39"] for _ in range(3)]
    assert codes == ["55", "55", "75"]
    response = send(issuer, request(**{"52": pin_block(PIN)}))
    assert (response["39"], response["44"]) == ("75", "PIN tries exceeded")
    assert view(issuer).pin_tries == 3
    # A card-not-present purchase without PIN still works.
    assert send(issuer, request())["39"] == "00"


def test_wrong_cvv2_is_declined_82(issuer: Processor) -> None:
    response = send(issuer, request(**{"48": iso8583.encode_de48({"C2": "999"})}))
    assert (response["39"], response["44"]) == ("82", "CVV2 mismatch")


def test_wrong_track2_cvv_is_declined_82(issuer: Processor) -> None:
    track = f"{PAN}=3012201" + "1" + "0000" + "999" + "000000"
    response = send(issuer, request(**{"35": track, "14": ""}))
    assert (response["39"], response["44"]) == ("82", "track 2 CVV mismatch")


def test_debit_beyond_available_balance_is_declined_51(issuer: Processor) -> None:
    set_account(issuer, "acct-ok", daily_limit_minor=1_000_000)
    send(issuer, request("0100", amount=60_000, **{"25": "06"}))  # holds 600.00
    response = send(issuer, request(amount=40_001))
    assert (response["39"], response["44"]) == ("51", "insufficient funds")
    assert send(issuer, request(amount=40_000))["39"] == "00"


def test_debits_beyond_the_daily_limit_are_declined_61(issuer: Processor) -> None:
    assert send(issuer, request(amount=50_000))["39"] == "00"
    response = send(issuer, request(amount=10_001))
    assert (response["39"], response["44"]) == ("61", "daily limit 600.00 USD")
    assert send(issuer, request(amount=10_000))["39"] == "00"


def test_same_request_sent_twice_is_declined_94_and_posted_once(issuer: Processor) -> None:
    msg = request(amount=700)
    assert send(issuer, msg)["39"] == "00"
    response = send(issuer, msg)
    assert (response["39"], response["44"]) == ("94", "duplicate request")
    assert view(issuer).ledger_minor == 99_300


def test_hsm_unreachable_is_declined_91(issuer: Processor, hsm: FakeHsm) -> None:
    hsm.up = False
    response = send(issuer, request())
    assert (response["39"], response["44"]) == ("91", "HSM unavailable")


def test_unexpected_failure_is_answered_96_and_logged_with_masked_pan(
        issuer: Processor, hsm: FakeHsm, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(pan: str) -> str:
        raise RuntimeError("token service exploded")

    monkeypatch.setattr(hsm, "pan_token", broken)
    with caplog.at_level(logging.ERROR):
        response = send(issuer, request())
    assert response["39"] == "96"
    assert "476173******0010" in caplog.text
    assert PAN not in caplog.text


# ---- pre-authorisation and completion --------------------------------------------------------

def test_preauth_holds_and_completion_debits_the_final_amount(issuer: Processor) -> None:
    preauth = request("0100", amount=20_000, **{"25": "06"})
    response = send(issuer, preauth)
    assert (response["t"], response["39"], balances(response)) == ("0110", "00",
                                                                   (100_000, 80_000))
    assert view(issuer).holds_minor == 20_000
    completion = send(issuer, follow_up("0220", preauth, 15_000))
    assert (completion["t"], completion["39"]) == ("0230", "00")
    assert balances(completion) == (85_000, 85_000)
    assert (view(issuer).ledger_minor, view(issuer).holds_minor) == (85_000, 0)


def test_completion_needs_no_card_data(issuer: Processor) -> None:
    preauth = request("0100", amount=20_000, **{"25": "06"})
    send(issuer, preauth)
    completion = follow_up("0220", preauth, 7_000)
    del completion["2"], completion["14"]
    assert send(issuer, completion)["39"] == "00"
    assert view(issuer).ledger_minor == 93_000


def test_completion_above_the_held_amount_is_declined_13(issuer: Processor) -> None:
    preauth = request("0100", amount=20_000, **{"25": "06"})
    send(issuer, preauth)
    response = send(issuer, follow_up("0220", preauth, 20_001))
    assert (response["39"], response["44"]) == ("13", "exceeds pre-auth amount")
    assert view(issuer).holds_minor == 20_000


def test_completion_of_an_unknown_preauth_is_declined_25(issuer: Processor) -> None:
    preauth = request("0100", amount=20_000, **{"25": "06"})
    assert send(issuer, follow_up("0220", preauth))["39"] == "25"


def test_repeated_completion_is_acknowledged_without_debiting_twice(issuer: Processor) -> None:
    preauth = request("0100", amount=20_000, **{"25": "06"})
    send(issuer, preauth)
    completion = follow_up("0220", preauth, 5_000)
    first = send(issuer, completion)
    again = send(issuer, completion)
    assert (first["39"], again["39"], again["38"]) == ("00", "00", first["38"])
    assert view(issuer).ledger_minor == 95_000
    second_capture = send(issuer, follow_up("0220", preauth, 5_000))
    assert second_capture["39"] == "94"


# ---- reversals -------------------------------------------------------------------------------

def test_void_of_a_purchase_restores_the_balance_once(issuer: Processor) -> None:
    purchase = request(amount=12_345)
    send(issuer, purchase)
    void = send(issuer, follow_up("0400", purchase))
    assert (void["t"], void["39"]) == ("0410", "00")
    assert view(issuer).ledger_minor == 100_000
    assert send(issuer, follow_up("0400", purchase))["39"] == "00"
    assert view(issuer).ledger_minor == 100_000


def test_void_of_an_unknown_original_is_declined_25(issuer: Processor) -> None:
    never_sent = request(amount=500)
    response = send(issuer, follow_up("0400", never_sent))
    assert (response["39"], response["44"]) == ("25", "original not found")


def test_reversal_of_a_preauth_releases_the_hold(issuer: Processor) -> None:
    preauth = request("0100", amount=30_000, **{"25": "06"})
    send(issuer, preauth)
    assert send(issuer, follow_up("0400", preauth))["39"] == "00"
    assert (view(issuer).ledger_minor, view(issuer).holds_minor) == (100_000, 0)


def test_reversal_of_a_captured_preauth_credits_the_capture(issuer: Processor) -> None:
    preauth = request("0100", amount=30_000, **{"25": "06"})
    send(issuer, preauth)
    send(issuer, follow_up("0220", preauth, 25_000))
    assert send(issuer, follow_up("0400", preauth))["39"] == "00"
    assert (view(issuer).ledger_minor, view(issuer).holds_minor) == (100_000, 0)


def test_reversal_of_a_refund_takes_the_credit_back(issuer: Processor) -> None:
    refund = request(proc="200000", amount=2_000)
    send(issuer, refund)
    assert send(issuer, follow_up("0400", refund))["39"] == "00"
    assert view(issuer).ledger_minor == 100_000


def test_reversal_advice_is_acknowledged_and_idempotent(issuer: Processor) -> None:
    purchase = request(amount=9_000)
    send(issuer, purchase)
    advice = follow_up("0420", purchase)
    responses = [send(issuer, advice) for _ in range(3)]
    assert [(r["t"], r["39"]) for r in responses] == [("0430", "00")] * 3
    assert view(issuer).ledger_minor == 100_000


def test_advice_for_an_unseen_original_makes_the_late_original_decline_94(
        issuer: Processor) -> None:
    late = request(amount=8_000)
    assert send(issuer, follow_up("0420", late))["39"] == "00"
    assert send(issuer, follow_up("0420", late))["39"] == "00"
    response = send(issuer, late)
    assert (response["39"], response["44"]) == ("94", "reversed before arrival")
    assert view(issuer).ledger_minor == 100_000
    # Other transactions of the card are unaffected.
    assert send(issuer, request(amount=100))["39"] == "00"


def test_reversal_matches_on_de90_not_only_the_rrn(issuer: Processor) -> None:
    first = request(amount=1_000)
    second = request(amount=2_000, **{"37": first["37"]})  # an RRN reused by the acquirer
    send(issuer, first)
    send(issuer, second)
    send(issuer, follow_up("0400", first))
    assert view(issuer).ledger_minor == 98_000


# ---- stand-in advices ------------------------------------------------------------------------

def advice(mti: str = "0220", proc: str = "000000", amount: int = 1000, pan: str = PAN,
           **fields: str) -> dict[str, str]:
    """A stand-in advice as the switch sends it: DE 39 its decision, DE 38 its approval code;
    a pre-authorisation's (0120) says so in DE 25."""
    pos = iso8583.POS_PREAUTH if mti == "0120" else iso8583.POS_NORMAL
    return request(mti, proc, amount, pan, **{"25": pos, "38": "S00042", "39": "00", **fields})


def advice_of(original: dict[str, str], mti: str = "0220") -> dict[str, str]:
    """The advice of ``original`` after the switch stood in for it: same STAN and RRN, its own
    DE 7."""
    return {**original, "t": mti, "7": "0515120030", "38": "S00042", "39": "00"}


def repeat(message: dict[str, str]) -> dict[str, str]:
    """The switch sending ``message`` again: the repeat MTI and a new DE 7."""
    return {**message, "t": message["t"][:3] + "1", "7": "0515120500"}


def recorded(issuer: Processor) -> list[tuple[str, str, str, int, int, bool, str | None]]:
    """(MTI, status, response code, ledger, hold, stood in, exception) of each authorisation."""
    with issuer._sessions() as s:
        rows = s.scalars(sa.select(Authorization).order_by(Authorization.id)).all()
        return [(r.mti, r.status, r.response_code, r.ledger_minor, r.hold_minor, r.stood_in,
                 r.exception_code) for r in rows]


def test_purchase_advice_is_posted_and_acknowledged_with_the_switch_approval_code(
        issuer: Processor) -> None:
    msg = advice(amount=2_500)
    response = send(issuer, msg)
    assert (response["t"], response["39"], response["38"]) == ("0230", "00", "S00042")
    assert (response["11"], response["37"]) == (msg["11"], msg["37"])
    assert balances(response) == (97_500, 97_500)
    assert recorded(issuer) == [("0220", "approved", "00", 2_500, 0, True, None)]


def test_preauth_advice_holds_the_amount_and_its_completion_captures_it(
        issuer: Processor) -> None:
    preauth = advice("0120", amount=20_000)
    response = send(issuer, preauth)
    assert (response["t"], response["39"], balances(response)) == ("0130", "00",
                                                                   (100_000, 80_000))
    completion = send(issuer, follow_up("0220", preauth, 15_000, **{"25": "06"}))
    assert (completion["t"], completion["39"], completion["38"]) == ("0230", "00", "S00042")
    assert (view(issuer).ledger_minor, view(issuer).holds_minor) == (85_000, 0)


def test_refund_advice_credits_the_account(issuer: Processor) -> None:
    response = send(issuer, advice(proc="200000", amount=4_000))
    assert (response["39"], balances(response)) == ("00", (104_000, 104_000))


def test_repeats_of_an_advice_are_acknowledged_alike_and_post_nothing_more(
        issuer: Processor) -> None:
    msg = advice(amount=3_000)
    answers = [send(issuer, m) for m in (msg, repeat(msg), repeat(msg), msg)]
    assert [(a["t"], a["39"], a["38"]) for a in answers] == (
        [("0230", "00", "S00042")] * 4)
    assert view(issuer).ledger_minor == 97_000
    assert len(recorded(issuer)) == 1


def test_repeat_that_arrives_first_is_posted_as_the_advice(issuer: Processor) -> None:
    msg = advice("0120", amount=5_000)
    assert send(issuer, repeat(msg))["t"] == "0130"
    assert send(issuer, msg)["39"] == "00"
    assert view(issuer).holds_minor == 5_000
    assert recorded(issuer) == [("0120", "approved", "00", 0, 5_000, True, None)]


@pytest.mark.parametrize(("amount", "code", "reason"), [
    (150_000, "51", "insufficient funds"), (70_000, "61", "daily limit 600.00 USD")])
def test_advice_beyond_the_limits_is_posted_anyway_and_flagged(
        issuer: Processor, amount: int, code: str, reason: str) -> None:
    response = send(issuer, advice(amount=amount))
    assert response["39"] == "00"
    assert view(issuer).ledger_minor == 100_000 - amount
    with issuer._sessions() as s:
        auth = s.scalars(sa.select(Authorization)).one()
        assert (auth.status, auth.stood_in, auth.exception_code, auth.exception_reason) == (
            "approved", True, code, reason)
    assert send(issuer, request(amount=100))["39"] == code


def test_advice_for_a_lost_card_is_posted_and_flagged_41(issuer: Processor) -> None:
    set_account(issuer, "acct-ok", status="lost")
    assert send(issuer, advice(amount=1_000))["39"] == "00"
    assert view(issuer).ledger_minor == 99_000
    assert recorded(issuer) == [("0220", "approved", "00", 1_000, 0, True, "41")]


def test_advice_for_an_unknown_card_is_answered_14_and_posts_nothing(issuer: Processor) -> None:
    response = send(issuer, advice(pan="4111111111111111"))
    assert (response["t"], response["39"], response["44"]) == ("0230", "14", "no such card")
    assert recorded(issuer) == []


@pytest.mark.parametrize(("fields", "code", "text"), [
    ({"39": ""}, "30", "DE 39 missing"),
    ({"37": ""}, "30", "DE 11 or DE 37 missing"),
    ({"3": "310000"}, "12", "0220 advice DE 3 310000"),
    ({"4": "000000000000"}, "13", "DE 4 is zero"),
])
def test_advice_the_issuer_cannot_take_is_refused_for_good(
        issuer: Processor, fields: dict[str, str], code: str, text: str) -> None:
    response = send(issuer, {**advice(), **fields})
    assert (response["39"], response["44"]) == (code, text)
    assert recorded(issuer) == []


def test_advice_when_the_hsm_is_down_is_answered_91_to_be_repeated(
        issuer: Processor, hsm: FakeHsm) -> None:
    msg = advice(amount=1_000)
    hsm.up = False
    assert send(issuer, msg)["39"] == "91"
    hsm.up = True
    assert send(issuer, repeat(msg))["39"] == "00"
    assert view(issuer).ledger_minor == 99_000


def test_advice_of_a_stand_in_decline_is_recorded_and_posts_nothing(issuer: Processor) -> None:
    response = send(issuer, advice(amount=1_000, **{"39": "51"}))
    assert (response["39"], view(issuer).ledger_minor) == ("00", 100_000)
    assert recorded(issuer) == [("0220", "declined", "51", 0, 0, True, None)]


def test_advice_of_a_purchase_the_issuer_approved_posts_nothing_more(issuer: Processor) -> None:
    purchase = request(amount=2_000)
    approved = send(issuer, purchase)
    response = send(issuer, advice_of(purchase))
    assert (response["39"], response["38"]) == ("00", approved["38"])
    assert view(issuer).ledger_minor == 98_000
    assert recorded(issuer) == [("0200", "approved", "00", 2_000, 0, False, None)]


def test_advice_of_a_purchase_the_issuer_declined_posts_the_stand_in_approval(
        issuer: Processor) -> None:
    purchase = request(amount=150_000)
    assert send(issuer, purchase)["39"] == "51"
    assert send(issuer, advice_of(purchase))["39"] == "00"
    assert send(issuer, repeat(advice_of(purchase)))["39"] == "00"
    assert view(issuer).ledger_minor == -50_000
    assert recorded(issuer) == [("0200", "approved", "00", 150_000, 0, True, "51")]


def test_late_original_after_its_advice_is_declined_94_and_posts_nothing(
        issuer: Processor) -> None:
    purchase = request(amount=4_000)
    assert send(issuer, advice_of(purchase))["39"] == "00"
    response = send(issuer, purchase)
    assert (response["t"], response["39"], response["44"]) == ("0210", "94",
                                                               "duplicate request")
    assert view(issuer).ledger_minor == 96_000


def test_advice_after_the_reversal_of_its_transaction_is_acknowledged_and_posts_nothing(
        issuer: Processor) -> None:
    purchase = request(amount=4_000)
    assert send(issuer, follow_up("0420", purchase))["39"] == "00"
    answers = [send(issuer, m) for m in (advice_of(purchase), repeat(advice_of(purchase)))]
    assert [a["39"] for a in answers] == ["00", "00"]
    assert view(issuer).ledger_minor == 100_000
    assert recorded(issuer) == [("0220", "reversed", "00", 0, 0, True, None)]
    assert send(issuer, purchase)["39"] == "94"
    assert view(issuer).ledger_minor == 100_000


def test_reversal_advice_and_its_repeat_undo_a_posted_advice_once(issuer: Processor) -> None:
    preauth = request("0100", amount=30_000, **{"25": "06"})
    send(issuer, advice_of(preauth, "0120"))
    reversal = follow_up("0420", preauth)
    answers = [send(issuer, m) for m in (reversal, repeat(reversal))]
    assert [(a["t"], a["39"]) for a in answers] == [("0430", "00"), ("0430", "00")]
    assert (view(issuer).ledger_minor, view(issuer).holds_minor) == (100_000, 0)


def test_0220_with_pos_condition_06_and_no_de90_is_a_completion(issuer: Processor) -> None:
    preauth = request("0100", amount=20_000, **{"25": "06"})
    send(issuer, preauth)
    completion = request("0220", amount=7_000, **{"25": "06", "37": preauth["37"]})
    assert send(issuer, completion)["39"] == "00"
    assert (view(issuer).ledger_minor, view(issuer).holds_minor) == (93_000, 0)


# ---- repeats and the order of originals and reversals ----------------------------------------

def test_completion_repeated_with_a_new_de7_captures_once(issuer: Processor) -> None:
    preauth = request("0100", amount=20_000, **{"25": "06"})
    send(issuer, preauth)
    completion = follow_up("0220", preauth, 5_000)
    first, again = send(issuer, completion), send(issuer, repeat(completion))
    assert (again["t"], again["39"], again["38"]) == ("0230", "00", first["38"])
    assert view(issuer).ledger_minor == 95_000


def test_request_sent_again_with_a_new_de7_is_declined_94_and_posted_once(
        issuer: Processor) -> None:
    purchase = request(amount=700)
    assert send(issuer, purchase)["39"] == "00"
    response = send(issuer, {**purchase, "7": "0515120500"})
    assert (response["39"], response["44"]) == ("94", "duplicate request")
    assert view(issuer).ledger_minor == 99_300


def test_reversal_advice_and_its_repeats_undo_an_approved_purchase_once(
        issuer: Processor) -> None:
    purchase = request(amount=9_000)
    send(issuer, purchase)
    send(issuer, request(amount=1_000))
    reversal = follow_up("0420", purchase)
    answers = [send(issuer, m) for m in (reversal, repeat(reversal), repeat(reversal))]
    assert [(a["t"], a["39"]) for a in answers] == [("0430", "00")] * 3
    assert view(issuer).ledger_minor == 99_000


def test_original_after_its_repeated_reversal_advice_is_declined_94(issuer: Processor) -> None:
    late = request(amount=8_000)
    reversal = follow_up("0420", late)
    assert [send(issuer, m)["39"] for m in (repeat(reversal), reversal)] == ["00", "00"]
    response = send(issuer, late)
    assert (response["39"], response["44"]) == ("94", "reversed before arrival")
    assert view(issuer).ledger_minor == 100_000


def test_void_after_the_reversal_advice_is_acknowledged_and_changes_nothing(
        issuer: Processor) -> None:
    purchase = request(amount=2_000)
    send(issuer, purchase)
    assert send(issuer, follow_up("0420", purchase))["39"] == "00"
    assert send(issuer, follow_up("0400", purchase))["39"] == "00"
    assert view(issuer).ledger_minor == 100_000


# ---- zone PIN key exchange -------------------------------------------------------------------

NEW_ZPK = bytes.fromhex("1122334455667788")
NEWER_ZPK = bytes.fromhex("8877665544332211")


def key_change(zone_key: bytes, kcv: str | None = None, acquirer: str = "1234567",
               **fields: str) -> dict[str, str]:
    """The switch's 0800/161: the new zone PIN key under the ZMK, and its check value."""
    stan = f"{next(_stans):06d}"
    de48 = iso8583.encode_de48({"KB": "KB:" + zone_key.hex(),
                                "KC": check_value(zone_key) if kcv is None else kcv})
    msg = {"t": "0800", "7": "0515120000", "11": stan, "32": acquirer, "48": de48, "70": "161"}
    msg.update(fields)
    return {k: v for k, v in msg.items() if v != ""}


def pin_request(zone_key: bytes, pin: str = PIN, acquirer: str = "1234567") -> dict[str, str]:
    return request(**{"52": pin_block(pin, zone_key=zone_key), "32": acquirer})


def test_key_exchange_activates_the_key_and_echoes_its_check_value(issuer: Processor) -> None:
    msg = key_change(NEW_ZPK)
    response = send(issuer, msg)
    assert response == {"t": "0810", "7": "0515120000", "11": msg["11"], "32": "1234567",
                        "70": "161", "39": "00",
                        "48": iso8583.encode_de48({"KC": check_value(NEW_ZPK)})}
    assert send(issuer, pin_request(NEW_ZPK))["39"] == "00"


def test_pin_under_the_previous_key_still_verifies_after_the_exchange(
        issuer: Processor, hsm: FakeHsm) -> None:
    send(issuer, key_change(NEW_ZPK))
    hsm.calls.clear()
    assert send(issuer, pin_request(bytes(8)))["39"] == "00"
    label = f"{ZPK_REF}.1234567.0515120000"
    verified = [c for c in hsm.calls if c.startswith("verify_pin")]
    assert [c.removeprefix("verify_pin ")[:len(label)] for c in verified] == [label, ZPK_REF]
    assert view(issuer).pin_tries == 0


def test_the_next_exchange_retires_the_key_before_the_previous_one(issuer: Processor) -> None:
    send(issuer, key_change(NEW_ZPK))
    send(issuer, key_change(NEWER_ZPK))
    codes = [send(issuer, pin_request(k))["39"] for k in (NEWER_ZPK, NEW_ZPK, bytes(8))]
    assert codes == ["00", "00", "55"]


def test_repeated_key_exchange_answers_alike_and_changes_nothing(issuer: Processor) -> None:
    msg = key_change(NEW_ZPK)
    assert [send(issuer, msg)["39"] for _ in range(2)] == ["00", "00"]
    codes = [send(issuer, pin_request(k))["39"] for k in (NEW_ZPK, bytes(8))]
    assert codes == ["00", "00"]


def test_key_with_another_check_value_is_refused_63_and_not_used(issuer: Processor) -> None:
    response = send(issuer, key_change(NEW_ZPK, kcv="ABCDEF"))
    assert (response["t"], response["39"]) == ("0810", "63")
    assert response["44"] == f"KCV {check_value(NEW_ZPK)} is not KC"
    assert "48" not in response
    assert [send(issuer, pin_request(k))["39"] for k in (NEW_ZPK, bytes(8))] == ["55", "00"]


def test_key_block_the_hsm_rejects_is_refused_63(issuer: Processor) -> None:
    msg = key_change(NEW_ZPK, **{"48": iso8583.encode_de48({"KB": "B0096P0TB00S0000",
                                                             "KC": "ABCDEF"})})
    response = send(issuer, msg)
    assert (response["39"], response["44"]) == ("63", "key block rejected")
    assert send(issuer, pin_request(bytes(8)))["39"] == "00"


@pytest.mark.parametrize(("fields", "text"), [
    ({"32": ""}, "DE 32 missing"),
    ({"48": ""}, "DE 48 KB missing"),
    ({"48": "KB0"}, "DE 48 malformed"),
    ({"48": iso8583.encode_de48({"KB": "KB:00", "KC": "12345G"})}, "DE 48 KC not 6 hex digits"),
    ({"11": "12AB"}, "DE 7 or DE 11 malformed"),
])
def test_key_exchange_missing_a_field_is_a_format_error_30(
        issuer: Processor, fields: dict[str, str], text: str) -> None:
    response = send(issuer, key_change(NEW_ZPK, **fields))
    assert (response["t"], response["39"], response["44"]) == ("0810", "30", text)


def test_key_exchange_while_the_hsm_is_down_is_answered_91(issuer: Processor,
                                                          hsm: FakeHsm) -> None:
    hsm.up = False
    response = send(issuer, key_change(NEW_ZPK))
    assert (response["t"], response["39"]) == ("0810", "91")


def test_other_acquirers_keep_their_zone_pin_key(issuer: Processor) -> None:
    send(issuer, key_change(NEW_ZPK, acquirer="1234567"))
    codes = [send(issuer, pin_request(k, acquirer="7654321"))["39"] for k in (bytes(8), NEW_ZPK)]
    assert codes == ["00", "55"]


def test_key_another_issuer_process_activated_verifies_on_its_first_use(
        issuer: Processor, database_url: str, hsm: FakeHsm) -> None:
    other = Processor(database_url, hsm, clock=lambda: NOW)
    try:
        assert send(other, pin_request(bytes(8)))["39"] == "00"  # other now knows zpk-issuer
        send(issuer, key_change(NEW_ZPK))
        assert send(other, pin_request(NEW_ZPK))["39"] == "00"
    finally:
        other.close()
    assert view(issuer).pin_tries == 0


def test_zone_pin_key_under_the_seeded_zmk_imports_and_verifies_pins_in_the_hsm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_hsm_home(tmp_path, monkeypatch)
    clear_zpk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    label = f"{ZPK_REF}.1234567.0515120000000001"

    async def scenario() -> None:
        async with running_hsm() as (running, stub):
            address = f"127.0.0.1:{running.port}"
            with grpc.insecure_channel(address) as channel:
                generated = await asyncio.to_thread(seed._Hsm(channel).ensure_keys)
            assert ZMK_REF in generated
            # The switch's side: a new zone PIN key, sent under the ZMK.
            await stub.ImportKey(hsm_pb2.ImportKeyRequest(
                label="zpk-switch-next", key_type=hsm_pb2.KEY_TYPE_ZPK,
                algorithm=hsm_pb2.KEY_ALGORITHM_TDES_2KEY, components=[clear_zpk.hex()]))
            sent = await stub.ExportKey(hsm_pb2.ExportKeyRequest(key_ref="zpk-switch-next",
                                                                 zmk_key_ref=ZMK_REF))
            assert sent.key_block.startswith("D")  # TR-31 version D: the ZMK is AES
            offset = (await stub.GeneratePinOffset(hsm_pb2.GeneratePinOffsetRequest(
                pvk_key_ref=processing.PVK_REF, pan=PAN, pin=PIN))).offset
            async with grpc.aio.insecure_channel(address) as aio_channel:
                issuer_hsm = processing.GrpcHsm(aio_channel)
                assert await issuer_hsm.import_zone_pin_key(label, sent.key_block) == sent.kcv
                assert await issuer_hsm.import_zone_pin_key(label, sent.key_block) == sent.kcv
                tampered = sent.key_block[:-1] + ("0" if sent.key_block[-1] != "0" else "1")
                with pytest.raises(KeyBlockRejected):
                    await issuer_hsm.import_zone_pin_key(label + ".x", tampered)
                block = tdes.encrypt_ecb(clear_zpk, encode_iso0(PIN, PAN))
                assert await issuer_hsm.verify_pin(PAN, block, offset, label)
                assert not await issuer_hsm.verify_pin(PAN, block, offset, ZPK_REF)

    asyncio.run(scenario())


# ---- data at rest ----------------------------------------------------------------------------

def test_no_clear_pan_or_pin_reaches_the_database(issuer: Processor, database_url: str,
                                                  tmp_path: Path) -> None:
    send(issuer, request(**{"52": pin_block(PIN)}))
    send(issuer, follow_up("0420", request(amount=5)))
    if not database_url.startswith("sqlite"):
        pytest.skip("file scan is for SQLite")
    issuer.close()
    for path in tmp_path.glob("issuer.db*"):
        data = path.read_bytes()
        assert PAN.encode() not in data and pin_block(PIN).encode() not in data


def test_authorizations_record_what_they_did(issuer: Processor) -> None:
    send(issuer, request(amount=1_500))
    send(issuer, request(amount=999_999))
    with issuer._sessions() as s:
        rows = s.scalars(sa.select(Authorization).order_by(Authorization.id)).all()
        got = [(r.status, r.response_code, r.ledger_minor, r.hold_minor) for r in rows]
    assert got == [("approved", "00", 1_500, 0), ("declined", "51", 0, 0)]
