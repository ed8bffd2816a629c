"""Reporters over a metrics snapshot: console summary, JSON file, timeline CSV (the HTML
report is `fleetsim.metrics.html`)."""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsim.metrics.histogram import Histogram

PERCENTILES = (50, 90, 99)
# Rates the summary states: (label, timeline series).
THROUGHPUT = (("connects", "mqtt.connect"), ("msgs sent", "mqtt.publish"),
              ("msgs received", "messages.received"))


def throughput(snapshot: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per label of THROUGHPUT seen in the run: the total, the seconds from its first to its
    last event, the mean per second over those seconds and the busiest second."""
    out: dict[str, dict[str, float]] = {}
    for label, series in THROUGHPUT:
        points = snapshot["timeline"].get(series) or []
        if not points:
            continue
        total = sum(n for _, n in points)
        seconds = points[-1][0] - points[0][0] + 1
        out[label.replace(" ", "_")] = {"total": total, "seconds": seconds,
                                        "mean_per_s": round(total / seconds, 1),
                                        "peak_per_s": max(n for _, n in points)}
    return out


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(r[i]) for r in rows) and bool(rows) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric,
                                                                          strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join(line(r) for r in cells)


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float) or value == "-":
        return True
    try:
        float(str(value).split()[0])
    except (ValueError, IndexError):
        return False
    return True


def ms_text(micros: float) -> str:
    ms = micros / 1000
    return f"{ms:.1f}" if ms >= 100 else f"{ms:.2f}"


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)} min {secs:04.1f} s"


def render_summary(snapshot: dict[str, Any], title: str | None = None,
                   checks: Sequence[dict[str, Any]] | None = None) -> str:
    """A readable end-of-run summary. `checks` (name, passed, detail) adds to the snapshot's."""
    out: list[str] = [title] if title else []
    if snapshot["steps"]:
        rows = [(s["name"], s["status"], duration_text(s["duration_s"])) for s in snapshot["steps"]]
        out += ["Steps", _table(("step", "status", "duration"), rows)]
        # Details go below the table: a failure's sentence is too long for a column.
        out += [f"  {s['name']}: {s['detail']}" for s in snapshot["steps"] if s.get("detail")]
    if snapshot["ops"]:
        rows = []
        for entry in snapshot["ops"]:
            h = Histogram.from_dict(entry["latency_us"])
            latency = [ms_text(h.percentile(p)) for p in PERCENTILES] + [ms_text(h.max)]
            rows.append((entry["step"] or "-", entry["op"], h.count,
                         sum(entry["errors"].values()), *(latency if h.count else ["-"] * 4)))
        out += ["Operations (latency in ms)",
                _table(("step", "operation", "ok", "errors", "p50", "p90", "p99", "max"), rows)]
    rates = throughput(snapshot)
    if rates:
        out += ["Throughput", _table(("rate", "mean", "peak", "total", "over"), [
            (label.replace("_", " ") + "/s", f"{r['mean_per_s']:.1f}", int(r["peak_per_s"]),
             int(r["total"]), f"{int(r['seconds'])} s") for label, r in rates.items()])]
    if snapshot["counters"] or snapshot["gauges"]:
        counters: list[tuple[str, Any]] = list(snapshot["counters"].items())
        counters += [(k + " (now)", v) for k, v in snapshot["gauges"].items()]
        out += ["Counters", _table(("counter", "value"), counters)]
    errors = errors_by_kind(snapshot)
    if errors:
        out += ["Errors", _table(("kind", "count", "where"), errors)]
    all_checks = list(snapshot.get("checks", [])) + list(checks or [])
    if all_checks:
        rows = [("PASS" if c["passed"] else "FAIL", c["name"], c.get("detail", ""))
                for c in all_checks]
        passed = sum(1 for c in all_checks if c["passed"])
        out += ["Checks", _table(("", "check", "detail"), rows),
                f"  {passed} passed, {len(all_checks) - passed} failed"]
    return "\n".join(out) + "\n"


def summary_document(snapshot: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The machine-readable run summary; `extra` (e.g. scenario, target) goes alongside."""
    return {**extra, "throughput": throughput(snapshot), "metrics": snapshot}


def errors_by_kind(snapshot: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(kind, count, where: "op @ step xN, ...") for each kind of error, most frequent first."""
    errors: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for entry in snapshot["ops"]:
        where = entry["op"] + (f" @ {entry['step']}" if entry["step"] else "")
        for kind, n in entry["errors"].items():
            errors[kind].append((where, n))
    return [(kind, sum(n for _, n in places),
             ", ".join(f"{w} x{n}" for w, n in sorted(places, key=lambda p: -p[1])))
            for kind, places in sorted(errors.items(), key=lambda e: -sum(n for _, n in e[1]))]


def write_json(path: Path, snapshot: dict[str, Any], **extra: Any) -> None:
    """`summary_document` written to `path` (atomically)."""
    write_atomic(path, json.dumps(summary_document(snapshot, **extra), indent=1) + "\n")


def write_atomic(path: Path, text: str) -> None:
    """`text` in `path`, which is never seen half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """The metrics snapshot of a file written by `write_json`."""
    return read_summary(path)["metrics"]


def read_summary(path: Path) -> dict[str, Any]:
    """The whole file written by `write_json` (run id, shard, ... and `metrics`)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ValueError("no 'metrics' object")
    return data


@dataclass(frozen=True)
class Figure:
    """One figure of a run, as comparisons line it up: `value` is None when it is no number,
    `better` says which way is an improvement ("lower", "higher" or None: neither)."""

    name: str
    text: str
    value: float | None = None
    better: str | None = None


def figures(summary: dict[str, Any]) -> list[Figure]:
    """What comparisons (console and HTML) line up: a summary's headline figures."""
    snap = summary["metrics"]
    steps = snap["steps"]
    passed = summary.get("passed")
    out = [Figure("run", str(summary.get("run_id", "-"))),
           Figure("passed", {True: "yes", False: "no"}[passed] if isinstance(passed, bool)
                  else "-")]
    if steps:
        end = max(s["started_at"] + s["duration_s"] for s in steps)
        seconds = end - min(s["started_at"] for s in steps)
        failed = sum(1 for s in steps if s["status"] == "failed")
        out += [Figure("duration", duration_text(seconds), seconds, "lower"),
                Figure("steps failed", str(failed), failed, "lower")]
    errors = sum(sum(e["errors"].values()) for e in snap["ops"])
    out.append(Figure("errors", str(errors), errors, "lower"))
    for label, r in throughput(snap).items():
        out.append(Figure(label.replace("_", " ") + "/s (mean)", f"{r['mean_per_s']:.1f}",
                          r["mean_per_s"], "higher"))
    for op, h in sorted(op_histograms(snap).items()):
        out.append(Figure(f"{op} ok", str(h.count), h.count, "higher"))
        if h.count:
            for p in (50, 99):
                micros = h.percentile(p)
                out.append(Figure(f"{op} p{p} ms", ms_text(micros), micros / 1000, "lower"))
    return out


def op_histograms(snapshot: dict[str, Any]) -> dict[str, Histogram]:
    """Each operation's latency over every step that recorded it."""
    hists: dict[str, Histogram] = {}
    for entry in snapshot["ops"]:
        hists.setdefault(entry["op"], Histogram()).merge(Histogram.from_dict(entry["latency_us"]))
    return hists


def render_comparison(summaries: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """Summaries side by side: one row per figure, one column per summary."""
    texts = [{f.name: f.text for f in figures(s)} for s in summaries]
    rows: list[str] = []
    for t in texts:
        rows += [k for k in t if k not in rows]
    table = _table(("", *names), [(k, *(t.get(k, "-") for t in texts)) for k in rows])
    return f"Comparison of {len(summaries)} summaries\n{table}\n"


def write_timeline_csv(path: Path, snapshot: dict[str, Any]) -> None:
    """One row per second from the first to the last event, one column per series."""
    series = {name: dict(map(tuple, points)) for name, points in snapshot["timeline"].items()}
    seconds = [t for points in series.values() for t in points]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        names = sorted(series)
        writer.writerow(["epoch_s", "elapsed_s", *names])
        if not seconds:
            return
        first, last = min(seconds), max(seconds)
        for t in range(first, last + 1):
            writer.writerow([t, t - first, *(series[n].get(t, 0) for n in names)])


LAB_STATUS = {"pass": "PASS", "fail": "FAIL", "not_run": "not run", "interrupted": "INTERRUPTED"}


def render_labs(labs: Sequence[dict[str, Any]]) -> str:
    """The per-lab table of a run made of labs (the summary's `labs`)."""
    rows = [(i, lab["name"], LAB_STATUS.get(lab["status"], lab["status"]),
             f"{lab['seconds']:.1f}" if lab["status"] != "not_run" else "-", lab["steps"],
             lab.get("detail") or "")
            for i, lab in enumerate(labs, 1)]
    passed = sum(1 for lab in labs if lab["status"] == "pass")
    return (f"Labs ({passed}/{len(labs)} passed)\n"
            + _table(("#", "lab", "result", "seconds", "steps", "detail"), rows))
