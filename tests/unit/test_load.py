"""The load generator: nearest-rank percentiles, open-loop pacing, in-flight bound, counting."""

import asyncio
import time
from io import StringIO
from pathlib import Path
from typing import Any

import grpc
import pytest
from rich.console import Console

from cardswitch.v1 import acquiring_pb2, acquiring_pb2_grpc, common_pb2
from hsm_sim.algorithms import dukpt
from terminals.cli import approved_path_accounts
from terminals.load import percentile, run_load
from terminals.pinpad import PinPad
from terminals.pos import Card, Pos, StanCounter


@pytest.mark.parametrize(("p", "expected"), [(5, 15), (30, 20), (40, 20), (50, 35), (100, 50)])
def test_nearest_rank_percentile_of_five_samples(p: float, expected: float) -> None:
    assert percentile([15, 20, 35, 40, 50], p) == expected


def test_nearest_rank_percentiles_of_one_to_a_hundred() -> None:
    samples = [float(n) for n in range(1, 101)]

    assert [percentile(samples, p) for p in (50, 95, 99, 99.5, 100)] == [50, 95, 99, 100, 100]


def test_nearest_rank_uses_exact_ranks_not_floating_point() -> None:
    samples = list(range(1, 21))

    assert percentile(samples, 95) == 19  # 0.95 * 20 is exactly rank 19
    assert percentile(samples, 0) == 1
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_no_samples_is_zero_and_p_is_bounded() -> None:
    assert percentile([], 50) == 0.0
    with pytest.raises(ValueError, match="p: must be 0 to 100, got 101"):
        percentile([1.0], 101)


class FakeSend:
    """An async callable that takes ``delay`` seconds and tracks how many calls overlap."""

    def __init__(self, delay: float, outcome: Any = True) -> None:
        self.delay, self.outcome = delay, outcome
        self.calls = self.in_flight = self.max_in_flight = 0

    async def __call__(self, i: int) -> bool:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if isinstance(self.outcome, Exception):
                raise self.outcome
            return bool(self.outcome(i) if callable(self.outcome) else self.outcome)
        finally:
            self.in_flight -= 1


def test_open_loop_honours_the_target_rate() -> None:
    send = FakeSend(0.005)

    report = asyncio.run(run_load(send, tps=200, duration_s=1.0, concurrency=64, progress=False))

    assert report.planned == 200
    assert (report.sent, report.skipped, report.answered, report.approved) == (200, 0, 200, 200)
    assert 0.95 <= report.elapsed_s < 1.3
    assert 160 <= report.achieved_tps <= 210
    assert 5.0 <= report.p50_ms <= report.p95_ms <= report.p99_ms <= report.max_ms


def test_open_loop_does_not_wait_for_answers_but_bounds_what_is_in_flight() -> None:
    send = FakeSend(0.2)

    report = asyncio.run(run_load(send, tps=100, duration_s=0.5, concurrency=5, progress=False))

    assert send.max_in_flight == 5
    assert report.sent + report.skipped == report.planned == 50
    assert 5 <= report.sent <= 15  # about 5 every 0.2 s
    assert report.answered == report.sent


def test_latency_is_measured_from_the_scheduled_time() -> None:
    async def blocking_send(i: int) -> bool:
        if i == 0:
            time.sleep(0.1)  # stalls the event loop, as a slow client would
        return True

    report = asyncio.run(run_load(blocking_send, tps=100, duration_s=0.3, concurrency=64,
                                  progress=False))

    assert report.max_ms >= 100  # the requests due during the stall waited for it
    assert report.p99_ms >= 50


def test_errors_are_counted_by_grpc_code_and_declines_apart() -> None:
    unavailable = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), details="switch down")
    outcomes = {0: True, 1: False, 2: unavailable, 3: RuntimeError("boom")}

    async def send(i: int) -> bool:
        outcome = outcomes[i % 4]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    report = asyncio.run(run_load(send, tps=200, duration_s=0.2, concurrency=8, progress=False))

    assert report.sent == 40
    assert (report.approved, report.declined, report.answered) == (10, 10, 20)
    assert report.errors == {"UNAVAILABLE": 10, "RuntimeError": 10}
    assert report.error_count == 20


