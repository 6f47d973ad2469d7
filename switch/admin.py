"""``AdminService``: terminals and their PIN pad keys, links and their network management,
the routing table, acquirer hosts, risk rules, the store-and-forward queue and events."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardswitch import currency, errors, iso8583
from cardswitch.cards import brand_of
from cardswitch.v1 import admin_pb2, admin_pb2_grpc, hsm_pb2, hsm_pb2_grpc
from hsm_sim.algorithms import dukpt
from switch import routing, standin, store
from switch.context import ChannelError
from switch.models import AcquirerHost, IssuerLink, RiskRuleSet, Route, Terminal, utcnow
from switch.registry import Registry, route_of, to_json
from switch.risk import rules as risk_rules

LINK_STATE = {"CONNECTING": admin_pb2.LINK_STATE_CONNECTING, "UP": admin_pb2.LINK_STATE_UP,
              "DOWN": admin_pb2.LINK_STATE_DOWN}
BREAKER_STATE = {"CLOSED": admin_pb2.BREAKER_STATE_CLOSED, "OPEN": admin_pb2.BREAKER_STATE_OPEN,
                 "HALF_OPEN": admin_pb2.BREAKER_STATE_HALF_OPEN}
CHANNEL_KIND = {"iso8583": admin_pb2.CHANNEL_KIND_ISO8583,
                "wallet": admin_pb2.CHANNEL_KIND_WALLET}
KIND_NAME = {v: k for k, v in CHANNEL_KIND.items()}
#: Key set identifier (first 5 bytes of every KSN) of the demo BDK.
KEY_SET_ID = bytes.fromhex("FFFF987654")


def _ts(value: Any) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value)
    return ts


def _terminal(row: Terminal) -> admin_pb2.Terminal:
    return admin_pb2.Terminal(
        terminal_id=row.terminal_id, merchant_id=row.merchant_id, mcc=row.mcc,
        name_location=row.name_location, currency=row.currency, bdk_key_ref=row.bdk_key_ref,
        initial_ksn=row.initial_ksn or "", created_at=_ts(row.created_at))


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, engine: Engine, registry: Registry,
                 hsm: hsm_pb2_grpc.HsmServiceStub) -> None:
        self.engine, self.registry, self.hsm = engine, registry, hsm

    async def _write(self, fn: Any) -> Any:
        def run() -> Any:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                return fn(session)
        try:
            result = await asyncio.to_thread(run)
        except IntegrityError as exc:
            raise errors.AlreadyExists("already exists (unique key taken)") from exc
        await self.registry.reload()
        return result

    async def CreateTerminal(self, request: admin_pb2.CreateTerminalRequest,
                             context: grpc.aio.ServicerContext) -> admin_pb2.Terminal:
        t = request.terminal
        v: list[tuple[str, str]] = []
        if not t.terminal_id or len(t.terminal_id) > 8:
            v.append(("terminal.terminal_id", "must be 1 to 8 characters"))
        if not t.merchant_id or len(t.merchant_id) > 15:
            v.append(("terminal.merchant_id", "must be 1 to 15 characters"))
        if len(t.mcc) != 4 or not t.mcc.isdigit():
            v.append(("terminal.mcc", "must be 4 digits"))
        if currency.by_alpha(t.currency) is None:
            v.append(("terminal.currency", "unknown ISO 4217 currency"))
        if not t.bdk_key_ref:
            v.append(("terminal.bdk_key_ref", "is required (HSM key reference of the BDK)"))
        if len(t.name_location) > 40:
            v.append(("terminal.name_location", "must be at most 40 characters"))
        if v:
            raise errors.FieldViolations(v)

        def create(session: Session) -> Terminal:
            number = (session.scalar(select(func.max(Terminal.device_number))) or 0) + 1
            row = Terminal(terminal_id=t.terminal_id, merchant_id=t.merchant_id, mcc=t.mcc,
                           name_location=t.name_location or t.terminal_id, currency=t.currency,
                           bdk_key_ref=t.bdk_key_ref, device_number=number)
            session.add(row)
            return row
        return _terminal(await self._write(create))

    async def _get(self, terminal_id: str) -> Terminal:
        def get() -> Terminal | None:
            with Session(self.engine) as session:
                return session.get(Terminal, terminal_id)
        row = await asyncio.to_thread(get)
        if row is None:
            raise errors.NotFound(f"terminal_id: no terminal {terminal_id!r}")
        return row

    async def GetTerminal(self, request: admin_pb2.GetTerminalRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.Terminal:
        return _terminal(await self._get(request.terminal_id))

    async def ListTerminals(self, request: admin_pb2.ListTerminalsRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> admin_pb2.ListTerminalsResponse:
        def list_all() -> list[Terminal]:
            with Session(self.engine) as session:
                return list(session.scalars(select(Terminal).order_by(Terminal.terminal_id)))
        rows = await asyncio.to_thread(list_all)
        return admin_pb2.ListTerminalsResponse(terminals=[_terminal(r) for r in rows])

    async def ProvisionTerminalKey(self, request: admin_pb2.ProvisionTerminalKeyRequest,
                                   context: grpc.aio.ServicerContext,
                                   ) -> admin_pb2.ProvisionTerminalKeyResponse:
        row = await self._get(request.terminal_id)
        if not request.device_public_key_pem:
            raise errors.FieldViolations([("device_public_key_pem", "is required")])
        ksn = dukpt.make_ksn(KEY_SET_ID, row.device_number, 0)
        answer = await self.hsm.DeriveDukptInitialKey(hsm_pb2.DeriveDukptInitialKeyRequest(
            bdk_key_ref=row.bdk_key_ref, ksn=ksn,
            device_public_key_pem=request.device_public_key_pem), timeout=5.0)

        def save(session: Session) -> None:
            term = session.get(Terminal, request.terminal_id)
            assert term is not None
            term.initial_ksn = ksn.hex().upper()
        await self._write(save)
        return admin_pb2.ProvisionTerminalKeyResponse(
            initial_ksn=ksn, encrypted_initial_key=answer.encrypted_initial_key, kcv=answer.kcv)

    # -- links ---------------------------------------------------------------------------

    async def CreateIssuerLink(self, request: admin_pb2.CreateIssuerLinkRequest,
                               context: grpc.aio.ServicerContext) -> admin_pb2.IssuerLink:
        link = request.link
        validate_link(link)
        await self._write(lambda s: s.add(IssuerLink(**link_columns(link))))
        return await self._link(link.name)

    async def UpdateIssuerLink(self, request: admin_pb2.UpdateIssuerLinkRequest,
                               context: grpc.aio.ServicerContext) -> admin_pb2.IssuerLink:
        link = request.link
        validate_link(link)

        def update_row(session: Session) -> bool:
            row = session.get(IssuerLink, link.name)
            if row is None:
                return False
            for column, value in link_columns(link).items():
                setattr(row, column, value)
            return True
        if not await self._write(update_row):
            raise errors.NotFound(f"link.name: no link {link.name!r}")
        return await self._link(link.name)

    async def GetIssuerLink(self, request: admin_pb2.GetIssuerLinkRequest,
                            context: grpc.aio.ServicerContext) -> admin_pb2.IssuerLink:
        if request.name not in self.registry.links:
            raise errors.NotFound(f"name: no link {request.name!r}")
        return await self._link(request.name)

    async def ListIssuerLinks(self, request: admin_pb2.ListIssuerLinksRequest,
                              context: grpc.aio.ServicerContext,
                              ) -> admin_pb2.ListIssuerLinksResponse:
        pending = await self._saf_pending()
        return admin_pb2.ListIssuerLinksResponse(
            links=[self._link_message(n, pending) for n in sorted(self.registry.links)])

    async def _saf_pending(self) -> dict[str, int]:
        def read() -> dict[str, int]:
            with self.engine.connect() as conn:
                return store.saf_pending_by_link(conn)
        return await asyncio.to_thread(read)

    async def _link(self, name: str) -> admin_pb2.IssuerLink:
        return self._link_message(name, await self._saf_pending())

    def _link_message(self, name: str, saf_pending: dict[str, int]) -> admin_pb2.IssuerLink:
        cfg = self.registry.links[name]
        state, in_flight = self.registry.link_state(name)
        breaker = self.registry.breaker(name)
        channel = self.registry.channels.get(name)
        message = admin_pb2.IssuerLink(
            name=cfg.name, host=cfg.host, port=cfg.port, zpk_key_ref=cfg.zpk_key_ref,
            timeout_ms=cfg.timeout_ms, acquirer_id=cfg.acquirer_id, state=LINK_STATE[state],
            in_flight=in_flight, kind=CHANNEL_KIND[cfg.kind], dialect=cfg.dialect,
            zmk_key_ref=cfg.zmk_key_ref, stand_in=cfg.stand_in, wallet=cfg.wallet,
            signed_on=bool(getattr(channel, "signed_on", False)),
            store_and_forward_pending=saf_pending.get(name, 0))
        message.breaker.CopyFrom(cfg.breaker)
        message.breaker.state = BREAKER_STATE[breaker.state]
        message.breaker.consecutive_failures = breaker.consecutive_failures
        key = self.registry.link_keys.get(name)
        if key is not None:
            message.zpk_kcv = key[0] or ""
            if key[1] is not None:
                message.key_exchanged_at.CopyFrom(_ts(key[1]))
        return message

    async def ControlLink(self, request: admin_pb2.ControlLinkRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.ControlLinkResponse:
        name = request.name
        if name not in self.registry.links:
            raise errors.NotFound(f"name: no link {name!r}")
        channel: Any = self.registry.channel(name)
        action = request.action
        try:
            if action == admin_pb2.LINK_ACTION_RESET_BREAKER:
                self.registry.breaker(name).reset()
                self.registry.observe_breaker(name)
                detail = "circuit breaker closed"
            elif action == admin_pb2.LINK_ACTION_ECHO:
                detail = "echo answered" if await channel.echo(5.0) else "echo refused"
            elif action == admin_pb2.LINK_ACTION_SIGN_ON and hasattr(channel, "sign_on"):
                detail = "signed on" if await channel.sign_on(5.0) else "sign-on refused"
            elif action == admin_pb2.LINK_ACTION_SIGN_OFF and hasattr(channel, "sign_off"):
                detail = "signed off" if await channel.sign_off(5.0) else "sign-off refused"
            elif action == admin_pb2.LINK_ACTION_EXCHANGE_KEY and hasattr(channel, "change_key"):
                detail = await self._exchange_key(name, channel)
            else:
                raise errors.FieldViolations([("action", "must be SIGN_ON, SIGN_OFF, ECHO, "
                                               "EXCHANGE_KEY (ISO 8583 links) or RESET_BREAKER")])
        except ChannelError as exc:
            raise errors.Conflict(f"link {name}: {exc}") from exc
        return admin_pb2.ControlLinkResponse(link=await self._link(name), detail=detail)

    async def _exchange_key(self, name: str, channel: Any) -> str:
        """New ZPK from the HSM, sent under the ZMK (0800/161); in use once the issuer confirms."""
        cfg = self.registry.links[name]
        if not cfg.zmk_key_ref:
            raise errors.Conflict(f"link {name}: no zmk_key_ref configured for key exchange")
        label = f"zpk-{name}-{uuid.uuid4().hex[:8]}"
        generated = await self.hsm.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label=label, key_type=hsm_pb2.KEY_TYPE_ZPK,
            algorithm=hsm_pb2.KEY_ALGORITHM_TDES_2KEY, exportability="E",
            zmk_key_ref=cfg.zmk_key_ref), timeout=5.0)
        kcv = generated.key.kcv
        code, echoed = await channel.change_key(generated.zmk_key_block, kcv, 5.0)
        if code != "00" or echoed.upper() != kcv.upper():
            raise errors.Conflict(f"link {name}: the issuer refused the new zone PIN key "
                                  f"(DE 39 {code or 'none'}, check value {echoed or 'none'}); "
                                  f"the current key stays in use")

        def activate(session: Session) -> None:
            # the issuer keys the zone by acquirer id: every link of ours into that zone (a
            # backup line to the same host) moves to the new key together
            now = utcnow()
            for row in session.scalars(select(IssuerLink).where(
                    IssuerLink.host == cfg.host, IssuerLink.port == cfg.port,
                    IssuerLink.acquirer_id == cfg.acquirer_id)):
                row.zpk_key_ref, row.zpk_kcv, row.key_exchanged_at = label, kcv, now
        await self._write(activate)
        return f"new zone PIN key {kcv} active"

    # -- routes ---------------------------------------------------------------------------

    async def _routes(self) -> list[routing.Route]:
        def read() -> list[routing.Route]:
            with self.engine.connect() as conn:
                return [route_of(r) for r in conn.execute(select(Route.__table__))]
        return await asyncio.to_thread(read)

    def _check_table(self, routes: list[routing.Route]) -> None:
        problems = routing.validate(routes, {n: c.kind for n, c in self.registry.links.items()})
        if problems:
            raise errors.FieldViolations([("route", p) for p in problems])

    async def CreateRoute(self, request: admin_pb2.CreateRouteRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.Route:
        route = routing.Route.from_proto(request.route)
        if not route.route_id:
            route = dataclasses.replace(route, route_id=str(uuid.uuid4()))
        existing = await self._routes()
        if any(r.route_id == route.route_id for r in existing):
            raise errors.AlreadyExists(f"route.route_id: {route.route_id!r} exists")
        self._check_table([*existing, route])
        await self._write(lambda s: s.add(Route(**route_columns(route))))
        return route.to_proto()

    async def UpdateRoute(self, request: admin_pb2.UpdateRouteRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.Route:
        route = routing.Route.from_proto(request.route)
        existing = await self._routes()
        if not any(r.route_id == route.route_id for r in existing):
            raise errors.NotFound(f"route.route_id: no route {route.route_id!r}")
        self._check_table([route if r.route_id == route.route_id else r for r in existing])

        def update_row(session: Session) -> None:
            row = session.get(Route, route.route_id)
            assert row is not None
            for column, value in route_columns(route).items():
                setattr(row, column, value)
            row.updated_at = utcnow()
        await self._write(update_row)
        return route.to_proto()

    async def DeleteRoute(self, request: admin_pb2.DeleteRouteRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.DeleteRouteResponse:
        deleted = await self._write(lambda s: s.execute(
            delete(Route).where(Route.route_id == request.route_id)).rowcount)
        if not deleted:
            raise errors.NotFound(f"route_id: no route {request.route_id!r}")
        return admin_pb2.DeleteRouteResponse()

    async def ListRoutes(self, request: admin_pb2.ListRoutesRequest,
                         context: grpc.aio.ServicerContext) -> admin_pb2.ListRoutesResponse:
        routes = sorted(await self._routes(), key=lambda r: (r.bin_prefix, r.route_id))
        return admin_pb2.ListRoutesResponse(routes=[r.to_proto() for r in routes])

    async def ResolveRoute(self, request: admin_pb2.ResolveRouteRequest,
                           context: grpc.aio.ServicerContext) -> admin_pb2.ResolveRouteResponse:
        txn = routing.Txn(
            bin=request.pan[:11], brand=brand_of(request.pan) if request.pan else "",
            currency=request.currency, amount_minor=request.amount_minor, mcc=request.mcc,
            terminal_id=request.terminal_id, merchant_id=request.merchant_id,
            wallet_provider=request.wallet_provider)
        route, links = self.registry.route(txn)
        if route is None:
            return admin_pb2.ResolveRouteResponse(reason="no route matches")
        pending = await self._saf_pending()
        usable = [c.name for c in links if self.registry.usable(c.name)]
        return admin_pb2.ResolveRouteResponse(
            route=route.to_proto(), link=usable[0] if usable else "",
            candidates=[self._link_message(c.name, pending) for c in links],
            reason="" if usable else "no link of the route is usable now (stand-in decides)")

    # -- acquirer hosts ---------------------------------------------------------------------

    async def CreateAcquirerHost(self, request: admin_pb2.CreateAcquirerHostRequest,
                                 context: grpc.aio.ServicerContext) -> admin_pb2.AcquirerHost:
        host = request.host
        v: list[tuple[str, str]] = []
        if not host.name or len(host.name) > 64:
            v.append(("host.name", "must be 1 to 64 characters"))
        if not 0 < host.port < 65536:
            v.append(("host.port", "must be 1 to 65535"))
        if not host.zpk_key_ref:
            v.append(("host.zpk_key_ref", "is required (the acquirer's zone PIN key)"))
        v.extend(dialect_violations(host.dialect, "host.dialect"))
        if v:
            raise errors.FieldViolations(v)
        await self._write(lambda s: s.add(AcquirerHost(
            name=host.name, port=host.port, zpk_key_ref=host.zpk_key_ref,
            dialect=to_json(host.dialect))))
        return self._host_message(host.name)

    def _host_message(self, name: str) -> admin_pb2.AcquirerHost:
        message = admin_pb2.AcquirerHost()
        message.CopyFrom(self.registry.acquirer_hosts[name])
        message.listening = name in self.registry.listening
        return message

    async def DeleteAcquirerHost(self, request: admin_pb2.DeleteAcquirerHostRequest,
                                 context: grpc.aio.ServicerContext,
                                 ) -> admin_pb2.DeleteAcquirerHostResponse:
        deleted = await self._write(lambda s: s.execute(
            delete(AcquirerHost).where(AcquirerHost.name == request.name)).rowcount)
        if not deleted:
            raise errors.NotFound(f"name: no acquirer host {request.name!r}")
        return admin_pb2.DeleteAcquirerHostResponse()

    async def ListAcquirerHosts(self, request: admin_pb2.ListAcquirerHostsRequest,
                                context: grpc.aio.ServicerContext,
                                ) -> admin_pb2.ListAcquirerHostsResponse:
        return admin_pb2.ListAcquirerHostsResponse(
            hosts=[self._host_message(n) for n in sorted(self.registry.acquirer_hosts)])

    # -- risk rules -------------------------------------------------------------------------

    async def GetRiskRules(self, request: admin_pb2.GetRiskRulesRequest,
                           context: grpc.aio.ServicerContext) -> admin_pb2.RiskRules:
        def read() -> Any:
            with Session(self.engine) as session:
                return session.scalars(select(RiskRuleSet).order_by(
                    RiskRuleSet.version.desc()).limit(1)).first()
        row = await asyncio.to_thread(read)
        if row is None:
            return admin_pb2.RiskRules(yaml=risk_rules.default_yaml(), version=0)
        return admin_pb2.RiskRules(yaml=row.yaml, version=row.version,
                                   updated_at=_ts(row.created_at))

    async def SetRiskRules(self, request: admin_pb2.SetRiskRulesRequest,
                           context: grpc.aio.ServicerContext) -> admin_pb2.RiskRules:
        try:
            risk_rules.load(request.yaml)
        except risk_rules.RuleError as exc:
            raise errors.FieldViolations([("yaml", p) for p in exc.problems]) from exc
        if request.validate_only:
            return admin_pb2.RiskRules(yaml=request.yaml)

        def store_version(session: Session) -> RiskRuleSet:
            current = session.scalar(select(func.max(RiskRuleSet.version))) or 0
            if request.expected_version and request.expected_version != current:
                raise errors.Conflict(f"expected_version: the rules are at version {current}, "
                                      f"not {request.expected_version}; reload and retry")
            row = RiskRuleSet(version=current + 1, yaml=request.yaml, created_at=utcnow())
            session.add(row)
            return row
        row = await self._write(store_version)
        return admin_pb2.RiskRules(yaml=row.yaml, version=row.version,
                                   updated_at=_ts(row.created_at))

    # -- store-and-forward and events -------------------------------------------------------

    async def ListStoreAndForward(self, request: admin_pb2.ListStoreAndForwardRequest,
                                  context: grpc.aio.ServicerContext,
                                  ) -> admin_pb2.ListStoreAndForwardResponse:
        limit = request.limit or 100

        def read() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                return store.saf_entries(conn, request.link, request.include_acknowledged,
                                         limit)
        rows = await asyncio.to_thread(read)
        return admin_pb2.ListStoreAndForwardResponse(entries=[admin_pb2.StoreAndForwardEntry(
            id=r["id"], transaction_id=r["transaction_id"], link=r["issuer_link"],
            mti=r["mti"], reason=r["reason"], attempts=r["attempts"],
            last_error=r["last_error"] or "", next_attempt_at=_ts(r["next_attempt_at"]),
            acknowledged_at=_ts(r["acknowledged_at"]), created_at=_ts(r["created_at"]))
            for r in rows])

    async def ListEvents(self, request: admin_pb2.ListEventsRequest,
                         context: grpc.aio.ServicerContext) -> admin_pb2.ListEventsResponse:
        limit = request.limit or 100

        def read() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                return store.events_after(conn, request.after_id, request.type_prefix, limit)
        rows = await asyncio.to_thread(read)
        return admin_pb2.ListEventsResponse(events=[admin_pb2.Event(
            id=r["id"], event_id=r["event_id"], type=r["type"], data_json=r["data"],
            created_at=_ts(r["created_at"])) for r in rows])


def dialect_violations(dialect: admin_pb2.Iso8583Dialect, path: str) -> list[tuple[str, str]]:
    try:
        iso8583.Dialect.from_proto(dialect)
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        return [(f"{path}.{field.removeprefix('dialect.')}", problem or str(exc))]
    return []


def validate_link(link: admin_pb2.IssuerLink) -> None:
    v: list[tuple[str, str]] = []
    kind = link.kind or admin_pb2.CHANNEL_KIND_ISO8583
    if not link.name or len(link.name) > 64:
        v.append(("link.name", "must be 1 to 64 characters"))
    if not 0 < link.timeout_ms <= 60000:
        v.append(("link.timeout_ms", "must be 1 to 60000"))
    if kind == admin_pb2.CHANNEL_KIND_ISO8583:
        if not link.host:
            v.append(("link.host", "is required"))
        if not 0 < link.port < 65536:
            v.append(("link.port", "must be 1 to 65535"))
        if not link.zpk_key_ref:
            v.append(("link.zpk_key_ref", "is required (HSM key reference of the zone PIN key)"))
        if not link.acquirer_id.isdigit() or len(link.acquirer_id) > 11:
            v.append(("link.acquirer_id", "must be 1 to 11 digits"))
        v.extend(dialect_violations(link.dialect, "link.dialect"))
    elif kind == admin_pb2.CHANNEL_KIND_WALLET:
        v.extend(wallet_violations(link.wallet))
    else:
        v.append(("link.kind", "must be CHANNEL_KIND_ISO8583 or CHANNEL_KIND_WALLET"))
    v.extend(stand_in_violations(link.stand_in, kind))
    b = link.breaker
    if not 0 <= b.failure_threshold <= 1000:
        v.append(("link.breaker.failure_threshold", "must be 0 (default 5) to 1000"))
    if not 0 <= b.open_ms <= 600000:
        v.append(("link.breaker.open_ms", "must be 0 (default 5000) to 600000"))
    if v:
        raise errors.FieldViolations(v)


def wallet_violations(w: admin_pb2.WalletEndpoint) -> list[tuple[str, str]]:
    v: list[tuple[str, str]] = []
    if not w.base_url.startswith("https://"):
        v.append(("link.wallet.base_url", "must be an https:// URL"))
    if w.algorithm == admin_pb2.SIGNATURE_ALGORITHM_UNSPECIFIED:
        v.append(("link.wallet.algorithm", "must be RSA_SHA256 or ED25519"))
    if not w.signing_key_ref:
        v.append(("link.wallet.signing_key_ref", "is required (the switch's HSM key pair)"))
    try:
        serialization.load_pem_public_key(w.provider_public_key_pem.encode())
    except ValueError:
        v.append(("link.wallet.provider_public_key_pem", "is not a PEM public key"))
    if not w.merchant_account:
        v.append(("link.wallet.merchant_account", "is required"))
    return v


def stand_in_violations(s: admin_pb2.StandInRules, kind: int) -> list[tuple[str, str]]:
    """The stand-in rules' problems (see :func:`switch.standin.validate`) as field violations."""
    v: list[tuple[str, str]] = []
    if s.enabled and kind == admin_pb2.CHANNEL_KIND_WALLET:
        v.append(("link.stand_in.enabled", "wallet payments cannot be stood in"))
    for problem in standin.validate(standin.StandInRules.from_proto(s)):
        field, _, text = problem.partition(": ")
        v.append((f"link.{field}", text))
    return v


