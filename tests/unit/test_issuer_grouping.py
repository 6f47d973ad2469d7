"""Requests that queue while their key's group runs share the next call (issuer_sim.grouping).

Each test holds the first group inside its worker thread until the others have queued, so which
items go together is certain.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from issuer_sim.grouping import Groups


class Recorder:
    """``run`` for :class:`Groups`: upper-cases items, records each call, fails on "bad"."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.release = threading.Event()

    def __call__(self, key: str, items: list[str]) -> list[str | Exception]:
        self.calls.append((key, items))
        if len(self.calls) == 1:
            assert self.release.wait(10)
        if "crash" in items:
            raise RuntimeError("database gone")
        return [ValueError(f"item {i!r} refused") if i == "bad" else i.upper() for i in items]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=4)
    yield pool
    pool.shutdown(wait=True)


async def submit_all(groups: Groups[str, str], recorder: Recorder,
                     items: list[tuple[str, str]]) -> list[str | BaseException]:
    """Submits the first item, the rest once its group is running, then lets it finish."""
    first = asyncio.ensure_future(groups.submit(*items[0]))
    while not recorder.calls:
        await asyncio.sleep(0.001)
    rest = [asyncio.ensure_future(groups.submit(key, item)) for key, item in items[1:]]
    await asyncio.sleep(0.01)
    recorder.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_items_queued_while_a_group_runs_go_together_in_order(
        executor: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(executor, recorder, limit=64)
    results = asyncio.run(submit_all(groups, recorder, [("acct", c) for c in "abcd"]))
    assert results == ["A", "B", "C", "D"]
    assert recorder.calls == [("acct", ["a"]), ("acct", ["b", "c", "d"])]


def test_groups_hold_at_most_limit_items(executor: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(executor, recorder, limit=2)
    results = asyncio.run(submit_all(groups, recorder, [("acct", c) for c in "abcde"]))
    assert results == ["A", "B", "C", "D", "E"]
    assert [items for _, items in recorder.calls] == [["a"], ["b", "c"], ["d", "e"]]


def test_a_key_waits_only_for_its_own_groups(executor: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(executor, recorder, limit=64)

    async def run() -> list[str]:
        held = asyncio.ensure_future(groups.submit("one", "a"))
        while not recorder.calls:
            await asyncio.sleep(0.001)
        other = await asyncio.wait_for(groups.submit("two", "b"), 5)  # "one" is still running
        recorder.release.set()
        return [await held, other]

    assert asyncio.run(run()) == ["A", "B"]
    assert recorder.calls == [("one", ["a"]), ("two", ["b"])]


def test_an_exception_for_one_item_reaches_only_its_request(
        executor: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(executor, recorder, limit=64)
    results = asyncio.run(submit_all(groups, recorder, [("acct", c) for c in ("a", "b", "bad")]))
    assert results[:2] == ["A", "B"]
    assert isinstance(results[2], ValueError) and str(results[2]) == "item 'bad' refused"


def test_a_run_that_raises_fails_its_whole_group_and_no_other(
        executor: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(executor, recorder, limit=64)
    results = asyncio.run(submit_all(groups, recorder,
                                     [("acct", "a"), ("acct", "b"), ("acct", "crash")]))
    assert results[0] == "A"
    assert [str(r) for r in results[1:]] == ["database gone", "database gone"]


def test_cancelling_the_turn_holder_loses_no_one_elses_result(
        executor: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    groups: Groups[str, str] = Groups(executor, recorder, limit=64)

    async def run() -> list[str | BaseException]:
        holder = asyncio.ensure_future(groups.submit("acct", "a"))
        while not recorder.calls:
            await asyncio.sleep(0.001)
        others = [asyncio.ensure_future(groups.submit("acct", c)) for c in "bc"]
        await asyncio.sleep(0.01)
        holder.cancel()
        recorder.release.set()
        return await asyncio.gather(holder, *others, return_exceptions=True)

    holder, *others = asyncio.run(run())
    assert isinstance(holder, asyncio.CancelledError)
    assert others == ["B", "C"]
    assert [items for _, items in recorder.calls] == [["a"], ["b", "c"]]


def test_limit_below_one_is_refused(executor: ThreadPoolExecutor) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, not 0"):
        Groups(executor, Recorder(), limit=0)
