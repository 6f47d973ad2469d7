"""The issuer host process: ISO 8583 over TCP, plus the gRPC control API on its own port.

The host speaks one :class:`~cardswitch.iso8583.Dialect` (by default a 2-byte big-endian length
before each message, ASCII numerics, binary bitmaps, no TPDU); answers carry the request's TPDU
with destination and source swapped. One connection carries many requests in flight: the reader
never waits for an answer, each request is processed in its own task, and answers are written as
they complete (the switch matches them on DE 11 + DE 37), one whole frame at a time under the
connection's write lock.

Bytes that are not a message of the dialect close that connection only; the server carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field

import grpc
from prometheus_client import Counter, Histogram

from cardswitch import config, db, grpcserver, iso8583, logs
from cardswitch.cards import mask_pans_in
from cardswitch.iso8583 import DEFAULT, Dialect, Message, swap_tpdu
from cardswitch.v1 import issuer_pb2, issuer_pb2_grpc
from issuer_sim import chip
from issuer_sim.control import SERVICE_NAME, FaultRule, Faults, IssuerControl, Stats
from issuer_sim.processing import GrpcHsm, Processor

log = logging.getLogger(__name__)

MESSAGES = Counter("cardswitch_issuer_messages_total", "ISO 8583 requests answered by the issuer",
                   ["mti", "response_code"])
PROCESSING_SECONDS = Histogram(
    "cardswitch_issuer_processing_seconds", "Issuer time from request read to answer ready",
    ["mti"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

#: How long shutdown waits for requests already being processed.
DRAIN_SECONDS = 5.0


@dataclass(eq=False)
class _Link(iso8583.FrameWriter):
    """One TCP connection: its writing side, and the requests read on it not answered yet."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _amount(message: Message) -> int:
    raw = message.get("4", "")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else 0


