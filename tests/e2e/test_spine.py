"""End to end on real processes: HSM, issuer and switch as children, on SQLite and PostgreSQL.

The demo scenarios run first; the other tests use the same running cluster; the scan for clear
secrets runs last, over everything the run left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from cardswitch import certs
from cardswitch.demo import TERMINAL, run_demo
from cardswitch.errors import field_violations_of
from cardswitch.launcher import Cluster
from cardswitch.v1 import acquiring_pb2, acquiring_pb2_grpc, common_pb2, issuer_pb2, issuer_pb2_grpc
from tests.conftest import pg_schema
from tests.e2e import secrets_scan
from tests.e2e.helpers import wait_reversal_acknowledged

pytestmark = pytest.mark.e2e

REQUIRED = {
    "approved purchase with PIN": "00", "wrong PIN": "55", "insufficient funds": "51",
    "expired card": "54", "lost card": "41", "pre-authorization": "00",
    "capture of the pre-authorization": "00", "refund": "00", "void of a purchase": "00",
    "balance inquiry": "00", "retried request returns the stored result": "00",
    "issuer timeout ends in an automatic reversal": "91",
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Any]]:
    var = tmp_path_factory.mktemp(f"var-{request.param}")
    schema_gen = None
    url = None
    if request.param == "postgres":
        schema_gen = pg_schema()
        url = next(schema_gen)
    cluster = Cluster(var=var, database_url=url)
    try:
        rows = asyncio.run(run_demo(cluster))
        yield {"cluster": cluster, "rows": rows, "backend": request.param, "url": url}
    finally:
        cluster.stop_all()
        if schema_gen is not None:
            # the secrets scan of PostgreSQL tables runs inside the module; drop afterwards
            for _ in schema_gen:
                pass


def _channel(cluster: Cluster) -> grpc.Channel:
    return grpc.secure_channel(cluster.switch, certs.client_credentials(cluster.var / "certs"))


def _key(stan: str) -> acquiring_pb2.RequestKey:
    return acquiring_pb2.RequestKey(terminal_id=TERMINAL[0], merchant_id=TERMINAL[1], stan=stan,
                                    local_date_time=time.strftime("%y%m%d%H%M%S"))


def _manual_purchase(stan: str, amount_minor: int = 1000) -> acquiring_pb2.AuthorizeRequest:
    return acquiring_pb2.AuthorizeRequest(
        key=_key(stan), type=acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE,
        amount=common_pb2.Money(amount_minor=amount_minor, currency="USD"),
        card=common_pb2.CardInput(manual=common_pb2.ManualEntry(
            pan="4761739001010010", expiry_yymm="3012")),
        entry_mode=common_pb2.ENTRY_MODE_MANUAL)


def _not_journaled(stub: Any, key: acquiring_pb2.RequestKey) -> bool:
    try:
        stub.GetTransaction(acquiring_pb2.GetTransactionRequest(key=key), timeout=5)
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.NOT_FOUND
    return False


def test_every_demo_scenario_passes(running: dict[str, Any]) -> None:
    rows = {r.scenario: r for r in running["rows"]}
    for name, code in REQUIRED.items():
        assert name in rows, f"scenario {name!r} missing"
        assert rows[name].response_code == code, (name, rows[name])
    failed = [(r.scenario, r.expected_code, r.response_code, r.detail)
              for r in running["rows"] if not r.passed]
    assert failed == []


def test_health_answers_serving_for_every_service(running: dict[str, Any]) -> None:
    cluster: Cluster = running["cluster"]
    targets = [
        (_channel(cluster), ["", "cardswitch.v1.AcquiringService", "cardswitch.v1.AdminService"]),
        (grpc.insecure_channel(cluster.hsm), ["", "cardswitch.v1.HsmService"]),
        (grpc.insecure_channel(cluster.issuer_control), ["", "cardswitch.v1.IssuerSimService"]),
    ]
    for channel, names in targets:
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for name in names:
                answer = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, name


def test_reflection_lists_every_service(running: dict[str, Any]) -> None:
    cluster: Cluster = running["cluster"]
    expected = {
        "switch": {"cardswitch.v1.AcquiringService", "cardswitch.v1.AdminService"},
        "hsm": {"cardswitch.v1.HsmService"},
        "issuer": {"cardswitch.v1.IssuerSimService"},
    }
    channels = {"switch": _channel(cluster), "hsm": grpc.insecure_channel(cluster.hsm),
                "issuer": grpc.insecure_channel(cluster.issuer_control)}
    for name, channel in channels.items():
        with channel:
            services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
            assert expected[name] <= services, (name, services)
            assert "grpc.health.v1.Health" in services
            # a generic client can resolve a method's full descriptor too
            db = ProtoReflectionDescriptorDatabase(channel)
            for svc in expected[name]:
                assert db.FindFileContainingSymbol(svc).name.startswith("cardswitch/v1/")


@pytest.mark.parametrize(("case", "mutate", "field"), [
    ("pan failing Luhn", lambda r: setattr(r.card.manual, "pan", "4761739001010011"),
     "card.manual.pan"),
    ("zero amount", lambda r: setattr(r.amount, "amount_minor", 0), "amount.amount_minor"),
    ("negative amount", lambda r: setattr(r.amount, "amount_minor", -5), "amount.amount_minor"),
    ("overflowing amount", lambda r: setattr(r.amount, "amount_minor", 10**12),
     "amount.amount_minor"),
    ("unknown currency", lambda r: setattr(r.amount, "currency", "XYZ"), "amount.currency"),
])
def test_bad_input_is_rejected_naming_the_field_and_writes_nothing(
        running: dict[str, Any], case: str, mutate: Any, field: str) -> None:
    cluster: Cluster = running["cluster"]
    stan = f"{900000 + sum(map(ord, case)) % 90000:06d}"
    request = _manual_purchase(stan, 1000)
    mutate(request)
    with _channel(cluster) as channel:
        stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Authorize(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        fields = [f for f, _ in field_violations_of(err.value)]
        assert field in fields, (case, fields)
        assert "4761739001010011" not in (err.value.details() or "")
        assert _not_journaled(stub, request.key)


def test_missing_pin_block_where_required_is_rejected(running: dict[str, Any]) -> None:
    cluster: Cluster = running["cluster"]
    request = acquiring_pb2.BalanceInquiryRequest(
        key=_key("880001"), card=common_pb2.CardInput(manual=common_pb2.ManualEntry(
            pan="4761739001010010", expiry_yymm="3012")),
        entry_mode=common_pb2.ENTRY_MODE_MANUAL)
    with _channel(cluster) as channel:
        stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.BalanceInquiry(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations_of(err.value)] == ["pin_block"]
        assert _not_journaled(stub, request.key)


def test_expired_deadline_is_refused_before_anything_is_written(running: dict[str, Any]) -> None:
    cluster: Cluster = running["cluster"]
    request = _manual_purchase("880002", 1000)
    with _channel(cluster) as channel:
        stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Authorize(request, timeout=0.05)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(0.3)
        assert _not_journaled(stub, request.key)


@pytest.mark.parametrize("fault", [issuer_pb2.FAULT_KIND_GARBAGE, issuer_pb2.FAULT_KIND_TRUNCATED])
def test_garbage_or_truncated_issuer_answer_declines_91_and_is_reversed(
        running: dict[str, Any], fault: int) -> None:
    cluster: Cluster = running["cluster"]
    amount = 4400 + fault
    with grpc.insecure_channel(cluster.issuer_control) as control_channel:
        control = issuer_pb2_grpc.IssuerSimServiceStub(control_channel)
        control.SetFaults(issuer_pb2.SetFaultsRequest(faults=[issuer_pb2.Fault(
            kind=fault, match_amount_minor=amount, count=1)]), timeout=5)
        try:
            request = _manual_purchase(f"8801{fault:02d}", amount)
            with _channel(cluster) as channel:
                stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
                answer = stub.Authorize(request, timeout=10)
                assert answer.result.response_code == "91"
                txn = wait_reversal_acknowledged(stub, acquiring_pb2.GetTransactionRequest(
                    transaction_id=answer.transaction_id))
                assert txn.reversal_acknowledged
                assert txn.status == acquiring_pb2.TRANSACTION_STATUS_REVERSED
        finally:
            control.SetFaults(issuer_pb2.SetFaultsRequest(), timeout=5)


def test_identical_requests_in_flight_together_make_one_transaction(
        running: dict[str, Any]) -> None:
    cluster: Cluster = running["cluster"]
    request = _manual_purchase("880200", 321)

    async def fire() -> list[acquiring_pb2.AuthorizeResponse]:
        async with grpc.aio.secure_channel(
                cluster.switch, certs.client_credentials(cluster.var / "certs")) as channel:
            stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
            return list(await asyncio.gather(*(stub.Authorize(request, timeout=10)
                                               for _ in range(6))))
    with grpc.insecure_channel(cluster.issuer_control) as control_channel:
        control = issuer_pb2_grpc.IssuerSimServiceStub(control_channel)
        before = control.GetStats(issuer_pb2.GetStatsRequest(), timeout=5).received["0200"]
        answers = asyncio.run(fire())
        after = control.GetStats(issuer_pb2.GetStatsRequest(), timeout=5).received["0200"]
    assert {a.transaction_id for a in answers} == {answers[0].transaction_id}
    assert {a.result.response_code for a in answers} == {"00"}
    assert sum(not a.replayed for a in answers) == 1
    assert after - before == 1


def test_a_void_the_issuer_does_not_answer_is_completed_by_a_queued_advice(
        running: dict[str, Any]) -> None:
    cluster: Cluster = running["cluster"]
    with grpc.insecure_channel(cluster.issuer_control) as control_channel, \
            _channel(cluster) as channel:
        control = issuer_pb2_grpc.IssuerSimServiceStub(control_channel)
        stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
        sale = stub.Authorize(_manual_purchase("880300", 555), timeout=10)
        assert sale.result.response_code == "00"
        control.SetFaults(issuer_pb2.SetFaultsRequest(faults=[issuer_pb2.Fault(
            kind=issuer_pb2.FAULT_KIND_NO_RESPONSE, mtis=["0400"], count=1)]), timeout=5)
        try:
            before = control.GetStats(issuer_pb2.GetStatsRequest(), timeout=5).received["0420"]
            void = stub.Reverse(acquiring_pb2.ReverseRequest(
                key=_key("880301"), reason=acquiring_pb2.REVERSAL_REASON_VOID,
                original_transaction_id=sale.transaction_id), timeout=10)
            assert void.result.response_code == "00"
            assert "advice queued" in void.result.reason
            txn = wait_reversal_acknowledged(stub, acquiring_pb2.GetTransactionRequest(
                transaction_id=sale.transaction_id))
            assert txn.status == acquiring_pb2.TRANSACTION_STATUS_REVERSED
            after = control.GetStats(issuer_pb2.GetStatsRequest(), timeout=5).received["0420"]
            assert after - before >= 1
        finally:
            control.SetFaults(issuer_pb2.SetFaultsRequest(), timeout=5)


def test_every_service_exposes_prometheus_metrics(running: dict[str, Any]) -> None:
    import urllib.request
    cluster: Cluster = running["cluster"]
    expected = {cluster.switch_metrics_port: "cardswitch_transactions_total",
                cluster.hsm_metrics_port: "cardswitch_grpc_server_total",
                cluster.issuer_metrics_port: "cardswitch_issuer_messages_total"}
    for port, name in expected.items():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
        assert name in body, (port, name)
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.switch_metrics_port}/metrics",
                                timeout=5) as answer:
        body = answer.read().decode()
    assert 'cardswitch_transactions_total{code="00",kind="purchase"}' in body
    assert "cardswitch_journal_batch_size_count" in body
    assert 'cardswitch_issuer_link_up{link="issuer-a"} 1.0' in body


def test_zone_pin_key_exchange_then_a_pin_purchase_verifies_under_the_new_key(
        running: dict[str, Any]) -> None:
    from cardswitch import bootstrap
    from cardswitch.v1 import admin_pb2, admin_pb2_grpc
    from terminals.pinpad import PinPad
    from terminals.pos import Pos, StanCounter, load_cards, open_channel
    cluster: Cluster = running["cluster"]
    with _channel(cluster) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        before = admin.GetIssuerLink(admin_pb2.GetIssuerLinkRequest(name="issuer-a"), timeout=5)
        answer = admin.ControlLink(admin_pb2.ControlLinkRequest(
            name="issuer-a", action=admin_pb2.LINK_ACTION_EXCHANGE_KEY), timeout=15)
        assert answer.detail.startswith("new zone PIN key ") and answer.detail.endswith(" active")
        assert answer.link.zpk_key_ref != before.zpk_key_ref and answer.link.zpk_kcv
        backup = admin.GetIssuerLink(admin_pb2.GetIssuerLinkRequest(
            name=bootstrap.BACKUP_LINK), timeout=5)
        assert backup.zpk_key_ref == answer.link.zpk_key_ref, "the same zone moves together"

    async def pin_purchase() -> str:
        term_dir = cluster.var / "terminals"
        pos = Pos(open_channel(cluster.switch, certs_dir=cluster.var / "certs"), *TERMINAL,
                  pinpad=PinPad.load(TERMINAL[0], term_dir), owns_channel=True,
                  stan=StanCounter.for_terminal(TERMINAL[0], term_dir))
        async with pos:
            card = load_cards(cluster.var / "issuer" / "cards.json")["acct-visa-ok"]
            good = await pos.purchase(card, 321, pin=card.pin)
            bad = await pos.purchase(card, 322, pin="9999")
        return good.response_code + bad.response_code
    assert asyncio.run(pin_purchase()) == "0055"


def test_acquirer_host_speaks_its_own_dialect_through_the_same_pipeline(
        running: dict[str, Any]) -> None:
    import datetime as dt

    from cardswitch import iso8583
    from cardswitch.launcher import free_port
    from cardswitch.v1 import admin_pb2, admin_pb2_grpc
    from terminals import acquirer
    cluster: Cluster = running["cluster"]
    dialect = iso8583.Dialect.parse("bcd,hex,ebcdic,ascii4,tpdu=6000030000")
    port = free_port()
    with _channel(cluster) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        admin.CreateAcquirerHost(admin_pb2.CreateAcquirerHostRequest(host=admin_pb2.AcquirerHost(
            name=f"acq-{running['backend']}", port=port, dialect=dialect.to_proto(),
            zpk_key_ref="zpk-issuer")), timeout=10)
        hosts = admin.ListAcquirerHosts(admin_pb2.ListAcquirerHostsRequest(), timeout=5).hosts
        assert [h.listening for h in hosts if h.port == port] == [True]

    async def exchange() -> list[iso8583.Message]:
        now = dt.datetime.now()
        async with acquirer.AcquirerClient("127.0.0.1", port, dialect) as client:
            echo = await client.send(acquirer.network("301", 1, now=now))
            sale = acquirer.financial("0200", "000000", TERMINAL[0], TERMINAL[1], 880001, 1234,
                                      "USD", now=now, track2="4761739001010010=30122010000000",
                                      entry_mode="022")
            sold = await client.send(sale)
            void = await client.send(acquirer.reversal(sale, now=now))
            again = await client.send(sale)  # the acquirer retransmits: the stored outcome
        return [echo, sold, void, again]
    echo, sold, void, again = asyncio.run(exchange())
    assert (echo["t"], echo["39"]) == ("0810", "00")
    assert (sold["t"], sold["39"], len(sold.get("38", ""))) == ("0210", "00", 6)
    assert (void["t"], void["39"]) == ("0410", "00")
    assert (again["39"], again.get("38")) == ("00", sold.get("38"))
    with _channel(cluster) as channel:
        stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
        txn = stub.GetTransaction(acquiring_pb2.GetTransactionRequest(
            key=acquiring_pb2.RequestKey(terminal_id=TERMINAL[0], merchant_id=TERMINAL[1],
                                         stan="880001",
                                         local_date_time=sold_local_time(sold))), timeout=5)
    assert txn.status == acquiring_pb2.TRANSACTION_STATUS_REVERSED


def sold_local_time(answer: dict[str, str]) -> str:
    return time.strftime("%y") + answer["13"] + answer["12"]


def test_an_invalid_route_is_refused_with_the_reason(running: dict[str, Any]) -> None:
    from cardswitch.v1 import admin_pb2, admin_pb2_grpc
    cluster: Cluster = running["cluster"]
    with _channel(cluster) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            admin.CreateRoute(admin_pb2.CreateRouteRequest(route=admin_pb2.Route(
                route_id="bad", bin_prefix="4x", primary_link="no-such-link")), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reasons = " ".join(d for _, d in field_violations_of(err.value))
    assert "route bad: bin_prefix" in reasons and "no-such-link" in reasons


def test_zz_no_clear_pan_pin_or_key_anywhere(running: dict[str, Any]) -> None:
    cluster: Cluster = running["cluster"]
    cluster.stop_all()  # flush logs and WAL
    needles = secrets_scan.needles(cluster.var)
    found = secrets_scan.scan_files(_files(cluster.var), needles)
    if running["url"]:
        found += secrets_scan.scan_postgres(running["url"], needles)
    assert found == []


def _files(var: Path) -> list[Path]:
    out = [p for p in var.rglob("*") if p.is_file() and (
        p.suffix in (".db", ".log", ".out") or p.name.endswith(("-wal", "-shm", ".db-journal")))]
    assert any(p.suffix == ".log" for p in out)
    return out
