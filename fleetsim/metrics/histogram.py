"""A log-linear (HDR-style) histogram of non-negative integers, e.g. latencies in microseconds.

Layout: values below 256 get a bucket each; above that, every power of two is split into
128 equal buckets, so a bucket is never wider than 1/128 of its lower bound and the midpoint
reported for it is within 1/256 (0.4%) of any value in it. The layout is fixed, so two
histograms merge exactly by adding counts, whichever process recorded them.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

SUB_BITS = 7
LAYOUT = f"log-linear-{SUB_BITS}"
RELATIVE_PRECISION = 1 / (1 << (SUB_BITS + 1))  # half a bucket, relative to its lower bound
_SUB = 1 << SUB_BITS
_LINEAR_LIMIT = _SUB << 1  # values below this are stored exactly


def bucket_index(value: int) -> int:
    magnitude = value.bit_length() - SUB_BITS - 1
    if magnitude <= 0:
        return value
    return (magnitude << SUB_BITS) + (value >> magnitude)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The lowest value of a bucket and its width."""
    magnitude = max(0, (index >> SUB_BITS) - 1)
    return (index - (magnitude << SUB_BITS)) << magnitude, 1 << magnitude


def _representative(index: int) -> float:
    low, width = bucket_bounds(index)
    return low + (width - 1) / 2


class Histogram:
    __slots__ = ("_buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: float, times: int = 1) -> None:
        v = int(value) if value > 0 else 0
        index = v if v < _LINEAR_LIMIT else bucket_index(v)
        self._buckets[index] = self._buckets.get(index, 0) + times
        if self.count == 0:
            self.min = self.max = v
        elif v < self.min:
            self.min = v
        elif v > self.max:
            self.max = v
        self.count += times
        self.total += v * times

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile (p in 0..100), within RELATIVE_PRECISION of the exact one."""
        if not self.count:
            return 0.0
        if p <= 0:
            return float(self.min)
        if p >= 100:
            return float(self.max)
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                return min(max(_representative(index), self.min), self.max)
        return float(self.max)

    def cumulative(self, bounds: Sequence[float]) -> list[int]:
        """How many samples are at most each of `bounds` (ascending), as Prometheus' `le`
        buckets count them: a bucket of this histogram counts towards the first bound its
        highest value does not exceed, so each count is exact at bucket boundaries and within
        one bucket (RELATIVE_PRECISION) of the exact one elsewhere."""
        counts = [0] * (len(bounds) + 1)  # the last: above every bound
        for index, n in self._buckets.items():
            low, width = bucket_bounds(index)
            counts[bisect_left(bounds, low + width - 1)] += n
        total, cumulative = 0, []
        for n in counts[:-1]:
            total += n
            cumulative.append(total)
        return cumulative

    def merge(self, other: Histogram) -> Histogram:
        """Add `other`'s samples into this histogram (exact); returns self."""
        if not other.count:
            return self
        for index, n in other._buckets.items():
            self._buckets[index] = self._buckets.get(index, 0) + n
        if self.count:
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        else:
            self.min, self.max = other.min, other.max
        self.count += other.count
        self.total += other.total
        return self

    def copy(self) -> Histogram:
        return Histogram().merge(self)

    def since(self, earlier: Histogram) -> Histogram:
        """Samples recorded after `earlier` (a copy of this histogram taken before): min and max
        are then only known to bucket precision."""
        delta = Histogram()
        for index, n in self._buckets.items():
            diff = n - earlier._buckets.get(index, 0)
            if diff > 0:
                delta._buckets[index] = diff
                delta.count += diff
        if delta.count:
            delta.total = self.total - earlier.total
            low = min(delta._buckets)
            high, width = bucket_bounds(max(delta._buckets))
            delta.min = max(bucket_bounds(low)[0], self.min)
            delta.max = min(high + width - 1, self.max)
        return delta

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": LAYOUT,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "sum": self.total,
            "buckets": [[i, self._buckets[i]] for i in sorted(self._buckets)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        if data.get("layout") != LAYOUT:
            raise ValueError(f"histogram layout {data.get('layout')!r} is not {LAYOUT!r}")
        h = cls()
        h._buckets = {int(i): int(n) for i, n in data["buckets"]}
        h.count = int(data["count"])
        h.total = int(data["sum"])
        h.min = int(data["min"])
        h.max = int(data["max"])
        if sum(h._buckets.values()) != h.count:
            raise ValueError("histogram bucket counts do not add up to its count")
        return h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Histogram) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f"Histogram(count={self.count}, min={self.min}, p50={self.percentile(50):.0f}, "
                f"p99={self.percentile(99):.0f}, max={self.max})")
