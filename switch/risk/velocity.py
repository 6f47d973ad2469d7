"""Sliding-window velocity counters per card (``pan_token``), terminal and merchant.

Several switch processes share one database, so no process's memory is the truth: each node
reads the journal every ~200 ms (rows with an id above the last it saw) and counts what *every*
node let through. A request this node has just let through is counted at once, provisionally,
under its request key (terminal id, STAN, local date and time); when the poller meets that key's
row, the provisional entry becomes the row's entry. Nothing is counted twice, and a burst on one
node is counted before the journal shows it.

What counts (docs/risk.md):

- towards ``max_count``: every purchase/preauth attempt the risk step let through, whatever the
  issuer answered (card testing is a burst of declines); attempts risk itself declined do not
  count, so a blocked card is usable again once its earlier attempts leave the window;
- towards ``max_amount_minor``: the same attempts while PENDING, APPROVED or CAPTURED in the
  rule's currency. An attempt the issuer declines, or that times out (and is reversed), stops
  counting when the poller sees its outcome; one reversed after it was approved still counts.

Each window keeps running totals per key, so :meth:`VelocityStore.check` costs a dict lookup and
a few comparisons per rule (no I/O). Memory is bounded: entries leave a window when they are older
than it, idle keys are swept, and the bookkeeping of request keys, in-flight rows and id gaps lasts
two minutes at most.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, select

from switch.context import TxnContext
from switch.journal import Journal
from switch.models import JournalEntry
from switch.risk.rules import VelocityRule, Window

log = logging.getLogger(__name__)

#: Statuses whose amount counts towards amount limits.
AMOUNT_STATUSES = frozenset({"PENDING", "APPROVED", "CAPTURED"})
_J: Table = JournalEntry.__table__  # type: ignore[assignment]
_COLUMNS = [_J.c[name] for name in (
    "id", "pan_token", "terminal_id", "merchant_id", "amount_minor", "currency", "type", "status",
    "risk_decision", "created_at", "stan", "local_date_time")]
_IN_CHUNK = 500
_MAX_GAP = 1000


def request_key(terminal_id: str, stan: str, local_date_time: str) -> str:
    """The idempotency key of a request, as one string: ``"TERM0001|000123|261123101010"``."""
    return f"{terminal_id}|{stan}|{local_date_time}"


class Breach(NamedTuple):
    """A velocity rule this request would break: ``observed`` includes the request itself."""

    rule: VelocityRule
    measure: str  # "count" | "amount"
    observed: int
    limit: int


class _Hit:
    """One transaction in the windows it counts in. ``counted`` and ``amount`` change once, when
    its outcome is known; ``series`` lists the windows holding it until then (None: settled)."""

    __slots__ = ("amount", "counted", "currency", "series", "ts")

    def __init__(self, ts: float, counted: int, amount: int, currency: str) -> None:
        self.ts = ts
        self.counted = counted
        self.amount = amount
        self.currency = currency
        self.series: list[tuple[_Window, _Series]] | None = None


class _Series:
    """One key's hits in one window, oldest first from ``head``, with their running totals."""

    __slots__ = ("amount", "count", "cutoff", "head", "hits")

    def __init__(self) -> None:
        self.hits: list[_Hit] = []
        self.head = 0
        self.count = 0
        self.amount = 0
        self.cutoff = float("-inf")


class _Window:
    __slots__ = ("currency", "key", "seconds", "series", "spec")

    def __init__(self, spec: Window) -> None:
        self.spec = spec
        self.key, self.seconds, self.currency = spec.key, spec.seconds, spec.currency
        # Least recently added-to first, so idle keys are swept from the front.
        self.series: OrderedDict[str, _Series] = OrderedDict()

    def _amount(self, hit: _Hit) -> int:
        return hit.amount if hit.currency == self.currency else 0

    def expire(self, s: _Series, now: float) -> None:
        cutoff = now - self.seconds
        if cutoff <= s.cutoff:
            return
        s.cutoff = cutoff
        hits, i, n = s.hits, s.head, len(s.hits)
        while i < n and hits[i].ts <= cutoff:
            s.count -= hits[i].counted
            s.amount -= self._amount(hits[i])
            i += 1
        if i * 2 >= n:
            del hits[:i]
            i = 0
        s.head = i

    def add(self, key: str, hit: _Hit, now: float) -> _Series | None:
        if hit.ts <= now - self.seconds:
            return None
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = _Series()
        else:
            self.series.move_to_end(key)
        self.expire(s, now)
        if hit.ts <= s.cutoff:  # the clock went back
            return None
        hits = s.hits
        i = len(hits)
        while i > s.head and hits[i - 1].ts > hit.ts:  # a late row from another node
            i -= 1
        hits.insert(i, hit)
        s.count += hit.counted
        s.amount += self._amount(hit)
        return s

    def settle(self, s: _Series, hit: _Hit, counted: int, amount: int) -> None:
        if hit.ts > s.cutoff:  # still inside: expiry has not subtracted it yet
            s.count += counted - hit.counted
            if hit.currency == self.currency:
                s.amount += amount - hit.amount

    def totals(self, key: str, now: float) -> tuple[int, int]:
        s = self.series.get(key)
        if s is None:
            return 0, 0
        self.expire(s, now)
        return s.count, s.amount

    def sweep(self, now: float) -> None:
        while self.series:
            key = next(iter(self.series))
            s = self.series[key]
            self.expire(s, now)
            if s.head < len(s.hits):
                return
            del self.series[key]


