"""The HSM process: load the LMK, migrate and open the key store, serve ``HsmService``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from sqlalchemy import Engine

from cardswitch import config, db, grpcserver, logs
from cardswitch.v1 import hsm_pb2_grpc
from hsm_sim import audit, keystore, lmk
from hsm_sim.hostif import HostInfo, HostInterface
from hsm_sim.service import HsmServicer

log = logging.getLogger(__name__)

SERVICE_NAME = "cardswitch.v1.HsmService"
#: What NC reports as the firmware number (9 characters).
FIRMWARE = "CS-1.0.00"


@dataclass(frozen=True)
class RunningHsm:
    server: grpc.aio.Server
    port: int
    engine: Engine
    servicer: HsmServicer
    host_interface: HostInterface | None = None
    host_port: int = 0

    async def close(self) -> None:
        if self.host_interface is not None:
            await self.host_interface.stop()
        self.engine.dispose()
        if self.servicer.audit is not None:
            self.servicer.audit.close()


def open_audit() -> audit.AuditWriter:
    """The audit log under the LMK's audit key, written by a background thread."""
    return audit.AuditWriter(audit.AuditLog(audit.default_path(), audit.audit_key(lmk.load())))


def open_store(url: str | None = None) -> tuple[keystore.KeyStore, Engine]:
    """Loads the LMK, brings ``hsm_keys`` to the newest migration and unwraps every key.

    Fails with :class:`lmk.LmkError` when the LMK is missing, or when keys are stored but none
    unwraps under it (the wrong LMK for this database).
    """
    master = lmk.load()
    url = url or config.database_url("hsm")
    db.upgrade(url, "hsm_sim")
    engine = db.make_engine(url)
    store = keystore.KeyStore(engine, master)
    loaded, failed = store.warm()
    if failed and not loaded:
        engine.dispose()
        raise lmk.LmkError(f"the LMK at {lmk.lmk_path()} (KCV {lmk.check_value(master)}) unwraps "
                           f"none of the {len(failed)} stored keys: it is not the LMK they were "
                           "stored under")
    log.info("key store ready: %d keys in memory, %d failed their integrity check",
             loaded, len(failed))
    return store, engine


async def start(port: int = 0, metrics_port: int = 0, host: str = "127.0.0.1",
                url: str | None = None, host_port: int | None = None) -> RunningHsm:
    """Starts serving on ``host:port`` (0 picks a free port) and returns the bound port; with
    ``host_port``, also the payShield-style host interface (:mod:`hsm_sim.hostif`)."""
    store, engine = open_store(url)
    servicer = HsmServicer(store, open_audit())
    service = grpcserver.Service(hsm_pb2_grpc.add_HsmServiceServicer_to_server,
                                 servicer, SERVICE_NAME)
    server, bound = await grpcserver.start([service], host=host, port=port,
                                           metrics_port=metrics_port)
    if host_port is None:
        return RunningHsm(server, bound, engine, servicer)
    info = HostInfo(lmk.check_value(lmk.load()), FIRMWARE)
    host_interface = HostInterface(servicer, info)
    bound_host = await host_interface.start(host, host_port)
    log.info("payShield-style host interface on %s:%d", host, bound_host)
    return RunningHsm(server, bound, engine, servicer, host_interface, bound_host)


async def serve(port: int, metrics_port: int = 0, host: str = "127.0.0.1",
                host_port: int | None = None) -> None:
    """Runs the HSM until SIGTERM/SIGINT; prints ``HSM ready on HOST:PORT`` once serving."""
    logs.setup("hsm")
    running = await start(port, metrics_port, host, host_port=host_port)
    if running.host_interface is not None:
        print(f"HSM host interface on {host}:{running.host_port}", flush=True)
    print(f"HSM ready on {host}:{running.port}", flush=True)
    await grpcserver.wait_for_termination(running.server, on_stop=running.close)
