"""`fleetsim cleanup`: remove what earlier runs created, from their journals."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fleetsim.control.cleanup import CleanupReport, cleanup
from fleetsim.control.clients import aws_clients
from fleetsim.control.journal import CLEANED_FILE, Entry, pending_runs, prune, read_entries
from fleetsim.control.targets import aws_target
from fleetsim.engine.steps import JOURNAL_KINDS
from fleetsim.errors import UserError
from fleetsim.localcore.launcher import RunningLocalCore, ensure_local_core, local_target
from fleetsim.runtime import run_async
from fleetsim.target import Target


async def _cleanup_run(target: Target | None, described: dict, entries: list[Entry]
                       ) -> CleanupReport:
    if target is None:
        target = await aws_target(described.get("region"), described.get("profile"))
    async with aws_clients(target) as clients:
        return await cleanup(clients, entries, JOURNAL_KINDS)


def cleanup_command(args: argparse.Namespace) -> int:
    runs_dir: Path = args.state_dir / "runs"
    if args.run_id:
        run_dirs = [runs_dir / args.run_id]
        if not (run_dirs[0] / "journal.jsonl").exists():
            raise UserError(f"no run {args.run_id!r} in {runs_dir} (its journal is missing)")
    else:
        run_dirs = list(pending_runs(runs_dir))
    if not run_dirs:
        print(f"Nothing to clean up: every run in {runs_dir} has been cleaned.")
        return 0
    core: RunningLocalCore | None = None
    failed = 0
    try:
        for run_dir in run_dirs:
            entries = read_entries(run_dir)
            described: dict[str, Any] = next(
                (e.data["target"] for e in entries if e.kind == "run"), {})
            target = None
            if described.get("kind", "local") == "local":
                core = core or ensure_local_core(args.state_dir / "localcore")
                target = local_target(core)
            report = run_async(_cleanup_run(target, described, entries))
            print(f"{run_dir.name}: {report.describe()}")
            for failure in report.failed:
                print(f"  could not remove {failure}")
            if report.ok:
                (run_dir / CLEANED_FILE).touch()
            else:
                failed += 1
    finally:
        if core is not None:
            core.stop()
    prune(runs_dir)
    return 1 if failed else 0
