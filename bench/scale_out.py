"""Scale-out bench (`python -m bench ray`): one scenario in one process, then with
`--ray --workers 2` (a local Ray cluster the run starts), against local core in its own
process (temp state dir, ephemeral ports).

    python -m bench ray                         # 1,000 devices; ~6 min on 2 busy cores
    python -m bench ray --ray-devices 10000 --ray-workers 2 4

Per run: connects/s and msgs/s (devices / connect step, messages / telemetry step), CPU
seconds of every process (the single process; each Ray worker and the driver), CPU per
device (provisioning + connect) and per message, the driver's peak memory, the cost of one
live-view merge (the driver merges every shard's snapshot each second), and the rate error
of a global `rate: 50/s` connect step (achieved / configured - 1). Results:
bench/results/ray.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fleet_provision import start_core
from bench.report import Row

ROOT = Path(__file__).resolve().parent.parent
RATE = 50  # connects per second, across all workers (one this machine can hold)
MESSAGES = 5  # per device
SCENARIO = """\
name: bench-ray
fleets:
  - {{name: d, prefix: benchray, count: {devices}, thing_name: "{{prefix}}-{{index:06d}}"}}
steps:
  - create_policy:
      policy: bench-ray
      document: {{Version: "2012-10-17", Statement: [{{Effect: Allow, Action: "iot:*",
                                                       Resource: "*"}}]}}
  - provision: {{fleet: d, policy: bench-ray, pacing: {{concurrency: 32}}}}
  - connect: {{fleet: d, pacing: {{rate: {rate}/s, concurrency: 200}}}}
  - publish: {{fleet: d, topic: "bench/{{thing_name}}", payload: {{v: 1}}, count: {messages}}}
  - disconnect: d
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ray")
    group.add_argument("--ray-devices", type=int, default=1000)
    group.add_argument("--ray-workers", type=int, nargs="+", default=[2])


def _run(workdir: Path, state: Path, devices: int, workers: int | None,
         env: dict[str, str]) -> dict[str, Any]:
    scenario = workdir / "bench-ray.yaml"
    scenario.write_text(SCENARIO.format(devices=devices, rate=RATE, messages=MESSAGES))
    out = workdir / f"summary-{workers or 1}.json"
    args = [sys.executable, "-m", "fleetsim", "run", str(scenario), "--state-dir", str(state),
            "--json", str(out)]
    if workers is not None:
        args += ["--ray", "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"fleetsim run exited {proc.returncode}: {proc.stdout[-1500:]}"
                           f"{proc.stderr[-1500:]}")
    summary = json.loads(out.read_text())
    steps = {s["name"].split(".", 1)[1]: s["duration_s"] for s in summary["metrics"]["steps"]}
    usage = summary.get("usage") or {
        "process": {"cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime
                                   - before.ru_stime, 3),
                    "max_rss_mb": after.ru_maxrss / 1024}}
    cpu = sum(u["cpu_s"] for u in usage.values())
    messages = devices * MESSAGES
    connects_per_s = devices / steps["connect"]
    return {
        "workers": workers or 1, "ray": workers is not None, "wall_s": round(wall, 1),
        "connects_per_s": round(connects_per_s, 1),
        "rate_error": round(connects_per_s / RATE - 1, 4),
        "msgs_per_s": round(messages / steps["publish"], 1),
        "cpu_s": round(cpu, 2), "cpu_ms_per_device": round(1000 * cpu / devices, 2),
        "usage": usage, "steps_s": steps,
        "live_view_merge_ms": summary.get("live_view_merge_ms"),
    }


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.monotonic()
    data: dict[str, Any] = {"devices": args.ray_devices, "rate": RATE, "runs": [],
                            "errors": {}, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        workdir = Path(tmp)
        state = workdir / "state"
        core = start_core(state / "localcore", workdir / "core.log")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        try:
            for workers in [None, *args.ray_workers]:
                name = f"ray x{workers}" if workers else "one process"
                try:
                    data["runs"].append(_run(workdir, state, args.ray_devices, workers, env))
                except Exception as e:  # a failed part is reported, not fatal
                    data["errors"][name] = str(e)
        finally:
            core.stop()
    data["elapsed_s"] = round(time.monotonic() - started, 1)
    rows: list[Row] = []
    for r in data["runs"]:
        name = f"ray x{r['workers']}" if r["ray"] else "one process"
        driver = r["usage"].get("driver", r["usage"].get("process", {}))
        rows += [Row(f"{name}: connects/s", r["connects_per_s"], "/s"),
                 Row(f"{name}: rate error of rate {RATE}/s", 100 * r["rate_error"], "%"),
                 Row(f"{name}: msgs/s", r["msgs_per_s"], "/s"),
                 Row(f"{name}: CPU, all processes", r["cpu_s"], "s"),
                 Row(f"{name}: CPU per device (provision, connect, publish)",
                     r["cpu_ms_per_device"], "ms"),
                 Row(f"{name}: driver peak memory", driver.get("max_rss_mb"), "MB")]
        merge = r["live_view_merge_ms"]
        if merge:
            rows += [Row(f"{name}: live-view merge, mean", merge["mean"], "ms"),
                     Row(f"{name}: live-view merge, max", merge["max"], "ms")]
    return data, rows
