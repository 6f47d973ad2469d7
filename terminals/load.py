"""Load generation: open-loop at a target rate, or closed-loop as fast as N workers go.

Open loop sends request ``i`` at ``start + i / tps`` whatever happened to earlier ones, as real
terminals do, and measures each latency from that *scheduled* time, so a stalled server or a
busy event loop shows up in the percentiles instead of quietly lowering the rate (no coordinated
omission). In-flight requests are bounded by ``concurrency``; a request due while the bound is
reached is not sent and counts as ``skipped``. Closed loop runs ``concurrency`` workers that each
send, wait for the answer and send again, for benchmarks that want the ceiling.

What is sent is pluggable: a :data:`Send` is any callable taking the request number and
returning an awaitable that resolves to ``True`` (approved), ``False`` (declined) or an ISO 8583
response code (declines are then counted by code), and raises for a failed call.
:func:`purchase_sender` makes one that sends purchases through a :class:`~terminals.pos.Pos`;
a benchmark can pass a bare echo call instead.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import grpc
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cardswitch.responses import approved as code_approved
from cardswitch.v1 import acquiring_pb2, common_pb2
from terminals.pos import STAN_MAX, Card, Entry, Pos, card_input, local_date_time

Send = Callable[[int], Awaitable[bool | str]]
Mode = Literal["open", "closed"]
_STAN_BLOCK = 1000
_KSN_BLOCK = 1000


def percentile(sorted_samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``p`` % of samples <= it.

    >>> percentile([15, 20, 35, 40, 50], 30), percentile([15, 20, 35, 40, 50], 50)
    (20, 35)
    """
    if not 0 <= p <= 100:
        raise ValueError(f"p: must be 0 to 100, got {p}")
    n = len(sorted_samples)
    if n == 0:
        return 0.0
    thousandths = round(p * 1000)  # integer arithmetic: 95 % of 20 is rank 19, not 19.000001
    rank = max(1, -(-thousandths * n // 100_000))
    return sorted_samples[rank - 1]


@dataclass(frozen=True)
class LoadReport:
    mode: str
    target_tps: float
    concurrency: int
    elapsed_s: float
    planned: int
    sent: int
    skipped: int
    answered: int
    approved: int
    declined: int
    errors: dict[str, int] = field(default_factory=dict)
    #: Declines by response code, when the :data:`Send` answers with codes.
    declines: dict[str, int] = field(default_factory=dict)
    achieved_tps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def summary(self) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        declines = ", ".join(f"{k} {v}" for k, v in sorted(self.declines.items()))
        target = f"target {self.target_tps:g} TPS, " if self.mode == "open" else ""
        return (
            f"{self.mode} loop, {target}concurrency {self.concurrency}, {self.elapsed_s:.1f} s: "
            f"sent {self.sent} (skipped {self.skipped}), answered {self.answered} "
            f"(approved {self.approved}, declined {self.declined}"
            f"{': ' + declines if declines else ''}), errors: {errors}; "
            f"achieved {self.achieved_tps:.1f} TPS; latency ms p50 {self.p50_ms:.2f} "
            f"p95 {self.p95_ms:.2f} p99 {self.p99_ms:.2f} max {self.max_ms:.2f}"
        )


class _Tally:
    """Counters and latency samples (seconds) of one run, updated from the event loop only."""

    __slots__ = ("approved", "declined", "declines", "errors", "in_flight", "latencies", "send",
                 "sent", "skipped")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.sent = self.skipped = self.approved = self.declined = self.in_flight = 0
        self.errors: dict[str, int] = {}
        self.declines: dict[str, int] = {}
        self.latencies: list[float] = []

    async def one(self, i: int, scheduled: float) -> None:
        """Sends request ``i``; the caller has already counted it in ``in_flight``."""
        try:
            answer = await self.send(i)
        except Exception as exc:  # every failed call is counted, by gRPC code where there is one
            name = _error_name(exc)
            self.errors[name] = self.errors.get(name, 0) + 1
        else:
            self.latencies.append(time.perf_counter() - scheduled)
            if isinstance(answer, str):
                if code_approved(answer):
                    self.approved += 1
                else:
                    self.declined += 1
                    self.declines[answer] = self.declines.get(answer, 0) + 1
            elif answer:
                self.approved += 1
            else:
                self.declined += 1
        finally:
            self.in_flight -= 1


def _error_name(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            status = code()
        except Exception:  # a half-built error object; its type name will do
            status = None
        if isinstance(status, grpc.StatusCode):
            return str(status.name)
    return type(exc).__name__


async def _open_loop(tally: _Tally, tps: float, duration_s: float, concurrency: int) -> int:
    loop = asyncio.get_running_loop()
    planned = max(1, round(tps * duration_s))
    interval = 1.0 / tps
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    i = 0
    while i < planned:
        due = min(planned, int((time.perf_counter() - start) * tps) + 1)
        while i < due:
            if tally.in_flight >= concurrency:
                tally.skipped += 1
            else:
                tally.in_flight += 1
                tally.sent += 1
                task = loop.create_task(tally.one(i, start + i * interval))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            i += 1
        if i < planned:
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
    if tasks:
        await asyncio.wait(set(tasks))
    return planned


async def _closed_loop(tally: _Tally, duration_s: float, concurrency: int) -> int:
    end = time.perf_counter() + duration_s
    numbers = itertools.count()

    async def worker() -> None:
        while time.perf_counter() < end:
            tally.in_flight += 1
            tally.sent += 1
            await tally.one(next(numbers), time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally.sent


async def _show_progress(
    tally: _Tally, duration_s: float, done: asyncio.Event, console: Console | None
) -> None:
    columns = (TextColumn("[bold]load"), BarColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stats]}"))
    with Progress(*columns, console=console or Console(stderr=True)) as bar:
        task = bar.add_task("load", total=duration_s, stats="")
        start = time.perf_counter()
        while True:
            answered = tally.approved + tally.declined
            stats = (f"{tally.sent} sent, {answered} answered ({tally.approved} approved), "
                     f"{sum(tally.errors.values())} errors, {tally.in_flight} in flight")
            elapsed = duration_s if done.is_set() else time.perf_counter() - start
            bar.update(task, completed=min(duration_s, elapsed), stats=stats)
            if done.is_set():
                return
            try:
                await asyncio.wait_for(done.wait(), 0.2)
            except TimeoutError:
                pass


async def run_load(
    target: Pos | Send,
    tps: float,
    duration_s: float,
    cards: Sequence[Card] = (),
    concurrency: int = 64,
    *,
    mode: Mode = "open",
    amount_minor: int = 10,
    currency: str = "USD",
    pin_every: int = 4,
    entry: Entry = "swipe",
    progress: bool = True,
    console: Console | None = None,
) -> LoadReport:
    """Runs a load and reports counts, achieved TPS and nearest-rank latency percentiles.

    ``target`` is a :class:`Pos` (purchases round-robin over ``cards``, see
    :func:`purchase_sender`) or any :data:`Send`. ``tps`` is ignored in closed-loop ``mode``.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s: must be positive, got {duration_s}")
    if concurrency < 1:
        raise ValueError(f"concurrency: must be at least 1, got {concurrency}")
    if mode == "open" and tps <= 0:
        raise ValueError(f"tps: must be positive for an open loop, got {tps}")
    send = (purchase_sender(target, cards, amount_minor=amount_minor, currency=currency,
                            pin_every=pin_every, entry=entry)
            if isinstance(target, Pos) else target)
    tally = _Tally(send)
    done = asyncio.Event()
    shown = (asyncio.create_task(_show_progress(tally, duration_s, done, console))
             if progress else None)
    start = time.perf_counter()
    try:
        if mode == "open":
            planned = await _open_loop(tally, tps, duration_s, concurrency)
        else:
            planned = await _closed_loop(tally, duration_s, concurrency)
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        if shown is not None:
            await shown
    return _report(tally, mode, tps, concurrency, elapsed, planned)


def _report(
    tally: _Tally, mode: str, tps: float, concurrency: int, elapsed: float, planned: int
) -> LoadReport:
    samples = sorted(tally.latencies)
    answered = tally.approved + tally.declined
    ms = [percentile(samples, p) * 1000.0 for p in (50, 95, 99, 100)]
    return LoadReport(
        mode=mode, target_tps=tps if mode == "open" else 0.0, concurrency=concurrency,
        elapsed_s=elapsed, planned=planned, sent=tally.sent, skipped=tally.skipped,
        answered=answered, approved=tally.approved, declined=tally.declined,
        errors=dict(tally.errors), declines=dict(tally.declines),
        achieved_tps=answered / elapsed if elapsed > 0 else 0.0,
        p50_ms=ms[0], p95_ms=ms[1], p99_ms=ms[2], max_ms=ms[3],
    )


class _PurchaseSender:
    """Purchases round-robin over cards; every ``pin_every``-th round of cards enters PINs."""

    __slots__ = ("_authorize", "_cards", "_ldt", "_ldt_second", "_mcc", "_merchant_id", "_money",
                 "_pin_every", "_pinpad", "_pos", "_stan_left", "_stan_next", "_terminal_id",
                 "_timeout")

    def __init__(self, pos: Pos, cards: Sequence[Card], amount_minor: int, currency: str,
                 pin_every: int, entry: Entry) -> None:
        if not cards:
            raise ValueError("cards: a purchase load needs at least one card")
        if pin_every < 0:
            raise ValueError(f"pin_every: must be 0 (never) or more, got {pin_every}")
        self._pos = pos
        self._cards = [(card, *card_input(card, entry)) for card in cards]
        self._money = common_pb2.Money(amount_minor=amount_minor, currency=currency)
        self._authorize = pos.stub.Authorize
        self._timeout = pos.timeout_s
        self._terminal_id, self._merchant_id, self._mcc = pos.terminal_id, pos.merchant_id, pos.mcc
        pad = pos.pinpad_if_provisioned() if pin_every else None
        # a file-backed pad would write its state on every PIN; lease KSNs a block at a time
        self._pinpad = pad.lease(_KSN_BLOCK) if pad is not None and pad.persistent else pad
        self._pin_every = pin_every
        self._stan_next = self._stan_left = 0
        self._ldt_second, self._ldt = -1, ""

    def _stan(self) -> str:
        if not self._stan_left:
            self._stan_next, self._stan_left = self._pos.stan.reserve(_STAN_BLOCK), _STAN_BLOCK
        stan = self._stan_next
        self._stan_next = stan % STAN_MAX + 1
        self._stan_left -= 1
        return f"{stan:06d}"

    def _local_date_time(self) -> str:
        now = int(time.time())
        if now != self._ldt_second:
            self._ldt_second, self._ldt = now, local_date_time(now)
        return self._ldt

    async def __call__(self, i: int) -> bool | str:
        card, source, entry_mode = self._cards[i % len(self._cards)]
        pin_block = None
        if self._pinpad is not None and (i // len(self._cards)) % self._pin_every == 0:
            pin_block = self._pinpad.encrypt_pin(card.pin, card.pan).to_proto()
        request = acquiring_pb2.AuthorizeRequest(
            key=acquiring_pb2.RequestKey(
                terminal_id=self._terminal_id, merchant_id=self._merchant_id, stan=self._stan(),
                local_date_time=self._local_date_time(),
            ),
            type=acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE, amount=self._money, card=source,
            entry_mode=entry_mode,  # type: ignore[arg-type]
            pin_block=pin_block, mcc=self._mcc,
        )
        response = await self._authorize(request, timeout=self._timeout)
        return str(response.result.response_code)


def purchase_sender(
    pos: Pos, cards: Sequence[Card], *, amount_minor: int = 10, currency: str = "USD",
    pin_every: int = 4, entry: Entry = "swipe",
) -> Send:
    """A :data:`Send` for purchases through ``pos``'s channel, light enough for the hot loop.

    Card inputs are built once; STANs are taken from the terminal's counter, and KSNs from a
    file-backed PIN pad, a thousand at a time; PINs go through ``pos``'s PIN pad when it has one
    (0 for ``pin_every`` means never).
    """
    return _PurchaseSender(pos, cards, amount_minor, currency, pin_every, entry)
