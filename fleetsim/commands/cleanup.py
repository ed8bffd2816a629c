"""`fleetsim cleanup`: remove what earlier runs created, from their journals (every pending one,
persistent fleets' included, or `--run ID`), and/or whatever the account holds whose name
starts with `--prefix P` (no journal needed). `--dry-run` lists what it would remove and
changes nothing; `--no-wait` does not wait for what AWS deletes only later (thing types) and
says when to run it again. Exit 0 once nothing is left, 1 if anything is (each item named)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from fleetsim.control.cleanup import CleanupReport, cleanup, plan
from fleetsim.control.clients import AwsClients, aws_clients
from fleetsim.control.journal import CLEANED_FILE, Entry, pending_runs, prune, read_entries
from fleetsim.control.prefix import find_by_prefix
from fleetsim.control.targets import aws_target
from fleetsim.engine.steps import journal_kinds
from fleetsim.errors import UserError
from fleetsim.localcore.launcher import RunningLocalCore, ensure_local_core, local_target
from fleetsim.runtime import run_async
from fleetsim.target import Target

T = TypeVar("T")
# A dry run names this many resources of each kind (and counts the rest).
SHOWN_PER_KIND = 10


@dataclass
class Source:
    """One set of entries to clean up: a run's journal, or what a prefix found."""

    label: str
    target: dict[str, Any]  # as journaled: kind, region, profile
    entries: Callable[[AwsClients], Awaitable[list[Entry]]]
    run_dir: Path | None = None  # marked cleaned once nothing of it is left


class Targets:
    """Clients for each target a source names; local core started once, stopped at the end."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.core: RunningLocalCore | None = None

    def target(self, described: dict[str, Any]) -> Target | None:
        if described.get("kind", "local") != "local":
            return None
        self.core = self.core or ensure_local_core(self.state_dir / "localcore")
        return local_target(self.core)

    def close(self) -> None:
        if self.core is not None:
            self.core.stop()


async def _with_clients(target: Target | None, described: dict[str, Any],
                        work: Callable[[AwsClients], Awaitable[T]]) -> T:
    if target is None:
        target = await aws_target(described.get("region"), described.get("profile"))
    async with aws_clients(target) as clients:
        return await work(clients)


def _journal_source(run_dir: Path) -> Source:
    entries = read_entries(run_dir)
    described: dict[str, Any] = next(
        (e.data["target"] for e in entries if e.kind == "run"), {})

    async def read(_: AwsClients) -> list[Entry]:
        return entries

    return Source(run_dir.name, described, read, run_dir)


def _prefix_source(args: argparse.Namespace) -> Source:
    async def find(clients: AwsClients) -> list[Entry]:
        return await find_by_prefix(clients, args.prefix)

    described = {"kind": args.target, "region": args.region, "profile": args.profile}
    return Source(f"names starting with {args.prefix!r}", described, find)


def _sources(args: argparse.Namespace) -> list[Source]:
    runs_dir: Path = args.state_dir / "runs"
    if args.prefix is not None and not args.prefix.strip():
        raise UserError("--prefix is empty: it would match every resource of the account; "
                        "give the start of the names to remove (e.g. --prefix bulky)")
    if args.run_id and args.all:
        raise UserError("give --run ID (one run) or --all (every pending run), not both")
    sources: list[Source] = []
    if args.run_id:
        run_dir = runs_dir / args.run_id
        if not (run_dir / "journal.jsonl").exists():
            raise UserError(f"no run {args.run_id!r} in {runs_dir} (its journal is missing)")
        sources.append(_journal_source(run_dir))
    elif args.all or args.prefix is None:
        sources += [_journal_source(d) for d in pending_runs(runs_dir)]
    if args.prefix is not None:
        sources.append(_prefix_source(args))
    return sources


def _dry_run(source: Source, planned: list[tuple[str, str]]) -> None:
    if not planned:
        print(f"{source.label}: nothing to remove")
        return
    by_kind: dict[str, list[str]] = {}
    for kind, name in planned:
        by_kind.setdefault(kind, []).append(name)
    total = ", ".join(f"{len(names)} {kind}" for kind, names in by_kind.items())
    print(f"{source.label}: would remove {total}")
    for kind, names in by_kind.items():
        shown = ", ".join(names[:SHOWN_PER_KIND])
        more = f" and {len(names) - SHOWN_PER_KIND} more" if len(names) > SHOWN_PER_KIND else ""
        print(f"  {kind} ({len(names)}): {shown}{more}")


def _print_report(source: Source, report: CleanupReport) -> None:
    print(f"{source.label}: {report.describe()}")
    for failure in report.failed:
        print(f"  could not remove {failure}")
    for deferred in report.deferred:
        print(f"  {deferred}")


def cleanup_command(args: argparse.Namespace) -> int:
    runs_dir: Path = args.state_dir / "runs"
    sources = _sources(args)
    if not sources:
        print(f"Nothing to clean up: every run in {runs_dir} has been cleaned.")
        return 0
    targets = Targets(args.state_dir)
    left = 0
    try:
        for source in sources:
            target = targets.target(source.target)
            if args.dry_run:
                _dry_run(source, run_async(_with_clients(target, source.target,
                                                         partial(_plan, source=source))))
                continue
            report = run_async(_with_clients(target, source.target, partial(
                _clean, source=source, wait=not args.no_wait)))
            _print_report(source, report)
            if report.ok and source.run_dir is not None:
                (source.run_dir / CLEANED_FILE).touch()
            if not report.ok:
                left += 1
    finally:
        targets.close()
    if args.dry_run:
        print("Dry run: nothing was changed.")
        return 0
    prune(runs_dir)
    return 1 if left else 0


async def _plan(clients: AwsClients, source: Source) -> list[tuple[str, str]]:
    return await plan(clients, await source.entries(clients), journal_kinds())


async def _clean(clients: AwsClients, source: Source, wait: bool) -> CleanupReport:
    return await cleanup(clients, await source.entries(clients), journal_kinds(), wait=wait)
