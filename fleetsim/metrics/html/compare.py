"""Several runs side by side in one HTML page: every figure against the first run's (the
baseline), deltas coloured better or worse, and their timelines overlaid."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from fleetsim.metrics.html import page, plots, series, tables
from fleetsim.metrics.html.deltas import delta
from fleetsim.metrics.html.page import Section
from fleetsim.metrics.html.single import verdict
from fleetsim.metrics.html.tables import Cell, Table, num
from fleetsim.metrics.report import (
    PERCENTILES,
    Figure,
    duration_text,
    errors_by_kind,
    figures,
    ms_text,
    op_histograms,
)

Row = tuple[str, list[Figure | None]]


def compare_table(first: str, rows: Sequence[Row], names: Sequence[str]) -> Table:
    """One row per figure: the baseline's value, then each other run's value and its delta."""
    headers = [first, names[0]]
    for name in names[1:]:
        headers += [name, "Δ"]
    out = []
    for label, figs in rows:
        base = figs[0]
        cells = [Cell(label), num(base.text if base else "-")]
        for fig in figs[1:]:
            cells.append(num(fig.text if fig else "-"))
            known = fig or base
            d = delta(base.value if base else None, fig.value if fig else None,
                      known.better if known else None)
            cells.append(Cell(d.text, f"num {d.verdict}".strip()))
        out.append(cells)
    return Table(tuple(headers), out)


def _rows(per_run: Sequence[dict[str, Figure]]) -> list[Row]:
    order: list[str] = []
    for figs in per_run:
        order += [k for k in figs if k not in order]
    return [(k, [figs.get(k) for figs in per_run]) for k in order]


def headline_rows(summaries: Sequence[dict[str, Any]]) -> list[Row]:
    """The console comparison's figures, but latencies: they have a table of their own."""
    return _rows([{f.name: f for f in figures(s) if not f.name.endswith(" ms")}
                  for s in summaries])


def step_rows(summaries: Sequence[dict[str, Any]]) -> list[Row]:
    """Each step's duration per run (its status too when not ok)."""
    per_run = []
    for s in summaries:
        figs = {}
        for step in s["metrics"]["steps"]:
            note = "" if step["status"] == "ok" else f" ({step['status']})"
            figs[step["name"]] = Figure(step["name"], duration_text(step["duration_s"]) + note,
                                        step["duration_s"], "lower")
        per_run.append(figs)
    return _rows(per_run)


def lab_rows(summaries: Sequence[dict[str, Any]]) -> list[Row]:
    per_run = []
    for s in summaries:
        figs = {}
        for lab in s.get("labs") or []:
            if not isinstance(lab, dict):
                continue
            seconds = lab.get("seconds")
            value = float(seconds) if isinstance(seconds, int | float) else None
            text = (duration_text(value) if value is not None else "-") + f" ({lab.get('status')})"
            figs[str(lab.get("name"))] = Figure(str(lab.get("name")), text, value, "lower")
        per_run.append(figs)
    return _rows(per_run)


def latency_rows(summaries: Sequence[dict[str, Any]]) -> list[Row]:
    per_run = []
    for s in summaries:
        figs = {}
        for op, h in op_histograms(s["metrics"]).items():
            if not h.count:
                continue
            for p in PERCENTILES:
                micros = h.percentile(p)
                name = f"{op} p{p} ms"
                figs[name] = Figure(name, ms_text(micros), micros / 1000, "lower")
        per_run.append(dict(sorted(figs.items())))
    return _rows(per_run)


def error_rows(summaries: Sequence[dict[str, Any]]) -> list[Row]:
    per_run = [{kind: Figure(kind, str(n), n, "lower")
                for kind, n, _ in errors_by_kind(s["metrics"])} for s in summaries]
    rows = _rows(per_run)
    # A kind one run did not have is zero there, not missing.
    return [(k, [f or Figure(k, "0", 0, "lower") for f in figs]) for k, figs in rows]


def _overlay(summaries: Sequence[dict[str, Any]], names: Sequence[str],
             pick: Callable[[dict[str, Any]], list[series.Series]]) -> list[series.Series]:
    """`pick`'s series of every run, named after the run (and the series, if it has several)."""
    out = []
    for s, name in zip(summaries, names, strict=True):
        found = pick(s["metrics"])
        out += [series.Series(f"{name}: {x.name}" if len(found) > 1 else name, x.x, x.y)
                for x in found]
    return out


def overlay_divs(summaries: Sequence[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """Each run's timelines on shared axes (seconds since its own start)."""
    out = []
    for title, wanted, y in (("Connects per second", series.CONNECTS, "connects/s"),
                             ("Messages sent per second", series.MESSAGES[:1], "messages/s"),
                             ("Messages received per second", series.MESSAGES[1:],
                              "messages/s"),
                             ("Errors per second", series.ERRORS, "errors/s")):
        found = _overlay(summaries, names, partial(series.per_second, wanted=wanted))
        if found:
            out.append(plots.to_div(plots.line_chart(title, found, "seconds since start", y)))
    jobs = _overlay(summaries, names, lambda snap: series.per_minute(snap, series.JOBS[2:]))
    if jobs:
        out.append(plots.to_div(plots.bar_chart("Job executions ended per minute", jobs,
                                                "minute since start", "executions")))
    ops = sorted({op for s in summaries for op, h in op_histograms(s["metrics"]).items()
                  if h.count})
    if ops:
        bars = []
        for s, name in zip(summaries, names, strict=True):
            hists = op_histograms(s["metrics"])
            bars.append(series.Series(name, [], [
                hists[op].percentile(99) / 1000 if op in hists and hists[op].count else 0.0
                for op in ops]))
        out.append(plots.to_div(plots.bar_chart("p99 latency per operation", bars,
                                                "operation", "ms", categories=ops)))
    return out


def render_comparison_html(summaries: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """Summaries side by side; the first is the baseline every delta is taken against."""
    header = tables.render_table(Table(("", "run", "scenario", "outcome"), [
        [Cell(name), Cell(str(s.get("run_id", "-"))), Cell(str(s.get("scenario", "-"))),
         Cell(*verdict(s))] for name, s in zip(names, summaries, strict=True)]))
    note = ('<p class="note">Δ: each run against the first; '
            '<span class="good">green</span> is better, <span class="bad">red</span> worse.</p>')
    sections = [Section("figures", "Headline figures",
                        note + tables.render_table(compare_table("", headline_rows(summaries),
                                                                 names)))]
    labs = lab_rows(summaries)
    if labs:
        sections.append(Section("labs", "Labs", tables.render_table(
            compare_table("lab", labs, names))))
    sections += [
        Section("steps", "Steps (duration)",
                tables.render_table(compare_table("step", step_rows(summaries), names))),
        Section("latency", "Latency per operation",
                tables.render_table(compare_table("operation", latency_rows(summaries),
                                                  names))),
        Section("errors", "Errors by kind",
                tables.render_table(compare_table("kind", error_rows(summaries), names))),
        Section("plots", "Over time", page.grid(overlay_divs(summaries, names),
                                                "no events recorded")),
        Section("scenarios", "Scenarios", "".join(
            f"<details><summary>{html.escape(name)}</summary>"
            + (page.pre(s["scenario_text"]) if isinstance(s.get("scenario_text"), str)
               else '<p class="note">not recorded in this summary</p>') + "</details>"
            for name, s in zip(names, summaries, strict=True))),
    ]
    return page.page(f"fleetsim: {len(summaries)} runs compared", header, sections)
