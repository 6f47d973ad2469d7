"""Requests that arrive while their predecessors are in the database go in together.

The issuer's database work is cheap per statement but not per call: each call costs a hop to a
worker thread, a connection checkout and, for a write, a transaction and its fsync. Under load,
:class:`Groups` lets the requests that queued under one key while that key's previous group was
running share a single call: ``run(key, items)`` in a worker thread, one result per item.

Each key's groups take turns on an asyncio lock (:meth:`Groups.turn`, which other work on the
key can take too), and a request queues its item in the same step as it waits for the lock. The
lock is FIFO, so whoever's turn comes finds its own item at the head of the queue or already
handled by an earlier group, and one group per key runs at a time. Example: three purchases on
one account arrive while a fourth commits; when the fourth is durable, the three commit together
in one transaction.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Queued(Generic[T, R]):
    item: T
    result: asyncio.Future[R]


class Groups(Generic[T, R]):
    """Runs the items queued under a key together, at most ``limit`` to a group."""

    def __init__(self, executor: Executor, run: Callable[[str, list[T]], list[R | Exception]],
                 limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._executor = executor
        self._run = run
        self._limit = limit
        self._queued: dict[str, list[_Queued[T, R]]] = {}
        # Weak: a key's lock lives while someone holds or awaits it, so none outlives the event
        # loop it was used in.
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    def turn(self, key: str) -> asyncio.Lock:
        """The lock ``key``'s groups take turns on."""
        lock = self._turns.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._turns[key] = lock
        return lock

    async def submit(self, key: str, item: T) -> R:
        """``item``'s result from the group it ran in; raises what its run raised for it."""
        loop = asyncio.get_running_loop()
        queued: _Queued[T, R] = _Queued(item, loop.create_future())
        self._queued.setdefault(key, []).append(queued)
        async with self.turn(key):
            group = self._queued.pop(key, [])
            if len(group) > self._limit:
                group, self._queued[key] = group[:self._limit], group[self._limit:]
            if group:
                work = loop.run_in_executor(self._executor, self._run, key,
                                            [q.item for q in group])
                # Settled by the work itself: a turn holder that is cancelled gives up its turn
                # early (the database's own locks still order the work) but loses no result.
                work.add_done_callback(partial(_settle, [q.result for q in group]))
                await asyncio.wait([work])
        return await queued.result


def _settle(results: list[asyncio.Future[R]], work: asyncio.Future[list[R | Exception]]) -> None:
    """Hands each item of a group its result, or the exception that stopped it."""
    for i, future in enumerate(results):
        if future.done():  # its request was cancelled meanwhile
            continue
        if work.cancelled():
            future.cancel()
            continue
        failed = work.exception()
        result = failed if failed is not None else work.result()[i]
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
