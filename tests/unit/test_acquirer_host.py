"""Acquirer hosts in: ISO 8583 over loopback TCP to a fake servicer, through terminals/acquirer.py.

The fake servicer has the servicer's method names, records every protobuf request (with the
zone PIN key in force and the time budget it was given) and answers canned protobuf responses,
or fails the way it is told to.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
from prometheus_client import REGISTRY

from cardswitch import errors, iso8583, tlv
from cardswitch.iso8583 import Dialect, Message
from cardswitch.v1 import acquiring_pb2, admin_pb2, common_pb2
from switch.acquirer_host import (
    AcquirerHostConfig,
    AcquirerHostServer,
    local_date_time,
    response_mti,
)
from switch.context import TerminalConfig
from switch.service import PIN_SOURCE_ZPK
from terminals import acquirer
from terminals.acquirer import AcquirerClient

T = TypeVar("T")

TERMINAL = TerminalConfig("TERM0001", "MERCHANT000001", "5411", "Corner Shop", "USD", "bdk-1")
PAN = "4761739001010010"
TRACK2 = f"{PAN}=30122010000012300000"
PIN_BLOCK = bytes.fromhex("0123456789ABCDEF")
ZPK = "zpk-acquirer-b"
#: The terminal's local clock (naive: DE 12/13 carry no zone).
NOW = dt.datetime.now().replace(microsecond=0)
LDT = NOW.strftime("%y%m%d%H%M%S")
ISSUER_CHIP = bytes.fromhex("910A00112233445566778899")
BCD_EBCDIC = Dialect(numeric="bcd", bitmap="hex", charset="ebcdic", length_header="ascii4",
                     tpdu=bytes.fromhex("6000030000"))


def _result(code: str, reason: str = "") -> common_pb2.Result:
    return common_pb2.Result(response_code=code, reason=reason, approved=code == "00")


def _canned() -> dict[str, Any]:
    usd = "USD"
    return {
        "Authorize": acquiring_pb2.AuthorizeResponse(
            transaction_id="t-1", result=_result("00"), approval_code="A1B2C3",
            rrn="512300000042", issuer_emv_data=ISSUER_CHIP),
        "Refund": acquiring_pb2.RefundResponse(transaction_id="t-2", result=_result("00"),
                                               approval_code="R00001", rrn="512300000043"),
        "BalanceInquiry": acquiring_pb2.BalanceInquiryResponse(
            transaction_id="t-3", result=_result("00"), balances=[
                common_pb2.Balance(type=common_pb2.BALANCE_TYPE_LEDGER,
                                   amount=common_pb2.Money(amount_minor=250000, currency=usd)),
                common_pb2.Balance(type=common_pb2.BALANCE_TYPE_AVAILABLE,
                                   amount=common_pb2.Money(amount_minor=-1500, currency=usd))]),
        "Reverse": acquiring_pb2.ReverseResponse(transaction_id="t-4", result=_result("00"),
                                                 original_transaction_id="t-1"),
    }


@dataclass
class FakeRegistry:
    terminals: dict[str, TerminalConfig]


@dataclass
class FakeDeps:
    registry: FakeRegistry


@dataclass
class FakeServicer:
    """Records (method, request), the PIN key source and the budget; answers ``responses``."""

    deps: FakeDeps = field(
        default_factory=lambda: FakeDeps(FakeRegistry({TERMINAL.terminal_id: TERMINAL})))
    responses: dict[str, Any] = field(default_factory=_canned)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    pin_sources: list[str] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)
    #: Seconds to take, by the request's STAN.
    delays: dict[str, float] = field(default_factory=dict)
    fail: Exception | None = None
    abort_with: Any = None

    async def _answer(self, method: str, request: Any, context: Any) -> Any:
        self.calls.append((method, request))
        self.pin_sources.append(PIN_SOURCE_ZPK.get())
        self.budgets.append(context.time_remaining())
        await asyncio.sleep(self.delays.get(request.key.stan, 0))
        if self.abort_with is not None:
            await context.abort(self.abort_with, "deadline: 50 ms left")
        if self.fail is not None:
            raise self.fail
        return self.responses[method]

    async def Authorize(self, request: acquiring_pb2.AuthorizeRequest, context: Any,
                        ) -> acquiring_pb2.AuthorizeResponse:
        response: acquiring_pb2.AuthorizeResponse = await self._answer("Authorize", request,
                                                                       context)
        return response

    async def Refund(self, request: acquiring_pb2.RefundRequest, context: Any,
                     ) -> acquiring_pb2.RefundResponse:
        response: acquiring_pb2.RefundResponse = await self._answer("Refund", request, context)
        return response

    async def BalanceInquiry(self, request: acquiring_pb2.BalanceInquiryRequest, context: Any,
                             ) -> acquiring_pb2.BalanceInquiryResponse:
        response: acquiring_pb2.BalanceInquiryResponse = await self._answer(
            "BalanceInquiry", request, context)
        return response

    async def Reverse(self, request: acquiring_pb2.ReverseRequest, context: Any,
                      ) -> acquiring_pb2.ReverseResponse:
        response: acquiring_pb2.ReverseResponse = await self._answer("Reverse", request, context)
        return response


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


@contextlib.asynccontextmanager
async def serving(fake: FakeServicer, dialect: Dialect = iso8583.DEFAULT,
                  ) -> AsyncIterator[tuple[AcquirerHostServer, AcquirerClient]]:
    server = AcquirerHostServer(AcquirerHostConfig("acquirer-b", 0, dialect, ZPK), fake)
    await server.start()
    client = AcquirerClient("127.0.0.1", server.port, dialect)
    await client.connect()
    try:
        yield server, client
    finally:
        await client.close()
        await server.close()


def exchange(message: Message, fake: FakeServicer | None = None,
             dialect: Dialect = iso8583.DEFAULT) -> tuple[Message, FakeServicer]:
    fake = fake or FakeServicer()

    async def scenario() -> Message:
        async with serving(fake, dialect) as (_, client):
            return await client.send(message, timeout=5)
    return run(scenario()), fake


def purchase(stan: int = 123, **card: Any) -> Message:
    card = card or {"track2": TRACK2, "pin_block": PIN_BLOCK, "entry_mode": "021"}
    return acquirer.financial("0200", "000000", "TERM0001", "MERCHANT000001", stan, 2599, "USD",
                              now=NOW, mcc="5411", **card)


def key(stan: str = "000123") -> acquiring_pb2.RequestKey:
    return acquiring_pb2.RequestKey(terminal_id="TERM0001", merchant_id="MERCHANT000001",
                                    stan=stan, local_date_time=LDT)


USD_25_99 = common_pb2.Money(amount_minor=2599, currency="USD")


# -- each MTI to its request, and the answer --------------------------------------------------


def test_0200_swiped_with_pin_is_a_purchase_under_the_acquirers_zone_pin_key() -> None:
    answer, fake = exchange(purchase())
    assert fake.calls == [("Authorize", acquiring_pb2.AuthorizeRequest(
        key=key(), type=acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE, amount=USD_25_99,
        card=common_pb2.CardInput(track2=common_pb2.Track2(data=TRACK2)),
        entry_mode=common_pb2.ENTRY_MODE_MAGSTRIPE,
        pin_block=common_pb2.EncryptedPinBlock(block=PIN_BLOCK,
                                               format=common_pb2.PIN_BLOCK_FORMAT_ISO_0),
        mcc="5411"))]
    assert fake.pin_sources == [ZPK]
    assert 24.0 < fake.budgets[0] <= 25.0
    assert {de: answer.get(de) for de in ("t", "11", "41", "39", "38", "37", "55", "44")} == {
        "t": "0210", "11": "000123", "41": "TERM0001", "39": "00", "38": "A1B2C3",
        "37": "512300000042", "55": ISSUER_CHIP.hex().upper(), "44": None}
    assert not {"2", "35", "52"} & answer.keys(), "card data and PIN never come back"


def test_0100_keyed_is_a_pre_authorization_with_expiry_and_cvv2() -> None:
    message = acquirer.financial("0100", "000000", "TERM0001", "MERCHANT000001", 7, 2599, "USD",
                                 now=NOW, pan=PAN, expiry_yymm="3012", cvv2="123",
                                 entry_mode="012")
    answer, fake = exchange(message)
    assert fake.calls == [("Authorize", acquiring_pb2.AuthorizeRequest(
        key=key("000007"), type=acquiring_pb2.AUTHORIZATION_TYPE_PRE_AUTHORIZATION,
        amount=USD_25_99, card=common_pb2.CardInput(manual=common_pb2.ManualEntry(
            pan=PAN, expiry_yymm="3012", cvv2="123")),
        entry_mode=common_pb2.ENTRY_MODE_MANUAL))]
    assert (answer["t"], answer["39"]) == ("0110", "00")


def test_chip_data_gets_the_card_data_that_travelled_beside_it() -> None:
    de55 = tlv.encode_all([(0x9F26, bytes(8)), (0x9F36, b"\x00\x2a")])
    message = purchase(pan=PAN, track2=TRACK2, chip=de55, entry_mode="051") | {"23": "001"}
    _, fake = exchange(message)
    request = fake.calls[0][1]
    assert request.card.emv.tlv == de55 + bytes.fromhex(
        "5A084761739001010010" "57134761739001010010D30122010000012300000F" "5F340101")
    assert request.entry_mode == common_pb2.ENTRY_MODE_CHIP


@pytest.mark.parametrize("mti", ["0100", "0200"])
def test_processing_code_31_is_a_balance_inquiry_answered_with_de54(mti: str) -> None:
    message = acquirer.financial(mti, "310000", "TERM0001", "MERCHANT000001", 9, 0, "USD",
                                 now=NOW, track2=TRACK2, pin_block=PIN_BLOCK, entry_mode="021")
    answer, fake = exchange(message)
    assert fake.calls == [("BalanceInquiry", acquiring_pb2.BalanceInquiryRequest(
        key=key("000009"), card=common_pb2.CardInput(track2=common_pb2.Track2(data=TRACK2)),
        entry_mode=common_pb2.ENTRY_MODE_MAGSTRIPE,
        pin_block=common_pb2.EncryptedPinBlock(block=PIN_BLOCK,
                                               format=common_pb2.PIN_BLOCK_FORMAT_ISO_0)))]
    assert answer["54"] == "0001840C0000002500000002840D000000001500"
    assert answer["t"] == response_mti(mti)


def test_0200_processing_code_20_is_a_refund_and_the_acquirers_rrn_is_repeated() -> None:
    message = acquirer.financial("0200", "200000", "TERM0001", "MERCHANT000001", 11, 2599,
                                 "USD", now=NOW, track2=TRACK2, entry_mode="021")
    answer, fake = exchange(message | {"37": "000000000777"})
    assert fake.calls == [("Refund", acquiring_pb2.RefundRequest(
        key=key("000011"), amount=USD_25_99, entry_mode=common_pb2.ENTRY_MODE_MAGSTRIPE,
        card=common_pb2.CardInput(track2=common_pb2.Track2(data=TRACK2))))]
    assert (answer["39"], answer["38"], answer["37"]) == ("00", "R00001", "000000000777")


def test_0400_voids_the_original_named_by_de90_and_de12_13() -> None:
    original = purchase(stan=123)
    later = NOW + dt.timedelta(seconds=5)
    void = acquirer.reversal(original, now=later) | {"11": "000200"}
    answer, fake = exchange(void)
    assert fake.calls == [("Reverse", acquiring_pb2.ReverseRequest(
        key=acquiring_pb2.RequestKey(
            terminal_id="TERM0001", merchant_id="MERCHANT000001", stan="000200",
            local_date_time=later.strftime("%y%m%d%H%M%S"),
            request_id=f"iso8583-reversal:TERM0001:000123:{LDT}"),
        reason=acquiring_pb2.REVERSAL_REASON_VOID, original_key=key("000123")))]
    assert (answer["t"], answer["39"], answer["90"]) == ("0410", "00", void["90"])


@pytest.mark.parametrize("mti", ["0420", "0421"])
def test_0420_and_its_repeat_are_one_timeout_reversal(mti: str) -> None:
    advice = acquirer.reversal(purchase(stan=123), advice=True, now=NOW) | {"t": mti}
    answer, fake = exchange(advice)
    request = fake.calls[0][1]
    assert request.reason == acquiring_pb2.REVERSAL_REASON_TIMEOUT
    assert request.original_key == key("000123")
    assert request.key.request_id == f"iso8583-reversal:TERM0001:000123:{LDT}"
    assert (answer["t"], answer["39"]) == ("0430", "00")


def test_reversal_without_de90_names_the_original_by_de11() -> None:
    void = {de: v for de, v in acquirer.reversal(purchase(stan=55), now=NOW).items() if de != "90"}
    _, fake = exchange(void)
    assert fake.calls[0][1].original_key == key("000055")


@pytest.mark.parametrize(("code", "answered"), [("001", "00"), ("002", "00"), ("301", "00"),
                                                ("999", "12")])
def test_0800_sign_on_sign_off_and_echo_are_answered_by_the_switch(code: str,
                                                                   answered: str) -> None:
    answer, fake = exchange(acquirer.network(code, 1, now=NOW))
    assert (answer["t"], answer["11"], answer["70"], answer["39"]) == ("0810", "000001", code,
                                                                        answered)
    assert fake.calls == []


# -- refusals and failures ------------------------------------------------------------------


def test_a_decline_carries_its_reason_in_de44_with_any_pan_masked() -> None:
    fake = FakeServicer()
    fake.responses["Authorize"] = acquiring_pb2.AuthorizeResponse(
        result=_result("51", f"card {PAN} over limit"), rrn="512300000044")
    answer, _ = exchange(purchase(), fake)
    assert (answer["39"], answer["44"]) == ("51", "card 476173******0010 ove")
    assert "38" not in answer


@pytest.mark.parametrize(("failure", "code", "text"), [
    (errors.FieldViolations([("amount.amount_minor", "must be greater than zero"),
                             ("card.track2.data", "fails the Luhn check")]), "30",
     "invalid DE 4,35"),
    (errors.FieldViolations([("key.merchant_id", "does not match the terminal's merchant")]),
     "03", "invalid DE 42"),
    (errors.NotFound("original_transaction_id: no such transaction"), "25",
     "original not found"),
    (errors.Conflict("a purchase that is captured cannot be voided"), "12",
     "invalid transaction"),
    (errors.AlreadyExists("request_id"), "94", "duplicate transmission"),
    (RuntimeError(f"journal down while handling {PAN}"), "96", "system malfunction"),
])
def test_servicer_errors_become_response_codes_and_de44(
        failure: Exception, code: str, text: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeServicer(fail=failure)
    answer, _ = exchange(purchase(), fake)
    assert (answer["t"], answer["11"], answer["39"], answer["44"]) == ("0210", "000123", code,
                                                                       text)
    assert PAN not in caplog.text


def test_servicer_abort_for_want_of_time_is_91() -> None:
    answer, _ = exchange(purchase(), FakeServicer(abort_with=grpc.StatusCode.DEADLINE_EXCEEDED))
    assert (answer["39"], answer["44"]) == ("91", "out of time")


def test_unknown_terminal_is_03_and_never_reaches_the_servicer() -> None:
    answer, fake = exchange(purchase() | {"41": "NOSUCH01"})
    assert (answer["39"], answer["44"], answer["41"]) == ("03", "unknown terminal (DE 41)",
                                                          "NOSUCH01")
    assert fake.calls == []


@pytest.mark.parametrize(("change", "code", "text"), [
    ({"3": "010000"}, "12", "DE 3 01 not taken"),
    ({"t": "0220"}, "12", "MTI 0220 not taken"),
    ({"13": "1332"}, "30", "DE 12/13 invalid"),
    ({"49": "999"}, "30", "DE 49 unknown currency"),
])
def test_what_the_switch_does_not_take_is_refused_before_the_servicer(
        change: Message, code: str, text: str) -> None:
    answer, fake = exchange(purchase() | change)
    assert (answer["39"], answer["44"]) == (code, text)
    assert fake.calls == []


def test_a_data_element_that_does_not_decode_is_30_when_mti_and_stan_do() -> None:
    message = {"t": "0200", "3": "000000", "4": "000000002599", "11": "000321",
               "41": "TERM0001", "49": "840"}
    payload = iso8583.encode(message)[:-2]

    async def scenario() -> Message:
        async with serving(FakeServicer()) as (server, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(iso8583.frame(payload))
            answer = iso8583.decode(await iso8583.read_frame(reader))
            writer.close()
            return answer
    assert run(scenario()) == {"t": "0210", "11": "000321", "41": "TERM0001", "39": "30",
                               "44": "DE 49 unreadable"}


@pytest.mark.parametrize("garbage", [b"\x00\x05XXXXX", b"\xff\xff" + b"x" * 16,
                                     b"\x00\x03\xff\xfe\xfd", b"\x00\x00"])
def test_garbage_closes_only_its_own_connection(garbage: bytes,
                                                caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[bytes, Message]:
        async with serving(FakeServicer()) as (server, client):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(garbage)
            closed = await reader.read()
            writer.close()
            return closed, await client.send(purchase(), timeout=5)
    closed, answer = run(scenario())
    assert closed == b""
    assert answer["39"] == "00"
    assert [r.levelname for r in caplog.records if "closing the connection" in r.getMessage()
            ] == ["WARNING"]


# -- the connection ---------------------------------------------------------------------------


def test_many_requests_in_flight_are_answered_in_completion_order() -> None:
    fake = FakeServicer(delays={"000001": 0.3, "000002": 0.15, "000003": 0.0})

    async def scenario() -> list[str]:
        async with serving(fake) as (server, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            for stan in (1, 2, 3):
                writer.write(iso8583.frame(iso8583.encode(purchase(stan=stan))))
            answers = [iso8583.decode(await iso8583.read_frame(reader)) for _ in range(3)]
            writer.close()
            return [a["11"] for a in answers]
    assert run(scenario()) == ["000003", "000002", "000001"]


def test_the_client_matches_answers_that_come_back_out_of_order() -> None:
    fake = FakeServicer(delays={"000001": 0.2, "000002": 0.1})

    async def scenario() -> list[str]:
        async with serving(fake) as (_, client):
            answers = await asyncio.gather(*(client.send(purchase(stan=s), timeout=5)
                                             for s in (1, 2, 3)))
            return [a["11"] for a in answers]
    assert run(scenario()) == ["000001", "000002", "000003"]


def test_the_client_gives_up_after_its_timeout() -> None:
    async def scenario() -> None:
        async with serving(FakeServicer(delays={"000123": 1.0})) as (_, client):
            await client.send(purchase(), timeout=0.1)
    with pytest.raises(TimeoutError):
        run(scenario())


def test_answers_carry_the_tpdu_with_destination_and_source_swapped() -> None:
    dialect = Dialect(tpdu=bytes.fromhex("6000030000"))

    async def scenario() -> iso8583.Frame:
        async with serving(FakeServicer(), dialect) as (server, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(dialect.frame(dialect.encode(purchase()),
                                       tpdu=bytes.fromhex("6000071234")))
            frame = await dialect.read_frame(reader)
            writer.close()
            return frame
    frame = run(scenario())
    assert frame.tpdu == bytes.fromhex("6012340007")
    assert dialect.decode(frame.payload)["39"] == "00"


def test_a_bcd_hex_bitmap_ebcdic_ascii4_tpdu_dialect_maps_the_same() -> None:
    answer, fake = exchange(purchase(), dialect=BCD_EBCDIC)
    assert fake.calls[0][1] == exchange(purchase())[1].calls[0][1]
    assert (answer["39"], answer["38"], answer["37"]) == ("00", "A1B2C3", "512300000042")


def test_close_lets_a_request_in_flight_finish_then_refuses_connections() -> None:
    fake = FakeServicer(delays={"000123": 0.2})

    async def scenario() -> Message:
        async with serving(fake) as (server, client):
            pending = asyncio.create_task(client.send(purchase(), timeout=5))
            while not fake.calls:
                await asyncio.sleep(0.01)
            port = server.port
            await server.close()
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)
            return await pending
    assert run(scenario())["39"] == "00"


def test_several_workers_share_one_port() -> None:
    async def scenario() -> tuple[bool, str]:
        first = AcquirerHostServer(AcquirerHostConfig("acquirer-b", 0), FakeServicer())
        await first.start()
        second = AcquirerHostServer(AcquirerHostConfig("acquirer-b", first.port), FakeServicer())
        await second.start()
        try:
            async with AcquirerClient("127.0.0.1", first.port) as client:
                answer = await client.send(acquirer.network("301", 1, now=NOW), timeout=5)
            return second.port == first.port, answer["39"]
        finally:
            await second.close()
            await first.close()
    assert run(scenario()) == (True, "00")


def test_every_answer_is_counted_by_host_mti_and_code() -> None:
    labels = {"host": "acquirer-b", "mti": "0200", "code": "03"}
    before = REGISTRY.get_sample_value("cardswitch_acquirer_messages_total", labels) or 0.0
    exchange(purchase() | {"41": "NOSUCH01"})
    assert REGISTRY.get_sample_value("cardswitch_acquirer_messages_total", labels) == before + 1


# -- configuration and the key --------------------------------------------------------------


def test_config_from_the_admin_message() -> None:
    host = admin_pb2.AcquirerHost(name="acquirer-b", port=9100, zpk_key_ref=ZPK,
                                  dialect=BCD_EBCDIC.to_proto())
    assert AcquirerHostConfig.from_proto(host) == AcquirerHostConfig(
        "acquirer-b", 9100, BCD_EBCDIC, ZPK, 25.0)


@pytest.mark.parametrize(("mmdd", "hhmmss", "today", "expected"), [
    ("1123", "145200", dt.date(2025, 11, 23), "251123145200"),
    ("1231", "235959", dt.date(2026, 1, 1), "251231235959"),
    ("0101", "000001", dt.date(2025, 12, 31), "260101000001"),
    ("0229", "120000", dt.date(2025, 3, 1), "240229120000"),
])
def test_de12_13_take_the_year_nearest_today(mmdd: str, hhmmss: str, today: dt.date,
                                             expected: str) -> None:
    assert local_date_time(mmdd, hhmmss, today) == expected


@pytest.mark.parametrize(("mmdd", "hhmmss"), [("1332", "000000"), ("0101", "246000"),
                                              ("01", "000000")])
def test_de12_13_that_are_no_date_and_time_raise(mmdd: str, hhmmss: str) -> None:
    with pytest.raises(ValueError, match="local date and time"):
        local_date_time(mmdd, hhmmss, dt.date(2025, 11, 23))
