"""`fleetsim run FILE --ray [ADDRESS] --workers N`: one scenario across N processes.

The driver validates the scenario once and runs every step that is not per-device (policies,
groups, types, templates, CAs, jobs, observe, wait, expect) once, in its own process, over
the whole fleet. Per-device steps run on N Ray actors (`ShardWorker`), each holding shard K/N
of every fleet on its own event loop, in lock-step: a step starts on every shard together,
and the next starts when all finished it, so the scenario means the same at N=1 and N=100.
Rates are global: shard K takes the K-th start of a step's schedule and every N-th after it
(`Pacer(share=(K, N))`), so each paces at rate/N and together they keep to the rate.

Every second the driver polls the shards (metrics snapshots, journal entries) and draws one
live view from their merge; at the end it merges their final snapshots into one summary and
removes what every shard created, from the run's journal and its shards' (`shard-K/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fleetsim.control.journal import Journal, shard_dir
from fleetsim.control.targets import describe_target
from fleetsim.distributed.shards import Shard, Shards, lost_devices
from fleetsim.distributed.worker import StepReport, WorkerSpec, process_usage
from fleetsim.engine import devices as dev
from fleetsim.engine.context import RunContext
from fleetsim.engine.runner import (
    RunResult,
    build_devices,
    clean_up,
    mark_skipped,
    run_context,
    run_step,
    shard_range,
    step_names,
)
from fleetsim.errors import UserError
from fleetsim.metrics.progress import Progress
from fleetsim.metrics.recorder import Metrics, merge
from fleetsim.runtime import cancel_and_wait
from fleetsim.scenario.model import Scenario, StepBase
from fleetsim.target import Target

POLL_S = 1.0  # how often the driver merges the shards' snapshots
# A step starts this long after the driver asks, at the same wall-clock time on every shard
# (time for the call to reach each actor), so that their paced schedules interleave into one.
STEP_START_LEAD_S = 0.5


@dataclass(frozen=True)
class RayOptions:
    address: str | None  # None: a local Ray cluster started for the run
    workers: int
    cpus: float = 1.0  # Ray CPUs each worker reserves


@dataclass
class DistributedResult(RunResult):
    workers: int = 1
    lost: list[str] = field(default_factory=list)  # one sentence per worker lost
    merge_s: list[float] = field(default_factory=list)  # time of each live-view merge
    usage: dict[str, dict[str, float]] = field(default_factory=dict)  # CPU, memory by process

    def distributed(self) -> dict[str, Any]:
        """What the JSON summary says of the workers."""
        merges = sorted(self.merge_s) or [0.0]
        return {"workers": self.workers, "workers_lost": self.lost, "usage": self.usage,
                "live_view_merge_ms": {"count": len(self.merge_s),
                                       "mean": 1000 * sum(merges) / len(merges),
                                       "max": 1000 * merges[-1]}}


def connect_ray(address: str | None, workers: int = 1, cpus: float = 1.0) -> bool:
    """Connect to the Ray cluster at `address`, or start a local one; True if this process
    started it (and so stops it). A local cluster gets at least the Ray CPUs its `workers`
    reserve (`cpus` each), whatever the machine's cores: Ray would otherwise leave the
    workers beyond its CPUs waiting for ever (--workers 4 on 2 cores)."""
    try:
        import ray
    except ImportError:
        raise UserError("fleetsim run --ray needs Ray: pip install 'fleetsim[ray]'") from None
    if ray.is_initialized():
        return False
    num_cpus = None if address else max(os.cpu_count() or 1, math.ceil(workers * cpus))
    try:
        ray.init(address=address or None, num_cpus=num_cpus, include_dashboard=False,
                 logging_level=logging.WARNING, configure_logging=True)
    except ConnectionError as e:
        raise UserError(f"--ray {address}: no Ray cluster answers there ({e})") from e
    return True


async def run_distributed(scenario: Scenario, scenario_file: Path, devices: int | None,
                          target: Target, options: RayOptions, *, run_id: str,
                          runs_dir: Path, identities_dir: Path, keep: bool = False,
                          concurrency: int = 64, stream: TextIO | None = None,
                          on_merge: Callable[[Metrics], None] | None = None
                          ) -> DistributedResult:
    """`on_merge` is handed each merge of the live view (what `--metrics-port` serves)."""
    metrics = Metrics()  # what the driver itself measures (its steps, the observer)
    described = describe_target(target)
    journal = Journal.for_run(runs_dir, run_id, described, scenario.name)
    persistent = Journal.persistent(runs_dir, scenario.name, described)
    result = DistributedResult(run_id, scenario.name, target, metrics, journal.path,
                               workers=options.workers)
    spec = WorkerSpec(scenario_file.resolve(), devices, target, run_id, runs_dir.resolve(),
                      identities_dir.resolve(), concurrency, 0, options.workers)
    try:
        async with run_context(scenario, target, run_id=run_id, journal=journal,
                               persistent=persistent, identities_dir=identities_dir,
                               concurrency=concurrency, metrics=metrics,
                               devices=build_devices(scenario)) as (ctx, clients):
            driver = Driver(ctx, spec, options, result)
            try:
                async with LiveView(driver, stream, on_merge) as live:
                    try:
                        result.interrupted = await driver.run()
                    finally:
                        await driver.finish()
                        live.merge_now()
            finally:
                await dev.close_all(ctx)
                driver.shards.kill()
                if scenario.cleanup and not keep:
                    result.cleanup = await clean_up(clients, journal)
    finally:
        journal.close()
        persistent.close()
    result.metrics = Metrics.from_snapshot(driver.merged())
    return result


class Driver:
    """The lock-step loop over the scenario's steps, and what a lost worker changes."""

    def __init__(self, ctx: RunContext, spec: WorkerSpec, options: RayOptions,
                 result: DistributedResult):
        self.ctx = ctx
        self.scenario = ctx.scenario
        self.metrics = ctx.metrics
        self.result = result
        self.failure: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._losses: list[str] = []  # in the current step
        self.shards = Shards(spec, options.workers, cpus=options.cpus, on_loss=self._lost,
                             node=_node_id() if ctx.target.kind == "local" else None)
        self.mirror = Mirror(Path(spec.runs_dir) / spec.run_id, ctx.persistent_journal)
        self.mirror.driver_node = _node_id()

    async def run(self) -> bool:
        """Start the workers and run the steps; True if the user interrupted the run."""
        for k, info in (await self.shards.call("start")).items():
            self.shards.shards[k - 1].info = info
        names = step_names(self.scenario.steps)
        for i, step in enumerate(self.scenario.steps):
            self._losses = []
            if self.failure.done():
                self._record(names[i], "failed", self.failure.result())
                status = "failed"
            elif step.per_device():
                status = await self._sharded(i, names[i])
            else:
                status = await self._driver_step(names[i], step)
            if status in ("failed", "interrupted"):
                mark_skipped(self.metrics, names[i + 1:])
                return status == "interrupted"
        return False

    async def _driver_step(self, name: str, step: StepBase) -> str:
        task = asyncio.ensure_future(run_step(self.ctx, name, step))
        with _absorbing_cancel() as cancelled:
            await asyncio.wait({task, self.failure}, return_when=asyncio.FIRST_COMPLETED)
        if cancelled or not task.done():
            task.cancel()  # Ctrl-C, or a worker lost with on_worker_loss: fail
        status = await task
        if not cancelled and self.failure.done() and status == "interrupted":
            self._record(name, "failed", self.failure.result())
            return "failed"
        return status

    async def _sharded(self, i: int, name: str) -> str:
        start_at = time.time() + STEP_START_LEAD_S
        pending = asyncio.ensure_future(self.shards.call("run_step", i, start_at))
        either: set[asyncio.Future[Any]] = {pending, self.failure}
        with _absorbing_cancel() as cancelled:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not pending.done():
            await self.shards.call("interrupt")
        reports: dict[int, StepReport] = await pending
        for report in reports.values():
            for fleet, failed in report.failed.items():
                for index, why in failed:
                    self.ctx.devices[fleet][index].failed = why
        if cancelled or any(r.status == "interrupted" for r in reports.values()):
            if self.failure.done() and not cancelled:
                self._record(name, "failed", self.failure.result())
                return "failed"
            return "interrupted"
        return await self._settle(i, name, reports)

    async def _settle(self, i: int, name: str, reports: dict[int, StepReport]) -> str:
        status, partial = step_verdict(reports, bool(self._losses),
                                       self.scenario.on_worker_loss)
        for k in partial:
            dropped = sum(len(f) for f in reports[k].failed.values())
            await self.shards.call("settle_step", i, "partial", f"{dropped} device(s) failed",
                                   shards=[self.shards.shards[k - 1]])
        if self._losses or not reports:
            self._record(name, status, "; ".join(self._losses) or "no worker left")
        return status

    def _record(self, name: str, status: str, detail: str) -> None:
        """The driver's word on a step (merged with the shards': the worst status wins)."""
        with self.metrics.step(name) as record:
            record.status, record.detail = status, detail

    def _lost(self, shard: Shard, why: str) -> None:
        lost_devices(self.metrics, shard)
        self.result.lost.append(why)
        self._losses.append(why)
        for fleet in self.scenario.fleets:
            for index in shard_range(fleet.count, (shard.k, shard.n)):
                device = self.ctx.devices[fleet.name][index]
                device.failed = device.failed or why
        if self.scenario.on_worker_loss == "fail" and not self.failure.done():
            self.failure.set_result(why)

    async def poll(self) -> None:
        for k, (snapshot, entries) in (await self.shards.call("poll")).items():
            self._keep(k, snapshot, entries)

    async def finish(self) -> None:
        """Every live worker disconnects its devices and closes; its final figures."""
        for k, (snapshot, entries) in (await self.shards.call("finish")).items():
            self._keep(k, snapshot, entries)
        for k, usage in (await self.shards.call("usage")).items():
            self.result.usage[f"worker {k}"] = usage
        self.result.usage["driver"] = process_usage()

    def _keep(self, k: int, snapshot: dict[str, Any], entries: dict[str, Any]) -> None:
        shard = self.shards.shards[k - 1]
        shard.last = snapshot
        self.mirror.keep(shard, entries)

    def merged(self) -> dict[str, Any]:
        return merge([self.metrics.snapshot(), *self.shards.snapshots()])


