"""The recorder's state as Prometheus metric families, read at scrape time.

`RecorderCollector` reads a `Metrics` (or whatever `source()` returns at that moment, e.g. the
merged live view of a distributed run) when the registry is collected, so measuring costs
nothing more per message; it must be collected on the thread that records (the event loop),
which `fleetsim.metrics.exporter` does. Names follow Prometheus' "Metric and label naming"
(a `fleetsim_` prefix, base units: seconds, counters ending in `_total`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from fleetsim.metrics.histogram import Histogram
from fleetsim.metrics.recorder import Metrics

PREFIX = "fleetsim_"
CONNECTED_GAUGE = "devices.connected"
CONNECT_OP = "mqtt.connect"
RECONNECT_OP = "mqtt.reconnect"
PUBLISH_OP = "mqtt.publish"
# Recorder counters of messages received, and who received them.
RECEIVED = {"messages.received": "observer", "messages.received.devices": "devices"}
# Upper bounds of the latency buckets, seconds: from a QoS 0 publish (a socket write, tens of
# microseconds) to a job execution or a bulk registration (minutes).
BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
             1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_BUCKETS_US = tuple(b * 1e6 for b in BUCKETS_S)
_LE = (*(floatToGoString(b) for b in BUCKETS_S), "+Inf")
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]+")
# The families every scrape has (counters without their `_total`).
FIXED = tuple(PREFIX + n for n in ("devices_connected", "connects", "reconnects",
                                   "publishes_sent", "publishes_received", "errors",
                                   "operation_duration_seconds", "checks"))


def metric_name(recorder_name: str) -> str:
    """A recorder counter or gauge name (`jobs.outcome.succeeded`) as a Prometheus name
    (`fleetsim_jobs_outcome_succeeded`)."""
    return PREFIX + _NOT_NAME.sub("_", recorder_name).strip("_").lower()


def _buckets(hist: Histogram) -> list[tuple[str, float]]:
    counts = [*hist.cumulative(_BUCKETS_US), hist.count]
    return list(zip(_LE, counts, strict=True))


class RecorderCollector(Collector):
    """Yields the metric families of `source()`'s state each time it is collected."""

    def __init__(self, source: Callable[[], Metrics]):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        metrics = self.source()
        yield GaugeMetricFamily(PREFIX + "devices_connected",
                                "Devices whose MQTT connection is open.",
                                value=metrics.gauges.get(CONNECTED_GAUGE, 0))
        ops: dict[str, int] = {}
        for (_, op), hist in metrics.latency.items():
            ops[op] = ops.get(op, 0) + hist.count
        yield CounterMetricFamily(PREFIX + "connects", "MQTT connections opened (CONNACK "
                                  "accepted), first connects only.", value=ops.get(CONNECT_OP, 0))
        yield CounterMetricFamily(PREFIX + "reconnects", "MQTT connections opened again after "
                                  "a loss.", value=ops.get(RECONNECT_OP, 0))
        yield CounterMetricFamily(PREFIX + "publishes_sent", "MQTT publishes sent (QoS 1: "
                                  "acknowledged).", value=ops.get(PUBLISH_OP, 0))
        received = CounterMetricFamily(PREFIX + "publishes_received", "MQTT messages "
                                       "received, by who received them.", labels=["receiver"])
        for counter, receiver in RECEIVED.items():
            received.add_metric([receiver], metrics.counters.get(counter, 0))
        yield received
        yield from self._errors(metrics)
        yield self._latency(metrics)
        checks = CounterMetricFamily(PREFIX + "checks", "Scenario checks settled, by result.",
                                     labels=["result"])
        passed = sum(1 for c in metrics.checks if c.passed)
        checks.add_metric(["passed"], passed)
        checks.add_metric(["failed"], len(metrics.checks) - passed)
        yield checks
        yield from self._others(metrics, taken=set(FIXED))

    @staticmethod
    def _errors(metrics: Metrics) -> Iterator[Metric]:
        errors = CounterMetricFamily(PREFIX + "errors", "Operations that failed, by error "
                                     "kind, operation and scenario step.",
                                     labels=["kind", "operation", "step"])
        for (step, op), kinds in sorted(metrics.op_errors.items()):
            for kind, n in sorted(kinds.items()):
                errors.add_metric([kind, op, step], n)
        yield errors

    @staticmethod
    def _latency(metrics: Metrics) -> Metric:
        family = HistogramMetricFamily(PREFIX + "operation_duration_seconds",
                                       "How long successful operations took, by operation and "
                                       "scenario step.", labels=["operation", "step"])
        for (step, op), hist in sorted(metrics.latency.items()):
            family.add_metric([op, step], _buckets(hist), sum_value=hist.total / 1e6)
        return family

    @staticmethod
    def _others(metrics: Metrics, taken: set[str]) -> Iterator[Metric]:
        """Every other counter and gauge of the recorder, under its own name (of names
        that come out the same, the first in name order)."""
        for counter, n in sorted(metrics.counters.items()):
            name = metric_name(counter).removesuffix("_total")
            if counter not in RECEIVED and name not in taken:
                taken.add(name)
                yield CounterMetricFamily(name, f"The run's {counter!r} counter.", value=n)
        for gauge, n in sorted(metrics.gauges.items()):
            name = metric_name(gauge)
            if gauge != CONNECTED_GAUGE and name not in taken:
                taken.add(name)
                yield GaugeMetricFamily(name, f"The run's {gauge!r} level.", value=n)
