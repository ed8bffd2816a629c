"""The driver's handle on the workers of a distributed run: Ray actors, one per shard, and
what happens when one dies (reported once: which shard, how many devices were lost)."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fleetsim.distributed.worker import ShardWorker, WorkerSpec
from fleetsim.errors import UserError
from fleetsim.metrics.recorder import Metrics

OnLoss = Callable[["Shard", str], None]


@dataclass
class Shard:
    k: int
    n: int
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)  # pid, host, node, devices
    last: dict[str, Any] | None = None  # the latest metrics snapshot it gave
    lost: str | None = None  # why it is gone

    @property
    def devices(self) -> int:
        return int(self.info.get("devices", 0))

    def describe(self) -> str:
        where = f" (pid {self.info['pid']} on {self.info['host']})" if self.info else ""
        return f"worker {self.k}/{self.n}{where}"


class Shards:
    """N Ray actors running `ShardWorker`; calls go to the live ones, and a call that finds its
    actor dead marks the shard lost (once) and tells `on_loss`."""

    def __init__(self, spec: WorkerSpec, n: int, *, cpus: float, on_loss: OnLoss,
                 node: str | None = None):
        """`node`: the Ray node every worker must run on (local core listens on 127.0.0.1
        only, so a run against it keeps its workers on the driver's machine)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor_class = ray.remote(ShardWorker)
        options: dict[str, Any] = {"num_cpus": cpus, "max_restarts": 0}
        if node is not None:
            _check_room(node, n, cpus)
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        self.n = n
        self.on_loss = on_loss
        self.shards = [
            Shard(k, n, actor_class.options(**options).remote(replace(spec, shard=k, shards=n)))
            for k in range(1, n + 1)]

    @property
    def alive(self) -> list[Shard]:
        return [s for s in self.shards if s.lost is None]

    async def call(self, method: str, *args: Any, shards: list[Shard] | None = None
                   ) -> dict[int, Any]:
        """`method(*args)` on every live shard (or those given) at once; results by K, for
        those that answered."""
        targets = self.alive if shards is None else [s for s in shards if s.lost is None]
        refs = [getattr(s.actor, method).remote(*args) for s in targets]
        results = await asyncio.gather(*(_settle(ref) for ref in refs))
        answers = {}
        for shard, (ok, value) in zip(targets, results, strict=True):
            if ok:
                answers[shard.k] = value
            else:
                self.lose(shard, value)
        return answers

    def lose(self, shard: Shard, error: BaseException) -> None:
        if shard.lost is not None:
            return
        import ray

        if not isinstance(error, ray.exceptions.RayActorError):
            raise error  # a bug in the worker: its traceback, not a lost worker
        shard.lost = f"{shard.describe()} died: {shard.devices} device(s) lost"
        if shard.last is not None:  # what it measured stays; what it held is gone
            steps = [{**s, "status": "partial", "detail": shard.lost}
                     if s["status"] == "running" else s for s in shard.last["steps"]]
            shard.last = {**shard.last, "gauges": {}, "steps": steps}
        print(f"\nfleetsim: {shard.lost}", file=sys.stderr)
        self.on_loss(shard, shard.lost)

    def snapshots(self) -> list[dict[str, Any]]:
        return [s.last for s in self.shards if s.last is not None]

    def kill(self) -> None:
        import ray

        for shard in self.shards:
            ray.kill(shard.actor, no_restart=True)


def _check_room(node: str, workers: int, cpus: float) -> None:
    """Workers tied to one Ray node must fit in its CPUs: Ray leaves an actor it cannot place
    waiting for ever, and no node added later can take it."""
    import ray

    have = next((n["Resources"].get("CPU", 0.0) for n in ray.nodes()
                 if n["NodeID"] == node and n["Alive"]), 0.0)
    if have < workers * cpus:
        raise UserError(
            f"--workers {workers}: against local core every worker runs on this machine's Ray "
            f"node (local core listens on 127.0.0.1 only), which has {have:g} Ray CPUs and "
            f"they need {workers * cpus:g}; use fewer workers, or start the node with `ray "
            f"start --head --num-cpus={math.ceil(workers * cpus)}`")


async def _settle(ref: Any) -> tuple[bool, Any]:
    try:
        return True, await ref
    except Exception as e:  # RayActorError (a lost worker) or a RayTaskError (a bug)
        return False, e


def lost_devices(metrics: Metrics, shard: Shard) -> None:
    metrics.incr("workers.lost")
    metrics.incr("devices.lost", shard.devices)
