"""Measurements of a run: histograms, counters, timelines, mergeable snapshots, reporters."""

from fleetsim.metrics.histogram import Histogram
from fleetsim.metrics.progress import Progress
from fleetsim.metrics.recorder import Metrics, error_kind, merge
from fleetsim.metrics.report import (
    read_json,
    render_summary,
    write_json,
    write_timeline_csv,
)

__all__ = [
    "Histogram",
    "Metrics",
    "Progress",
    "error_kind",
    "merge",
    "read_json",
    "render_summary",
    "write_json",
    "write_timeline_csv",
]
