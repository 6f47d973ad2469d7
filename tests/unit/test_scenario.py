"""Scenario files: parsing, exact amounts, validation messages, and a run through the real Pos
against a fake AcquiringService on a local gRPC server."""

import argparse
import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from cardswitch.cards import mask_pan, parse_track2
from cardswitch.responses import approved, reason
from cardswitch.v1 import acquiring_pb2, acquiring_pb2_grpc, admin_pb2_grpc, common_pb2
from hsm_sim.algorithms import dukpt, pinblock, tdes
from terminals import cli
from terminals.pinpad import PinPad
from terminals.pos import Card, Pos, StanCounter, load_cards
from terminals.scenario import (
    ScenarioError,
    load_scenario,
    parse_amount,
    parse_scenario,
    run_scenario,
    wrong_pin,
)
from tests.unit.test_pinpad import FakeAdmin

DEMO = Path(__file__).resolve().parents[2] / "terminals" / "scenarios" / "demo.yaml"
IPEK = bytes.fromhex("6AC292FAA1315B4D858AB3A3D7D5933A")
INITIAL_KSN = bytes.fromhex("FFFF9876543210E00000")
CARDS = {
    "acct-visa-ok": Card("acct-visa-ok", "4761739001010010", "visa", "1234", "3012", "201",
                         "123", "4761739001010010=30122010000000000000"),
    "acct-mc-ok": Card("acct-mc-ok", "5413330089010038", "mastercard", "9876", "2911", "201",
                       "456", "5413330089010038=29112010000000000000"),
}


def scenario(*transactions: dict[str, Any]) -> dict[str, Any]:
    return {"terminal": {"terminal_id": "TERM0001", "merchant_id": "MERCHANT000001"},
            "cards": "cards.json", "transactions": list(transactions)}


def violations(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    return caught.value.violations


# --- parsing -----------------------------------------------------------------------------------

def test_demo_scenario_parses_with_every_kind_of_transaction() -> None:
    parsed = load_scenario(DEMO)

    assert (parsed.terminal_id, parsed.merchant_id) == ("TERM0001", "MERCHANT000001")
    assert {t.type for t in parsed.transactions} == {"purchase", "preauth", "capture", "void",
                                                     "refund", "balance"}
    assert {t.entry for t in parsed.transactions} == {"swipe", "manual"}
    assert any(t.pin == "wrong" for t in parsed.transactions)
    assert any(t.repeat_same for t in parsed.transactions)
    assert [t.index for t in parsed.transactions] == list(range(len(parsed.transactions)))


def test_cards_path_defaults_to_the_issuer_embossing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARDSWITCH_VAR", str(tmp_path))
    data = scenario({"type": "balance", "card": "acct-visa-ok"})
    del data["cards"]

    assert parse_scenario(data).cards_path == tmp_path / "issuer" / "cards.json"


def test_relative_cards_path_is_relative_to_the_scenario_file(tmp_path: Path) -> None:
    parsed = parse_scenario(scenario({"type": "balance", "card": "acct-visa-ok"}),
                            base_dir=tmp_path)

    assert parsed.cards_path == tmp_path / "cards.json"


def test_transaction_defaults() -> None:
    (t,) = parse_scenario(scenario({"type": "purchase", "card": "acct-visa-ok",
                                    "amount": "1.00"})).transactions

    assert (t.name, t.entry, t.currency, t.pin, t.expect, t.repeat_same) == (
        "purchase-0", "swipe", "USD", None, "00", False)


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("12.34", "USD", 1234), ("1000", "JPY", 1000), ("0.5", "USD", 50), ("12", "USD", 1200),
    ("1.234", "BHD", 1234), ("0.01", "EUR", 1), (7, "USD", 700),
])
def test_amount_is_converted_exactly_with_the_currency_exponent(
    amount: object, currency: str, minor: int
) -> None:
    assert parse_amount(amount, currency) == minor
    (t,) = parse_scenario(scenario({"type": "purchase", "card": "acct-visa-ok", "amount": amount,
                                    "currency": currency})).transactions
    assert t.amount_minor == minor