def step_verdict(reports: dict[int, StepReport], lost: bool, on_loss: str
                 ) -> tuple[str, list[int]]:
    """One status for a per-device step across shards, as one process would give it (it
    fails only if no device succeeded), and the shards whose own "failed" becomes "partial"
    (all their devices failed, but others succeeded). `lost`: a worker died during it."""
    if not reports:
        return "failed", []
    failed = [k for k, r in reports.items() if r.status == "failed"]
    if len(failed) == len(reports):
        return "failed", []
    partial = bool(failed) or any(r.status == "partial" for r in reports.values())
    status = "partial" if partial or lost else "ok"
    if lost and on_loss == "fail":
        status = "failed"
    return status, failed


class Mirror:
    """Copies of the journals of workers on other machines (their own stay there): `fleetsim
    cleanup` runs where the driver runs. A worker on the driver's machine writes its journal
    into the run's directory itself; at most the last second of a remote one can be missing
    after a crash (its own copy has it)."""

    def __init__(self, run_dir: Path, persistent: Journal):
        self.run_dir = run_dir
        self.persistent = persistent
        self.driver_node = ""
        self._journals: dict[int, Journal] = {}

    def keep(self, shard: Shard, entries: dict[str, list[dict[str, Any]]]) -> None:
        if shard.info.get("node", "") == self.driver_node:
            return
        journal = self._journals.get(shard.k)
        if journal is None:
            journal = self._journals[shard.k] = Journal(shard_dir(self.run_dir, shard.k), {
                "run_id": self.run_dir.name, "copy_of": shard.describe()})
        for which, target in (("run", journal), ("persistent", self.persistent)):
            for entry in entries.get(which, []):
                data = dict(entry)
                kind = data.pop("kind")
                if kind != "run":
                    target.record(kind, **data)


