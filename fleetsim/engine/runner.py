"""Run a scenario: build the fleet, run the steps in order, clean up, summarise."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fleetsim.control.cleanup import CleanupReport, cleanup
from fleetsim.control.clients import AwsClients, aws_clients
from fleetsim.control.journal import Journal, read_entries
from fleetsim.control.targets import describe_target
from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.reconcile import Ledger
from fleetsim.engine.steps import KINDS, journal_kinds
from fleetsim.errors import UserError
from fleetsim.metrics.recorder import Metrics
from fleetsim.scenario.model import Scenario, StepBase
from fleetsim.scenario.semantics import FLEET_NAMES
from fleetsim.scenario.templating import Template
from fleetsim.target import Target

Shard = tuple[int, int]  # (K, N): the K-th of N slices, 1-based


@dataclass
class RunResult:
    run_id: str
    scenario: str
    target: Target
    metrics: Metrics
    journal: Path
    cleanup: CleanupReport | None = None
    interrupted: bool = False
    reconcile: Ledger | None = None  # what the run created, reused, found drifted
    plan: bool = False  # `--plan`: only described, nothing created or changed
    # With `--plan`: steps that change the registry or devices but cannot say how beforehand.
    unplanned: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (not self.interrupted
                and all(s.status == "ok" for s in self.metrics.steps.values())
                and all(c.passed for c in self.metrics.checks))


def shard_range(count: int, shard: Shard | None) -> range:
    """The K-th of N contiguous slices of 0..count-1 (sizes differ by at most one)."""
    if shard is None:
        return range(count)
    k, n = shard
    return range((k - 1) * count // n, k * count // n)


def build_devices(scenario: Scenario, shard: Shard | None = None) -> dict[str, list[Device]]:
    """Every fleet's devices, or this shard's slice of them; indices and names stay global."""
    fleets = {}
    for fleet in scenario.fleets:
        name_t = Template(fleet.thing_name, FLEET_NAMES)
        fleets[fleet.name] = [
            Device(fleet, i, name_t.render({"fleet": fleet.name, "prefix": fleet.prefix,
                                            "index": i}))
            for i in shard_range(fleet.count, shard)
        ]
    return fleets


@asynccontextmanager
async def run_context(scenario: Scenario, target: Target, *, run_id: str, journal: Journal,
                      persistent: Journal, identities_dir: Path, concurrency: int,
                      metrics: Metrics, devices: dict[str, list[Device]],
                      shards: int = 1, pace_share: tuple[int, int] = (1, 1),
                      ) -> AsyncIterator[tuple[RunContext, AwsClients]]:
    """The clients and the context of a run (or of one process of a distributed run)."""
    async with aws_clients(target, max_connections=concurrency) as clients:
        yield RunContext(run_id, scenario, target, clients.iot, clients.sts, clients.iot_data,
                         journal, persistent, metrics, identities_dir / scenario.name,
                         concurrency, devices, s3=clients.s3, lambda_=clients.lambda_,
                         logs=clients.logs, iam=clients.iam, shards=shards,
                         pace_share=pace_share), clients


async def run_scenario(scenario: Scenario, target: Target, *, run_id: str, runs_dir: Path,
                       identities_dir: Path, keep: bool = False, concurrency: int = 64,
                       metrics: Metrics | None = None, shard: Shard | None = None,
                       plan: bool = False) -> RunResult:
    """Run the scenario; with `plan`, only its reconciling steps, describing what they
    would do (nothing is created, changed or journaled: the run journal is a throw-away)."""
    metrics = metrics or Metrics()
    described = describe_target(target)
    with tempfile.TemporaryDirectory(prefix="fleetsim-plan-") as scratch:
        journal = (Journal(Path(scratch) / run_id, {"run_id": run_id}) if plan
                   else Journal.for_run(runs_dir, run_id, described, scenario.name))
        persistent = Journal.persistent(runs_dir, scenario.name, described)
        result = RunResult(run_id, scenario.name, target, metrics, journal.path, plan=plan)
        try:
            async with run_context(scenario, target, run_id=run_id, journal=journal,
                                   persistent=persistent, identities_dir=identities_dir,
                                   concurrency=concurrency, metrics=metrics,
                                   devices=build_devices(scenario, shard),
                                   shards=shard[1] if shard else 1) as (ctx, clients):
                ctx.reconcile.plan = plan
                result.reconcile = ctx.reconcile
                try:
                    if plan:
                        result.unplanned = await plan_steps(ctx)
                    else:
                        result.interrupted = await run_steps(ctx)
                finally:
                    await dev.close_all(ctx)
                    if scenario.cleanup and not keep and not plan:
                        result.cleanup = await clean_up(clients, journal)
        finally:
            journal.close()
            persistent.close()
    return result


async def clean_up(clients: AwsClients, journal: Journal) -> CleanupReport:
    """Remove what the run's journal (and its shards' journals) lists; mark it cleaned once
    nothing is left. What AWS deletes only later (a thing type) is not waited for: the run
    says when `fleetsim cleanup` can finish it."""
    report = await cleanup(clients, read_entries(journal.run_dir), journal_kinds(),
                           wait=False)
    if report.ok:
        journal.mark_cleaned()
    return report


def step_names(steps: list[StepBase]) -> list[str]:
    """How the summary names each step: its position, then its name or kind."""
    width = len(str(len(steps)))
    return [f"{i + 1:0{width}d}.{step.name or step.kind}" for i, step in enumerate(steps)]


async def run_step(ctx: RunContext, name: str, step: StepBase) -> str:
    """Run one step, recorded as `name`; its status: ok, partial (some devices dropped out),
    failed or interrupted (Ctrl-C: the cancellation is absorbed, so that the caller still
    disconnects, cleans up and reports)."""
    failed_before = {id(d) for d in _failed(ctx)}
    try:
        with ctx.metrics.step(name) as record:
            await KINDS[step.kind].run(ctx, step)
            dropped = [d for d in _failed(ctx) if id(d) not in failed_before]
            if dropped:
                record.status = "partial"
                record.detail = f"{len(dropped)} device(s) failed; first: {dropped[0].failed}"
    except UserError as e:
        record.detail = str(e)
    except asyncio.CancelledError:
        record.status, record.detail = "interrupted", "interrupted by the user"
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the interruption is handled: let clean-up await normally
    return record.status


def mark_skipped(metrics: Metrics, names: list[str]) -> None:
    for name in names:
        with metrics.step(name) as record:
            record.status = "skipped"


async def run_steps(ctx: RunContext, names: list[str] | None = None,
                    span: range | None = None) -> bool:
    """Run the steps (named `names`, by default `step_names`; those at `span`'s positions,
    by default all) until one fails, the steps after it marked skipped; True if the user
    interrupted the run."""
    names = names or step_names(ctx.scenario.steps)
    for i in span if span is not None else range(len(ctx.scenario.steps)):
        status = await run_step(ctx, names[i], ctx.scenario.steps[i])
        if status in ("failed", "interrupted"):
            mark_skipped(ctx.metrics, names[i + 1:])
            return status == "interrupted"
    return False


async def plan_steps(ctx: RunContext, names: list[str] | None = None) -> list[str]:
    """Run the steps (named `names`, by default `step_names`) that can plan (they only
    describe, `ctx.reconcile.plan`); the names of the others that would touch the registry
    or devices, which a plan cannot describe."""
    names = names or step_names(ctx.scenario.steps)
    unplanned = []
    for i, step in enumerate(ctx.scenario.steps):
        if KINDS[step.kind].plans:
            status = await run_step(ctx, names[i], step)
            if status in ("failed", "interrupted"):
                mark_skipped(ctx.metrics, names[i + 1:])
                break
        else:
            mark_skipped(ctx.metrics, [names[i]])
            unplanned.append(names[i])
    return unplanned


def _failed(ctx: RunContext) -> list[Device]:
    return [d for devices in ctx.devices.values() for d in devices if d.failed]