def test_response_codes_are_counted_as_approvals_and_declines_by_code() -> None:
    codes = ["00", "51", "55", "51", "10"]

    async def send(i: int) -> str:
        return codes[i % 5]

    report = asyncio.run(run_load(send, tps=250, duration_s=0.2, concurrency=8, progress=False))

    assert (report.sent, report.approved, report.declined) == (50, 20, 30)
    assert report.declines == {"51": 20, "55": 10}
    assert "declined 30: 51 20, 55 10" in report.summary()


def test_closed_loop_keeps_exactly_concurrency_requests_in_flight() -> None:
    send = FakeSend(0.01)

    report = asyncio.run(run_load(send, tps=0, duration_s=0.5, concurrency=4, mode="closed",
                                  progress=False))

    assert send.max_in_flight == 4
    assert report.skipped == 0
    assert report.answered == report.sent == send.calls
    assert 120 <= report.answered <= 210  # 4 workers x ~50 round trips of 10 ms
    assert report.target_tps == 0.0


def test_progress_bar_runs_without_disturbing_the_counts() -> None:
    console = Console(file=StringIO(), force_terminal=False)
    report = asyncio.run(run_load(FakeSend(0.001), tps=100, duration_s=0.3, concurrency=8,
                                  console=console))

    assert report.answered == 30
    assert "30 sent" in console.file.getvalue()  # type: ignore[attr-defined]


def test_bad_parameters_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="tps: must be positive"):
        asyncio.run(run_load(FakeSend(0), tps=0, duration_s=1, progress=False))
    with pytest.raises(ValueError, match="concurrency: must be at least 1"):
        asyncio.run(run_load(FakeSend(0), tps=1, duration_s=1, concurrency=0, progress=False))


IPEK = bytes.fromhex("6AC292FAA1315B4D858AB3A3D7D5933A")
CARDS = [
    Card("acct-visa-ok", "4761739001010010", "visa", "1234", "3012", "201", "123",
         "4761739001010010=30122010000000000000"),
    Card("acct-mc-ok", "5413330089010038", "mastercard", "9876", "2911", "201", "456",
         "5413330089010038=29112010000000000000"),
]


class RecordingAcquirer(acquiring_pb2_grpc.AcquiringServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def Authorize(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        return acquiring_pb2.AuthorizeResponse(
            transaction_id=f"txn-{len(self.requests)}",
            result=common_pb2.Result(response_code="00", reason="approved", approved=True))


def test_pos_load_sends_round_robin_purchases_with_unique_keys_and_some_pins(
    tmp_path: Path,
) -> None:
    async def main() -> tuple[Any, RecordingAcquirer]:
        fake = RecordingAcquirer()
        server = grpc.aio.server()
        acquiring_pb2_grpc.add_AcquiringServiceServicer_to_server(fake, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                pos = Pos(channel, "TERM0001", "MERCHANT000001",
                          pinpad=PinPad.install("TERM0001", IPEK, bytes(10), tmp_path),
                          stan=StanCounter.for_terminal("TERM0001", tmp_path))
                report = await run_load(pos, tps=100, duration_s=0.4, cards=CARDS,
                                        concurrency=16, amount_minor=25, pin_every=2,
                                        progress=False)
                return report, fake
        finally:
            await server.stop(None)

    report, fake = asyncio.run(main())

    assert report.approved == report.sent == len(fake.requests) == 40
    requests = sorted(fake.requests, key=lambda r: r.key.stan)
    assert [r.key.stan for r in requests] == [f"{n:06d}" for n in range(1, 41)]
    assert [r.card.track2.data for r in requests[:4]] == [CARDS[0].track2, CARDS[1].track2] * 2
    assert [r.HasField("pin_block") for r in requests[:8]] == [True, True, False, False] * 2
    assert {(r.amount.amount_minor, r.amount.currency) for r in requests} == {(25, "USD")}
    assert len({r.pin_block.ksn for r in requests if r.HasField("pin_block")}) == 20
    # STANs and KSNs were reserved on disk a block at a time, not written per request
    assert (tmp_path / "TERM0001.stan").read_text().strip() == "001000"
    assert dukpt.ksn_counter(PinPad.load("TERM0001", tmp_path).ksn) == 1000


def test_default_load_cards_are_the_test_cards_that_should_approve() -> None:
    assert approved_path_accounts() == ["acct-visa-ok", "acct-mc-ok", "acct-upi-ok"]