class LiveView:
    """The run's one live line, from the merge of the driver's and every shard's snapshot,
    refreshed every second."""

    def __init__(self, driver: Driver, stream: TextIO | None,
                 on_merge: Callable[[Metrics], None] | None = None):
        self.driver = driver
        self.progress = Progress(Metrics(), stream=stream or sys.stderr)
        self.on_merge = on_merge
        self._task: asyncio.Task[None] | None = None

    def merge_now(self) -> None:
        start = time.perf_counter()
        self.progress.metrics = Metrics.from_snapshot(self.driver.merged())
        if self.on_merge is not None:
            self.on_merge(self.progress.metrics)
        self.driver.result.merge_s.append(time.perf_counter() - start)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if any(s.info for s in self.driver.shards.shards):
                await self.driver.poll()
            self.merge_now()

    async def __aenter__(self) -> LiveView:
        await self.progress.__aenter__()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self.progress.__aexit__(None, None, None)


@contextlib.contextmanager
def _absorbing_cancel() -> Any:
    """Turns a cancellation of the current task (Ctrl-C) into a flag, so that the caller
    still interrupts the workers, gathers their reports and cleans up."""
    cancelled: list[bool] = []

    class Flag:
        def __bool__(self) -> bool:
            return bool(cancelled)

    try:
        yield Flag()
    except asyncio.CancelledError:
        cancelled.append(True)
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())
