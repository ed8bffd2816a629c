"""`fleetsim report`: print a JSON summary, compare several side by side, or merge the
summaries of the shards of one run; `--html` writes the same as a self-contained page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fleetsim.errors import UserError
from fleetsim.metrics.recorder import merge
from fleetsim.metrics.report import (
    read_summary,
    render_comparison,
    render_labs,
    render_summary,
    summary_document,
    write_atomic,
    write_json,
)


def _same_run(paths: list[Path], summaries: list[dict[str, Any]]) -> str | None:
    """A sentence when two of the summaries are one and the same (run id and shard, or the
    very same figures): merging them would count that run twice."""
    seen: dict[str, Path] = {}
    for path, summary in zip(paths, summaries, strict=True):
        run_id = summary.get("run_id")
        key = (f"run {run_id}" if run_id is not None
               else "the same figures " + json.dumps(summary["metrics"], sort_keys=True))
        if key in seen:
            what = key if run_id is not None else "the same figures"
            return (f"{seen[key]} and {path} are both {what}: merging a summary with itself "
                    "would count it twice; merge the summaries of different shards")
        seen[key] = path
    return None


def report_command(args: argparse.Namespace) -> int:
    summaries = []
    for path in args.files:
        try:
            summaries.append(read_summary(path))
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{path} is not a fleetsim JSON summary ({e})") from e
    try:
        return _report(args, summaries)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"cannot report on {', '.join(map(str, args.files))}: a figure is "
                        f"missing or malformed ({type(e).__name__}: {e})") from e


def _report(args: argparse.Namespace, summaries: list[dict[str, Any]]) -> int:
    snapshots = [s["metrics"] for s in summaries]
    if args.merge:
        same = _same_run(args.files, summaries)
        if same is not None:
            raise UserError(same)
        try:
            merged = merge(snapshots)
        except (ValueError, KeyError) as e:
            raise UserError(f"cannot merge these summaries ({e})") from e
        print(render_summary(merged, title=f"Merged summary of {len(snapshots)} files"))
        sources = [str(p) for p in args.files]
        if args.json:
            write_json(args.json, merged, merged_from=sources)
        if args.html:
            _write_html(args.html, summary_document(merged, merged_from=sources))
        return 0
    if args.json:
        raise UserError("--json writes a merged summary: add --merge")
    if len(summaries) > 1:
        print(render_comparison(summaries, [str(p) for p in args.files]))
        if args.html:
            _write_html(args.html, *summaries, names=[p.name for p in args.files])
        return 0
    print(render_summary(snapshots[0], title=str(args.files[0])))
    if summaries[0].get("labs"):
        print(render_labs(summaries[0]["labs"]))
    if args.html:
        _write_html(args.html, summaries[0])
    return 0


def _write_html(path: Path, *summaries: dict[str, Any], names: list[str] | None = None) -> None:
    """The HTML report of one summary, or the comparison of several (named `names`)."""
    from fleetsim.metrics.html import render_comparison_html, render_report

    page = (render_report(summaries[0]) if len(summaries) == 1
            else render_comparison_html(summaries, names or []))
    write_atomic(path, page)
    print(f"HTML report written to {path}")
