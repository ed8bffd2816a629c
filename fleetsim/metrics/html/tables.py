"""The report's tables as data (pure functions of a summary), and their HTML."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetsim.metrics.histogram import Histogram
from fleetsim.metrics.report import (
    PERCENTILES,
    duration_text,
    errors_by_kind,
    ms_text,
    op_histograms,
    throughput,
)

# Statuses shown green or red, whoever wrote them (steps say ok/failed, labs may say passed).
_GOOD = {"ok", "passed", "pass", "succeeded", "yes"}
_BAD = {"failed", "fail", "interrupted", "error", "no"}


@dataclass(frozen=True)
class Cell:
    text: str
    css: str = ""  # a class: good, bad, better, worse, same, num


@dataclass
class Table:
    headers: tuple[str, ...]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""


def status_css(status: str) -> str:
    s = status.lower()
    return "good" if s in _GOOD else "bad" if s in _BAD else ""


def num(text: Any) -> Cell:
    return Cell(str(text), "num")


def _latency(h: Histogram) -> list[Cell]:
    if not h.count:
        return [num("-")] * (len(PERCENTILES) + 2)
    return [num(ms_text(h.percentile(p))) for p in PERCENTILES] + [num(ms_text(h.max)),
                                                                num(ms_text(h.mean))]


_LATENCY_HEADERS = (*(f"p{p} ms" for p in PERCENTILES), "max ms", "mean ms")


def steps_table(snapshot: dict[str, Any]) -> Table:
    return Table(("step", "status", "duration", "detail"), [
        [Cell(s["name"]), Cell(s["status"], status_css(s["status"])),
         num(duration_text(s["duration_s"])), Cell(s.get("detail") or "")]
        for s in snapshot["steps"]])


def labs_table(summary: dict[str, Any]) -> Table | None:
    """The workshop's labs (`labs: [{name, status, seconds, steps, detail}]`), when the summary
    has them."""
    labs = summary.get("labs")
    if not isinstance(labs, list) or not labs:
        return None
    rows = []
    for lab in labs:
        if not isinstance(lab, dict):
            continue
        status = str(lab.get("status", "-"))
        seconds = lab.get("seconds")
        steps = lab.get("steps")
        took = duration_text(float(seconds)) if isinstance(seconds, int | float) else "-"
        rows.append([Cell(str(lab.get("name", "-"))), Cell(status, status_css(status)), num(took),
                     Cell(", ".join(map(str, steps)) if isinstance(steps, list)
                          else str(steps if steps is not None else "")),
                     Cell(str(lab.get("detail") or ""))])
    return Table(("lab", "status", "duration", "steps", "detail"), rows)


def operations_table(snapshot: dict[str, Any]) -> Table:
    """Latency percentiles per operation, over every step."""
    errors: dict[str, int] = {}
    for entry in snapshot["ops"]:
        errors[entry["op"]] = errors.get(entry["op"], 0) + sum(entry["errors"].values())
    hists = op_histograms(snapshot)
    return Table(("operation", "ok", "errors", *_LATENCY_HEADERS), [
        [Cell(op), num(hists[op].count), Cell(str(errors[op]), "num bad" if errors[op] else "num"),
         *_latency(hists[op])] for op in sorted(hists)])


def phases_table(snapshot: dict[str, Any]) -> Table:
    """Latency percentiles per step (phase of the run) and operation."""
    rows = []
    for entry in snapshot["ops"]:
        h = Histogram.from_dict(entry["latency_us"])
        n_err = sum(entry["errors"].values())
        rows.append([Cell(entry["step"] or "-"), Cell(entry["op"]), num(h.count),
                     Cell(str(n_err), "num bad" if n_err else "num"), *_latency(h)])
    return Table(("step", "operation", "ok", "errors", *_LATENCY_HEADERS), rows)


def throughput_table(snapshot: dict[str, Any]) -> Table:
    return Table(("rate", "mean /s", "peak /s", "total", "over"), [
        [Cell(label.replace("_", " ") + "/s"), num(f"{r['mean_per_s']:.1f}"),
         num(int(r["peak_per_s"])), num(int(r["total"])), num(f"{int(r['seconds'])} s")]
        for label, r in throughput(snapshot).items()])


def errors_table(snapshot: dict[str, Any]) -> Table:
    return Table(("kind", "count", "where"), [
        [Cell(kind, "bad"), num(n), Cell(where)] for kind, n, where in errors_by_kind(snapshot)])


def counters_table(snapshot: dict[str, Any]) -> Table:
    rows = [[Cell(k), num(v)] for k, v in snapshot["counters"].items()]
    rows += [[Cell(k + " (now)"), num(v)] for k, v in snapshot["gauges"].items()]
    return Table(("counter", "value"), rows)


def checks_table(snapshot: dict[str, Any]) -> Table:
    return Table(("", "check", "detail"), [
        [Cell("PASS", "good") if c["passed"] else Cell("FAIL", "bad"), Cell(c["name"]),
         Cell(c.get("detail") or "")] for c in snapshot.get("checks", [])])


def render_table(table: Table, css: str = "") -> str:
    """The table as HTML; every text escaped. No rows: a one-line note instead."""
    if not table.rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "\n".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}>{caption}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"


def _td(cell: Cell) -> str:
    cls = f' class="{cell.css}"' if cell.css else ""
    return f"<td{cls}>{html.escape(cell.text)}</td>"


def key_values(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'