def link_columns(link: admin_pb2.IssuerLink) -> dict[str, Any]:
    kind = KIND_NAME.get(link.kind, "iso8583")
    return {"name": link.name, "kind": kind, "host": link.host, "port": link.port,
            "zpk_key_ref": link.zpk_key_ref, "zmk_key_ref": link.zmk_key_ref or None,
            "timeout_ms": link.timeout_ms, "acquirer_id": link.acquirer_id,
            "dialect": to_json(link.dialect), "stand_in": to_json(link.stand_in),
            "breaker": to_json(admin_pb2.CircuitBreaker(
                failure_threshold=link.breaker.failure_threshold,
                open_ms=link.breaker.open_ms)),
            "wallet": to_json(link.wallet)}


def route_columns(route: routing.Route) -> dict[str, Any]:
    return {"route_id": route.route_id, "description": route.description,
            "bin_prefix": route.bin_prefix, "brand": route.brand,
            "currencies": json.dumps(list(route.currencies)),
            "min_amount_minor": route.min_amount_minor,
            "max_amount_minor": route.max_amount_minor, "mccs": json.dumps(list(route.mccs)),
            "terminal_ids": json.dumps(list(route.terminal_ids)),
            "merchant_ids": json.dumps(list(route.merchant_ids)),
            "wallet_provider": route.wallet_provider, "primary_link": route.primary_link,
            "secondary_links": json.dumps(list(route.secondary_links)),
            "priority": route.priority}