class IssuerHost:
    """Serves ISO 8583 connections with a :class:`Processor`, applying injected faults."""

    def __init__(self, processor: Processor, faults: Faults, stats: Stats,
                 dialect: Dialect = DEFAULT) -> None:
        self._processor = processor
        self._faults = faults
        self._stats = stats
        self._dialect = dialect
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        peer = "{}:{}".format(*writer.get_extra_info("peername", ("?", 0))[:2])
        link = _Link(writer, peer)
        self._links.add(link)
        log.info("connection from %s", peer)
        graceful = False
        try:
            graceful = await self._read_requests(reader, link)
        finally:
            self._links.discard(link)
            if graceful:  # the peer closed its side: finish answering what it sent
                await asyncio.gather(*link.tasks, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info("connection from %s closed", peer)

    async def _read_requests(self, reader: asyncio.StreamReader, link: _Link) -> bool:
        """Reads until end of stream (True) or until the link must be dropped (False)."""
        while True:
            try:
                tpdu, raw = await self._dialect.read_frame(reader)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    log.warning("%s: stream ended inside a message (%d bytes)", link.peer,
                                len(exc.partial))
                return not exc.partial
            except iso8583.MessageError as exc:
                log.warning("%s: %s; closing", link.peer, exc)
                return False
            except ConnectionError:
                return False
            try:
                message = self._dialect.decode(raw)
            except Exception as exc:  # a codec bug costs this connection, not the server
                log.warning("%s: not an ISO 8583 message of this dialect (%s: %s); closing",
                            link.peer, type(exc).__name__, mask_pans_in(str(exc)))
                return False
            mti = str(message.get("t", ""))
            self._stats.received[mti] += 1
            fault = self._faults.take(mti, _amount(message))
            if fault is not None and fault.kind == issuer_pb2.FAULT_KIND_DISCONNECT:
                log.info("%s: fault DISCONNECT on %s STAN %s", link.peer, mti,
                         message.get("11", ""))
                return False
            task = asyncio.create_task(self._answer(message, tpdu, fault, link))
            for tasks in (self._tasks, link.tasks):
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    async def _answer(self, message: Message, tpdu: bytes, fault: FaultRule | None,
                      link: _Link) -> None:
        mti = str(message.get("t", ""))
        try:
            if fault is not None and fault.kind == issuer_pb2.FAULT_KIND_DELAY:
                await asyncio.sleep(fault.latency_ms / 1000)
            start = time.perf_counter()
            response = await self._processor.handle(message)
            PROCESSING_SECONDS.labels(mti).observe(time.perf_counter() - start)
            if response is None:
                log.warning("%s: MTI %r is not answered in this dialect", link.peer, mti[:4])
                return
            MESSAGES.labels(mti, response.get("39", "")).inc()
            if self._faults.base_latency_ms:
                await asyncio.sleep(self._faults.base_latency_ms / 1000)
            payload = self._faulty(self._dialect.encode(response), fault)
            if payload is None:
                return
            duplicate = fault is not None and fault.kind == issuer_pb2.FAULT_KIND_DUPLICATE_ANSWER
            copies = 2 if duplicate else 1
            if await link.send(self._dialect.frame(payload, tpdu=swap_tpdu(tpdu)) * copies):
                self._stats.sent[response["t"]] += copies
        except Exception:
            log.exception("%s: answering %s STAN %s failed", link.peer, mti, message.get("11", ""))

    @staticmethod
    def _faulty(payload: bytes, fault: FaultRule | None) -> bytes | None:
        """The bytes to answer with under ``fault``; None for no answer at all."""
        kind = fault.kind if fault is not None else None
        if kind == issuer_pb2.FAULT_KIND_NO_RESPONSE:
            return None
        if kind == issuer_pb2.FAULT_KIND_GARBAGE:
            return b"\xff" + secrets.token_bytes(15)  # not even an ASCII MTI
        if kind == issuer_pb2.FAULT_KIND_TRUNCATED:
            return payload[: len(payload) // 2]
        return payload

    async def close(self) -> None:
        for link in list(self._links):
            link.writer.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=DRAIN_SECONDS)


@dataclass
class RunningIssuer:
    tcp: asyncio.Server
    port: int
    control: grpc.aio.Server
    control_port: int
    host: IssuerHost
    processor: Processor
    hsm_channel: grpc.aio.Channel

    async def close(self) -> None:
        self.tcp.close()
        await self.host.close()
        await self.control.stop(1)
        await self.hsm_channel.close()
        await asyncio.to_thread(self.processor.close)


async def start(port: int, control_port: int, hsm_address: str, metrics_port: int = 0,
                host: str = "127.0.0.1", url: str | None = None,
                dialect: Dialect = DEFAULT) -> RunningIssuer:
    """Migrates the database and starts both listeners; port 0 picks a free port."""
    url = url or config.database_url("issuer")
    await asyncio.to_thread(db.upgrade, url, "issuer_sim")
    channel = grpc.aio.insecure_channel(hsm_address)
    hsm = GrpcHsm(channel)
    processor = Processor(url, hsm, chip_issuer=chip.ChipIssuer(hsm))
    faults, stats = Faults.from_env(), Stats()
    issuer = IssuerHost(processor, faults, stats, dialect)
    tcp = await asyncio.start_server(issuer.handle_connection, host, port)
    bound = int(tcp.sockets[0].getsockname()[1])
    control = grpcserver.Service(issuer_pb2_grpc.add_IssuerSimServiceServicer_to_server,
                                 IssuerControl(processor, faults, stats), SERVICE_NAME)
    server, control_bound = await grpcserver.start([control], host=host, port=control_port,
                                                   metrics_port=metrics_port)
    log.info("ISO 8583 (%s) on %s:%d, HSM at %s", dialect.describe(), host, bound, hsm_address)
    return RunningIssuer(tcp, bound, server, control_bound, issuer, processor, channel)


async def serve(port: int, control_port: int, hsm_address: str, metrics_port: int = 0,
                host: str = "127.0.0.1", dialect: Dialect = DEFAULT) -> None:
    """Runs the issuer until SIGTERM/SIGINT; prints its ready line once both ports listen."""
    logs.setup("issuer")
    running = await start(port, control_port, hsm_address, metrics_port, host,
                          dialect=dialect)
    print(f"ISSUER ready on {host}:{running.port} control {host}:{running.control_port}",
          flush=True)
    await grpcserver.wait_for_termination(running.control, on_stop=running.close)
