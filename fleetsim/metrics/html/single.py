"""The HTML report of one run: summary dict in, HTML page out."""

from __future__ import annotations

import html
import time
from typing import Any

from fleetsim.metrics.html import page, plots, series, tables
from fleetsim.metrics.html.page import Section
from fleetsim.metrics.report import duration_text, op_histograms

_NO_SCENARIO = ("The summary holds no scenario text (it was written by a fleetsim that did not "
                "record it, or merged from shards).")


def verdict(summary: dict[str, Any]) -> tuple[str, str]:
    """(text, css class) of the run's outcome."""
    if summary.get("interrupted"):
        return "INTERRUPTED", "bad"
    passed = summary.get("passed")
    if passed is None:
        return "-", ""
    return ("PASSED", "good") if passed else ("FAILED", "bad")


def about(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """What run this is: scenario, run id, target, when, how long, outcome, clean-up."""
    snap = summary["metrics"]
    pairs = [("scenario", str(summary.get("scenario", "-"))),
             ("run", str(summary.get("run_id", "-")))]
    target = summary.get("target")
    if isinstance(target, dict):
        pairs.append(("target", ", ".join(f"{k} {v}" for k, v in target.items()
                                          if v is not None)))
    bounds = series.span(snap)
    if bounds is not None:
        pairs += [("started", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(bounds[0]))),
                  ("duration", duration_text(bounds[1] - bounds[0] + 1))]
    if summary.get("shard"):
        pairs.append(("shard", "/".join(map(str, summary["shard"]))))
    if summary.get("merged_from"):
        pairs.append(("merged from", ", ".join(map(str, summary["merged_from"]))))
    pairs.append(("outcome", verdict(summary)[0]))
    cleanup = summary.get("cleanup")
    if isinstance(cleanup, dict):
        removed = cleanup.get("removed") or {}
        if isinstance(removed, dict):
            removed = ", ".join(f"{n} {kind}" for kind, n in removed.items()) or "nothing"
        pairs.append(("clean-up", f"removed {removed}; "
                                  f"{len(cleanup.get('failed') or [])} failed"))
    return pairs


def timeline_divs(snapshot: dict[str, Any]) -> list[str]:
    """The plots over time the run has data for: connects/s, msgs/s, job executions per
    minute, errors/s."""
    out = []
    for title, wanted, y in (("Connects per second", series.CONNECTS, "connects/s"),
                             ("Messages per second", series.MESSAGES, "messages/s")):
        found = series.per_second(snapshot, wanted)
        if found:
            out.append(plots.to_div(plots.line_chart(title, found, "seconds since start", y)))
    jobs = series.per_minute(snapshot, series.JOBS)
    if jobs:
        out.append(plots.to_div(plots.bar_chart("Job executions per minute", jobs,
                                                "minute since start", "executions")))
    # Errors are plotted even when there are none: a flat line at zero says so.
    errors = series.per_second(snapshot, series.ERRORS) or _zeros(snapshot)
    if errors:
        out.append(plots.to_div(plots.line_chart("Errors per second", errors,
                                                 "seconds since start", "errors/s")))
    return out


def _zeros(snapshot: dict[str, Any]) -> list[series.Series]:
    bounds = series.span(snapshot)
    if bounds is None:
        return []
    seconds = [float(t) for t in range(bounds[1] - bounds[0] + 1)]
    return [series.Series("errors", seconds, [0.0] * len(seconds))]


def latency_divs(snapshot: dict[str, Any]) -> list[str]:
    """One distribution plot: the cumulative latency of every operation."""
    found = []
    for op, h in sorted(op_histograms(snapshot).items()):
        s = series.cumulative(h)
        if s is not None:
            found.append(series.Series(op, s.x, s.y))
    if not found:
        return []
    fig = plots.line_chart("Latency distribution (cumulative)", found, "latency, ms (log)",
                           "% of operations at or below", log_x=True)
    fig.update_layout(height=480)  # room for a legend of many operations
    return [f'<div class="wide">{plots.to_div(fig)}</div>']


def render_report(summary: dict[str, Any]) -> str:
    """One run's summary (as `write_json` writes it) as a self-contained HTML page."""
    snap = summary["metrics"]
    text, css = verdict(summary)
    title = f"fleetsim run {summary.get('run_id') or ''}".rstrip()
    header = (f'<p class="verdict {css}">{html.escape(text)}</p>'
              + tables.key_values(about(summary)))
    sections = []
    labs = tables.labs_table(summary)
    if labs is not None:
        sections.append(Section("labs", "Labs", tables.render_table(labs)))
    sections += [
        Section("steps", "Steps", tables.render_table(tables.steps_table(snap))),
        Section("plots", "Over time", page.grid(timeline_divs(snap), "no events recorded")),
        Section("latency", "Latency per operation",
                tables.render_table(tables.operations_table(snap))
                + page.grid(latency_divs(snap), "no operation succeeded")),
        Section("phases", "Latency per phase (step)",
                tables.render_table(tables.phases_table(snap))),
        Section("throughput", "Throughput", tables.render_table(tables.throughput_table(snap))),
        Section("errors", "Errors by kind", tables.render_table(tables.errors_table(snap))),
        Section("checks", "Checks", tables.render_table(tables.checks_table(snap))),
        Section("counters", "Counters", tables.render_table(tables.counters_table(snap))),
        Section("scenario", "Scenario", page.pre(summary["scenario_text"])
                if isinstance(summary.get("scenario_text"), str)
                else f'<p class="note">{_NO_SCENARIO}</p>'),
    ]
    return page.page(title, header, sections)
