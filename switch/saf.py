"""Store-and-forward: advices of stood-in authorisations (0120/0220) and reversal advices (0420),
repeated until the issuer acknowledges them, in queue order per link.

Rows in ``switch_saf_queue`` are leased (``locked_until``) before they are sent, so several
switch nodes can run this worker on one database without sending the same entry twice at once.
The first send uses the original MTI; every later one the repeat MTI (0121/0221/0421). The
issuer treats advices and reversals idempotently, so a repeat after a lost acknowledgement is
harmless. A link's entries go one at a time, oldest first, and the link's pass stops at the
first failure, so an advice never overtakes an earlier one after the link returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
from typing import Any

from prometheus_client import Counter

from cardswitch import responses
from cardswitch.config import env_int
from cardswitch.v1 import hsm_pb2
from switch import store
from switch.context import ChannelError, TxnContext
from switch.models import utcnow
from switch.pipeline import Deps, money_currency_numeric

log = logging.getLogger(__name__)

SENT = Counter("cardswitch_saf_messages_total", "store-and-forward sends by MTI and outcome",
               ["mti", "outcome"])
POLL_SECONDS = 1.0
LEASE_SECONDS = 30.0
SEND_TIMEOUT_S = 5.0
#: A PENDING row older than this was left by a process that died mid-request. It must exceed
#: the longest request deadline, so a starting node never takes a live node's request.
STALE_PENDING = dt.timedelta(seconds=env_int("CARDSWITCH_STALE_PENDING_S", 120))
#: Answers that settle an entry: approved, or the issuer has no such original ("25"), or it
#: refuses the message for good (format error, duplicate): resending would never change them.
DEFINITIVE = {"12", "13", "14", "25", "30", "54", "94"}


class SafWorker:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="saf-worker")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def recover(self) -> int:
        """Turns PENDING rows of a crashed process into TIMED_OUT with a queued reversal."""
        count: int = await self.deps.journal.run(store.stale_pending(utcnow() - STALE_PENDING))
        if count:
            log.warning("recovered %d transactions left pending by a previous process", count)
        return count

    async def _loop(self) -> None:
        kick = self.deps.reversal_kick
        last_recover = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kick.wait(), POLL_SECONDS)
            kick.clear()
            try:
                if time.monotonic() - last_recover > 60:
                    last_recover = time.monotonic()
                    await self.recover()
                await self.run_once()
            except Exception:
                log.exception("store-and-forward pass failed; retrying")

    async def run_once(self) -> int:
        due = await self.deps.journal.run(store.claim_due(self.node, 50, LEASE_SECONDS))
        by_link: dict[str, list[dict[str, Any]]] = {}
        for entry in due:
            by_link.setdefault(str(entry["issuer_link"]), []).append(entry)
        await asyncio.gather(*(self._send_in_order(entries) for entries in by_link.values()))
        return len(due)

    async def _send_in_order(self, entries: list[dict[str, Any]]) -> None:
        for i, entry in enumerate(entries):
            if not await self._send(entry):
                # keep the order: release the later ones untouched for the next pass
                await self.deps.journal.run(store.release([int(e["id"]) for e in entries[i + 1:]]))
                return

    async def _send(self, entry: dict[str, Any]) -> bool:
        qid, tid = int(entry["id"]), str(entry["transaction_id"])
        attempts, mti = int(entry["attempts"]), str(entry["mti"])
        sent_mti = repeat_mti(mti) if attempts else mti
        try:
            original = await self.deps.journal.read(lambda c: store.by_transaction_id(c, tid))
            if original is None:
                raise LookupError(f"transaction {tid} is not in the journal")
            ctx = await self._context(original, repeat=attempts > 0)
            channel = self.deps.registry.channel(str(entry["issuer_link"]))
            if mti.startswith("04"):
                result = await channel.reverse(ctx, SEND_TIMEOUT_S, advice=True)
            else:
                result = await channel.advise(ctx, SEND_TIMEOUT_S)
            code = result.response_code
            if not responses.approved(code) and code not in DEFINITIVE:
                raise ChannelError(f"issuer answered {code} to the {sent_mti}")
        except Exception as exc:
            SENT.labels(sent_mti, "failed").inc()
            log.warning("%s for %s failed (attempt %d): %s", sent_mti, tid, attempts + 1, exc)
            await self.deps.journal.run(store.saf_failed(qid, attempts, str(exc)))
            return False
        SENT.labels(sent_mti, "acknowledged").inc()
        log.info("%s for %s acknowledged (%s) after %d attempt(s)", sent_mti, tid, code,
                 attempts + 1)
        await self.deps.journal.run(store.saf_acknowledged(qid, tid, mti))
        return True

    async def _context(self, original: dict[str, Any], *, repeat: bool) -> TxnContext:
        terminal = self.deps.registry.terminals[str(original["terminal_id"])]
        ctx = TxnContext(kind=str(original["type"]), terminal=terminal,
                         stan=str(original["stan"]),
                         local_date_time=str(original["local_date_time"]), request_id=None,
                         deadline=time.monotonic() + 10, original=original, repeat=repeat)
        ctx.amount_minor = int(original["amount_minor"])
        ctx.currency = str(original["currency"])
        ctx.currency_numeric = money_currency_numeric(ctx.currency)
        ctx.mcc, ctx.entry_mode = str(original["mcc"]), str(original["entry_mode"])
        ctx.transaction_id, ctx.rrn = str(original["transaction_id"]), original["rrn"] or ""
        ctx.transmission_dt = utcnow().strftime("%m%d%H%M%S")
        ctx.wallet_provider = original.get("wallet_provider") or ""
        if original["encrypted_pan"]:
            answer = await self.deps.hsm.RevealPan(hsm_pb2.RevealPanRequest(
                dek_key_ref=self.deps.dek_key_ref,
                encrypted_pan=original["encrypted_pan"]), timeout=2.0)
            ctx.pan = answer.pan
        return ctx


def repeat_mti(mti: str) -> str:
    """The MTI of a resend: the last digit 0 (request/advice) becomes 1 (repeat)."""
    return mti[:3] + "1"
