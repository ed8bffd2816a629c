"""A run in two processes, so that the device process never holds the AWS client (issue 9:
fixed RSS of the device process).

A scenario whose steps are API steps (`StepKind.phase == "api"`: they call the AWS API and
leave no session, observer or background task behind) followed only by device steps
(`phase == "device"`: they use the devices' identities and sessions, never the AWS API) runs
its API steps in a forked child (`forked.in_child`) that exits before the first device
step, and its clean-up in another one after the last: the device process never imports
aioboto3, aiobotocore, aiohttp or botocore's service models (~45 MB, the `iot` client ~13 MB
more). The child hands back what the device steps and the summary need (`Handover`): each
device's certificate, identity and failure, the metrics, the reconcile ledger and the values
later steps read. Both processes write the same journals (write-ahead, appended, as the
shards of a run do), so a crash in either leaves what `fleetsim cleanup` needs.

Anything else (a device step before an API step, a step of neither phase, labs, --plan,
--ray, --metrics-port) runs in one process, as before.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsim.control.cleanup import CleanupReport
from fleetsim.control.clients import aws_clients
from fleetsim.control.journal import Journal
from fleetsim.control.targets import describe_target
from fleetsim.device import DeviceIdentity
from fleetsim.engine import devices as dev
from fleetsim.engine.context import RunContext
from fleetsim.engine.forked import in_child
from fleetsim.engine.preloaded import collector_paused, preload
from fleetsim.engine.reconcile import Ledger
from fleetsim.engine.runner import (
    RunResult,
    Shard,
    build_devices,
    clean_up,
    run_context,
    run_steps,
    step_names,
)
from fleetsim.engine.steps import KINDS
from fleetsim.metrics.recorder import Metrics
from fleetsim.runtime import run_async
from fleetsim.scenario.model import Scenario, StepBase
from fleetsim.target import Target

# Runs a phase's coroutine on the event loop the way the command wants (Ctrl-C handling,
# the progress line): `guard(coroutine)` is awaited in place of `coroutine`.
Guard = Callable[[Coroutine[Any, Any, Any]], Coroutine[Any, Any, Any]]
# An identity as plain values (pickled 3x faster than the dataclass and its Paths: 10,000
# of them cross the pipe at a 10,000-device start-up).
FlatIdentity = tuple[Any, ...]
# A device's (certificate ARN, id, identity, failed), or KEPT: it holds its stored identity,
# which the device process read before it forked the child (engine/preloaded.py).
DeviceState = tuple[str | None, str | None, FlatIdentity | None, str | None] | int
KEPT = 1


def _flat(identity: DeviceIdentity | None) -> FlatIdentity | None:
    if identity is None:
        return None
    return (identity.fleet, identity.index, identity.thing_name, identity.key_type,
            *identity.in_memory(), identity.certificate_id, identity.certificate_arn,
            identity.folder, identity.certificate_stored)


def _identity(flat: FlatIdentity | None) -> DeviceIdentity | None:
    if flat is None:
        return None
    return DeviceIdentity(*flat)


def split_point(steps: list[StepBase]) -> int | None:
    """Where the device steps start, when API steps come first and device steps after them
    only (either part may be empty); None when they interleave or a step is of neither."""
    phases = [KINDS[step.kind].phase for step in steps]
    first = next((i for i, phase in enumerate(phases) if phase != "api"), len(phases))
    if all(phase == "device" for phase in phases[first:]):
        return first
    return None


@dataclass
class Handover:
    """What the API steps leave for the device steps and the summary."""

    devices: dict[str, list[DeviceState]]  # (certificate ARN, id, identity, failed) by fleet
    metrics: dict[str, Any]  # the snapshot, every step so far recorded
    ledger: Ledger
    stopped: bool  # a step failed or was interrupted: the later ones are marked skipped
    interrupted: bool
    values: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    journaled: set[tuple[str, ...]] = field(default_factory=set)

    @classmethod
    def of(cls, ctx: RunContext, stopped: bool, interrupted: bool) -> Handover:
        preloaded = ctx.preloaded
        return cls({name: [KEPT if preloaded is not None and preloaded.kept(d) else
                           (d.certificate_arn, d.certificate_id, _flat(d.identity), d.failed)
                           for d in devices] for name, devices in ctx.devices.items()},
                   ctx.metrics.snapshot(), ctx.reconcile, stopped, interrupted,
                   ctx.values, ctx.jobs, ctx.journaled)

    def apply(self, ctx: RunContext) -> None:
        """Give the device process's devices what the child's ended with; a KEPT device's
        identity is the one `ctx.preloaded` holds (the same the child held)."""
        for name, states in self.devices.items():
            for d, state in zip(ctx.devices[name], states, strict=True):
                if isinstance(state, int):
                    assert ctx.preloaded is not None
                    ctx.preloaded.restore(d)
                    continue
                arn, cert_id, identity, failed = state
                d.certificate_arn, d.certificate_id, d.identity, d.failed = (
                    arn, cert_id, _identity(identity), failed)
        ctx.metrics.restore(self.metrics)
        # The things reused, as the devices' own names rather than the copies unpickled
        # (one per device at a start-up re-using stored identities).
        if self.ledger.reused_things:
            names = {d.thing_name: d.thing_name for devices in ctx.devices.values()
                     for d in devices}
            self.ledger.reused_things = {names.get(t, t) for t in self.ledger.reused_things}
        ctx.reconcile, ctx.values, ctx.jobs, ctx.journaled = (
            self.ledger, self.values, self.jobs, self.journaled)


@dataclass
class SplitRun:
    """One run of `scenario` split at `first_device` (see `split_point`)."""

    scenario: Scenario
    target: Target
    first_device: int
    run_id: str
    runs_dir: Path
    identities_dir: Path
    concurrency: int
    metrics: Metrics
    shard: Shard | None = None
    keep: bool = False

    def run(self, guard: Guard) -> RunResult:
        """The API steps in a child, the device steps here, the clean-up in a child."""
        scenario = self.scenario
        described = describe_target(self.target)
        journal = Journal.for_run(self.runs_dir, self.run_id, described, scenario.name)
        persistent = Journal.persistent(self.runs_dir, scenario.name, described)
        result = RunResult(self.run_id, scenario.name, self.target, self.metrics,
                           journal.path)
        names = step_names(scenario.steps)
        exiting = False  # asked to exit at once (Ctrl-C twice): no clean-up
        # Until the device steps start, the collector leaves alone what is there now (the
        # modules, the scenario): building 10,000 devices and reading their stored identities
        # would otherwise walk it all again (a full collection, ~40 ms) for nothing.
        gc.freeze()
        try:
            try:
                with collector_paused():  # what they make all lives on: nothing to find
                    ctx = RunContext(self.run_id, scenario, self.target, None, None, None,
                                     journal, persistent, self.metrics,
                                     self.identities_dir / scenario.name, self.concurrency,
                                     build_devices(scenario, self.shard),
                                     shards=self.shard[1] if self.shard else 1)
                    if self.first_device > 0:
                        # Read here, inherited by the child: only what it changes comes back.
                        ctx.preloaded = preload(ctx.identities_dir, ctx.devices)
                stopped = False
                if self.first_device > 0:
                    handover = in_child(
                        lambda: run_async(guard(self._api_steps(ctx, names))))
                    handover.apply(ctx)
                    ctx.preloaded = None  # the device steps read the files (changed since)
                    stopped, result.interrupted = handover.stopped, handover.interrupted
                gc.unfreeze()  # the device steps collect as they always did
                result.reconcile = ctx.reconcile
                if not stopped:
                    result.interrupted = run_async(guard(self._device_steps(ctx, names)))
            except SystemExit:
                exiting = True
                raise
            finally:
                if scenario.cleanup and not self.keep and not exiting:
                    journal.close()
                    result.cleanup = in_child(
                        lambda: run_async(guard(self._clean_up(journal))))
        finally:
            gc.unfreeze()
            journal.close()
            persistent.close()
        return result

    async def _api_steps(self, base: RunContext, names: list[str]) -> Handover:
        async with run_context(self.scenario, self.target, run_id=self.run_id,
                               journal=base.journal, persistent=base.persistent_journal,
                               identities_dir=self.identities_dir,
                               concurrency=self.concurrency, metrics=self.metrics,
                               devices=base.devices, shards=base.shards) as (ctx, _):
            ctx.preloaded = base.preloaded
            # The AWS clients (botocore's service models: ~10^5 objects) live as long as
            # this child: its collector leaves them alone (as forked.py the parent's).
            gc.freeze()
            try:
                interrupted = await run_steps(ctx, names, range(self.first_device))
            finally:
                await dev.close_all(ctx)
            stopped = any(s.status in ("failed", "interrupted")
                          for s in self.metrics.steps.values())
            return Handover.of(ctx, stopped, interrupted)

    async def _device_steps(self, ctx: RunContext, names: list[str]) -> bool:
        try:
            return await run_steps(ctx, names,
                                   range(self.first_device, len(self.scenario.steps)))
        finally:
            await dev.close_all(ctx)

    async def _clean_up(self, journal: Journal) -> CleanupReport:
        async with aws_clients(self.target, max_connections=self.concurrency) as clients:
            return await clean_up(clients, journal)
