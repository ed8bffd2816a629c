"""`fleetsim run FILE`: resolve the target, run the scenario, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fleetsim.control.journal import prune
from fleetsim.control.targets import aws_target, describe_target
from fleetsim.engine.forked import in_child
from fleetsim.engine.labs import LabsRunResult, load_run, run_labs
from fleetsim.engine.reconcile import counts, render_plan
from fleetsim.engine.reconcile import render as render_reconcile
from fleetsim.engine.runner import RunResult, run_scenario
from fleetsim.engine.split import SplitRun, split_point
from fleetsim.errors import UserError
from fleetsim.localcore.launcher import RunningLocalCore, ensure_local_core, local_target
from fleetsim.metrics.progress import Progress
from fleetsim.metrics.recorder import Metrics
from fleetsim.metrics.report import (
    render_labs,
    render_summary,
    summary_document,
    write_atomic,
    write_json,
    write_timeline_csv,
)
from fleetsim.runtime import raise_fd_limit, run_async
from fleetsim.scenario import Scenario
from fleetsim.scenario.labs import Labs
from fleetsim.target import Target

if TYPE_CHECKING:
    from fleetsim.engine.labs_plan import LabsPlanResult

T = TypeVar("T")


def _interrupt_on_signals() -> None:
    """Ctrl-C (or SIGTERM) cancels the current task, which the steps absorb: the run still
    disconnects, cleans up and reports. Twice: exit at once."""
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


async def _guarded(work: Coroutine[Any, Any, T], metrics: Metrics) -> T:
    """One process's part of a split run (engine/split.py), as `_run` runs a whole one."""
    _interrupt_on_signals()
    async with Progress(metrics):
        return await work


def _split(scenario: Scenario | Labs, args: argparse.Namespace) -> int | None:
    """Where a run's device steps start when it runs its API steps in a child process
    (engine/split.py); None to run in one process."""
    if (isinstance(scenario, Labs) or args.plan or args.workers is not None
            or args.metrics_port is not None):
        return None
    first = split_point(scenario.steps)
    return first if first is not None and first < len(scenario.steps) else None


def _run_split(scenario: Scenario, target: Target | None, args: argparse.Namespace,
               run_id: str, metrics: Metrics, first_device: int) -> RunResult:
    if target is None:  # resolved in a child too: the AWS client stays out of this process
        aws = scenario.target
        assert aws.kind == "aws"
        target = in_child(lambda: run_async(aws_target(aws.region, aws.profile, aws.port)))
    return SplitRun(scenario, target, first_device, run_id, args.state_dir / "runs",
                    args.state_dir / "identities", args.concurrency, metrics, args.shard,
                    args.keep).run(lambda work: _guarded(work, metrics))


async def _run(scenario: Scenario | Labs, target: Target | None, args: argparse.Namespace,
               run_id: str, metrics: Metrics) -> RunResult:
    _interrupt_on_signals()
    if target is None:
        assert scenario.target.kind == "aws"
        target = await aws_target(scenario.target.region, scenario.target.profile,
                                  scenario.target.port)
    live = [metrics]  # what a scrape reads: this process' metrics, or the shards' merge
    async with _metrics_endpoint(args, lambda: live[0]):
        return await _run_here_or_on_ray(scenario, target, args, run_id, metrics, live)


@contextlib.asynccontextmanager
async def _metrics_endpoint(args: argparse.Namespace,
                            source: Callable[[], Metrics]) -> AsyncIterator[None]:
    """`--metrics-port`: the Prometheus endpoint, served while the run goes."""
    if args.metrics_port is None:
        yield
        return
    from fleetsim.metrics.exporter import MetricsServer  # aiohttp: only when asked for

    async with MetricsServer(source, args.metrics_host or "127.0.0.1",
                             args.metrics_port) as server:
        print(f"metrics: {server.url} (Prometheus, while the run goes)", flush=True)
        yield


