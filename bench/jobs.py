"""`python -m bench jobs`: an IoT Jobs rollout through local core, at 5,000 and 10,000 things.

For each size: N things in one thing group, one job on the group with
`jobExecutionsRolloutConfig.maximumPerMinute` (1,000 by default). One agent connection in this
process (an allow-all policy, so it may act for every thing) subscribes to
`$aws/things/+/jobs/notify-next` and answers each QUEUED notification as a device agent does:
`<jobId>/update` IN_PROGRESS, then SUCCEEDED, over MQTT.

Reported: the observed rollout rate (executions notified per minute, first to last
notification) against the configured one, the wall time of the rollout, notify -> SUCCEEDED
latency (p50/p99) and local core's CPU seconds per job execution over the rollout (rollout
timer, notifications, the two updates of each execution and their answers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import ssl
import time
from typing import Any

import aiomqtt

from bench.api_client import ApiClient, run_closed_loop
from bench.core_process import CoreProcess
from bench.devices import provision
from bench.report import Row
from bench.system import cpu_seconds, machine_info, utc_now
from fleetsim.runtime import run_async

GROUP = "bench-fleet"
JOB_ID = "bench-rollout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("jobs")
    group.add_argument("--jobs-things", default="5000,10000",
                       help="comma-separated fleet sizes (default 5000,10000)")
    group.add_argument("--jobs-rate", type=int, default=1000,
                       help="maximumPerMinute of the rollout (default 1000)")


class Agent:
    """Answers every QUEUED notify-next: IN_PROGRESS, then SUCCEEDED; times each execution."""

    def __init__(self, client: aiomqtt.Client, total: int):
        self.client = client
        self.total = total
        self.notified: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.rejected = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        async for message in self.client.messages:
            topic = message.topic.value
            assert isinstance(message.payload, bytes)
            body = json.loads(message.payload)
            thing = topic.split("/")[2]
            if topic.endswith("/notify-next"):
                execution = body.get("execution")
                if execution and execution["status"] == "QUEUED" and thing not in self.notified:
                    self.notified[thing] = time.perf_counter()
                    await self._update(thing, execution["jobId"], "IN_PROGRESS")
            elif topic.endswith("/update/accepted"):
                if body.get("clientToken") == "IN_PROGRESS":
                    await self._update(thing, topic.split("/")[4], "SUCCEEDED")
                else:
                    self.succeeded[thing] = time.perf_counter()
                    if len(self.succeeded) == self.total:
                        self.done.set()
            elif topic.endswith("/rejected"):
                self.rejected += 1

    async def _update(self, thing: str, job_id: str, status: str) -> None:
        await self.client.publish(f"$aws/things/{thing}/jobs/{job_id}/update", json.dumps(
            {"status": status, "clientToken": status}).encode(), qos=0)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


async def _one_size(things: int, rate: int) -> dict[str, Any]:
    with CoreProcess() as core:
        async with ApiClient(core.api_url, concurrency=16) as api:
            names = [f"job-thing-{i:05d}" for i in range(things)]
            await api.call("POST", f"/thing-groups/{GROUP}", {})

            def make(name: str) -> Any:
                async def call() -> None:
                    await api.create_thing(name)
                    await api.call("PUT", "/thing-groups/addThingToThingGroup",
                                   {"thingGroupName": GROUP, "thingName": name})
                return call

            started = time.perf_counter()
            await run_closed_loop(iter([make(n) for n in names]), 16, math.inf)
            setup_s = time.perf_counter() - started
            agent_files = (await provision(api, 1, core.workdir / "agent", "job-agent")).devices[0]
            ctx = ssl.create_default_context(cafile=core.root_ca)
            ctx.load_cert_chain(agent_files.cert_path, agent_files.key_path)
            async with aiomqtt.Client("127.0.0.1", core.mqtt_port, identifier="job-agent",
                                      tls_context=ctx, timeout=30) as client:
                await client.subscribe("$aws/things/+/jobs/notify-next", qos=1)
                agent = Agent(client, things)
                reader = asyncio.create_task(agent.run())
                cpu0, t0 = cpu_seconds(core.pid), time.perf_counter()
                await api.call("PUT", f"/jobs/{JOB_ID}", {
                    "targets": [f"arn:aws:iot:us-east-1:123456789012:thinggroup/{GROUP}"],
                    "document": json.dumps({"operation": "sys-info"}),
                    "jobExecutionsRolloutConfig": {"maximumPerMinute": rate}})
                await asyncio.wait_for(agent.done.wait(), things / rate * 60 * 1.5 + 120)
                wall_s = time.perf_counter() - t0
                cpu_s = cpu_seconds(core.pid) - cpu0
                reader.cancel()
            job = (await api.call("GET", f"/jobs/{JOB_ID}"))["job"]
    notified = sorted(agent.notified.values())
    span = notified[-1] - notified[0] if len(notified) > 1 else 0.0
    observed = (len(notified) - 1) / span * 60 if span else 0.0
    latencies = [(agent.succeeded[t] - agent.notified[t]) * 1000 for t in agent.succeeded]
    return {"things": things, "configured_per_minute": rate,
            "observed_per_minute": round(observed, 1),
            "rate_error_pct": round((observed - rate) / rate * 100, 2),
            "rollout_wall_s": round(wall_s, 1), "setup_s": round(setup_s, 1),
            "notify_to_succeeded_ms": {"p50": round(_pct(latencies, 50), 1),
                                       "p99": round(_pct(latencies, 99), 1)},
            "core_cpu_ms_per_execution": round(cpu_s / things * 1000, 3),
            "rejected": agent.rejected, "job_status": job["status"],
            "succeeded": job["jobProcessDetails"]["numberOfSucceededThings"]}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    sizes = [int(s) for s in str(args.jobs_things).split(",") if s.strip()]
    started = time.perf_counter()
    results = [run_async(_one_size(n, args.jobs_rate)) for n in sizes]
    data: dict[str, Any] = {"when": utc_now(), "machine": machine_info(), "results": results,
                            "elapsed_s": round(time.perf_counter() - started, 1)}
    rows: list[Row] = []
    for r in results:
        n, rate = r["things"], r["configured_per_minute"]
        rows += [Row(f"{n} things: executions notified per minute", r["observed_per_minute"],
                     "/min", f"{rate} +-2%", abs(r["rate_error_pct"]) <= 2),
                 Row(f"{n} things: rollout wall time", r["rollout_wall_s"], "s"),
                 Row(f"{n} things: notify -> SUCCEEDED p99",
                     r["notify_to_succeeded_ms"]["p99"], "ms"),
                 Row(f"{n} things: local core CPU per execution",
                     r["core_cpu_ms_per_execution"], "ms")]
    return data, rows
