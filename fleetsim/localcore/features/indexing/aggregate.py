"""Aggregations over the values of one field of the things a query matched (pure):
GetStatistics, GetCardinality, GetPercentiles ("Querying for aggregate data", AWS IoT developer
guide). A String field gives only a count; a Boolean field counts true as 1 and false as 0;
values of another type than the field's are ignored ("Manage thing indexing": "If there is a
type inconsistency ... the Fleet Indexing service ignores the inconsistent value for
aggregation queries")."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from fleetsim.localcore.features.indexing.evaluate import Value, number, text

# GetPercentiles: "If no percentiles are specified, the default is 1, 5, 25, 50, 75, 95, 99"
# ("Querying for aggregate data").
DEFAULT_PERCENTS = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)


def typed(values: Iterable[Value], field_type: str) -> list[Any]:
    """The values that have the field's type (numbers as floats, booleans as 1.0/0.0)."""
    out: list[Any] = []
    for v in values:
        if field_type == "Number":
            n = number(v) if not isinstance(v, str) else None
            if n is not None:
                out.append(n)
        elif field_type == "Boolean":
            if isinstance(v, bool):
                out.append(1.0 if v else 0.0)
        elif isinstance(v, str):
            out.append(v)
    return out


def statistics(values: Sequence[Any], field_type: str) -> dict[str, Any]:
    if field_type == "String" or not values:
        return {"count": len(values)}
    n = len(values)
    total = math.fsum(values)
    squares = math.fsum(v * v for v in values)
    mean = total / n
    variance = max(squares / n - mean * mean, 0.0)
    return {"count": n, "average": mean, "sum": total, "minimum": min(values),
            "maximum": max(values), "sumOfSquares": squares, "variance": variance,
            "stdDeviation": math.sqrt(variance)}


def cardinality(values: Iterable[Value]) -> int:
    """The number of distinct values (case-insensitive, as search is)."""
    return len({text(v) for v in values})


def percentiles(values: Sequence[float], percents: Sequence[float] | None
                ) -> list[dict[str, float]]:
    """Each percent's value, interpolated linearly between the closest ranks."""
    ordered = sorted(values)
    out = []
    for p in percents or DEFAULT_PERCENTS:
        if not ordered:
            break
        rank = (len(ordered) - 1) * p / 100.0
        lo, hi = math.floor(rank), math.ceil(rank)
        value = ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)
        out.append({"percent": p, "value": value})
    return out