@pytest.mark.parametrize(("amount", "problem"), [
    ("1.5.0", "'1.5.0' is not a decimal amount"),
    (12.34, "must be a decimal string like \"12.34\", got float 12.34"),
    ("12.345", "'12.345' has 3 decimal places, USD has 2"),
    ("-1.00", "'-1.00' is not a decimal amount"),
    ("1e3", "'1e3' is not a decimal amount"),
    (True, "got bool True"),
    ("1000000000000", "exceeds the 12-digit amount field"),
])
def test_bad_amount_is_rejected_naming_the_transaction_and_field(
    amount: object, problem: str
) -> None:
    found = violations(scenario(
        {"type": "purchase", "card": "acct-visa-ok", "amount": "1.00"},
        {"type": "purchase", "card": "acct-visa-ok", "amount": amount},
    ))

    assert len(found) == 1
    assert found[0][0] == "transactions[1].amount"
    assert problem in found[0][1]


def test_jpy_amount_with_decimals_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"amount: '10.5' has 1 decimal places, JPY has 0"):
        parse_amount("10.5", "JPY")


def test_error_message_names_the_file_index_and_field() -> None:
    with pytest.raises(ScenarioError, match=r"^demo: transactions\[0\]\.amount: '1\.5\.0'"):
        parse_scenario(scenario({"type": "purchase", "card": "acct-visa-ok", "amount": "1.5.0"}),
                       source="demo")


@pytest.mark.parametrize(("row", "field", "problem"), [
    ({"type": "sale", "card": "acct-visa-ok"}, "type", "must be one of purchase, preauth"),
    ({"type": "purchase", "amount": "1.00"}, "card", "is required for purchase"),
    ({"type": "purchase", "card": "acct-visa-ok"}, "amount", "is required for purchase"),
    ({"type": "capture", "amount": "1.00"}, "ref", "is required for capture"),
    ({"type": "void", "ref": "nope"}, "ref", "'nope' is not the name of an earlier transaction"),
    ({"type": "capture", "ref": "buy"}, "ref", "capture cannot reference 'buy', a purchase"),
    ({"type": "void", "ref": "buy", "amount": "1.00"}, "amount", "does not apply to void"),
    ({"type": "balance", "card": "acct-visa-ok", "pin": 1234}, "pin", "must be a quoted string"),
    ({"type": "balance", "card": "acct-visa-ok", "pin": "12"}, "pin", "4 to 12 digits"),
    ({"type": "refund", "card": "acct-visa-ok", "amount": "1", "pin": "1234"}, "pin",
     "does not apply to refund"),
    ({"type": "balance", "card": "acct-visa-ok", "entry": "chip"}, "entry",
     "must be one of swipe, manual"),
    ({"type": "balance", "card": "acct-visa-ok", "expect": "approved"}, "expect",
     "2-character response code"),
    ({"type": "balance", "card": "acct-visa-ok", "repeat_same": "yes"}, "repeat_same",
     "must be true or false"),
    ({"type": "balance", "card": "acct-visa-ok", "currency": "XXX"}, "currency",
     "'XXX' is not an ISO 4217 code"),
    ({"type": "balance", "card": "acct-visa-ok", "amonut": "1"}, "amonut", "unknown key"),
    ({"type": "balance", "card": "acct-visa-ok", "name": "buy"}, "name",
     "'buy' is already the name of an earlier transaction"),
])
def test_validation_names_the_transaction_index_and_field(
    row: dict[str, Any], field: str, problem: str
) -> None:
    buy = {"name": "buy", "type": "purchase", "card": "acct-visa-ok", "amount": "1.00"}

    found = violations(scenario(buy, row))

    assert [f for f, _ in found] == [f"transactions[1].{field}"]
    assert problem in found[0][1]


def test_every_problem_is_reported_at_once() -> None:
    found = violations(scenario(
        {"type": "purchase", "card": "acct-visa-ok", "amount": "1.5.0"},
        {"type": "capture"},
        {"type": "balance", "card": 7},
    ))

    assert [f for f, _ in found] == ["transactions[0].amount", "transactions[1].ref",
                                     "transactions[2].card", "transactions[2].card"]


