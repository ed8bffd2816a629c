"""Run a scenario: build the fleet, run the steps in order, clean up, summarise."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from fleetsim.control.cleanup import CleanupReport, cleanup
from fleetsim.control.clients import aws_clients
from fleetsim.control.journal import Journal, read_entries
from fleetsim.control.targets import describe_target
from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.steps import JOURNAL_KINDS, KINDS
from fleetsim.errors import UserError
from fleetsim.metrics.recorder import Metrics
from fleetsim.scenario.model import Scenario
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


async def run_scenario(scenario: Scenario, target: Target, *, run_id: str, runs_dir: Path,
                       identities_dir: Path, keep: bool = False, concurrency: int = 64,
                       metrics: Metrics | None = None, shard: Shard | None = None) -> RunResult:
    metrics = metrics or Metrics()
    described = describe_target(target)
    journal = Journal.for_run(runs_dir, run_id, described, scenario.name)
    persistent = Journal.persistent(runs_dir, scenario.name, described)
    result = RunResult(run_id, scenario.name, target, metrics, journal.path)
    try:
        async with aws_clients(target, max_connections=concurrency) as clients:
            ctx = RunContext(run_id, scenario, target, clients.iot, clients.sts, clients.iot_data,
                             journal,
                             persistent, metrics, identities_dir / scenario.name, concurrency,
                             build_devices(scenario, shard), s3=clients.s3,
                             lambda_=clients.lambda_, logs=clients.logs,
                             shards=shard[1] if shard else 1)
            try:
                result.interrupted = await _run_steps(ctx)
            finally:
                await dev.close_all(ctx)
                if scenario.cleanup and not keep:
                    result.cleanup = await cleanup(clients, read_entries(journal.run_dir),
                                                   JOURNAL_KINDS)
                    if result.cleanup.ok:
                        journal.mark_cleaned()
    finally:
        journal.close()
        persistent.close()
    return result


async def _run_steps(ctx: RunContext) -> bool:
    """Run the steps until one fails; True if the user interrupted the run."""
    steps = ctx.scenario.steps
    width = len(str(len(steps)))
    done = 0
    interrupted = False
    for i, step in enumerate(steps):
        failed_before = _failed_count(ctx)
        try:
            with ctx.metrics.step(f"{i + 1:0{width}d}.{step.name or step.kind}") as record:
                await KINDS[step.kind].run(ctx, step)
                dropped = _failed_count(ctx) - failed_before
                if dropped:
                    record.status, record.detail = "partial", f"{dropped} device(s) failed"
        except UserError as e:
            record.detail = str(e)
            break
        except asyncio.CancelledError:
            # Ctrl-C (see commands/run.py): stop here, but still disconnect, clean up, report.
            record.status, record.detail = "interrupted", "interrupted by the user"
            interrupted = True
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the interruption is handled: let clean-up await normally
            break
        finally:
            done = i + 1
    for i, step in enumerate(steps[done:], start=done):
        with ctx.metrics.step(f"{i + 1:0{width}d}.{step.name or step.kind}") as record:
            record.status = "skipped"
    return interrupted


def _failed_count(ctx: RunContext) -> int:
    return sum(1 for devices in ctx.devices.values() for d in devices if d.failed)
