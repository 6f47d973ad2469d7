"""``AdminService``: terminals and their PIN pad keys, issuer links, BIN routes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardswitch import currency, errors
from cardswitch.v1 import admin_pb2, admin_pb2_grpc, hsm_pb2, hsm_pb2_grpc
from hsm_sim.algorithms import dukpt
from switch.models import BinRoute, IssuerLink, Terminal
from switch.registry import Registry

LINK_STATE = {"CONNECTING": admin_pb2.LINK_STATE_CONNECTING, "UP": admin_pb2.LINK_STATE_UP,
              "DOWN": admin_pb2.LINK_STATE_DOWN}
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

    async def CreateIssuerLink(self, request: admin_pb2.CreateIssuerLinkRequest,
                               context: grpc.aio.ServicerContext) -> admin_pb2.IssuerLink:
        link = request.link
        v: list[tuple[str, str]] = []
        if not link.name:
            v.append(("link.name", "is required"))
        if not link.host:
            v.append(("link.host", "is required"))
        if not 0 < link.port < 65536:
            v.append(("link.port", "must be 1 to 65535"))
        if not link.zpk_key_ref:
            v.append(("link.zpk_key_ref", "is required (HSM key reference of the zone PIN key)"))
        if not 0 < link.timeout_ms <= 60000:
            v.append(("link.timeout_ms", "must be 1 to 60000"))
        if not link.acquirer_id.isdigit() or len(link.acquirer_id) > 11:
            v.append(("link.acquirer_id", "must be 1 to 11 digits"))
        if v:
            raise errors.FieldViolations(v)
        await self._write(lambda s: s.add(IssuerLink(
            name=link.name, host=link.host, port=link.port, zpk_key_ref=link.zpk_key_ref,
            timeout_ms=link.timeout_ms, acquirer_id=link.acquirer_id)))
        return self._link(link.name)

    def _link(self, name: str) -> admin_pb2.IssuerLink:
        cfg = self.registry.links[name]
        state, in_flight = self.registry.link_state(name)
        return admin_pb2.IssuerLink(name=cfg.name, host=cfg.host, port=cfg.port,
                                    zpk_key_ref=cfg.zpk_key_ref, timeout_ms=cfg.timeout_ms,
                                    acquirer_id=cfg.acquirer_id, state=LINK_STATE[state],
                                    in_flight=in_flight)

    async def ListIssuerLinks(self, request: admin_pb2.ListIssuerLinksRequest,
                              context: grpc.aio.ServicerContext,
                              ) -> admin_pb2.ListIssuerLinksResponse:
        return admin_pb2.ListIssuerLinksResponse(
            links=[self._link(n) for n in sorted(self.registry.links)])

    async def CreateBinRoute(self, request: admin_pb2.CreateBinRouteRequest,
                             context: grpc.aio.ServicerContext) -> admin_pb2.BinRoute:
        r = request.route
        v: list[tuple[str, str]] = []
        if not r.bin_prefix.isdigit() or not 1 <= len(r.bin_prefix) <= 11:
            v.append(("route.bin_prefix", "must be 1 to 11 digits"))
        if r.issuer_link not in self.registry.links:
            v.append(("route.issuer_link", f"no issuer link named {r.issuer_link!r}"))
        if v:
            raise errors.FieldViolations(v)
        route_id = r.route_id or str(uuid.uuid4())
        await self._write(lambda s: s.add(BinRoute(route_id=route_id, bin_prefix=r.bin_prefix,
                                                   issuer_link=r.issuer_link,
                                                   brand=r.brand or "unknown")))
        return admin_pb2.BinRoute(route_id=route_id, bin_prefix=r.bin_prefix,
                                  issuer_link=r.issuer_link, brand=r.brand or "unknown")

    async def DeleteBinRoute(self, request: admin_pb2.DeleteBinRouteRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> admin_pb2.DeleteBinRouteResponse:
        deleted = await self._write(lambda s: s.execute(
            delete(BinRoute).where(BinRoute.route_id == request.route_id)).rowcount)
        if not deleted:
            raise errors.NotFound(f"route_id: no route {request.route_id!r}")
        return admin_pb2.DeleteBinRouteResponse()

    async def ListBinRoutes(self, request: admin_pb2.ListBinRoutesRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> admin_pb2.ListBinRoutesResponse:
        def list_all() -> list[BinRoute]:
            with Session(self.engine) as session:
                return list(session.scalars(select(BinRoute).order_by(BinRoute.bin_prefix)))
        rows = await asyncio.to_thread(list_all)
        return admin_pb2.ListBinRoutesResponse(routes=[
            admin_pb2.BinRoute(route_id=r.route_id, bin_prefix=r.bin_prefix,
                               issuer_link=r.issuer_link, brand=r.brand) for r in rows])
