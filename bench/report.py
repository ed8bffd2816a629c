"""Results: one JSON file per benchmark in bench/results/, and a short table on stdout."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    figure: str
    measured: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


def error_kinds(snapshot: dict[str, Any]) -> dict[str, int]:
    """A metrics snapshot's (or a run summary's `metrics`) errors by kind, over every
    operation: a snapshot keeps them per operation, under `ops`."""
    from fleetsim.metrics.report import errors_by_kind

    return {kind: n for kind, n, _where in errors_by_kind(snapshot)}


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def print_table(title: str, rows: list[Row]) -> None:
    def fmt(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"

    head = ("figure", "measured", "unit", "target", "")
    body = [(r.figure, fmt(r.measured), r.unit, r.target,
             "" if r.ok is None else ("ok" if r.ok else "MISSED")) for r in rows]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]
    print(f"\n{title}")
    for line in [head, *body]:
        print("  " + "  ".join(str(c).rjust(w) if i == 1 else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip())
    for r in rows:
        if r.note:
            print(f"  - {r.figure}: {r.note}")
