"""The issuer's decisions, one response code at a time, against a fake HSM and a real database.

Every test sends decoded ISO 8583 requests to :class:`issuer_sim.processing.Processor` and checks
the exact response fields and the account afterwards. SQLite always; PostgreSQL too, each test
in its own schema (``tests/conftest.py``).
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

import pytest
import sqlalchemy as sa

from cardswitch import db, iso8583
from hsm_sim.algorithms.pinblock import encode_iso0
from issuer_sim import processing
from issuer_sim.models import Account, Authorization
from issuer_sim.processing import HsmUnavailable, Processor
from tests.conftest import pg_schema

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
    """Knows each card's PIN and CVVs in clear; PIN blocks arrive as clear format 0 blocks."""

    def __init__(self) -> None:
        self.up = True
        self.pins = {PAN: PIN, OTHER_PAN: "9876"}
        self.cvvs = {(PAN, "3012", "000"): CVV2, (PAN, "3012", "201"): TRACK_CVV}
        self.calls: list[str] = []

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if not self.up:
            raise HsmUnavailable("HSM: UNAVAILABLE")

    async def pan_token(self, pan: str) -> str:
        self._check("pan_token")
        return token(pan)

    async def verify_pin(self, pan: str, pin_block: bytes, offset: str) -> bool:
        self._check("verify_pin")
        return pin_block == encode_iso0(self.pins[pan], pan)

    async def verify_cvv(self, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
        self._check("verify_cvv")
        return self.cvvs.get((pan, expiry_yymm, service_code)) == cvv


def token(pan: str) -> str:
    return hashlib.sha256(pan.encode()).hexdigest()


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


def pin_block(pin: str, pan: str = PAN) -> str:
    return encode_iso0(pin, pan).hex().upper()


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


def test_unsupported_mti_of_the_dialect_is_declined_12(issuer: Processor) -> None:
    response = send(issuer, request("0120"))
    assert (response["t"], response["39"]) == ("0130", "12")


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
