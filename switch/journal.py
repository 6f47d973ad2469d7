"""The journal writer: group commit of many requests' writes into one database transaction.

Callers ``await journal.run(op)`` where ``op(conn)`` does a few statements. A writer thread takes
every op queued while the previous commit was running, executes them in one transaction and
commits once, then resolves each caller's future: a request is acknowledged only after its row is
durable, and under load the cost of a commit (an fsync) is shared by the whole batch. If a batch
fails, its ops are re-run one per transaction so one bad op cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import Histogram
from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_SIZE = Histogram("cardswitch_journal_batch_size", "ops per journal commit",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
COMMIT_SECONDS = Histogram("cardswitch_journal_commit_seconds", "journal batch execute+commit",
                           buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5))

MAX_BATCH = 256


class BulkOp:
    """An op that can run together with others of its class in one statement.

    Subclasses implement ``execute_many(conn, ops) -> results`` (one result per op, in order);
    the writer gathers every op of the same class in a batch into one call (e.g. a multi-row
    INSERT ... RETURNING, or an executemany UPDATE), so a batch costs a few statements, not a
    few per request.
    """

    @classmethod
    def execute_many(cls, conn: Connection, ops: list[Any]) -> list[Any]:
        raise NotImplementedError

    def __call__(self, conn: Connection) -> Any:
        return type(self).execute_many(conn, [self])[0]


@dataclass
class _Op:
    fn: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any] = field(repr=False)


class Journal:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._writer, name="journal-writer", daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Runs ``fn(conn)`` inside the next group commit; returns after the commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(fn, loop, future))
        return await future

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Runs a read-only ``fn(conn)`` on a pooled connection in a worker thread."""
        def _read() -> T:
            with self.engine.connect() as conn:
                return fn(conn)
        return await asyncio.to_thread(_read)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[_Op]) -> None:
        start = time.perf_counter()
        try:
            with self.engine.begin() as conn:
                results = self._execute(conn, batch)
        except Exception:
            if len(batch) == 1:
                self._fail(batch[0])
                return
            for op in batch:  # isolate the failing op
                self._commit([op])
            return
        BATCH_SIZE.observe(len(batch))
        COMMIT_SECONDS.observe(time.perf_counter() - start)
        for op, result in zip(batch, results, strict=True):
            op.loop.call_soon_threadsafe(_resolve, op.future, result, None)

    @staticmethod
    def _execute(conn: Connection, batch: list[_Op]) -> list[Any]:
        results: list[Any] = [None] * len(batch)
        groups: dict[type, list[int]] = {}
        for i, op in enumerate(batch):
            if isinstance(op.fn, BulkOp):
                groups.setdefault(type(op.fn), []).append(i)
            else:
                results[i] = op.fn(conn)
        for cls, indexes in groups.items():
            outs = cls.execute_many(conn, [batch[i].fn for i in indexes])  # type: ignore[attr-defined]
            for i, out in zip(indexes, outs, strict=True):
                results[i] = out
        return results

    @staticmethod
    def _fail(op: _Op) -> None:
        import sys
        exc = sys.exc_info()[1] or RuntimeError("journal op failed")
        log.error("journal write failed: %s", type(exc).__name__)
        op.loop.call_soon_threadsafe(_resolve, op.future, None, exc)


def _resolve(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
