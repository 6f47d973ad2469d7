from __future__ import annotations

from cardswitch.cardcache import CardCache


def test_cache_answers_by_pan_and_holds_no_pan_bytes() -> None:
    cache: CardCache[str] = CardCache()
    cache.put("4761739001010010", "token-a")
    assert cache.get("4761739001010010") == "token-a"
    assert cache.get("4761739001010028") is None
    assert all(b"4761739001010010" not in k for k in cache._entries)


def test_two_processes_key_the_same_pan_differently() -> None:
    a: CardCache[int] = CardCache()
    b: CardCache[int] = CardCache()
    a.put("4761739001010010", 1)
    b.put("4761739001010010", 1)
    assert set(a._entries) != set(b._entries)


def test_a_full_cache_starts_over_instead_of_growing() -> None:
    cache: CardCache[int] = CardCache(max_entries=3)
    for i, pan in enumerate(["4761739001010010", "4761739001010028", "4761739001010036",
                             "4761739001010044"]):
        cache.put(pan, i)
    assert len(cache) == 1 and cache.get("4761739001010044") == 3
