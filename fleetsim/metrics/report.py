"""Reporters over a metrics snapshot: console summary, JSON file, timeline CSV."""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Sequence
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


def _ms(micros: float) -> str:
    ms = micros / 1000
    return f"{ms:.1f}" if ms >= 100 else f"{ms:.2f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)} min {secs:04.1f} s"


def render_summary(snapshot: dict[str, Any], title: str | None = None,
                   checks: Sequence[dict[str, Any]] | None = None) -> str:
    """A readable end-of-run summary. `checks` (name, passed, detail) adds to the snapshot's."""
    out: list[str] = [title] if title else []
    if snapshot["steps"]:
        rows = [(s["name"], s["status"], _duration(s["duration_s"])) for s in snapshot["steps"]]
        out += ["Steps", _table(("step", "status", "duration"), rows)]
        # Details go below the table: a failure's sentence is too long for a column.
        out += [f"  {s['name']}: {s['detail']}" for s in snapshot["steps"] if s.get("detail")]
    if snapshot["ops"]:
        rows = []
        for entry in snapshot["ops"]:
            h = Histogram.from_dict(entry["latency_us"])
            latency = [_ms(h.percentile(p)) for p in PERCENTILES] + [_ms(h.max)]
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
    errors: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for entry in snapshot["ops"]:
        where = entry["op"] + (f" @ {entry['step']}" if entry["step"] else "")
        for kind, n in entry["errors"].items():
            errors[kind].append((where, n))
    if errors:
        rows = [(kind, sum(n for _, n in places),
                 ", ".join(f"{w} x{n}" for w, n in sorted(places, key=lambda p: -p[1])))
                for kind, places in sorted(errors.items(), key=lambda e: -sum(
                    n for _, n in e[1]))]
        out += ["Errors", _table(("kind", "count", "where"), rows)]
    all_checks = list(snapshot.get("checks", [])) + list(checks or [])
    if all_checks:
        rows = [("PASS" if c["passed"] else "FAIL", c["name"], c.get("detail", ""))
                for c in all_checks]
        passed = sum(1 for c in all_checks if c["passed"])
        out += ["Checks", _table(("", "check", "detail"), rows),
                f"  {passed} passed, {len(all_checks) - passed} failed"]
    return "\n".join(out) + "\n"


def write_json(path: Path, snapshot: dict[str, Any], **extra: Any) -> None:
    """The machine-readable run summary; `extra` (e.g. scenario, target) goes alongside."""
    data = {**extra, "throughput": throughput(snapshot), "metrics": snapshot}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
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


def _figures(summary: dict[str, Any]) -> dict[str, str]:
    """What `render_comparison` lines up: a summary's figures by name."""
    snap = summary["metrics"]
    steps = snap["steps"]
    out = {"run": str(summary.get("run_id", "-")),
           "passed": {True: "yes", False: "no"}.get(bool(summary["passed"]), "-")
           if isinstance(summary.get("passed"), bool) else "-"}
    if steps:
        end = max(s["started_at"] + s["duration_s"] for s in steps)
        out["duration"] = _duration(end - min(s["started_at"] for s in steps))
        out["steps failed"] = str(sum(1 for s in steps if s["status"] == "failed"))
    out["errors"] = str(sum(sum(e["errors"].values()) for e in snap["ops"]))
    for label, r in throughput(snap).items():
        out[label.replace("_", " ") + "/s (mean)"] = f"{r['mean_per_s']:.1f}"
    hists: dict[str, Histogram] = {}
    for entry in snap["ops"]:
        hists.setdefault(entry["op"], Histogram()).merge(Histogram.from_dict(entry["latency_us"]))
    for op, h in sorted(hists.items()):
        out[f"{op} ok"] = str(h.count)
        if h.count:
            out[f"{op} p50 ms"] = _ms(h.percentile(50))
            out[f"{op} p99 ms"] = _ms(h.percentile(99))
    return out


def render_comparison(summaries: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """Summaries side by side: one row per figure, one column per summary."""
    figures = [_figures(s) for s in summaries]
    rows: list[str] = []
    for f in figures:
        rows += [k for k in f if k not in rows]
    table = _table(("", *names), [(k, *(f.get(k, "-") for f in figures)) for k in rows])
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