def test_top_level_problems_name_their_key() -> None:
    found = violations({"terminal": "TERM0001", "transactions": [], "extra": 1})

    assert [f for f, _ in found] == ["extra", "terminal", "transactions"]


@pytest.mark.parametrize(("written", "expect"), [(0, "00"), (5, "05"), (55, "55"), ("55", "55"),
                                                 ("FAILED_PRECONDITION", "FAILED_PRECONDITION")])
def test_expect_accepts_unquoted_yaml_codes_and_grpc_status_names(
    written: object, expect: str
) -> None:
    (t,) = parse_scenario(scenario({"type": "balance", "card": "acct-visa-ok",
                                    "expect": written})).transactions

    assert t.expect == expect


def test_capture_amount_defaults_to_the_preauthorized_amount() -> None:
    parsed = parse_scenario(scenario(
        {"name": "hold", "type": "preauth", "card": "acct-visa-ok", "amount": "100.00"},
        {"type": "capture", "ref": "hold"},
    ))

    assert parsed.transactions[1].amount_minor == 10000


def test_wrong_pin_differs_in_every_digit() -> None:
    assert wrong_pin("1234") == "2345"
    assert wrong_pin("9099") == "0100"


# --- running against a fake switch --------------------------------------------------------------

class FakeAcquirer(acquiring_pb2_grpc.AcquiringServiceServicer):
    """Approves everything except a PIN that is not the card's; replays repeated request keys."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.answers: dict[tuple[str, str, str], Any] = {}
        self.pins = {c.pan: c.pin for c in CARDS.values()}
        self.forget_authorizations = False

    def _answer(self, request: Any, make: Callable[[str], Any]) -> Any:
        self.requests.append(request)
        key = (request.key.terminal_id, request.key.stan, request.key.local_date_time)
        if key in self.answers:
            replay = type(self.answers[key])()
            replay.CopyFrom(self.answers[key])
            replay.replayed = True
            return replay
        answer = make(f"txn-{len(self.answers) + 1}")
        self.answers[key] = answer
        return answer

    def _code(self, request: Any) -> str:
        if not request.HasField("pin_block"):
            return "00"
        block = request.pin_block
        pan = self._pan(request.card)
        clear = tdes.decrypt_ecb(dukpt.tdes_pin_key(IPEK, block.ksn), block.block)
        return "00" if pinblock.decode_iso0(clear, pan) == self.pins[pan] else "55"

    @staticmethod
    def _pan(card: Any) -> str:
        if card.HasField("track2"):
            return parse_track2(card.track2.data).pan
        return str(card.manual.pan)

    @staticmethod
    def _result(code: str) -> common_pb2.Result:
        return common_pb2.Result(response_code=code, reason=reason(code), approved=approved(code))

    async def Authorize(self, request: Any, context: Any) -> Any:
        return self._answer(request, lambda tid: acquiring_pb2.AuthorizeResponse(
            transaction_id=tid, result=self._result(self._code(request)),
            masked_pan=mask_pan(self._pan(request.card))))

    async def Capture(self, request: Any, context: Any) -> Any:
        known = {a.transaction_id for a in self.answers.values()}
        if self.forget_authorizations or request.original_transaction_id not in known:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such pre-authorization")
        return self._answer(request, lambda tid: acquiring_pb2.CaptureResponse(
            transaction_id=tid, result=self._result("00")))

    async def Reverse(self, request: Any, context: Any) -> Any:
        return self._answer(request, lambda tid: acquiring_pb2.ReverseResponse(
            transaction_id=tid, result=self._result("00")))

    async def Refund(self, request: Any, context: Any) -> Any:
        return self._answer(request, lambda tid: acquiring_pb2.RefundResponse(
            transaction_id=tid, result=self._result("00")))

    async def BalanceInquiry(self, request: Any, context: Any) -> Any:
        available = common_pb2.Balance(type=common_pb2.BALANCE_TYPE_AVAILABLE,
                                       amount=common_pb2.Money(amount_minor=250000,
                                                               currency="USD"))
        return self._answer(request, lambda tid: acquiring_pb2.BalanceInquiryResponse(
            transaction_id=tid, result=self._result(self._code(request)), balances=[available]))


def against_fake(
    tmp_path: Path, body: Callable[[Pos, FakeAcquirer], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        fake = FakeAcquirer()
        server = grpc.aio.server()
        acquiring_pb2_grpc.add_AcquiringServiceServicer_to_server(fake, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                pos = Pos(channel, "TERM0001", "MERCHANT000001",
                          pinpad=PinPad.in_memory("TERM0001", IPEK, INITIAL_KSN),
                          stan=StanCounter.for_terminal("TERM0001", tmp_path), timeout_s=5)
                return await body(pos, fake)
        finally:
            await server.stop(None)

    return asyncio.run(main())


DAY = scenario(
    {"name": "buy", "type": "purchase", "card": "acct-visa-ok", "amount": "12.34", "pin": "1234"},
    {"name": "bad pin", "type": "purchase", "card": "acct-visa-ok", "amount": "5.00",
     "pin": "wrong", "expect": "55"},
    {"name": "keyed", "type": "purchase", "card": "acct-mc-ok", "entry": "manual",
     "amount": "20.00"},
    {"name": "hold", "type": "preauth", "card": "acct-mc-ok", "amount": "100.00", "pin": "9876"},
    {"name": "checkout", "type": "capture", "ref": "hold", "amount": "80.00"},
    {"name": "give back", "type": "refund", "ref": "buy", "amount": "2.34"},
    {"name": "cancel", "type": "void", "ref": "keyed"},
    {"name": "lost answer", "type": "timeout_reversal", "ref": "buy"},
    {"name": "balance", "type": "balance", "card": "acct-visa-ok", "pin": "1234"},
    {"name": "again", "type": "purchase", "card": "acct-visa-ok", "amount": "3.00",
     "pin": "1234", "repeat_same": True},
)


def test_scenario_run_passes_and_sends_what_each_transaction_says(tmp_path: Path) -> None:
    parsed = parse_scenario(DAY)

    async def body(pos: Pos, fake: FakeAcquirer) -> tuple[Any, FakeAcquirer]:
        return await run_scenario(pos, parsed, CARDS), fake

    results, fake = against_fake(tmp_path, body)

    assert [(r.name, r.expected, r.actual, r.passed) for r in results] == [
        ("buy", "00", "00", True), ("bad pin", "55", "55", True), ("keyed", "00", "00", True),
        ("hold", "00", "00", True), ("checkout", "00", "00", True),
        ("give back", "00", "00", True), ("cancel", "00", "00", True),
        ("lost answer", "00", "00", True), ("balance", "00", "00", True),
        ("again", "00", "00", True),
    ]
    assert results[-1].replayed
    buy, bad, keyed, hold, checkout, refund, void, reversal, balance, again, again2 = (
        fake.requests)
    assert buy.card.track2.data == CARDS["acct-visa-ok"].track2
    assert buy.entry_mode == common_pb2.ENTRY_MODE_MAGSTRIPE
    assert (buy.amount.amount_minor, buy.amount.currency) == (1234, "USD")
    assert buy.type == acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE
    assert bad.pin_block.ksn != buy.pin_block.ksn
    assert keyed.entry_mode == common_pb2.ENTRY_MODE_MANUAL
    assert (keyed.card.manual.pan, keyed.card.manual.expiry_yymm, keyed.card.manual.cvv2) == (
        "5413330089010038", "2911", "456")
    assert not keyed.HasField("pin_block")
    assert hold.type == acquiring_pb2.AUTHORIZATION_TYPE_PRE_AUTHORIZATION
    assert checkout.original_transaction_id == results[3].transaction_id
    assert checkout.amount.amount_minor == 8000
    assert refund.original_transaction_id == results[0].transaction_id
    assert refund.card.track2.data == CARDS["acct-visa-ok"].track2
    assert (void.original_transaction_id, void.reason) == (
        results[2].transaction_id, acquiring_pb2.REVERSAL_REASON_VOID)
    assert reversal.reason == acquiring_pb2.REVERSAL_REASON_TIMEOUT
    assert (reversal.original_key.stan, reversal.original_key.local_date_time) == (
        buy.key.stan, buy.key.local_date_time)
    assert balance.card.track2.data == CARDS["acct-visa-ok"].track2
    assert again2 == again
    stans = [r.key.stan for r in fake.requests[:-1]]
    assert stans == [f"{n:06d}" for n in range(1, 11)]
    assert all(len(r.key.local_date_time) == 12 for r in fake.requests)
    assert {r.key.merchant_id for r in fake.requests} == {"MERCHANT000001"}
    with_pin = [r for r in fake.requests if "pin_block" in r.DESCRIPTOR.fields_by_name
                and r.HasField("pin_block")]
    assert [r.key.stan for r in with_pin] == ["000001", "000002", "000004", "000009", "000010",
                                              "000010"]
    assert len({r.pin_block.ksn for r in with_pin}) == 5


def test_a_code_other_than_the_expected_one_fails(tmp_path: Path) -> None:
    parsed = parse_scenario(scenario(
        {"type": "purchase", "card": "acct-visa-ok", "amount": "1.00", "expect": "51"}))

    results = against_fake(tmp_path, lambda pos, fake: run_scenario(pos, parsed, CARDS))

    assert (results[0].expected, results[0].actual, results[0].passed) == ("51", "00", False)
    assert results[0].reason == "approved"


def test_pos_raises_the_grpc_error_of_a_refused_call(tmp_path: Path) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        against_fake(tmp_path, lambda pos, fake: pos.capture("txn-does-not-exist", 100))

    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


def test_capture_of_an_unknown_transaction_is_reported_as_its_grpc_status(
    tmp_path: Path,
) -> None:
    parsed = parse_scenario(scenario(
        {"name": "hold", "type": "preauth", "card": "acct-visa-ok", "amount": "1.00"},
        {"name": "cap", "type": "capture", "ref": "hold", "expect": "NOT_FOUND"},
        {"name": "void cap", "type": "void", "ref": "cap"},
    ))

    async def body(pos: Pos, fake: FakeAcquirer) -> Any:
        fake.forget_authorizations = True
        return await run_scenario(pos, parsed, CARDS)

    results = against_fake(tmp_path, body)

    assert [(r.actual, r.passed) for r in results] == [
        ("00", True), ("NOT_FOUND", True), ("--", False)]
    assert "no such pre-authorization" in results[1].reason
    assert results[2].reason == "not sent: 'cap' has no transaction id"


def test_unknown_card_account_is_reported_before_anything_is_sent(tmp_path: Path) -> None:
    parsed = parse_scenario(scenario(
        {"type": "balance", "card": "acct-visa-ok"},
        {"type": "balance", "card": "acct-nobody"},
    ))

    with pytest.raises(ScenarioError, match=r"transactions\[1\]\.card: no card with account id "
                                            r"'acct-nobody'"):
        asyncio.run(run_scenario(None, parsed, CARDS))  # type: ignore[arg-type]


def test_stan_is_persisted_across_terminals_and_wraps_after_999999(tmp_path: Path) -> None:
    first = StanCounter.for_terminal("TERM0001", tmp_path)
    assert [first.next(), first.next()] == ["000001", "000002"]

    again = StanCounter.for_terminal("TERM0001", tmp_path)
    assert again.next() == "000003"
    assert again.reserve(999_996) == 4
    assert again.next() == "000001"


def test_cards_load_from_the_issuer_card_file_or_a_bare_list(tmp_path: Path) -> None:
    rows = [dict(vars(c), status="active") for c in CARDS.values()]
    (tmp_path / "issuer.json").write_text(json.dumps({"cards": rows}))
    (tmp_path / "list.json").write_text(json.dumps(rows))

    assert load_cards(tmp_path / "issuer.json") == CARDS
    assert load_cards(tmp_path / "list.json") == CARDS


def test_card_file_errors_name_the_card_and_missing_fields(tmp_path: Path) -> None:
    (tmp_path / "cards.json").write_text(json.dumps({"cards": [{"account_id": "a", "pan": 4}]}))

    with pytest.raises(ValueError, match=r"card \[0\] lacks string field\(s\) pan, brand, pin"):
        load_cards(tmp_path / "cards.json")
    assert "4761" not in repr(CARDS["acct-visa-ok"])


# --- the command line ---------------------------------------------------------------------------

def terminal_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cardswitch")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_registers_every_terminal_subcommand_with_the_common_flags() -> None:
    parser = terminal_parser()
    args = parser.parse_args(["terminal", "purchase", "--card", "acct-visa-ok", "--amount",
                              "12.34", "--pin", "1234", "--entry", "manual", "--preauth"])
    assert (args.switch, args.card, args.amount, args.pin, args.entry, args.preauth,
            args.insecure, args.timeout) == ("127.0.0.1:7000", "acct-visa-ok", "12.34", "1234",
                                             "manual", True, False, 10.0)

    for argv in (["provision"], ["capture", "--ref", "t", "--amount", "1"], ["void", "--ref", "t"],
                 ["refund", "--card", "a", "--amount", "1", "--ref", "t"],
                 ["balance", "--card", "a", "--pin", "1234"], ["get", "t"], ["run", "x.yaml"],
                 ["load", "--tps", "200", "--duration", "30", "--concurrency", "64"]):
        args = parser.parse_args(["terminal", *argv, "--terminal-id", "TERM0009", "--insecure",
                                  "--certs", "/c", "--merchant-id", "M1", "--switch", "h:1"])
        assert callable(args.func)
        assert (args.terminal_id, args.merchant_id, args.insecure, str(args.certs),
                args.switch) == ("TERM0009", "M1", True, "/c", "h:1")


def serve_in_thread(*services: tuple[Callable[[Any, Any], None], Any]
                    ) -> tuple[int, Callable[[], None]]:
    """A gRPC server on its own event loop thread, so the CLI can run its own asyncio.run."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[Any, int]:
        server = grpc.aio.server()
        for add_to_server, servicer in services:
            add_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(5)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return port, stop


