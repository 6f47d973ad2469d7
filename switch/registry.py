"""Configuration the hot path reads from memory: terminals, issuer links and their channels,
BIN routes. Loaded from the database and reloaded periodically, so every switch node converges
on changes made through any node's AdminService.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import Engine, select

from switch.channels.base import Channel
from switch.channels.iso8583_issuer import IssuerChannel
from switch.context import LinkConfig, TerminalConfig
from switch.models import BinRoute, IssuerLink, Terminal

log = logging.getLogger(__name__)

RELOAD_SECONDS = 5.0


class Registry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.terminals: dict[str, TerminalConfig] = {}
        self.links: dict[str, LinkConfig] = {}
        self.routes: list[tuple[str, str]] = []  # (bin prefix, link), longest prefix first
        self.channels: dict[str, Channel] = {}
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> tuple[dict[str, TerminalConfig], dict[str, LinkConfig],
                             list[tuple[str, str]]]:
        with self.engine.connect() as conn:
            terminals = {
                r.terminal_id: TerminalConfig(r.terminal_id, r.merchant_id, r.mcc,
                                              r.name_location, r.currency, r.bdk_key_ref)
                for r in conn.execute(select(Terminal.__table__))}
            links = {
                r.name: LinkConfig(r.name, r.host, r.port, r.zpk_key_ref, r.timeout_ms,
                                   r.acquirer_id)
                for r in conn.execute(select(IssuerLink.__table__))}
            routes = sorted(((r.bin_prefix, r.issuer_link)
                             for r in conn.execute(select(BinRoute.__table__))),
                            key=lambda p: -len(p[0]))
        return terminals, links, routes

    async def reload(self) -> None:
        terminals, links, routes = await asyncio.to_thread(self._load)
        self.terminals, self.routes = terminals, routes
        for name, cfg in links.items():
            if self.links.get(name) != cfg:
                old = self.channels.pop(name, None)
                if old is not None:
                    await old.close()
                self.channels[name] = IssuerChannel(cfg)
        for name in set(self.channels) - set(links):
            await self.channels.pop(name).close()
        self.links = links

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

    def route(self, pan: str) -> LinkConfig | None:
        for prefix, link in self.routes:
            if pan.startswith(prefix):
                return self.links.get(link)
        return None

    def channel(self, name: str) -> Channel:
        return self.channels[name]

    def link_state(self, name: str) -> tuple[str, int]:
        channel = self.channels.get(name)
        return channel.state() if channel else ("DOWN", 0)

    def snapshot(self) -> dict[str, Any]:
        return {"terminals": len(self.terminals), "links": list(self.links),
                "routes": len(self.routes)}
