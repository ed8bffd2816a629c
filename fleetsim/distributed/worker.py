"""One process of a distributed run: shard K/N of every fleet, on its own event loop.

`ShardWorker` knows nothing of Ray: the driver wraps it in a Ray actor (`ray.remote`), whose
event loop runs these coroutines (every method is a coroutine: Ray refuses actors that mix
synchronous and asynchronous methods). The driver calls `start`, then `run_step(i)` for each
per-device step (every shard together), `poll` every second (metrics snapshot and journal
entries written since the last poll), and `finish` (disconnect, close; the final snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsim.collector import survivors_frozen
from fleetsim.control.journal import Journal, persistent_dir, shard_dir
from fleetsim.control.targets import describe_target
from fleetsim.engine import devices as dev
from fleetsim.engine.context import RunContext
from fleetsim.engine.runner import build_devices, run_context, run_step, step_names
from fleetsim.engine.steps import load_scenario
from fleetsim.metrics.recorder import Metrics
from fleetsim.runtime import raise_fd_limit
from fleetsim.target import Target


@dataclass(frozen=True)
class WorkerSpec:
    """What the driver tells each worker (plain values: it crosses process boundaries)."""

    scenario_file: Path  # read again by the worker: the same path on every node
    devices: int | None  # --devices
    target: Target
    run_id: str
    runs_dir: Path
    identities_dir: Path
    concurrency: int
    shard: int  # K, 1-based
    shards: int  # N


class TappedJournal(Journal):
    """A journal that also keeps what it wrote since it was last `drain`ed, for a driver on
    another machine to keep a copy of (`fleetsim cleanup` runs where the driver runs)."""

    def __init__(self, run_dir: Path, header: dict[str, Any]):
        super().__init__(run_dir, header)
        self.written: list[dict[str, Any]] = []

    def _write(self, entry: dict[str, Any]) -> None:
        super()._write(entry)
        self.written.append(entry)

    def drain(self) -> list[dict[str, Any]]:
        written, self.written = self.written, []
        return written


@dataclass
class StepReport:
    status: str  # ok | partial | failed | interrupted
    detail: str
    failed: dict[str, list[tuple[int, str]]]  # devices that dropped out in it: fleet -> (i, why)


class ShardWorker:
    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.metrics = Metrics()
        self._stack = contextlib.AsyncExitStack()
        self._ctx: RunContext | None = None
        self._journals: dict[str, TappedJournal] = {}
        self._step: asyncio.Task[str] | None = None
        self._names: list[str] = []

    async def start(self) -> dict[str, Any]:
        """Build this shard's devices, clients and journals; what the driver needs to know of
        the worker: where it runs and how many devices it holds."""
        raise_fd_limit()
        self._stack.enter_context(survivors_frozen())  # as `run_async` does
        spec = self.spec
        scenario = load_scenario(spec.scenario_file, devices=spec.devices)
        described = describe_target(spec.target)
        header = {"target": described, "scenario": scenario.name}
        run_dir = shard_dir(spec.runs_dir / spec.run_id, spec.shard)
        journal = TappedJournal(run_dir, {"run_id": spec.run_id, **header,
                                          "shard": spec.shard, "shards": spec.shards,
                                          "pid": os.getpid(), "host": socket.gethostname()})
        # One persistent journal for all (the driver renewed it if it had been cleaned):
        # every process appends whole lines to it.
        shared = persistent_dir(spec.runs_dir, scenario.name, described)
        persistent = TappedJournal(shared, {"run_id": shared.name, **header})
        self._journals = {"run": journal, "persistent": persistent}
        self._stack.callback(journal.close)
        self._stack.callback(persistent.close)
        devices = build_devices(scenario, (spec.shard, spec.shards))
        self._ctx, _ = await self._stack.enter_async_context(run_context(
            scenario, spec.target, run_id=spec.run_id, journal=journal, persistent=persistent,
            identities_dir=spec.identities_dir, concurrency=spec.concurrency,
            metrics=self.metrics, devices=devices, pace_share=(spec.shard, spec.shards)))
        self._names = step_names(scenario.steps)
        return {"pid": os.getpid(), "host": socket.gethostname(), "node": _node_id(),
                "devices": sum(len(d) for d in devices.values())}

    async def run_step(self, i: int, start_at: float | None = None) -> StepReport:
        """Run step i on this shard's devices, its pacing counted from `start_at` (epoch
        seconds, the same on every shard); interrupted by `interrupt`."""
        ctx = self._context()
        ctx.pace_origin = start_at
        before = {(f, d.index) for f, ds in ctx.devices.items() for d in ds if d.failed}
        self._step = asyncio.ensure_future(
            run_step(ctx, self._names[i], ctx.scenario.steps[i]))
        try:
            status = await asyncio.shield(self._step)
        finally:
            self._step = None
        failed: dict[str, list[tuple[int, str]]] = {}
        for fleet, ds in ctx.devices.items():
            for d in ds:
                if d.failed and (fleet, d.index) not in before:
                    failed.setdefault(fleet, []).append((d.index, d.failed))
        return StepReport(status, self.metrics.steps[self._names[i]].detail, failed)

    async def interrupt(self) -> None:
        """Ctrl-C on the driver: the running step stops as it would on Ctrl-C in one process."""
        if self._step is not None:
            self._step.cancel()

    async def settle_step(self, i: int, status: str, detail: str) -> None:
        """The driver's verdict on step i across shards (all of this shard's devices failed,
        but others succeeded: partial, as in one process)."""
        record = self.metrics.steps[self._names[i]]
        record.status, record.detail = status, detail

    async def poll(self) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """This shard's metrics now, and the journal entries written since the last poll."""
        return self.metrics.snapshot(), {k: j.drain() for k, j in self._journals.items()}

    async def finish(self) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """Disconnect every device and close the clients and journals; the final poll."""
        if self._ctx is not None:
            await dev.close_all(self._ctx)
        await self._stack.aclose()
        return await self.poll()

    async def pid(self) -> int:
        return os.getpid()

    async def usage(self) -> dict[str, float]:
        """CPU seconds and peak memory of this worker's process so far."""
        return process_usage()

    def _context(self) -> RunContext:
        if self._ctx is None:
            raise RuntimeError("ShardWorker.start was not called")
        return self._ctx


def process_usage() -> dict[str, float]:
    self = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": round(self.ru_utime + self.ru_stime, 3), "max_rss_mb": self.ru_maxrss / 1024}


def _node_id() -> str:
    """The Ray node this runs on ("" outside Ray)."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # not in a Ray worker
        return ""