class _Provisional(NamedTuple):
    hit: _Hit
    kind: str
    pan_token: str | None
    terminal_id: str
    merchant_id: str


class VelocityStore:
    """Velocity counters for the risk rules, fed by this node's admissions and the journal.

    ``clock`` returns seconds since the epoch (tests inject one); journal rows count from their
    ``created_at``, provisional admissions from when they were admitted.
    """

    def __init__(self, journal: Journal | None = None, *,
                 clock: Callable[[], float] = time.time, poll_interval_s: float = 0.2,
                 dedup_s: float = 120.0, hole_s: float = 10.0, batch: int = 5000) -> None:
        self.journal = journal
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.dedup_s, self.hole_s, self.batch = dedup_s, hole_s, batch
        self._windows: dict[Window, _Window] = {}
        self._by_kind: dict[str, list[_Window]] = {}
        #: request key -> (when seen, its hit; None when risk declined it)
        self._seen: OrderedDict[str, tuple[float, _Hit | None]] = OrderedDict()
        #: request key -> admitted here, its row not seen yet
        self._provisional: OrderedDict[str, _Provisional] = OrderedDict()
        #: journal id -> (when seen, hit) of rows still PENDING
        self._pending: OrderedDict[int, tuple[float, _Hit]] = OrderedDict()
        #: journal ids skipped by rows that committed first (another node's open transaction)
        self._holes: dict[int, float] = {}
        self._last_id = 0
        self._reload = False
        self._task: asyncio.Task[None] | None = None

    # -- what the rules need -------------------------------------------------------------------

    def use(self, windows: Iterable[Window]) -> None:
        """Counts these windows from now on; a new one is filled from the journal by the next
        poll (until then it counts what arrives)."""
        wanted = set(windows)
        added = wanted - self._windows.keys()
        self._windows = {spec: self._windows.get(spec) or _Window(spec) for spec in wanted}
        self._by_kind = {}
        for window in self._windows.values():
            for kind in window.spec.kinds:
                self._by_kind.setdefault(kind, []).append(window)
        if added and self.journal is not None:
            self._reload = True

    def totals(self, window: Window, key: str) -> tuple[int, int]:
        """(count, amount) in ``window`` for a card token, terminal id or merchant id, now."""
        counter = self._windows.get(window)
        return (0, 0) if counter is None else counter.totals(key, self.clock())

    def check(self, rules: Sequence[VelocityRule], ctx: TxnContext) -> list[Breach]:
        """The rules ``ctx`` would break if let through (no I/O; microseconds)."""
        now = self.clock()
        seen = self._seen.get(request_key(ctx.terminal.terminal_id, ctx.stan,
                                          ctx.local_date_time))
        own = seen[1] if seen is not None else None  # its row already counted (a race, a retry)
        out: list[Breach] = []
        for rule in rules:
            if ctx.kind not in rule.kinds:
                continue
            key = _key_of(rule.key, ctx.pan_token, ctx.terminal.terminal_id,
                          ctx.terminal.merchant_id)
            window = self._windows.get(rule.counter)
            if not key or window is None:
                continue
            count, amount = window.totals(key, now)
            if own is None or not own.counted or own.ts <= now - window.seconds:
                count += 1
                if ctx.currency == rule.currency:
                    amount += ctx.amount_minor
            if rule.max_count is not None and count > rule.max_count:
                out.append(Breach(rule, "count", count, rule.max_count))
            elif (rule.max_amount_minor is not None and ctx.currency == rule.currency
                  and amount > rule.max_amount_minor):
                out.append(Breach(rule, "amount", amount, rule.max_amount_minor))
        return out

    # -- this node's decisions -----------------------------------------------------------------

    def admit(self, ctx: TxnContext) -> None:
        """Counts a request the risk step let through, until its journal row takes over."""
        key = request_key(ctx.terminal.terminal_id, ctx.stan, ctx.local_date_time)
        if key in self._seen:
            return
        now = self.clock()
        p = _Provisional(_Hit(now, 1, ctx.amount_minor, ctx.currency), ctx.kind,
                         ctx.pan_token, ctx.terminal.terminal_id, ctx.terminal.merchant_id)
        self._place(p, now)
        self._seen[key] = (now, p.hit)
        self._provisional[key] = p

    def reject(self, ctx: TxnContext) -> None:
        """A request the risk step declined: it does not count, even if its row was seen."""
        key = request_key(ctx.terminal.terminal_id, ctx.stan, ctx.local_date_time)
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = (self.clock(), None)
        elif seen[1] is not None:
            _settle(seen[1], 0, 0)

    @property
    def in_flight(self) -> int:
        """Requests admitted here whose journal rows the poller has not seen yet."""
        return len(self._provisional)

    @property
    def held(self) -> int:
        """Entries the windows hold (memory), expired ones not yet swept included."""
        return sum(len(s.hits) - s.head for w in self._windows.values()
                   for s in w.series.values())

    # -- the journal ---------------------------------------------------------------------------

    def apply_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Counts journal rows (new, or PENDING ones read again); no I/O."""
        now = self.clock()
        for row in rows:
            pending = self._pending.get(row["id"])
            if pending is not None:
                if not _in_flight(row):
                    del self._pending[row["id"]]
                    _settle_row(pending[1], row)
                continue
            key = request_key(row["terminal_id"], row["stan"], row["local_date_time"])
            seen = self._seen.get(key)
            if seen is not None:
                self._provisional.pop(key, None)
                hit = seen[1]
            elif row["type"] not in self._by_kind:
                continue
            elif row.get("risk_decision") == "decline":
                self._seen[key] = (now, None)
                continue
            else:
                hit = _Hit(_epoch(row["created_at"]), 1, row["amount_minor"], row["currency"])
                self._place(_Provisional(hit, row["type"], row["pan_token"], row["terminal_id"],
                                         row["merchant_id"]), now)
                self._seen[key] = (now, hit)
            if hit is None or hit.series is None:
                continue
            if _in_flight(row):
                self._pending[row["id"]] = (now, hit)
            else:
                _settle_row(hit, row)

    async def start(self) -> None:
        """Loads the longest window's rows, then polls the journal in the background."""
        await self.load()
        self._task = asyncio.create_task(self._run(), name="risk-velocity-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def load(self) -> None:
        """Rebuilds every window from the journal rows of the longest window; admissions still
        in flight are kept."""
        assert self.journal is not None
        self._reload = False
        horizon = max((w.seconds for w in self._windows), default=0)
        since = self.clock() - horizon
        batch = self.batch
        rows, top = await self.journal.read(lambda conn: _recent_rows(conn, since, batch))
        self._rebuild(rows, top)

    async def poll_once(self) -> int:
        """Reads rows above the last id seen, and rows still PENDING or skipped; returns how many
        new rows it read."""
        assert self.journal is not None
        if self._reload:
            await self.load()
            return 0
        after, again, batch = self._last_id, sorted(self._pending.keys() | self._holes.keys()), \
            self.batch
        new, old = await self.journal.read(lambda conn: _rows_after(conn, after, again, batch))
        now = self.clock()
        self._note_ids([r["id"] for r in new], now)
        for row in old:
            self._holes.pop(row["id"], None)
        self.apply_rows(old)
        self.apply_rows(new)
        self.sweep()
        return len(new)

    async def _run(self) -> None:
        while True:
            try:
                while await self.poll_once() >= self.batch:
                    pass
            except Exception as exc:  # a database blip: the next poll catches up
                log.warning("risk velocity poll failed (%s: %s); retrying",
                            type(exc).__name__, exc)
            await asyncio.sleep(self.poll_interval_s)

    # -- internals -----------------------------------------------------------------------------

    def _place(self, p: _Provisional, now: float) -> None:
        refs: list[tuple[_Window, _Series]] = []
        for window in self._by_kind.get(p.kind, ()):
            key = _key_of(window.key, p.pan_token, p.terminal_id, p.merchant_id)
            if key:
                s = window.add(key, p.hit, now)
                if s is not None:
                    refs.append((window, s))
        p.hit.series = refs

    def _rebuild(self, rows: list[Mapping[str, Any]], top: int) -> None:
        provisional = self._provisional
        for window in self._windows.values():
            window.series = OrderedDict()
        # Keys risk declined here stay uncounted even if their rows still read PENDING.
        self._seen = OrderedDict((key, seen) for key, seen in self._seen.items()
                                 if seen[1] is None)
        self._provisional, self._pending, self._holes = OrderedDict(), OrderedDict(), {}
        self.apply_rows(rows)
        now = self.clock()
        present = {r["id"] for r in rows}
        low = max(min(present, default=top), top - _MAX_GAP)
        self._holes = {i: now for i in range(low + 1, top) if i not in present}
        self._last_id = max(self._last_id, top)
        for key, p in provisional.items():
            if key not in self._seen:
                fresh = p._replace(hit=_Hit(p.hit.ts, p.hit.counted, p.hit.amount,
                                            p.hit.currency))
                self._place(fresh, now)
                self._seen[key] = (now, fresh.hit)
                self._provisional[key] = fresh

    def _note_ids(self, ids: list[int], now: float) -> None:
        previous = self._last_id
        for i in ids:  # ascending
            for missing in range(max(previous + 1, i - _MAX_GAP), i):
                self._holes[missing] = now
            previous = i
        self._last_id = max(self._last_id, previous)

    def sweep(self) -> None:
        """Drops idle keys and expired bookkeeping (each poll does)."""
        now = self.clock()
        for window in self._windows.values():
            window.sweep(now)
        horizon = now - self.dedup_s
        while self._seen and next(iter(self._seen.values()))[0] <= horizon:
            self._seen.popitem(last=False)
        # An admission whose row never came was not processed, or replayed an older request's
        # outcome (the step ran before idempotency): it stops counting.
        while self._provisional and next(iter(self._provisional.values())).hit.ts <= horizon:
            _settle(self._provisional.popitem(last=False)[1].hit, 0, 0)
        # A row PENDING this long keeps counting as it stands.
        while self._pending and next(iter(self._pending.values()))[0] <= horizon:
            self._pending.popitem(last=False)[1][1].series = None
        for i in [i for i, when in self._holes.items() if when <= now - self.hole_s]:
            del self._holes[i]


def _key_of(kind: str, pan_token: str | None, terminal_id: str, merchant_id: str) -> str | None:
    if kind == "card":
        return pan_token
    return terminal_id if kind == "terminal" else merchant_id


def _in_flight(row: Mapping[str, Any]) -> bool:
    return bool(row["status"] == "PENDING" and row.get("risk_decision") != "decline")


def _settle_row(hit: _Hit, row: Mapping[str, Any]) -> None:
    if row.get("risk_decision") == "decline":
        _settle(hit, 0, 0)
    else:
        _settle(hit, hit.counted, hit.amount if row["status"] in AMOUNT_STATUSES else 0)


def _settle(hit: _Hit, counted: int, amount: int) -> None:
    if hit.series is None:
        return
    for window, s in hit.series:
        window.settle(s, hit, counted, amount)
    hit.counted, hit.amount, hit.series = counted, amount, None


def _epoch(created_at: dt.datetime) -> float:
    if created_at.tzinfo is None:  # SQLite hands back naive UTC
        created_at = created_at.replace(tzinfo=dt.UTC)
    return created_at.timestamp()


def _recent_rows(conn: Connection, since: float, page: int) -> tuple[list[Any], int]:
    """Rows created after ``since`` (epoch seconds), oldest first, and the highest id.

    Walks the primary key downwards (no index on created_at is needed) and stops at the first
    page with nothing inside the window.
    """
    rows: list[Any] = []
    top, before = 0, None
    while True:
        query = select(*_COLUMNS).order_by(_J.c.id.desc()).limit(page)
        if before is not None:
            query = query.where(_J.c.id < before)
        chunk = conn.execute(query).mappings().all()
        if not chunk:
            break
        top = top or chunk[0]["id"]
        fresh = [r for r in chunk if _epoch(r["created_at"]) > since]
        rows.extend(fresh)
        if not fresh or len(chunk) < page:
            break
        before = chunk[-1]["id"]
    rows.reverse()
    return rows, top


def _rows_after(conn: Connection, after: int, again: list[int],
                limit: int) -> tuple[list[Any], list[Any]]:
    new = conn.execute(select(*_COLUMNS).where(_J.c.id > after).order_by(_J.c.id)
                       .limit(limit)).mappings().all()
    old: list[Any] = []
    for start in range(0, len(again), _IN_CHUNK):
        chunk = again[start:start + _IN_CHUNK]
        old.extend(conn.execute(select(*_COLUMNS).where(_J.c.id.in_(chunk))).mappings().all())
    return list(new), old
