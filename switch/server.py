"""Wiring of one switch process: database, journal, HSM client, registry, servicers, workers."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import ssl
import sys

import grpc

from cardswitch import certs, db, grpcserver, logs
from cardswitch.config import database_url
from cardswitch.grpcserver import Service
from cardswitch.signing import HsmSigner
from cardswitch.v1 import acquiring_pb2_grpc, admin_pb2_grpc, hsm_pb2_grpc
from switch.acquirer_host import AcquirerHostConfig, AcquirerHostServer
from switch.admin import AdminServicer
from switch.channels.base import Channel
from switch.channels.wallet import WalletChannel, signature_algorithm
from switch.context import LinkConfig
from switch.journal import Journal
from switch.notifications import NotificationHub, NotificationServer
from switch.pipeline import Deps
from switch.registry import ChannelFactory, Registry, default_channel
from switch.risk import rules as risk_rules
from switch.risk.engine import RiskEngine
from switch.risk.step import RiskCheck
from switch.risk.velocity import VelocityStore
from switch.saf import SafWorker
from switch.service import AcquiringServicer

log = logging.getLogger(__name__)


async def serve(port: int, hsm_address: str, *, metrics_port: int = 0, insecure: bool = False,
                host: str = "127.0.0.1", migrate: bool = True, notify_port: int = 0) -> None:
    log = logs.setup("switch")
    url = database_url("switch")
    if migrate:
        db.upgrade(url, "switch")
    engine = db.make_engine(url, pool_size=8)
    journal = Journal(engine)
    hsm_channel = grpc.aio.insecure_channel(hsm_address)
    hsm = hsm_pb2_grpc.HsmServiceStub(hsm_channel)
    hub = NotificationHub(on_notification=_notified)
    registry = Registry(engine, channel_factory=channel_factory(hsm, hub))
    await registry.reload()
    notify = None
    if notify_port:
        cert, key = certs.issue_server_certificate("switch-notify")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        notify = NotificationServer(hub, lambda name: registry.links.get(name), host,
                                    notify_port, tls)
        await notify.start()
    risk = None if os.environ.get("CARDSWITCH_RISK", "on") == "off" else (
        await start_risk(journal, registry))
    deps = Deps(journal=journal, hsm=hsm, registry=registry, risk=risk)
    worker = SafWorker(deps)
    await worker.recover()
    worker.start()
    acquiring = AcquiringServicer(deps)
    listeners = AcquirerListeners(acquiring, host)
    registry.listeners.append(listeners.apply)
    await listeners.apply(registry)
    registry.start()
    credentials = None if insecure else certs.server_credentials()
    server, bound = await grpcserver.start(
        [Service(acquiring_pb2_grpc.add_AcquiringServiceServicer_to_server,
                 acquiring, "cardswitch.v1.AcquiringService"),
         Service(admin_pb2_grpc.add_AdminServiceServicer_to_server,
                 AdminServicer(engine, registry, hsm), "cardswitch.v1.AdminService")],
        host=host, port=port, metrics_port=metrics_port, credentials=credentials)
    print(f"SWITCH ready on {host}:{bound} ({'insecure' if insecure else 'mTLS'}, "
          f"pid {os.getpid()})", flush=True)

    async def stop() -> None:
        if notify is not None:
            await notify.close()
        await listeners.close()
        await worker.close()
        await registry.close()
        await hsm_channel.close()
        journal.close()
        engine.dispose()
        log.info("stopped")

    await grpcserver.wait_for_termination(server, stop)


def channel_factory(hsm: hsm_pb2_grpc.HsmServiceStub, hub: NotificationHub) -> ChannelFactory:
    """Builds the channel adapter a link's kind names (one module per channel)."""
    def make(cfg: LinkConfig) -> Channel:
        if cfg.kind == "wallet":
            signer = HsmSigner(hsm, cfg.wallet.signing_key_ref, signature_algorithm(cfg.wallet))
            return WalletChannel(cfg, signer, hub)
        return default_channel(cfg)
    return make


async def _notified(link: str, payload: dict[str, object]) -> None:
    log.info("wallet notification on link %s: payment %s is %s", link,
             payload.get("out_trade_no"), payload.get("status"))


async def start_risk(journal: Journal, registry: Registry) -> RiskCheck:
    """The risk step, its rules following the registry (the admin API's latest version)."""
    velocity = VelocityStore(journal)
    engine = RiskEngine(risk_rules.load_default(), velocity)
    await velocity.start()
    applied: list[int] = [0]

    async def follow(reg: Registry) -> None:
        if reg.risk_rules is not None and reg.risk_rules[0] != applied[0]:
            engine.replace(risk_rules.load(reg.risk_rules[1]))
            applied[0] = reg.risk_rules[0]
            log.info("risk rules version %d in force", applied[0])
    registry.listeners.append(follow)
    await follow(registry)
    return RiskCheck(engine)


class AcquirerListeners:
    """Keeps one ISO 8583 listener per configured acquirer host, following the registry."""

    def __init__(self, servicer: AcquiringServicer, host: str) -> None:
        self.servicer, self.host = servicer, host
        self.servers: dict[str, tuple[AcquirerHostConfig, AcquirerHostServer]] = {}

    async def apply(self, registry: Registry) -> None:
        wanted: dict[str, AcquirerHostConfig] = {}
        for name, message in registry.acquirer_hosts.items():
            try:
                wanted[name] = AcquirerHostConfig.from_proto(message)
            except ValueError as exc:
                log.error("acquirer host %s: %s", name, exc)
        for name in list(self.servers):
            if name not in wanted or wanted[name] != self.servers[name][0]:
                await self.servers.pop(name)[1].close()
        for name, cfg in wanted.items():
            if name in self.servers:
                continue
            server = AcquirerHostServer(cfg, self.servicer)
            try:
                await server.start(self.host)
            except OSError as exc:
                log.error("acquirer host %s: cannot listen on port %d: %s", name, cfg.port, exc)
                continue
            self.servers[name] = (cfg, server)
            log.info("acquirer host %s: ISO 8583 (%s) on %s:%d", name, cfg.dialect.describe(),
                     self.host, server.port)
        registry.listening = set(self.servers)

    async def close(self) -> None:
        for _, server in self.servers.values():
            await server.close()
        self.servers.clear()


def _child(port: int, hsm_address: str, metrics_port: int, insecure: bool, host: str,
           notify_port: int) -> None:
    asyncio.run(serve(port, hsm_address, metrics_port=metrics_port, insecure=insecure, host=host,
                      notify_port=notify_port,
                      migrate=False))


def serve_workers(workers: int, port: int, hsm_address: str, *, metrics_port: int = 0,
                  insecure: bool = False, host: str = "127.0.0.1", notify_port: int = 0) -> int:
    """Runs ``workers`` processes on one port (SO_REUSEPORT); the kernel spreads connections."""
    if workers <= 1:
        asyncio.run(serve(port, hsm_address, metrics_port=metrics_port, insecure=insecure,
                          host=host, notify_port=notify_port))
        return 0
    if port == 0:
        raise ValueError("--port: several workers need a fixed port, not 0")
    db.upgrade(database_url("switch"), "switch")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child, args=(port, hsm_address,
                                              metrics_port + i if metrics_port else 0,
                                              insecure, host, notify_port), daemon=False)
             for i in range(workers)]
    for p in procs:
        p.start()
    import signal

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid:
                os.kill(p.pid, signal.SIGTERM)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
    return max((p.exitcode or 0) for p in procs) if procs else 0


if __name__ == "__main__":
    sys.exit(serve_workers(1, 7000, "127.0.0.1:7100"))
