"""The registry's in-process TtlCache: expiry, weight-bounded LRU eviction, discard."""

from __future__ import annotations

import pytest

from services.registry.cache import TtlCache


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_cache(
    ttl: float = 10.0, max_weight: int = 100, clock: FakeClock | None = None
) -> TtlCache[str, str]:
    return TtlCache(ttl, max_weight, weigh=len, clock=clock or FakeClock())


def test_missing_key_is_none() -> None:
    """A key never put is a miss."""
    assert make_cache().get("absent") is None


def test_put_value_is_returned_before_expiry() -> None:
    """A value put is returned until its ttl has passed."""
    clock = FakeClock()
    cache = make_cache(ttl=10, clock=clock)
    cache.put("k", "value")
    assert cache.get("k") == "value"
    clock.advance(9.999)
    assert cache.get("k") == "value"


def test_value_expires_after_ttl() -> None:
    """Once the ttl has passed the value is a miss and is dropped from the cache."""
    clock = FakeClock()
    cache = make_cache(ttl=10, clock=clock)
    cache.put("k", "value")
    clock.advance(10.001)
    assert cache.get("k") is None
    assert len(cache) == 0


def test_reading_does_not_extend_the_ttl() -> None:
    """A hit does not push back the entry's expiry."""
    clock = FakeClock()
    cache = make_cache(ttl=10, clock=clock)
    cache.put("k", "value")
    clock.advance(6)
    assert cache.get("k") == "value"
    clock.advance(6)
    assert cache.get("k") is None


def test_putting_again_restarts_the_ttl_and_replaces_the_value() -> None:
    """Re-putting a key stores the new value with a fresh expiry."""
    clock = FakeClock()
    cache = make_cache(ttl=10, clock=clock)
    cache.put("k", "old")
    clock.advance(8)
    cache.put("k", "new")
    clock.advance(8)
    assert cache.get("k") == "new"
    assert len(cache) == 1


def test_expired_entry_frees_its_weight() -> None:
    """After an expired entry is read, its weight is available to new entries."""
    clock = FakeClock()
    cache = make_cache(ttl=10, max_weight=5, clock=clock)
    cache.put("a", "aaaaa")
    clock.advance(11)
    assert cache.get("a") is None
    cache.put("b", "bbbbb")
    assert cache.get("b") == "bbbbb"


def test_least_recently_put_is_evicted_when_over_weight() -> None:
    """Exceeding max_weight evicts the oldest entries first."""
    cache = make_cache(max_weight=3)
    for key in ("a", "b", "c", "d"):
        cache.put(key, "x")
    assert cache.get("a") is None
    assert [cache.get(k) for k in ("b", "c", "d")] == ["x", "x", "x"]
    assert len(cache) == 3


def test_reading_an_entry_protects_it_from_eviction() -> None:
    """A hit makes the entry most recently used, so an older unread entry goes first."""
    cache = make_cache(max_weight=3)
    for key in ("a", "b", "c"):
        cache.put(key, "x")
    assert cache.get("a") == "x"
    cache.put("d", "x")
    assert cache.get("b") is None
    assert cache.get("a") == "x"
    assert cache.get("c") == "x"
    assert cache.get("d") == "x"


def test_eviction_is_by_weight_not_count() -> None:
    """A heavy entry evicts as many older entries as needed to fit."""
    cache = make_cache(max_weight=10)
    cache.put("a", "aaa")
    cache.put("b", "bbb")
    cache.put("c", "ccc")
    cache.put("d", "dddddddd")
    assert cache.get("a") is None
    assert cache.get("b") is None
    assert cache.get("c") is None
    assert cache.get("d") == "dddddddd"
    assert len(cache) == 1


def test_replacing_a_value_reweighs_it() -> None:
    """Re-putting a key counts only the new value's weight."""
    cache = make_cache(max_weight=10)
    cache.put("a", "aaaaaaaa")
    cache.put("a", "a")
    cache.put("b", "bbbbbbbbb")
    assert cache.get("a") == "a"
    assert cache.get("b") == "bbbbbbbbb"


def test_value_of_exactly_max_weight_is_cached() -> None:
    """A value weighing exactly max_weight fits."""
    cache = make_cache(max_weight=4)
    cache.put("k", "abcd")
    assert cache.get("k") == "abcd"


def test_oversize_value_is_not_cached_and_evicts_nothing() -> None:
    """A value heavier than max_weight is not stored and leaves other entries alone."""
    cache = make_cache(max_weight=4)
    cache.put("small", "ab")
    cache.put("big", "abcde")
    assert cache.get("big") is None
    assert cache.get("small") == "ab"
    assert len(cache) == 1


@pytest.mark.parametrize("ttl", [0, 0.0, -1, -0.5])
def test_non_positive_ttl_caches_nothing(ttl: float) -> None:
    """With ttl <= 0 the cache is disabled: every put is a no-op."""
    cache = make_cache(ttl=ttl)
    cache.put("k", "value")
    assert cache.get("k") is None
    assert len(cache) == 0


def test_discard_removes_an_entry_and_its_weight() -> None:
    """discard drops the entry, and its weight no longer counts towards eviction."""
    cache = make_cache(max_weight=5)
    cache.put("a", "aaaaa")
    cache.discard("a")
    assert cache.get("a") is None
    assert len(cache) == 0
    cache.put("b", "bbbbb")
    assert cache.get("b") == "bbbbb"


def test_discard_of_a_missing_key_is_harmless() -> None:
    """Discarding a key that is not cached changes nothing."""
    cache = make_cache()
    cache.put("a", "x")
    cache.discard("missing")
    assert cache.get("a") == "x"
    assert len(cache) == 1


def test_default_weight_counts_entries() -> None:
    """Without a weigh function each entry weighs 1, so max_weight bounds the entry count."""
    cache: TtlCache[int, object] = TtlCache(60, max_weight=2, clock=FakeClock())
    for key in range(5):
        cache.put(key, object())
    assert len(cache) == 2
    assert cache.get(3) is not None
    assert cache.get(4) is not None
