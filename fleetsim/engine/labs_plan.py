"""`fleetsim run LABS --plan`: every lab planned in order, as `run --plan` plans one scenario
(its reconciling steps only describe: Describe/List/Get calls, nothing created, changed or
journaled), each lab with its own account of what it would create, change and reuse.

The labs are planned on one forward ledger: what an earlier lab would create (a thing group,
a policy, a CA, a thing) is known to the labs after it, so a later lab that declares it too
is told it is "created by lab N" instead of a second create, an account setting an earlier
lab would make (event types enabled) is that lab's change, and what hangs off an earlier
lab's new things and certificates is created, not looked for."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsim.control.journal import Journal
from fleetsim.control.targets import describe_target
from fleetsim.engine import devices as dev
from fleetsim.engine.labs import lab_prefix, lab_run_id
from fleetsim.engine.reconcile import SAMPLE, Ledger, Tally, counts
from fleetsim.engine.runner import RunResult, build_devices, plan_steps, run_context, step_names
from fleetsim.metrics.recorder import Metrics
from fleetsim.scenario.labs import Labs
from fleetsim.target import Target


@dataclass
class LabPlan:
    """One lab's plan."""

    n: int
    name: str
    file: str
    ledger: Ledger
    unplanned: list[str] = field(default_factory=list)  # steps a plan cannot describe
    failed: list[tuple[str, str]] = field(default_factory=list)  # (step, detail)

    @property
    def label(self) -> str:
        return lab_label(self.n, self.name)

    def as_json(self, removes: bool) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "reconcile": self.ledger.summary(),
                "created_by": {lab: {k: t.count for k, t in sorted(kinds.items())}
                               for lab, kinds in self.ledger.earlier.items()},
                "removes": removes and counts(self.ledger.removed),
                "unplanned": self.unplanned,
                "failed": [{"step": s, "detail": d} for s, d in self.failed]}


@dataclass
class LabsPlanResult(RunResult):
    lab_plans: list[LabPlan] = field(default_factory=list)


def lab_label(n: int, name: str) -> str:
    """How a plan names a lab: `lab 03 (Single Device Provisioning)`."""
    return f"lab {n:02d} ({name})"


async def plan_labs(labs: Labs, target: Target, *, run_id: str, runs_dir: Path,
                    identities_dir: Path, concurrency: int = 64,
                    metrics: Metrics | None = None) -> LabsPlanResult:
    """Plan every lab in order; a lab whose plan fails a step is reported and the labs after
    it are planned all the same (each on what the labs before it would have made)."""
    metrics = metrics or Metrics()
    made_by: dict[tuple[str, str], str] = {}
    fresh: set[str] = set()
    settings: dict[str, dict[str, tuple[Any, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="fleetsim-plan-") as scratch:
        journal = Journal(Path(scratch) / run_id, {"run_id": run_id})
        result = LabsPlanResult(run_id, labs.name, target, metrics, journal.path, plan=True)
        try:
            for n, lab in enumerate(labs.labs, 1):
                ledger = Ledger(plan=True, lab=lab_label(n, lab.name), made_by=made_by,
                                fresh=fresh, settings=settings)
                planned = LabPlan(n, lab.name, lab.file, ledger)
                result.lab_plans.append(planned)
                names = [lab_prefix(n) + s for s in step_names(lab.scenario.steps)]
                persistent = Journal.persistent(runs_dir, lab.scenario.name,
                                                describe_target(target))
                try:
                    async with run_context(lab.scenario, target,
                                           run_id=lab_run_id(run_id, n), journal=journal,
                                           persistent=persistent,
                                           identities_dir=identities_dir,
                                           concurrency=concurrency, metrics=metrics,
                                           devices=build_devices(lab.scenario)) as (ctx, _):
                        ctx.reconcile = ledger
                        try:
                            planned.unplanned = [u.removeprefix(lab_prefix(n)) for u in
                                                 await plan_steps(ctx, names)]
                        finally:
                            await dev.close_all(ctx)
                finally:
                    persistent.close()
                planned.failed = [(s.name.removeprefix(lab_prefix(n)), s.detail)
                                  for s in (metrics.steps[name] for name in names)
                                  if s.status == "failed"]
        finally:
            journal.close()
    result.reconcile = total(p.ledger for p in result.lab_plans)
    return result


def total(ledgers: Iterable[Ledger]) -> Ledger:
    """The labs' ledgers added up (what an earlier lab creates is counted once, by it)."""
    out = Ledger(plan=True)
    for ledger in ledgers:
        for mine, theirs in ((out.created, ledger.created), (out.reused, ledger.reused),
                             (out.removed, ledger.removed)):
            for kind, tally in theirs.items():
                into = mine.setdefault(kind, Tally())
                into.count += tally.count
                into.names += tally.names[:max(0, SAMPLE - len(into.names))]
        out.drift += ledger.drift
        out.drift_count += ledger.drift_count
    return out
