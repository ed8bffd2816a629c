"""Plot data from a snapshot's timeline and histograms: pure functions, no plotting library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetsim.metrics.histogram import Histogram, bucket_bounds
from fleetsim.metrics.recorder import ERRORS_SERIES

# (label, timeline series) of each per-second plot; what the recorder and observer count.
CONNECTS = (("connects", "mqtt.connect"),)
MESSAGES = (("sent", "mqtt.publish"), ("received", "messages.received"),
            ("received by devices", "messages.received.devices"))
ERRORS = (("errors", ERRORS_SERIES),)
# What wait_job records at the executions' own times, and what job agents finish.
JOBS = (("queued", "job.queued"), ("started", "job.started"), ("ended", "job.ended"),
        ("finished by agents", "jobs.execution"))


@dataclass(frozen=True)
class Series:
    name: str
    x: list[float]
    y: list[float]


def span(snapshot: dict[str, Any]) -> tuple[int, int] | None:
    """The first and last epoch second of the run: its steps and every timeline point."""
    seconds = [t for points in snapshot["timeline"].values() for t, _ in points]
    for s in snapshot["steps"]:
        seconds += [int(s["started_at"]), int(s["started_at"] + s["duration_s"])]
    return (min(seconds), max(seconds)) if seconds else None


def per_second(snapshot: dict[str, Any], wanted: Sequence[tuple[str, str]]) -> list[Series]:
    """One series per (label, timeline name) the run has, counts per second since the run's
    start, quiet seconds as zeros (so a rate falling to nothing shows)."""
    bounds = span(snapshot)
    out = []
    for label, name in wanted:
        points = snapshot["timeline"].get(name)
        if not points or bounds is None:
            continue
        first, last = bounds
        counts = dict((t, n) for t, n in points)
        seconds = range(min(first, points[0][0]), max(last, points[-1][0]) + 1)
        out.append(Series(label, [float(t - first) for t in seconds],
                          [float(counts.get(t, 0)) for t in seconds]))
    return out


def per_minute(snapshot: dict[str, Any], wanted: Sequence[tuple[str, str]]) -> list[Series]:
    """One series per (label, timeline name) the run has: counts per minute since the run's
    start (x = the minute, from 0), every minute up to the last one."""
    bounds = span(snapshot)
    found = [(label, snapshot["timeline"].get(name)) for label, name in wanted]
    found = [(label, points) for label, points in found if points]
    if bounds is None or not found:
        return []
    first = bounds[0]
    minutes = [(t - first) // 60 for _, points in found for t, _ in points]
    lo, hi = min(0, *minutes), max(minutes)
    out = []
    for label, points in found:
        counts = [0.0] * (hi - lo + 1)
        for t, n in points:
            counts[(t - first) // 60 - lo] += n
        out.append(Series(label, [float(m) for m in range(lo, hi + 1)], counts))
    return out


def cumulative(h: Histogram) -> Series | None:
    """The latency distribution of `h`: x = milliseconds (each bucket's upper value), y = the
    percentage of samples at or below it."""
    if not h.count:
        return None
    data = h.to_dict()
    seen = 0
    x: list[float] = []
    y: list[float] = []
    for index, n in data["buckets"]:
        low, width = bucket_bounds(index)
        seen += n
        x.append(min(max(low + width - 1, h.min), h.max) / 1000)
        y.append(round(seen * 100 / h.count, 3))
    return Series("", x, y)
