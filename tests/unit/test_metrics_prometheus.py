"""The recorder as Prometheus metric families: a recorder fed by hand, scraped as text."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fleetsim.metrics.histogram import Histogram, bucket_bounds, bucket_index
from fleetsim.metrics.prometheus import BUCKETS_S, RecorderCollector, metric_name
from fleetsim.metrics.recorder import Metrics

# Prometheus' data model: metric and label names.
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def scrape(metrics: Metrics) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Families by name: their samples as (sample name, labels, value)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecorderCollector(lambda: metrics))
    text = generate_latest(registry).decode()
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def value(families: dict[str, list[tuple[str, dict[str, str], float]]], sample: str,
          **labels: str) -> float:
    family = next(f for f in families.values() if any(s[0] == sample for s in f))
    return next(v for name, got, v in family if name == sample and got == labels)


def fed_by_hand() -> Metrics:
    m = Metrics()
    with m.step("01.connect"):
        for us in (900, 1500, 40_000):
            m.record("mqtt.connect", us)
        m.gauge("devices.connected", 3)
    with m.step("02.telemetry"):
        for us in (30, 60, 2_000_000):
            m.record("mqtt.publish", us)
        m.error("disconnected_by_server", "mqtt.publish")
        m.error("disconnected_by_server", "mqtt.publish")
        m.error("timeout", "mqtt.subscribe")
        m.gauge("devices.connected", -1)
        m.record("mqtt.reconnect", 5000)
    m.incr("messages.received", 7)
    m.incr("messages.received.devices", 2)
    m.incr("jobs.outcome.succeeded", 4)
    m.gauge("observers.connected", 1)
    m.check("at least 1 message", True)
    m.check("denied publish not delivered", False)
    return m


def test_the_run_in_prometheus_names_and_units() -> None:
    families = scrape(fed_by_hand())
    assert value(families, "fleetsim_devices_connected") == 2
    assert value(families, "fleetsim_connects_total") == 3
    assert value(families, "fleetsim_reconnects_total") == 1
    assert value(families, "fleetsim_publishes_sent_total") == 3
    assert value(families, "fleetsim_publishes_received_total", receiver="observer") == 7
    assert value(families, "fleetsim_publishes_received_total", receiver="devices") == 2
    assert value(families, "fleetsim_errors_total", kind="disconnected_by_server",
                 operation="mqtt.publish", step="02.telemetry") == 2
    assert value(families, "fleetsim_errors_total", kind="timeout",
                 operation="mqtt.subscribe", step="02.telemetry") == 1
    assert value(families, "fleetsim_checks_total", result="passed") == 1
    assert value(families, "fleetsim_checks_total", result="failed") == 1
    # every other counter and gauge of the recorder, under its own name
    assert value(families, "fleetsim_jobs_outcome_succeeded_total") == 4
    assert value(families, "fleetsim_observers_connected") == 1
    for name, samples in families.items():
        assert NAME.match(name) and name.startswith("fleetsim_"), name
        for _, labels, _ in samples:
            assert all(LABEL.match(k) for k in labels), labels


def test_latency_histograms_in_seconds_per_operation_and_step() -> None:
    families = scrape(fed_by_hand())
    hist = "fleetsim_operation_duration_seconds"
    labels = {"operation": "mqtt.publish", "step": "02.telemetry"}
    buckets = {s[1]["le"]: s[2] for s in families[hist]
               if s[0] == hist + "_bucket" and {**s[1], "le": ""} == {**labels, "le": ""}}
    assert value(families, hist + "_count", **labels) == 3 == buckets["+Inf"]
    assert abs(value(families, hist + "_sum", **labels) - 2.00009) < 1e-9
    assert buckets["0.0001"] == 2  # 30 and 60 µs
    assert buckets["1.0"] == 2
    assert buckets["2.5"] == 3  # 2 s
    counts = [buckets[le] for le in sorted(buckets, key=float)]
    assert counts == sorted(counts) and len(counts) == len(BUCKETS_S) + 1
    assert value(families, hist + "_count", operation="mqtt.connect", step="01.connect") == 3


def test_names_that_come_out_the_same_are_served_once() -> None:
    m = Metrics()
    m.incr("connects")  # would be fleetsim_connects_total, which is the MQTT connects
    m.incr("a.b", 2)
    m.incr("a-b", 3)
    text = generate_latest(_registry(m)).decode()
    assert metric_name("a-b") == metric_name("a.b") == "fleetsim_a_b"
    families = [f.name for f in text_string_to_metric_families(text)]
    assert len(families) == len(set(families))
    assert value(scrape(m), "fleetsim_a_b_total") == 3  # the first in name order: "a-b"
    assert value(scrape(m), "fleetsim_connects_total") == 0


def test_a_scrape_reads_the_source_at_that_moment() -> None:
    current = [Metrics()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecorderCollector(lambda: current[0]))
    assert b"fleetsim_connects_total 0.0" in generate_latest(registry)
    current[0] = fed_by_hand()  # e.g. the next merge of a distributed run's shards
    assert b"fleetsim_connects_total 3.0" in generate_latest(registry)


def _registry(m: Metrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecorderCollector(lambda: m))
    return registry


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=200),
       st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=12,
                unique=True))
def test_cumulative_counts_are_within_a_bucket_of_exact(values: list[int],
                                                        bounds: list[int]) -> None:
    bounds.sort()
    h = Histogram()
    for v in values:
        h.record(v)
    cumulative = h.cumulative(bounds)
    assert cumulative == sorted(cumulative) and (not cumulative or cumulative[-1] <= h.count)
    for b, got in zip(bounds, cumulative, strict=True):
        # never counts a value above the bound; misses only values within one bucket of it
        assert sum(v <= b / (1 + 1 / 128) - 1 for v in values) <= got <= sum(v <= b
                                                                             for v in values)
        low, width = bucket_bounds(bucket_index(b))
        if b == low + width - 1:  # a bound at a bucket's highest value is exact
            assert got == sum(v <= b for v in values)
