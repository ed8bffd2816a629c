"""`fleetsim run FILE`: resolve the target, run the scenario, report."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
import time

from fleetsim.control.journal import prune
from fleetsim.control.targets import aws_target, describe_target
from fleetsim.engine.runner import RunResult, run_scenario
from fleetsim.engine.steps import load_scenario
from fleetsim.localcore.launcher import RunningLocalCore, ensure_local_core, local_target
from fleetsim.metrics.progress import Progress
from fleetsim.metrics.recorder import Metrics
from fleetsim.metrics.report import render_summary, write_json, write_timeline_csv
from fleetsim.runtime import raise_fd_limit, run_async
from fleetsim.scenario import Scenario
from fleetsim.target import Target


async def _run(scenario: Scenario, target: Target | None, args: argparse.Namespace,
               run_id: str, metrics: Metrics) -> RunResult:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def interrupt() -> None:
        if task.cancelling():
            print("\nfleetsim: interrupted twice, exiting now", file=sys.stderr)
            raise SystemExit(130)
        print("\nfleetsim: interrupting: disconnecting devices and writing the report "
              "(Ctrl-C again to exit at once)", file=sys.stderr)
        task.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    loop.add_signal_handler(signal.SIGTERM, interrupt)
    if target is None:
        assert scenario.target.kind == "aws"
        target = await aws_target(scenario.target.region, scenario.target.profile,
                                  scenario.target.port)
    if args.workers is not None:
        from fleetsim.distributed.driver import RayOptions, run_distributed

        return await run_distributed(
            scenario, args.file, args.devices, target, RayOptions(args.ray, args.workers),
            run_id=run_id, runs_dir=args.state_dir / "runs",
            identities_dir=args.state_dir / "identities", keep=args.keep,
            concurrency=args.concurrency)
    async with Progress(metrics):
        return await run_scenario(scenario, target, run_id=run_id,
                                  runs_dir=args.state_dir / "runs",
                                  identities_dir=args.state_dir / "identities",
                                  keep=args.keep, concurrency=args.concurrency, metrics=metrics,
                                  shard=args.shard)


def run_command(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.file, devices=args.devices)
    shard = f"-shard{args.shard[0]}of{args.shard[1]}" if args.shard else ""
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{scenario.name}{shard}-{secrets.token_hex(3)}"
    raise_fd_limit()
    core: RunningLocalCore | None = None
    target: Target | None = None
    if scenario.target.kind == "local":
        core = ensure_local_core(args.state_dir / "localcore", api_port=args.api_port,
                                 mqtt_port=args.mqtt_port)
        target = local_target(core)
        print(f"local core: API {target.api_url}, MQTT {target.mqtt_host}:{target.mqtt_port}"
              + (" (started for this run)" if core.process else " (already running)"))
    metrics = Metrics()
    stop_ray = False
    if args.workers is not None:
        from fleetsim.distributed.driver import connect_ray

        stop_ray = connect_ray(args.ray, args.workers)
    try:
        result = run_async(_run(scenario, target, args, run_id, metrics))
    finally:
        if stop_ray:
            import ray

            ray.shutdown()
        if core is not None:
            core.stop()
    prune(args.state_dir / "runs")
    return _report(result, args)


def _report(result: RunResult, args: argparse.Namespace) -> int:
    snapshot = result.metrics.snapshot()
    verdict = "PASSED" if result.passed else ("INTERRUPTED" if result.interrupted else "FAILED")
    print(render_summary(snapshot, title=f"\nfleetsim run {result.run_id}: {result.scenario} "
                                         f"on {result.target.kind} — {verdict}"))
    cleanup = None
    if result.cleanup is not None:
        cleanup = {"removed": result.cleanup.removed, "failed": result.cleanup.failed}
        print(f"Clean-up: {result.cleanup.describe()}")
        for failure in result.cleanup.failed:
            print(f"  could not remove {failure}")
        if result.cleanup.failed:
            print(f"  run `fleetsim cleanup --run {result.run_id}` to retry")
    else:
        print(f"Kept what the run created; remove it with `fleetsim cleanup --run "
              f"{result.run_id}`")
    extra = {"run_id": result.run_id, "scenario": result.scenario, "shard": args.shard,
             **getattr(result, "distributed", lambda: {})(),
             "target": describe_target(result.target), "passed": result.passed,
             "interrupted": result.interrupted, "cleanup": cleanup,
             "journal": str(result.journal)}
    if args.json:
        write_json(args.json, snapshot, **extra)
        print(f"Summary written to {args.json}")
    if args.timeline:
        write_timeline_csv(args.timeline, snapshot)
    if result.interrupted:
        return 130
    return 0 if result.passed else 1
