"""Configuration the hot path reads from memory: terminals, links and their channels and circuit
breakers, the routing table, acquirer hosts and the risk rules in force.

Loaded from the database and reloaded every few seconds, so every switch node converges on
changes made through any node's AdminService. A link whose configuration is unchanged keeps its
channel (and connection) and its breaker across reloads.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from prometheus_client import Gauge
from sqlalchemy import Engine, func, select

from cardswitch.v1 import admin_pb2
from switch import routing
from switch.breaker import CircuitBreaker
from switch.channels.base import Channel
from switch.context import LinkConfig, TerminalConfig
from switch.models import AcquirerHost, IssuerLink, RiskRuleSet, Route, Terminal

log = logging.getLogger(__name__)

RELOAD_SECONDS = 5.0
BREAKER_OPEN = Gauge("cardswitch_link_breaker_open", "1 while the link's circuit breaker is open",
                     ["link"])
STATE_NUMBER = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}

ChannelFactory = Callable[[LinkConfig], Channel]


def to_json(message: ProtoMessage) -> str | None:
    """A nested admin message as stored in a JSON column (None when it is all defaults)."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(data, sort_keys=True) if data else None


def from_json(raw: str | None, message: ProtoMessage) -> Any:
    if raw:
        json_format.ParseDict(json.loads(raw), message)
    return message


def link_config(row: Any) -> LinkConfig:
    return LinkConfig(
        name=row.name, host=row.host, port=row.port, zpk_key_ref=row.zpk_key_ref,
        timeout_ms=row.timeout_ms, acquirer_id=row.acquirer_id, kind=row.kind or "iso8583",
        zmk_key_ref=row.zmk_key_ref or "",
        dialect=from_json(row.dialect, admin_pb2.Iso8583Dialect()),
        stand_in=from_json(row.stand_in, admin_pb2.StandInRules()),
        breaker=from_json(row.breaker, admin_pb2.CircuitBreaker()),
        wallet=from_json(row.wallet, admin_pb2.WalletEndpoint()))


def route_of(row: Any) -> routing.Route:
    return routing.Route(
        route_id=row.route_id, description=row.description or "", bin_prefix=row.bin_prefix,
        brand=row.brand, currencies=tuple(json.loads(row.currencies)),
        min_amount_minor=row.min_amount_minor, max_amount_minor=row.max_amount_minor,
        mccs=tuple(json.loads(row.mccs)), terminal_ids=tuple(json.loads(row.terminal_ids)),
        merchant_ids=tuple(json.loads(row.merchant_ids)), wallet_provider=row.wallet_provider,
        primary_link=row.primary_link, secondary_links=tuple(json.loads(row.secondary_links)),
        priority=row.priority)


@dataclass
class Snapshot:
    terminals: dict[str, TerminalConfig]
    links: dict[str, LinkConfig]
    routes: list[routing.Route]
    acquirer_hosts: dict[str, admin_pb2.AcquirerHost]
    risk_rules: tuple[int, str] | None
    #: link -> (check value of its current zone PIN key, when it was exchanged)
    link_keys: dict[str, tuple[str | None, Any]] = field(default_factory=dict)


