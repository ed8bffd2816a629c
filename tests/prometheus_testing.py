"""Scraping a `--metrics-port` endpoint in tests: samples by name and labels."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
HISTOGRAM = "fleetsim_operation_duration_seconds"


def metrics_url(proc: subprocess.Popen[Any]) -> str:
    """The URL `fleetsim run --metrics-port` printed (it reads the run's stdout up to it)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        text = line.decode() if isinstance(line, bytes) else line
        if text.startswith("metrics: "):
            return text.split()[1]
    raise AssertionError("the run ended without printing its metrics URL")


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and want <= got)


def scrape_until(url: str, ready: Callable[[Samples], bool], what: str,
                 timeout: float = 60) -> Samples:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = scrape(url)
        if ready(samples):
            return samples
        time.sleep(0.2)
    raise AssertionError(f"no scrape showed {what} within {timeout} s")


def assert_histograms_consistent(samples: Samples) -> int:
    """Every series of the latency histogram: buckets never decrease, `_count` is the +Inf
    bucket. Returns how many series there are."""
    buckets: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = defaultdict(list)
    for (n, labels), v in samples.items():
        if n == HISTOGRAM + "_bucket":
            le = dict(labels)["le"]
            buckets[frozenset(kv for kv in labels if kv[0] != "le")].append((float(le), v))
    for series, points in buckets.items():
        counts = [c for _, c in sorted(points)]
        assert counts == sorted(counts), series
        assert samples[(HISTOGRAM + "_count", series)] == dict(points)[float("inf")], series
    return len(buckets)
