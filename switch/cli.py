"""``cardswitch switch serve`` and ``cardswitch admin ...`` (terminals, issuer links, routes)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from cardswitch import certs
from cardswitch.v1 import admin_pb2, admin_pb2_grpc


def _serve(args: argparse.Namespace) -> int:
    from switch.server import serve_workers
    return serve_workers(args.workers, args.port, args.hsm, metrics_port=args.metrics_port,
                         insecure=args.insecure, host=args.host, notify_port=args.notify_port)


def admin_channel(address: str, insecure: bool) -> grpc.aio.Channel:
    if insecure:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, certs.client_credentials())


async def _admin_call(args: argparse.Namespace) -> Any:
    async with admin_channel(args.switch, args.insecure) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        return await args.call(stub, args)


def _run_admin(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_admin_call(args))
    except grpc.aio.AioRpcError as exc:
        print(f"cardswitch admin: {exc.code().name}: {exc.details()}")
        return 1
    _print(result)
    return 0


def _print(message: Any) -> None:
    from google.protobuf.json_format import MessageToDict
    data = MessageToDict(message, preserving_proto_field_name=True)
    rows = next((v for v in data.values() if isinstance(v, list)), None)
    console = Console()
    if rows is None:
        console.print_json(data=data)
        return
    table = Table()
    for col in (rows[0].keys() if rows else []):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


def register(sub: Any) -> None:
    p = sub.add_parser("switch", help="the switch service")
    s = p.add_subparsers(dest="switch_command", required=True)
    serve = s.add_parser("serve", help="serve AcquiringService and AdminService")
    serve.add_argument("--port", type=int, default=7000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--hsm", default="127.0.0.1:7100", help="HSM address")
    serve.add_argument("--metrics-port", type=int, default=0)
    serve.add_argument("--workers", type=int, default=1,
                       help="processes sharing the port (SO_REUSEPORT)")
    serve.add_argument("--insecure", action="store_true", help="no mTLS (tests, benchmarks)")
    serve.add_argument("--notify-port", type=int, default=0,
                       help="HTTPS port for wallet providers' payment notifications (0: none, "
                            "the wallet channel polls instead)")
    serve.set_defaults(func=_serve)

    a = sub.add_parser("admin", help="configure terminals, links, routes, acquirer hosts, risk "
                       "rules; watch store-and-forward and events")
    a.add_argument("--switch", default="127.0.0.1:7000")
    a.add_argument("--insecure", action="store_true")
    objs = a.add_subparsers(dest="admin_object", required=True)

    term = objs.add_parser("terminal").add_subparsers(dest="op", required=True)
    c = term.add_parser("create")
    c.add_argument("--terminal-id", required=True)
    c.add_argument("--merchant-id", required=True)
    c.add_argument("--mcc", default="5411")
    c.add_argument("--name-location", default="")
    c.add_argument("--currency", default="USD")
    c.add_argument("--bdk", default="bdk-demo", help="HSM key reference of the BDK")
    c.set_defaults(func=_run_admin, call=lambda stub, a: stub.CreateTerminal(
        admin_pb2.CreateTerminalRequest(terminal=admin_pb2.Terminal(
            terminal_id=a.terminal_id, merchant_id=a.merchant_id, mcc=a.mcc,
            name_location=a.name_location, currency=a.currency, bdk_key_ref=a.bdk))))
    term.add_parser("list").set_defaults(
        func=_run_admin, call=lambda stub, a: stub.ListTerminals(admin_pb2.ListTerminalsRequest()))

    link = objs.add_parser("link").add_subparsers(dest="op", required=True)
    c = link.add_parser("create")
    c.add_argument("--name", required=True)
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--zpk", required=True, help="HSM key reference of the zone PIN key")
    c.add_argument("--timeout-ms", type=int, default=5000)
    c.add_argument("--acquirer-id", default="123456")
    c.set_defaults(func=_run_admin, call=lambda stub, a: stub.CreateIssuerLink(
        admin_pb2.CreateIssuerLinkRequest(link=admin_pb2.IssuerLink(
            name=a.name, host=a.host, port=a.port, zpk_key_ref=a.zpk, timeout_ms=a.timeout_ms,
            acquirer_id=a.acquirer_id))))
    link.add_parser("list").set_defaults(
        func=_run_admin,
        call=lambda stub, a: stub.ListIssuerLinks(admin_pb2.ListIssuerLinksRequest()))
    g = link.add_parser("get")
    g.add_argument("--name", required=True)
    g.set_defaults(func=_run_admin, call=lambda stub, a: stub.GetIssuerLink(
        admin_pb2.GetIssuerLinkRequest(name=a.name)))

    route = objs.add_parser("route").add_subparsers(dest="op", required=True)
    c = route.add_parser("create", help="add a route; the whole table is validated")
    c.add_argument("--bin", default="", dest="bin_prefix")
    c.add_argument("--brand", default="")
    c.add_argument("--currency", action="append", default=[], dest="currencies")
    c.add_argument("--min-amount", type=int, default=0)
    c.add_argument("--max-amount", type=int, default=0)
    c.add_argument("--mcc", action="append", default=[], dest="mccs")
    c.add_argument("--terminal", action="append", default=[], dest="terminal_ids")
    c.add_argument("--merchant", action="append", default=[], dest="merchant_ids")
    c.add_argument("--wallet-provider", default="")
    c.add_argument("--link", required=True, help="primary link")
    c.add_argument("--secondary", action="append", default=[], help="failover links, in order")
    c.add_argument("--priority", type=int, default=0)
    c.add_argument("--description", default="")
    c.set_defaults(func=_run_admin, call=lambda stub, a: stub.CreateRoute(
        admin_pb2.CreateRouteRequest(route=admin_pb2.Route(
            bin_prefix=a.bin_prefix, brand=a.brand, currencies=a.currencies,
            min_amount_minor=a.min_amount, max_amount_minor=a.max_amount, mccs=a.mccs,
            terminal_ids=a.terminal_ids, merchant_ids=a.merchant_ids,
            wallet_provider=a.wallet_provider, primary_link=a.link,
            secondary_links=a.secondary, priority=a.priority, description=a.description))))
    d = route.add_parser("delete")
    d.add_argument("--route-id", required=True)
    d.set_defaults(func=_run_admin, call=lambda stub, a: stub.DeleteRoute(
        admin_pb2.DeleteRouteRequest(route_id=a.route_id)))
    route.add_parser("list").set_defaults(
        func=_run_admin, call=lambda stub, a: stub.ListRoutes(admin_pb2.ListRoutesRequest()))
    r = route.add_parser("resolve", help="which route and link a transaction would take")
    r.add_argument("--pan", default="")
    r.add_argument("--wallet-provider", default="")
    r.add_argument("--amount", type=int, default=0)
    r.add_argument("--currency", default="USD")
    r.add_argument("--mcc", default="")
    r.add_argument("--terminal", default="")
    r.add_argument("--merchant", default="")
    r.set_defaults(func=_run_admin, call=lambda stub, a: stub.ResolveRoute(
        admin_pb2.ResolveRouteRequest(pan=a.pan, wallet_provider=a.wallet_provider,
                                      amount_minor=a.amount, currency=a.currency, mcc=a.mcc,
                                      terminal_id=a.terminal, merchant_id=a.merchant)))

    for action in ("sign-on", "sign-off", "echo", "exchange-key", "reset-breaker"):
        ctl = link.add_parser(action, help=f"{action} on a link")
        ctl.add_argument("--name", required=True)
        value = getattr(admin_pb2, "LINK_ACTION_" + action.upper().replace("-", "_"))
        ctl.set_defaults(func=_run_admin, call=lambda stub, a, value=value: stub.ControlLink(
            admin_pb2.ControlLinkRequest(name=a.name, action=value)))

    risk = objs.add_parser("risk").add_subparsers(dest="op", required=True)
    risk.add_parser("get").set_defaults(
        func=_run_admin, call=lambda stub, a: stub.GetRiskRules(admin_pb2.GetRiskRulesRequest()))
    rs = risk.add_parser("set", help="replace the risk rules with a YAML file")
    rs.add_argument("file")
    rs.add_argument("--validate-only", action="store_true")
    rs.set_defaults(func=_run_admin, call=lambda stub, a: stub.SetRiskRules(
        admin_pb2.SetRiskRulesRequest(yaml=open(a.file).read(),
                                      validate_only=a.validate_only)))

    saf = objs.add_parser("saf", help="the store-and-forward queue")
    saf.add_argument("--link", default="")
    saf.add_argument("--all", action="store_true", help="include acknowledged entries")
    saf.set_defaults(func=_run_admin, call=lambda stub, a: stub.ListStoreAndForward(
        admin_pb2.ListStoreAndForwardRequest(link=a.link, include_acknowledged=a.all)))

    ev = objs.add_parser("events", help="events the switch published (risk alerts...)")
    ev.add_argument("--type", default="", help="type prefix, e.g. risk.")
    ev.add_argument("--after", type=int, default=0)
    ev.set_defaults(func=_run_admin, call=lambda stub, a: stub.ListEvents(
        admin_pb2.ListEventsRequest(type_prefix=a.type, after_id=a.after)))

    acq = objs.add_parser("acquirer").add_subparsers(dest="op", required=True)
    c = acq.add_parser("create", help="listen for an acquirer host speaking ISO 8583")
    c.add_argument("--name", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--zpk", required=True, help="HSM key reference of the acquirer's ZPK")
    c.set_defaults(func=_run_admin, call=lambda stub, a: stub.CreateAcquirerHost(
        admin_pb2.CreateAcquirerHostRequest(host=admin_pb2.AcquirerHost(
            name=a.name, port=a.port, zpk_key_ref=a.zpk))))
    acq.add_parser("list").set_defaults(
        func=_run_admin,
        call=lambda stub, a: stub.ListAcquirerHosts(admin_pb2.ListAcquirerHostsRequest()))