async def _run_here_or_on_ray(scenario: Scenario | Labs, target: Target,
                              args: argparse.Namespace, run_id: str, metrics: Metrics,
                              live: list[Metrics]) -> RunResult:
    if isinstance(scenario, Labs) and args.plan:
        from fleetsim.engine.labs_plan import plan_labs

        return await plan_labs(scenario, target, run_id=run_id,
                               runs_dir=args.state_dir / "runs",
                               identities_dir=args.state_dir / "identities",
                               concurrency=args.concurrency, metrics=metrics)
    if isinstance(scenario, Labs):
        async with Progress(metrics):
            return await run_labs(scenario, target, run_id=run_id,
                                  runs_dir=args.state_dir / "runs",
                                  identities_dir=args.state_dir / "identities", keep=args.keep,
                                  concurrency=args.concurrency, metrics=metrics)
    if args.workers is not None:
        from fleetsim.distributed.driver import RayOptions, run_distributed

        return await run_distributed(
            scenario, args.file, args.devices, target, RayOptions(args.ray, args.workers),
            run_id=run_id, runs_dir=args.state_dir / "runs",
            identities_dir=args.state_dir / "identities", keep=args.keep,
            concurrency=args.concurrency, on_merge=lambda merged: live.__setitem__(0, merged))
    if args.plan:  # only Describe/List/Get calls: quick, and nothing to show progress of
        return await run_scenario(scenario, target, run_id=run_id,
                                  runs_dir=args.state_dir / "runs",
                                  identities_dir=args.state_dir / "identities",
                                  keep=args.keep, concurrency=args.concurrency, metrics=metrics,
                                  shard=args.shard, plan=True)
    async with Progress(metrics):
        return await run_scenario(scenario, target, run_id=run_id,
                                  runs_dir=args.state_dir / "runs",
                                  identities_dir=args.state_dir / "identities",
                                  keep=args.keep, concurrency=args.concurrency, metrics=metrics,
                                  shard=args.shard)


def _load_tls_backend(scenario: Scenario | Labs) -> None:
    """The openssl backend's modules (pyOpenSSL and cryptography, ~10 MB of RSS) imported
    with the run, not at its first connect: every device of the run needs them, so they
    belong to the fixed RSS, not to the first device's (issue 9). Over Python's ssl a run
    never imports them."""
    if scenario.target.tls_backend == "openssl":
        import fleetsim.device.tls_openssl  # noqa: F401


def run_command(args: argparse.Namespace) -> int:
    scenario = load_run(args.file, devices=args.devices)
    _load_tls_backend(scenario)
    if isinstance(scenario, Labs) and (args.workers is not None or args.shard):
        raise UserError(f"{args.file} is made of labs, which run one after the other in one "
                        "process, each on what the labs before it made: --ray and --shard "
                        "work on one scenario, so give them a lab's own file")
    if args.plan and args.workers is not None:
        raise UserError("--plan describes the run from this process: drop --ray/--workers")
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
    first_device = _split(scenario, args)
    try:
        if first_device is not None:
            assert isinstance(scenario, Scenario)
            result = _run_split(scenario, target, args, run_id, metrics, first_device)
        else:
            result = run_async(_run(scenario, target, args, run_id, metrics))
    finally:
        if stop_ray:
            import ray

            ray.shutdown()
        if core is not None:
            core.stop()
    prune(args.state_dir / "runs")
    if args.plan and isinstance(scenario, Labs):
        from fleetsim.engine.labs_plan import LabsPlanResult  # only a plan of labs needs it

        assert isinstance(result, LabsPlanResult)
        return _report_labs_plan(result, args, removes=scenario.cleanup and not args.keep)
    if result.plan:
        return _report_plan(result, args, removes=scenario.cleanup and not args.keep)
    return _report(result, args, args.file.read_text(encoding="utf-8", errors="replace"))


