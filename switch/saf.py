"""Store-and-forward of reversal advices (0420): repeated, with backoff, until acknowledged.

Rows in ``switch_saf_queue`` are leased (``locked_until``) before they are sent, so several
switch nodes can run this worker on one database without sending the same advice twice at once.
The issuer treats 0420 idempotently, so a repeat after a lost acknowledgement is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time

from prometheus_client import Counter

from cardswitch import responses
from cardswitch.config import env_int
from cardswitch.v1 import hsm_pb2
from switch import store
from switch.context import ChannelError, TxnContext
from switch.models import utcnow
from switch.pipeline import Deps, money_currency_numeric

log = logging.getLogger(__name__)

SENT = Counter("cardswitch_reversal_advices_total", "reversal advices by outcome", ["outcome"])
POLL_SECONDS = 1.0
LEASE_SECONDS = 30.0
#: A PENDING row older than this was left by a process that died mid-request. It must exceed
#: the longest request deadline, so a starting node never takes a live node's request.
STALE_PENDING = dt.timedelta(seconds=env_int("CARDSWITCH_STALE_PENDING_S", 120))


class ReversalWorker:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reversal-worker")

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
                log.exception("reversal worker pass failed; retrying")

    async def run_once(self) -> int:
        due = await self.deps.journal.run(store.claim_due_reversals(self.node, 50, LEASE_SECONDS))
        if due:
            await asyncio.gather(*(self._send(entry) for entry in due))
        return len(due)

    async def _send(self, entry: dict[str, object]) -> None:
        qid, tid = int(entry["id"]), str(entry["transaction_id"])  # type: ignore[call-overload]
        attempts = int(entry["attempts"])  # type: ignore[call-overload]
        try:
            original = await self.deps.journal.read(lambda c: store.by_transaction_id(c, tid))
            if original is None:
                raise LookupError(f"transaction {tid} is not in the journal")
            ctx = await self._context(original)
            channel = self.deps.registry.channel(str(entry["issuer_link"]))
            result = await channel.reverse(ctx, 5.0, advice=True)
            if not responses.approved(result.response_code) and result.response_code != "25":
                raise ChannelError(f"issuer answered {result.response_code} to the advice")
        except Exception as exc:
            SENT.labels("failed").inc()
            log.warning("reversal advice for %s failed (attempt %d): %s", tid, attempts + 1, exc)
            await self.deps.journal.run(store.reversal_failed(qid, attempts, str(exc)))
            return
        SENT.labels("acknowledged").inc()
        log.info("reversal advice for %s acknowledged after %d attempt(s)", tid, attempts + 1)
        await self.deps.journal.run(store.reversal_acknowledged(qid, tid))

    async def _context(self, original: dict[str, object]) -> TxnContext:
        terminal = self.deps.registry.terminals[str(original["terminal_id"])]
        ctx = TxnContext(kind="reversal", terminal=terminal, stan=str(original["stan"]),
                         local_date_time=str(original["local_date_time"]), request_id=None,
                         deadline=time.monotonic() + 10, original=original)
        ctx.amount_minor = int(original["amount_minor"])  # type: ignore[call-overload]
        ctx.currency = str(original["currency"])
        ctx.currency_numeric = money_currency_numeric(ctx.currency)
        ctx.mcc, ctx.entry_mode = str(original["mcc"]), str(original["entry_mode"])
        ctx.transmission_dt = utcnow().strftime("%m%d%H%M%S")
        if original["encrypted_pan"]:
            answer = await self.deps.hsm.RevealPan(hsm_pb2.RevealPanRequest(
                dek_key_ref=self.deps.dek_key_ref,
                encrypted_pan=original["encrypted_pan"]), timeout=2.0)  # type: ignore[arg-type]
            ctx.pan = answer.pan
        return ctx
