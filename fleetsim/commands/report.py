"""`fleetsim report`: print JSON summaries, or merge the summaries of several shards."""

from __future__ import annotations

import argparse

from fleetsim.errors import UserError
from fleetsim.metrics.recorder import merge
from fleetsim.metrics.report import read_json, render_summary, write_json


def report_command(args: argparse.Namespace) -> int:
    snapshots = []
    for path in args.files:
        try:
            snapshots.append(read_json(path))
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{path} is not a fleetsim JSON summary ({e})") from e
    if args.merge or len(snapshots) > 1:
        merged = merge(snapshots)
        print(render_summary(merged, title=f"Merged summary of {len(snapshots)} files"))
        if args.json:
            write_json(args.json, merged, merged_from=[str(p) for p in args.files])
        return 0
    print(render_summary(snapshots[0], title=str(args.files[0])))
    return 0
