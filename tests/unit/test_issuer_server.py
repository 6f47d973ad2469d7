"""The issuer host end to end: the real HSM service, seeding, framed ISO 8583 over TCP.

One HSM and one issuer run for the module in a background event loop; the zone PIN key is
imported with a known value before seeding so the test can build PIN blocks like a PIN pad
translated by the switch. Each test uses its own card of ``cardswitch/testcards.yaml``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from cardswitch import errors, iso8583
from cardswitch.v1 import common_pb2, hsm_pb2, hsm_pb2_grpc, issuer_pb2, issuer_pb2_grpc
from hsm_sim import lmk
from hsm_sim import server as hsm_server
from hsm_sim.algorithms import pinblock, tdes
from issuer_sim import cli as issuer_cli
from issuer_sim import seed
from issuer_sim import server as issuer_server
from issuer_sim.control import Faults
from tests.conftest import pg_schema

ZPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
_stans = itertools.count(1)
T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread, for servers the tests talk to from outside."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Env:
    port: int
    control: Any
    cards: dict[str, dict[str, str]]
    var: Path
    url: str
    seed_result: seed.SeedResult
    hsm_address: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Env]:
    var = tmp_path_factory.mktemp("issuer-var")
    schema = pg_schema() if request.param == "postgresql" else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARDSWITCH_VAR", str(var))
        mp.delenv("CARDSWITCH_ISSUER_FAULTS", raising=False)
        mp.delenv("CARDSWITCH_ISSUER_LATENCY_MS", raising=False)
        if schema is not None:
            mp.setenv("CARDSWITCH_DATABASE_URL", next(schema))
        else:
            mp.delenv("CARDSWITCH_DATABASE_URL", raising=False)
        lmk.create(2)
        loop = LoopThread()
        hsm = loop.run(hsm_server.start(0))
        hsm_address = f"127.0.0.1:{hsm.port}"
        with grpc.insecure_channel(hsm_address) as channel:
            hsm_pb2_grpc.HsmServiceStub(channel).ImportKey(hsm_pb2.ImportKeyRequest(
                label="zpk-issuer", key_type=hsm_pb2.KEY_TYPE_ZPK,
                algorithm=hsm_pb2.KEY_ALGORITHM_TDES_2KEY, components=[ZPK.hex()]), timeout=10)
        result = seed.seed(hsm_address)
        issuer = loop.run(issuer_server.start(0, 0, hsm_address))
        cards = {c["account_id"]: c for c in json.loads(result.card_file.read_text())["cards"]}
        control = grpc.insecure_channel(f"127.0.0.1:{issuer.control_port}")
        try:
            yield Env(issuer.port, issuer_pb2_grpc.IssuerSimServiceStub(control), cards, var,
                      os.environ.get("CARDSWITCH_DATABASE_URL", ""), result, hsm_address)
        finally:
            control.close()
            loop.run(issuer.close())
            loop.run(hsm.server.stop(1))
            loop.run(hsm.close())
            loop.stop()
            for _ in schema or ():  # drops the schema
                pass


# ---- a terminal-side client ------------------------------------------------------------------

class IsoLink:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> IsoLink:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, message: dict[str, str]) -> None:
        self.writer.write(iso8583.frame(iso8583.encode(message)))
        await self.writer.drain()

    async def receive(self, timeout: float = 10) -> dict[str, str]:
        raw = await asyncio.wait_for(iso8583.read_frame(self.reader), timeout)
        return iso8583.decode(raw)

    async def call(self, message: dict[str, str]) -> dict[str, str]:
        await self.send(message)
        return await self.receive()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def exchange(port: int, *messages: dict[str, str]) -> list[dict[str, str]]:
    """Sends each message in turn on one connection and returns the answers in order."""
    async def run() -> list[dict[str, str]]:
        link = await IsoLink.open(port)
        try:
            return [await link.call(m) for m in messages]
        finally:
            await link.close()
    return asyncio.run(run())


def financial(card: dict[str, str], mti: str = "0200", proc: str = "000000",
              amount: int = 1000, pin: str | None = None, **fields: str) -> dict[str, str]:
    """A magstripe request as the switch forwards it: track 2, PIN block under the ZPK."""
    stan = f"{next(_stans):06d}"
    msg = {"t": mti, "2": card["pan"], "3": proc, "4": f"{amount:012d}", "7": "0515120000",
           "11": stan, "12": "120000", "13": "0515", "18": "5411", "22": "021", "25": "00",
           "32": "1234567", "35": card["track2"], "37": f"612000{stan}", "41": "TERM0001",
           "42": "MERCHANT0000001", "43": "CARDSWITCH TEST SHOP    SPRINGFIELD   US",
           "49": "840"}
    if pin is not None:
        clear = pinblock.encode_iso0(pin, card["pan"])
        msg["52"] = tdes.encrypt_ecb(ZPK, clear).hex().upper()
    msg.update(fields)
    return msg


def follow_up(mti: str, original: dict[str, str], **fields: str) -> dict[str, str]:
    stan = f"{next(_stans):06d}"
    de90 = (original["t"] + original["11"] + original["7"] + original["32"].zfill(11)
            + "0" * 11)
    msg = {**original, "t": mti, "11": stan, "90": de90}
    msg.pop("52", None)
    msg.pop("35", None)
    msg.update(fields)
    return msg


def account(env: Env, account_id: str) -> dict[str, int]:
    acct = env.control.GetAccount(issuer_pb2.GetAccountRequest(account_id=account_id),
                                  timeout=10)
    out = {"pin_tries": acct.pin_tries, "holds": acct.holds.amount_minor}
    for balance in acct.balances:
        name = "ledger" if balance.type == common_pb2.BALANCE_TYPE_LEDGER else "available"
        out[name] = balance.amount.amount_minor
    return out


def de54(response: dict[str, str]) -> tuple[int, int]:
    (_, _, ledger), (_, _, available) = iso8583.decode_de54(response["54"])
    return ledger, available


# ---- tests -----------------------------------------------------------------------------------

def test_seeding_issues_every_card_and_writes_the_card_file(env: Env) -> None:
    assert len(env.cards) == 9
    assert env.seed_result.created == list(env.cards)
    visa = env.cards["acct-visa-ok"]
    assert visa["track2"].startswith("4761739001010010=30122011" + "0000")
    assert len(visa["track2"]) == 37  # ISO 7813's maximum, so 5 of the 6 zeros of fill
    assert visa["cvv2"].isdigit() and len(visa["cvv2"]) == 3
    assert (env.var / "issuer" / "cards.json").stat().st_mode & 0o777 == 0o600
    again = seed.seed(env.hsm_address)
    assert (again.created, again.reset, again.refreshed) == ([], [], [])
    assert again.unchanged == list(env.cards)


def test_purchase_with_the_right_pin_is_approved(env: Env) -> None:
    card = env.cards["acct-visa-ok"]
    before = account(env, "acct-visa-ok")["ledger"]
    msg = financial(card, amount=1250, pin=card["pin"])
    (response,) = exchange(env.port, msg)
    assert (response["t"], response["39"], response["11"], response["37"]) == (
        "0210", "00", msg["11"], msg["37"])
    assert len(response["38"]) == 6
    assert de54(response) == (before - 1250, before - 1250)
    assert account(env, "acct-visa-ok")["ledger"] == before - 1250


def test_three_wrong_pins_block_the_card(env: Env) -> None:
    card = env.cards["acct-mc-ok"]
    wrong = "0000" if card["pin"] != "0000" else "1111"
    responses = exchange(env.port, *[financial(card, pin=wrong) for _ in range(3)],
                         financial(card, pin=card["pin"]))
    assert [r["39"] for r in responses] == ["55", "55", "75", "75"]
    assert account(env, "acct-mc-ok")["pin_tries"] == 3


def test_declines_for_funds_expiry_and_lost_card(env: Env) -> None:
    low, expired, lost = (env.cards[a] for a in ("acct-visa-low", "acct-visa-expired",
                                                 "acct-visa-lost"))
    responses = exchange(env.port, financial(low, amount=501), financial(expired),
                         financial(lost))
    assert [(r["39"], r["44"]) for r in responses] == [
        ("51", "insufficient funds"), ("54", "card expired 2401"), ("41", "card lost")]


def test_network_management_echo(env: Env) -> None:
    (response,) = exchange(env.port, {"t": "0800", "7": "0515120000", "11": "999001",
                                      "70": "301"})
    assert response == {"t": "0810", "7": "0515120000", "11": "999001", "70": "301",
                        "39": "00"}


def test_preauth_then_capture_settles_the_final_amount(env: Env) -> None:
    card = env.cards["acct-upi-ok"]
    start = account(env, "acct-upi-ok")
    preauth = financial(card, "0100", amount=40_000, **{"25": "06"})
    auth, = exchange(env.port, preauth)
    assert (auth["t"], auth["39"]) == ("0110", "00")
    assert de54(auth) == (start["ledger"], start["available"] - 40_000)
    assert account(env, "acct-upi-ok")["holds"] == 40_000
    capture, = exchange(env.port, follow_up("0220", preauth, **{"4": f"{32_500:012d}"}))
    assert (capture["t"], capture["39"]) == ("0230", "00")
    after = account(env, "acct-upi-ok")
    assert (after["ledger"], after["available"], after["holds"]) == (
        start["ledger"] - 32_500, start["ledger"] - 32_500, 0)


def test_void_restores_the_balance(env: Env) -> None:
    card = env.cards["acct-visa-ok"]
    before = account(env, "acct-visa-ok")["ledger"]
    purchase = financial(card, amount=4_321)
    responses = exchange(env.port, purchase, follow_up("0400", purchase))
    assert [(r["t"], r["39"]) for r in responses] == [("0210", "00"), ("0410", "00")]
    assert account(env, "acct-visa-ok")["ledger"] == before


def test_reversal_advice_before_its_original_makes_the_original_decline_94(env: Env) -> None:
    card = env.cards["acct-mc-limit"]
    before = account(env, "acct-mc-limit")["ledger"]
    original = financial(card, amount=3_000)
    advice, late = exchange(env.port, follow_up("0420", original), original)
    assert (advice["t"], advice["39"]) == ("0430", "00")
    assert (late["t"], late["39"]) == ("0210", "94")
    assert account(env, "acct-mc-limit")["ledger"] == before


def test_many_requests_in_flight_are_answered_as_they_complete(env: Env) -> None:
    card = env.cards["acct-visa-ok"]
    env.control.SetFaults(issuer_pb2.SetFaultsRequest(faults=[issuer_pb2.Fault(
        kind=issuer_pb2.FAULT_KIND_DELAY, latency_ms=700, match_amount_minor=777,
        mtis=["0200"], count=1)]), timeout=10)
    slow = financial(card, amount=777)
    quick = [financial(card, amount=100 + i) for i in range(8)]

    async def run() -> tuple[list[dict[str, str]], float]:
        link = await IsoLink.open(env.port)
        started = time.monotonic()
        for msg in (slow, *quick):
            await link.send(msg)
        answers = [await link.receive() for _ in range(1 + len(quick))]
        elapsed = time.monotonic() - started
        await link.close()
        return answers, elapsed

    try:
        answers, elapsed = asyncio.run(run())
    finally:
        env.control.SetFaults(issuer_pb2.SetFaultsRequest(), timeout=10)
    assert {a["11"] for a in answers[:-1]} == {m["11"] for m in quick}
    assert answers[-1]["11"] == slow["11"]
    assert all(a["39"] == "00" for a in answers)
    assert elapsed < 5
    stats = env.control.GetStats(issuer_pb2.GetStatsRequest(), timeout=10)
    assert stats.received["0200"] >= 9 and stats.sent["0210"] >= 9


def test_injected_faults_garble_drop_or_cut_the_answer(env: Env) -> None:
    card = env.cards["acct-visa-ok"]
    kinds = {901: issuer_pb2.FAULT_KIND_GARBAGE, 902: issuer_pb2.FAULT_KIND_TRUNCATED,
             903: issuer_pb2.FAULT_KIND_NO_RESPONSE, 904: issuer_pb2.FAULT_KIND_DISCONNECT}
    env.control.SetFaults(issuer_pb2.SetFaultsRequest(faults=[
        issuer_pb2.Fault(kind=kind, match_amount_minor=amount, count=1)
        for amount, kind in kinds.items()]), timeout=10)
    before = account(env, "acct-visa-ok")["ledger"]
    lost_answer = financial(card, amount=903)

    async def run() -> list[str]:
        link = await IsoLink.open(env.port)
        seen = []
        for amount in (901, 902):
            await link.send(financial(card, amount=amount))
            try:
                iso8583.decode(await asyncio.wait_for(iso8583.read_frame(link.reader), 5))
                seen.append("decoded")
            except iso8583.MessageError:
                seen.append("undecodable")
        await link.send(lost_answer)
        try:
            await link.receive(timeout=0.5)
            seen.append("answered")
        except TimeoutError:
            seen.append("no answer")
        await link.send(financial(card, amount=904))
        seen.append("closed" if await asyncio.wait_for(link.reader.read(1), 5) == b"" else "open")
        await link.close()
        return seen

    try:
        assert asyncio.run(run()) == ["undecodable", "undecodable", "no answer", "closed"]
    finally:
        env.control.SetFaults(issuer_pb2.SetFaultsRequest(), timeout=10)
    # 901-903 were processed (only their answers were spoilt), 904 never was.
    assert account(env, "acct-visa-ok")["ledger"] == before - 901 - 902 - 903
    (advice,) = exchange(env.port, follow_up("0420", lost_answer))
    assert advice["39"] == "00"
    assert account(env, "acct-visa-ok")["ledger"] == before - 901 - 902


@pytest.mark.parametrize("garbage", [
    b"\x00\x10this is garbage!",
    b"GET / HTTP/1.1\r\n\r\n",  # a length prefix far beyond any message
    iso8583.frame(b"0200" + bytes([0x08, 0, 0, 0, 0, 0, 0, 0]) + b"000000001000"),  # no DE 5
], ids=["framed-text", "http", "undefined-field"])
def test_garbage_closes_only_that_connection(env: Env, garbage: bytes) -> None:
    async def run() -> tuple[bytes, dict[str, str]]:
        good = await IsoLink.open(env.port)
        bad = await IsoLink.open(env.port)
        bad.writer.write(garbage)
        await bad.writer.drain()
        eof = await asyncio.wait_for(bad.reader.read(100), 5)
        echo = await good.call({"t": "0800", "7": "0515120000", "11": "999002", "70": "301"})
        await good.close()
        bad.writer.close()
        return eof, echo

    eof, echo = asyncio.run(run())
    assert eof == b""
    assert (echo["t"], echo["39"]) == ("0810", "00")
    assert exchange(env.port, {"t": "0800", "7": "0515120000", "11": "999003",
                               "70": "301"})[0]["39"] == "00"


def test_no_clear_pan_or_pin_block_in_the_database_files(env: Env) -> None:
    if env.url:
        pytest.skip("file scan is for SQLite")
    files = list(env.var.glob("*.db*"))
    assert files
    for path in files:
        data = path.read_bytes()
        for card in env.cards.values():
            assert card["pan"].encode() not in data


def test_control_api_rejects_bad_faults_and_unknown_accounts(env: Env) -> None:
    with pytest.raises(grpc.RpcError) as bad:
        env.control.SetFaults(issuer_pb2.SetFaultsRequest(faults=[issuer_pb2.Fault(
            latency_ms=-1)]), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.field_violations_of(bad.value) == [
        ("faults[0].kind", "must be set"), ("faults[0].latency_ms", "must be >= 0")]
    with pytest.raises(grpc.RpcError) as missing:
        env.control.GetAccount(issuer_pb2.GetAccountRequest(account_id="acct-nope"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_counted_fault_applies_that_many_times(env: Env) -> None:
    faults = Faults()
    faults.replace(issuer_pb2.SetFaultsRequest(faults=[issuer_pb2.Fault(
        kind=issuer_pb2.FAULT_KIND_NO_RESPONSE, match_amount_minor=5, count=2)]))
    taken = [faults.take("0200", 5) is not None for _ in range(3)]
    assert taken == [True, True, False]
    assert faults.take("0800", 0) is None


def test_initial_faults_and_latency_come_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDSWITCH_ISSUER_LATENCY_MS", "25")
    monkeypatch.setenv("CARDSWITCH_ISSUER_FAULTS", json.dumps({"faults": [
        {"kind": "FAULT_KIND_DELAY", "latencyMs": 300, "mtis": ["0100"]}]}))
    faults = Faults.from_env()
    assert faults.base_latency_ms == 25
    rule = faults.take("0100", 1234)
    assert rule is not None and (rule.kind, rule.latency_ms) == (issuer_pb2.FAULT_KIND_DELAY, 300)
    assert faults.take("0200", 1234) is None


def test_seed_command_reports_what_it_did(env: Env, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDSWITCH_VAR", str(env.var))
    if env.url:
        monkeypatch.setenv("CARDSWITCH_DATABASE_URL", env.url)
    parser = argparse.ArgumentParser(prog="cardswitch")
    issuer_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["issuer", "seed", "--hsm", env.hsm_address])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "issued 9 cards: 0 created, 0 reset, 0 refreshed, 9 unchanged" in out
    for card in env.cards.values():
        assert card["pan"] not in out
    serve = parser.parse_args(["issuer", "serve"])
    assert (serve.port, serve.control_port, serve.hsm, serve.metrics_port) == (
        7200, 7201, "127.0.0.1:7100", 0)


def test_seed_reset_releases_open_holds_and_what_they_counted_today(env: Env) -> None:
    card = env.cards["acct-mc-limit"]  # daily limit 200.00
    preauth, over = exchange(env.port, financial(card, "0100", amount=15_000, **{"25": "06"}),
                             financial(card, amount=5_001))
    assert (preauth["39"], over["39"]) == ("00", "61")
    assert account(env, "acct-mc-limit")["holds"] == 15_000
    result = seed.seed(env.hsm_address, reset=True)
    assert "acct-mc-limit" in result.reset
    after = account(env, "acct-mc-limit")
    assert (after["holds"], after["available"], after["ledger"]) == (0, 900_000, 900_000)
    (full_day,) = exchange(env.port, financial(card, amount=20_000))
    assert full_day["39"] == "00"


def test_an_issuer_in_another_dialect_answers_in_it_with_the_tpdu_swapped(env: Env) -> None:
    dialect = iso8583.Dialect.parse("bcd,hex,ebcdic,ascii4,tpdu=6000030000")
    echo = {"t": "0800", "7": "0515120000", "11": "999101", "70": "301"}

    async def run() -> bytes:
        issuer = await issuer_server.start(0, 0, env.hsm_address, url=env.url or None,
                                           dialect=dialect)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", issuer.port)
            writer.write(dialect.frame(dialect.encode(echo)))
            header = await asyncio.wait_for(reader.readexactly(4), 10)
            body = await asyncio.wait_for(reader.readexactly(int(header)), 10)
            writer.close()
            return header + body
        finally:
            await issuer.close()

    answer = asyncio.run(run())
    assert int(answer[:4]) == len(answer) - 4  # 4 ASCII digits counting TPDU and message
    assert answer[4:9] == bytes.fromhex("6000000003")  # destination and source swapped
    assert answer[9:11] == b"\x08\x10"  # a BCD MTI
    assert dialect.decode(answer[9:]) == echo | {"t": "0810", "39": "00"}


def test_a_duplicate_answer_fault_writes_the_same_frame_twice(env: Env) -> None:
    card = env.cards["acct-visa-ok"]
    env.control.SetFaults(issuer_pb2.SetFaultsRequest(faults=[issuer_pb2.Fault(
        kind=issuer_pb2.FAULT_KIND_DUPLICATE_ANSWER, match_amount_minor=906, count=1)]),
        timeout=10)
    before = account(env, "acct-visa-ok")["ledger"]
    request = financial(card, amount=906)

    async def run() -> tuple[list[bytes], dict[str, str]]:
        link = await IsoLink.open(env.port)
        await link.send(request)
        frames = [await asyncio.wait_for(iso8583.read_frame(link.reader), 5) for _ in range(2)]
        echo = await link.call({"t": "0800", "7": "0515120000", "11": "999004", "70": "301"})
        await link.close()
        return frames, echo

    try:
        (first, second), echo = asyncio.run(run())
    finally:
        env.control.SetFaults(issuer_pb2.SetFaultsRequest(), timeout=10)
    assert first == second
    answer = iso8583.decode(first)
    assert (answer["t"], answer["39"], answer["11"]) == ("0210", "00", request["11"])
    assert echo["t"] == "0810"  # the next frame answers the echo: two copies, not three
    assert account(env, "acct-visa-ok")["ledger"] == before - 906  # processed once


def test_serve_speaks_the_dialect_of_the_flag_else_of_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser(prog="cardswitch")
    issuer_cli.register(parser.add_subparsers(dest="command"))
    monkeypatch.setenv("CARDSWITCH_ISSUER_DIALECT", "ascii,hex,ebcdic,binary2")
    flag = parser.parse_args(["issuer", "serve", "--dialect",
                              "bcd,hex,ebcdic,ascii4,tpdu=6000030000"])
    assert issuer_cli.serve_dialect(flag) == iso8583.Dialect(
        "bcd", "hex", "ebcdic", "ascii4", bytes.fromhex("6000030000"))
    no_flag = parser.parse_args(["issuer", "serve"])
    assert issuer_cli.serve_dialect(no_flag) == iso8583.Dialect(bitmap="hex", charset="ebcdic")
    monkeypatch.delenv("CARDSWITCH_ISSUER_DIALECT")
    assert issuer_cli.serve_dialect(no_flag) == iso8583.DEFAULT
    monkeypatch.setenv("CARDSWITCH_ISSUER_DIALECT", "bcd")
    with pytest.raises(ValueError, match=r"^CARDSWITCH_ISSUER_DIALECT: dialect 'bcd': expected"):
        issuer_cli.serve_dialect(no_flag)