def _report_plan(result: RunResult, args: argparse.Namespace, removes: bool) -> int:
    """What `--plan` found: the plan, and the steps it could not describe."""
    assert result.reconcile is not None
    snapshot = result.metrics.snapshot()
    print(f"\nfleetsim run --plan {result.scenario} on {result.target.kind}")
    print(render_plan(result.reconcile, removes), end="")
    if result.unplanned:
        print("  not described (they act when the scenario runs): "
              + ", ".join(result.unplanned))
    failed = [s for s in snapshot["steps"] if s["status"] == "failed"]
    for step in failed:
        print(f"  {step['name']}: {step['detail']}")
    if args.json:
        write_json(args.json, snapshot, run_id=result.run_id, scenario=result.scenario,
                   target=describe_target(result.target), plan=True, passed=not failed,
                   reconcile=result.reconcile.summary(), unplanned=result.unplanned,
                   removes=removes and counts(result.reconcile.removed))
        print(f"Plan written to {args.json}")
    return 1 if failed else 0


def _report_labs_plan(result: LabsPlanResult, args: argparse.Namespace, removes: bool) -> int:
    """What `--plan` of a file of labs found: each lab's plan in order (what an earlier lab
    would create named by that lab), then the total."""
    assert result.reconcile is not None
    print(f"\nfleetsim run --plan {result.scenario} on {result.target.kind}: "
          f"{len(result.lab_plans)} labs (nothing was created or changed)")
    for lab in result.lab_plans:
        print(render_plan(lab.ledger, removes,
                          title=f"Lab {lab.n:02d}: {lab.name} ({Path(lab.file).name})"),
              end="")
        if lab.unplanned:
            print("  not described (they act when the lab runs): " + ", ".join(lab.unplanned))
        for step, detail in lab.failed:
            print(f"  {step}: {detail}")
    print(render_plan(result.reconcile, removes, title="Total"), end="")
    failed = any(lab.failed for lab in result.lab_plans)
    if args.json:
        write_json(args.json, result.metrics.snapshot(), run_id=result.run_id,
                   scenario=result.scenario, target=describe_target(result.target), plan=True,
                   passed=not failed, reconcile=result.reconcile.summary(),
                   removes=removes and counts(result.reconcile.removed),
                   labs=[lab.as_json(removes) for lab in result.lab_plans])
        print(f"Plan written to {args.json}")
    return 1 if failed else 0


def _report(result: RunResult, args: argparse.Namespace, scenario_text: str) -> int:
    snapshot = result.metrics.snapshot()
    verdict = "PASSED" if result.passed else ("INTERRUPTED" if result.interrupted else "FAILED")
    print(render_summary(snapshot, title=f"\nfleetsim run {result.run_id}: {result.scenario} "
                                         f"on {result.target.kind} — {verdict}"))
    if result.reconcile is not None:
        print(render_reconcile(result.reconcile), end="")
    cleanup = None
    if result.cleanup is not None:
        cleanup = {"removed": result.cleanup.removed, "failed": result.cleanup.failed}
        print(f"Clean-up: {result.cleanup.describe()}")
        for failure in result.cleanup.failed:
            print(f"  could not remove {failure}")
        for deferred in result.cleanup.deferred:
            print(f"  {deferred}")
        if result.cleanup.failed:
            print(f"  run `fleetsim cleanup --run {result.run_id}` to retry")
    else:
        print(f"Kept what the run created; remove it with `fleetsim cleanup --run "
              f"{result.run_id}`")
    extra = {"run_id": result.run_id, "scenario": result.scenario, "shard": args.shard,
             **getattr(result, "distributed", lambda: {})(),
             "target": describe_target(result.target), "passed": result.passed,
             "interrupted": result.interrupted, "cleanup": cleanup,
             "journal": str(result.journal), "scenario_text": scenario_text,
             "reconcile": result.reconcile.summary() if result.reconcile else None}
    if isinstance(result, LabsRunResult):
        extra["labs"] = [lab.as_json() for lab in result.labs]
        print(render_labs(extra["labs"]))
    if args.json:
        write_json(args.json, snapshot, **extra)
        print(f"Summary written to {args.json}")
    if args.html:
        from fleetsim.metrics.html import render_report

        write_atomic(args.html, render_report(summary_document(snapshot, **extra)))
        print(f"HTML report written to {args.html}")
    if args.timeline:
        write_timeline_csv(args.timeline, snapshot)
    if result.interrupted:
        return 130
    return 0 if result.passed else 1