class Registry:
    def __init__(self, engine: Engine, channel_factory: ChannelFactory | None = None) -> None:
        self.engine = engine
        self.channel_factory = channel_factory or default_channel
        self.terminals: dict[str, TerminalConfig] = {}
        self.links: dict[str, LinkConfig] = {}
        self.routes: list[routing.Route] = []
        self._kinds: dict[str, str] = {}
        self.table = routing.RoutingTable([], {})
        self.channels: dict[str, Channel] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.acquirer_hosts: dict[str, admin_pb2.AcquirerHost] = {}
        self.risk_rules: tuple[int, str] | None = None
        self.link_keys: dict[str, tuple[str | None, Any]] = {}
        #: Acquirer hosts this node is listening for.
        self.listening: set[str] = set()
        #: Called after each reload (risk engine, acquirer listeners...).
        self.listeners: list[Callable[[Registry], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> Snapshot:
        with self.engine.connect() as conn:
            terminals = {
                r.terminal_id: TerminalConfig(r.terminal_id, r.merchant_id, r.mcc,
                                              r.name_location, r.currency, r.bdk_key_ref)
                for r in conn.execute(select(Terminal.__table__))}
            link_rows = list(conn.execute(select(IssuerLink.__table__)))
            links = {r.name: link_config(r) for r in link_rows}
            keys = {r.name: (r.zpk_kcv, r.key_exchanged_at) for r in link_rows}
            routes = [route_of(r) for r in conn.execute(select(Route.__table__))]
            hosts = {r.name: admin_pb2.AcquirerHost(
                name=r.name, port=r.port, zpk_key_ref=r.zpk_key_ref,
                dialect=from_json(r.dialect, admin_pb2.Iso8583Dialect()))
                for r in conn.execute(select(AcquirerHost.__table__))}
            version = conn.scalar(select(func.max(RiskRuleSet.version)))
            rules = None
            if version is not None:
                text = conn.scalar(select(RiskRuleSet.yaml).where(RiskRuleSet.version == version))
                rules = (int(version), str(text))
        return Snapshot(terminals, links, routes, hosts, rules, keys)

    async def reload(self) -> None:
        snap = await asyncio.to_thread(self._load)
        self.terminals = snap.terminals
        for name, cfg in snap.links.items():
            if self.links.get(name) != cfg:
                old = self.channels.pop(name, None)
                if old is not None:
                    await old.close()
                self.channels[name] = self.channel_factory(cfg)
                if name not in self.breakers or self.links.get(name, cfg).breaker != cfg.breaker:
                    self.breakers[name] = CircuitBreaker.from_proto(cfg.breaker)
        for name in set(self.channels) - set(snap.links):
            await self.channels.pop(name).close()
            self.breakers.pop(name, None)
        self.links, self.link_keys = snap.links, snap.link_keys
        kinds = {n: c.kind for n, c in snap.links.items()}
        if snap.routes != self.routes or kinds != self._kinds:
            try:
                self.table = routing.RoutingTable(snap.routes, kinds)
                self.routes, self._kinds = snap.routes, kinds
            except ValueError as exc:  # the admin API validates; this is a hand-edited table
                log.error("routing table in the database is invalid, keeping the previous "
                          "one: %s", exc)
        self.acquirer_hosts = snap.acquirer_hosts
        self.risk_rules = snap.risk_rules
        for listener in self.listeners:
            try:
                await listener(self)
            except Exception:
                log.exception("applying the reloaded configuration failed")

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(RELOAD_SECONDS)
                try:
                    await self.reload()
                except Exception:
                    log.exception("configuration reload failed; keeping the previous one")
        self._task = asyncio.create_task(loop(), name="registry-reload")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        for channel in self.channels.values():
            await channel.close()

    # -- the hot path ----------------------------------------------------------------------

    def route(self, txn: routing.Txn) -> tuple[routing.Route | None, list[LinkConfig]]:
        """The matching route and its links in the order to try them (usable ones first)."""
        chosen = self.table.resolve(txn)
        if chosen is None:
            return None, []
        names = routing.failover(chosen, self.usable)
        return chosen, [self.links[n] for n in names if n in self.links]

    def usable(self, name: str) -> bool:
        """Whether a request may be sent on the link now (connected and breaker not open)."""
        channel = self.channels.get(name)
        breaker = self.breakers.get(name)
        if channel is None:
            return False
        state, _ = channel.state()
        return state == "UP" and (breaker is None or breaker.state != "OPEN")

    def channel(self, name: str) -> Channel:
        return self.channels[name]

    def breaker(self, name: str) -> CircuitBreaker:
        breaker = self.breakers.get(name)
        if breaker is None:
            breaker = self.breakers[name] = CircuitBreaker()
        return breaker

    def observe_breaker(self, name: str) -> None:
        BREAKER_OPEN.labels(name).set(1 if self.breaker(name).state == "OPEN" else 0)

    def link_state(self, name: str) -> tuple[str, int]:
        channel = self.channels.get(name)
        return channel.state() if channel else ("DOWN", 0)


def default_channel(cfg: LinkConfig) -> Channel:
    from switch.channels.iso8583_issuer import IssuerChannel
    if cfg.kind == "iso8583":
        return IssuerChannel(cfg)
    raise ValueError(f"link {cfg.name}: no channel factory for kind {cfg.kind!r}")