def test_cli_run_provisions_the_pin_pad_prints_the_table_and_exits_1_on_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARDSWITCH_VAR", str(tmp_path))
    (tmp_path / "cards.json").write_text(json.dumps({"cards": [vars(c) for c in CARDS.values()]}))
    passing = tmp_path / "passing.yaml"
    passing.write_text(yaml.safe_dump({"cards": "cards.json", "transactions": [
        {"name": "buy", "type": "purchase", "card": "acct-visa-ok", "amount": "1.00",
         "pin": "1234"},
        {"name": "bad pin", "type": "purchase", "card": "acct-visa-ok", "amount": "1.00",
         "pin": "wrong", "expect": "55"}]}))
    failing = tmp_path / "failing.yaml"
    failing.write_text(yaml.safe_dump({"cards": "cards.json", "transactions": [
        {"name": "expects a decline", "type": "purchase", "card": "acct-mc-ok",
         "amount": "1.00", "expect": "51"}]}))
    acquirer, admin = FakeAcquirer(), FakeAdmin(IPEK)
    port, stop = serve_in_thread(
        (acquiring_pb2_grpc.add_AcquiringServiceServicer_to_server, acquirer),
        (admin_pb2_grpc.add_AdminServiceServicer_to_server, admin))
    try:
        def run(path: Path) -> int:
            args = terminal_parser().parse_args(
                ["terminal", "run", str(path), "--switch", f"127.0.0.1:{port}", "--insecure"])
            return int(args.func(args))

        assert run(passing) == 0
        assert "2 passed, 0 failed" in capsys.readouterr().out
        assert run(failing) == 1
        assert "0 passed, 1 failed" in capsys.readouterr().out
    finally:
        stop()
    assert len(admin.requests) == 1  # provisioned once, then the sealed state was reused
    assert (tmp_path / "terminals" / "TERM0001.pinpad").exists()
    assert [r.key.stan for r in acquirer.requests] == ["000001", "000002", "000003"]
