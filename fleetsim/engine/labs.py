"""Run a scenario made of labs (`fleetsim.scenario.labs`): each lab's steps in its own
context (its fleets, devices, observer), one after the other in one process against one
target, all written to one journal; then the "Clean Up" lab: the journal's clean-up, and a
check that nothing the run created is left. The outcome of each lab (pass, fail, not run)
goes into the summary as `labs`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsim.control.clients import aws_clients
from fleetsim.control.journal import Journal, read_entries
from fleetsim.control.targets import describe_target
from fleetsim.engine import devices as dev
from fleetsim.engine.leftovers import leftovers
from fleetsim.engine.reconcile import Ledger
from fleetsim.engine.runner import (
    RunResult,
    build_devices,
    clean_up,
    run_context,
    run_steps,
    step_names,
)
from fleetsim.engine.steps import load_scenario
from fleetsim.metrics.recorder import Metrics
from fleetsim.scenario.labs import Lab, Labs, is_labs, load_labs, thing_names
from fleetsim.scenario.loader import parse_document
from fleetsim.scenario.model import Scenario
from fleetsim.target import Target

CLEAN_UP = "Clean Up"  # the workshop's last section
PASS, FAIL, NOT_RUN, INTERRUPTED = "pass", "fail", "not_run", "interrupted"


def load_run(path: Path, devices: int | None = None) -> Scenario | Labs:
    """A scenario file, or a file of labs with the scenarios it includes."""
    doc = parse_document(path)
    if is_labs(doc):
        return load_labs(path, lambda p: load_scenario(p, devices), doc)
    return load_scenario(path, devices)


@dataclass
class LabOutcome:
    name: str
    file: str
    steps: int
    status: str = NOT_RUN
    seconds: float = 0.0
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "status": self.status,
                "seconds": round(self.seconds, 3), "steps": self.steps, "detail": self.detail}


@dataclass
class LabsRunResult(RunResult):
    labs: list[LabOutcome] = field(default_factory=list)  # the last one is Clean Up
    kept: bool = False  # --keep or `cleanup: false`: Clean Up was not asked for

    @property
    def passed(self) -> bool:
        asked = self.labs[:-1] if self.kept else self.labs
        return not self.interrupted and bool(asked) and all(lab.status == PASS
                                                            for lab in asked)


def lab_run_id(run_id: str, n: int) -> str:
    """The `{run_id}` of lab `n`'s steps: names made from it (the observer's client id and
    policy, buckets, job ids) differ from lab to lab, as they do from run to run."""
    return f"{run_id}-lab{n:02d}"


def lab_prefix(n: int) -> str:
    """How the summary's step names say which lab a step belongs to."""
    return f"lab{n:02d}/"


async def run_labs(labs: Labs, target: Target, *, run_id: str, runs_dir: Path,
                   identities_dir: Path, keep: bool = False, concurrency: int = 64,
                   metrics: Metrics | None = None) -> LabsRunResult:
    metrics = metrics or Metrics()
    described = describe_target(target)
    journal = Journal.for_run(runs_dir, run_id, described, labs.name)
    result = LabsRunResult(run_id, labs.name, target, metrics, journal.path,
                           reconcile=Ledger())
    result.labs = [LabOutcome(lab.name, lab.file, len(lab.scenario.steps)) for lab in labs.labs]
    cleaning = LabOutcome(CLEAN_UP, "", 2)
    result.labs.append(cleaning)
    try:
        for n, (lab, outcome) in enumerate(zip(labs.labs, result.labs, strict=False), 1):
            await _run_lab(n, lab, outcome, target, journal, result, runs_dir=runs_dir,
                           identities_dir=identities_dir, concurrency=concurrency)
            if result.interrupted or (outcome.status == FAIL and lab.on_failure == "stop"):
                break
    finally:
        try:  # also after an unexpected error, as a single scenario's run does
            if labs.cleanup and not keep:
                await _clean_up(labs, target, journal, result, cleaning)
            else:
                result.kept = True
                cleaning.detail = "kept what the run created (--keep or cleanup: false)"
        finally:
            journal.close()
    return result


async def _run_lab(n: int, lab: Lab, outcome: LabOutcome, target: Target, journal: Journal,
                   result: LabsRunResult, *, runs_dir: Path, identities_dir: Path,
                   concurrency: int) -> None:
    metrics = result.metrics
    names = [lab_prefix(n) + name for name in step_names(lab.scenario.steps)]
    checks_before = len(metrics.checks)
    start = time.perf_counter()
    persistent = Journal.persistent(runs_dir, lab.scenario.name, describe_target(target))
    try:
        async with run_context(lab.scenario, target, run_id=lab_run_id(result.run_id, n),
                               journal=journal,
                               persistent=persistent, identities_dir=identities_dir,
                               concurrency=concurrency, metrics=metrics,
                               devices=build_devices(lab.scenario)) as (ctx, _):
            assert result.reconcile is not None
            ctx.reconcile = result.reconcile  # one account of created/reused/drift for all labs
            try:
                result.interrupted = await run_steps(ctx, names)
            finally:
                await dev.close_all(ctx)
    finally:
        persistent.close()
        outcome.seconds = time.perf_counter() - start
    failed_steps = [metrics.steps[name] for name in names
                    if metrics.steps[name].status not in ("ok", "skipped")]
    failed_checks = [c for c in metrics.checks[checks_before:] if not c.passed]
    if result.interrupted:
        outcome.status, outcome.detail = INTERRUPTED, "interrupted by the user"
    elif failed_steps:
        first = failed_steps[0]
        outcome.status = FAIL
        outcome.detail = f"{first.name.removeprefix(lab_prefix(n))}: {first.status}" + (
            f": {first.detail}" if first.detail else "")
    elif failed_checks:
        outcome.status, outcome.detail = FAIL, f"check failed: {failed_checks[0].name}"
    else:
        outcome.status = PASS


async def _clean_up(labs: Labs, target: Target, journal: Journal, result: LabsRunResult,
                    outcome: LabOutcome) -> None:
    start = time.perf_counter()
    reused = result.reconcile.reused_things if result.reconcile else set()
    names = [n for lab in labs.labs for n in thing_names(lab.scenario) if n not in reused]
    try:
        async with aws_clients(target) as clients:
            result.cleanup = await clean_up(clients, journal)
            left = await leftovers(clients, read_entries(journal.run_dir), names)
    finally:
        outcome.seconds = time.perf_counter() - start
    result.metrics.check("nothing the run created is left", not left,
                         ", ".join(left[:10]) + (" ..." if len(left) > 10 else ""))
    if result.cleanup.failed:
        outcome.status = FAIL
        outcome.detail = f"could not remove {len(result.cleanup.failed)} resource(s)"
    elif left:
        outcome.status, outcome.detail = FAIL, "still there: " + ", ".join(left[:5])
    else:
        # What AWS deletes only later (a thing type, 5 minutes after its deprecation, as the
        # workshop's own clean-up says) is not left behind: the run stays pending for it.
        outcome.status = PASS
        outcome.detail = (f"removed {sum(result.cleanup.removed.values())} resource(s); "
                          "none is left" + "".join(f"; {d}" for d in result.cleanup.deferred))
