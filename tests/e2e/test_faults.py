"""Fault tests on real processes: the switch killed mid-request loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import grpc
import pytest

from cardswitch import bootstrap, certs
from cardswitch.demo import TERMINAL
from cardswitch.launcher import Cluster
from cardswitch.v1 import acquiring_pb2, acquiring_pb2_grpc, common_pb2, issuer_pb2, issuer_pb2_grpc
from tests.e2e.helpers import wait_reversal_acknowledged

pytestmark = pytest.mark.e2e

HUNG_AMOUNT = 6161


def _purchase(stan: str) -> acquiring_pb2.AuthorizeRequest:
    return acquiring_pb2.AuthorizeRequest(
        key=acquiring_pb2.RequestKey(terminal_id=TERMINAL[0], merchant_id=TERMINAL[1],
                                     stan=stan, local_date_time=time.strftime("%y%m%d%H%M%S")),
        type=acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE,
        amount=common_pb2.Money(amount_minor=HUNG_AMOUNT, currency="USD"),
        card=common_pb2.CardInput(manual=common_pb2.ManualEntry(
            pan="4761739001010010", expiry_yymm="3012")),
        entry_mode=common_pb2.ENTRY_MODE_MANUAL)


def test_switch_killed_while_the_issuer_holds_a_request_reverses_it_after_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDSWITCH_STALE_PENDING_S", "2")
    cluster = Cluster(var=tmp_path)
    try:
        asyncio.run(bootstrap.start_all(cluster, [TERMINAL], issuer_timeout_ms=20000))
        control_channel = grpc.insecure_channel(cluster.issuer_control)
        control = issuer_pb2_grpc.IssuerSimServiceStub(control_channel)
        control.SetFaults(issuer_pb2.SetFaultsRequest(faults=[issuer_pb2.Fault(
            kind=issuer_pb2.FAULT_KIND_DELAY, latency_ms=3000, match_amount_minor=HUNG_AMOUNT,
            count=1)]), timeout=5)
        request = _purchase("770001")
        creds = certs.client_credentials(tmp_path / "certs")
        with grpc.secure_channel(cluster.switch, creds) as channel:
            stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
            future = stub.Authorize.future(request, timeout=30)
            time.sleep(1.0)  # the 0200 is at the issuer, which sits on it
            switch = next(p for p in cluster.procs if p.name == "switch")
            os.killpg(switch.popen.pid, signal.SIGKILL)
            switch.popen.wait(10)
            cluster.procs.remove(switch)
            with pytest.raises(grpc.RpcError) as err:
                future.result()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        time.sleep(2.5)  # older than the stale threshold
        cluster.start_switch()
        with grpc.secure_channel(cluster.switch, creds) as channel:
            stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
            txn = wait_reversal_acknowledged(
                stub, acquiring_pb2.GetTransactionRequest(key=request.key))
            assert txn.status == acquiring_pb2.TRANSACTION_STATUS_REVERSED
            assert txn.reversal_acknowledged
            # the terminal's retry of the same request gets the stored outcome, not a new sale
            again = stub.Authorize(request, timeout=10)
            assert again.replayed and again.transaction_id == txn.transaction_id
            assert again.result.response_code == "91"
        stats = control.GetStats(issuer_pb2.GetStatsRequest(), timeout=5)
        assert stats.received["0420"] >= 1
        account = control.GetAccount(issuer_pb2.GetAccountRequest(account_id="acct-visa-ok"),
                                     timeout=5)
        ledger = {b.type: b.amount.amount_minor for b in account.balances}
        assert ledger[common_pb2.BALANCE_TYPE_LEDGER] == 250000, "the sale was reversed in full"
        control_channel.close()
    finally:
        cluster.stop_all()
