from __future__ import annotations

import json
import math
import random

import pytest

from fleetsim.metrics.histogram import (
    RELATIVE_PRECISION,
    Histogram,
    bucket_bounds,
    bucket_index,
)


def exact_percentile(sorted_values: list[int], p: float) -> int:
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@pytest.mark.parametrize("value", [0, 1, 255, 256, 257, 511, 512, 1000, 123_456, 2**40 + 7])
def test_every_value_falls_inside_its_bucket(value: int) -> None:
    low, width = bucket_bounds(bucket_index(value))
    assert low <= value < low + width
    assert width == 1 or (width - 1) / 2 <= low * RELATIVE_PRECISION


def test_bucket_indexes_are_contiguous_and_increasing() -> None:
    indexes = [bucket_index(v) for v in range(0, 70_000)]
    assert indexes == sorted(indexes)
    assert set(indexes) == set(range(indexes[-1] + 1))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_precision_of_exact(seed: int) -> None:
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(8, 1.5)) for _ in range(20_000)]  # ~3 ms, long tail
    h = Histogram()
    for v in values:
        h.record(v)
    values.sort()
    for p in (1, 50, 90, 99, 99.9):
        exact = exact_percentile(values, p)
        assert h.percentile(p) == pytest.approx(exact, rel=RELATIVE_PRECISION, abs=0.5)
    assert (h.count, h.min, h.max) == (len(values), values[0], values[-1])
    assert h.mean == pytest.approx(sum(values) / len(values))
    assert h.percentile(100) == values[-1]
    assert h.percentile(0) == values[0]


def test_small_values_are_exact() -> None:
    h = Histogram()
    for v in [3, 1, 2, 200, 7]:
        h.record(v)
    assert [h.percentile(p) for p in (20, 40, 60, 80, 100)] == [1, 2, 3, 7, 200]


def test_negative_and_float_values_are_clamped_and_truncated() -> None:
    h = Histogram()
    h.record(-5)
    h.record(9.9)
    assert (h.min, h.max, h.count) == (0, 9, 2)


def test_empty_histogram() -> None:
    h = Histogram()
    assert (h.count, h.mean, h.percentile(99)) == (0, 0.0, 0.0)
    assert Histogram.from_dict(h.to_dict()) == h


def test_merge_is_exact() -> None:
    rng = random.Random(7)
    a_vals = [rng.randrange(1, 10**7) for _ in range(5000)]
    b_vals = [rng.randrange(1, 10**5) for _ in range(3000)]
    a, b, together = Histogram(), Histogram(), Histogram()
    for v in a_vals:
        a.record(v)
        together.record(v)
    for v in b_vals:
        b.record(v)
        together.record(v)
    assert a.copy().merge(b) == together
    assert b.copy().merge(a) == together
    assert Histogram().merge(a) == a


def test_round_trip_through_json_is_exact_and_sparse() -> None:
    h = Histogram()
    for v in (5, 5, 5, 1_000_000, 1_000_001):
        h.record(v)
    data = json.loads(json.dumps(h.to_dict()))
    assert len(data["buckets"]) == 2
    back = Histogram.from_dict(data)
    assert back == h
    assert back.percentile(99) == h.percentile(99)


def test_from_dict_rejects_other_layouts_and_inconsistent_counts() -> None:
    data = Histogram().to_dict()
    with pytest.raises(ValueError, match="layout"):
        Histogram.from_dict({**data, "layout": "log-linear-5"})
    with pytest.raises(ValueError, match="add up"):
        Histogram.from_dict({**data, "count": 3})


def test_since_holds_only_later_samples() -> None:
    h = Histogram()
    for v in range(100):
        h.record(v)
    before = h.copy()
    for v in (50_000, 60_000, 70_000):
        h.record(v)
    delta = h.since(before)
    assert delta.count == 3
    assert delta.total == 180_000
    assert delta.percentile(50) == pytest.approx(60_000, rel=RELATIVE_PRECISION)
    assert delta.max == 70_000
    assert h.since(h.copy()).count == 0
