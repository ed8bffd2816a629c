"""`python -m bench jobs-fleet`: an IoT Jobs rollout to fleetsim's own devices, end to end.

`scenarios/jobs-rollout.yaml` at bench scale, through `fleetsim run` (its own local core, temp
state directory, ephemeral ports): N devices (1,000 by default) each with its certificate and
MQTT/TLS session, in one thing group, running the notify-next / start-next job agent (every
execution SUCCEEDED after 0.1 to 0.5 s); one job with `maximumPerMinute` R (1,000), no abort.
Local core's minute lasts `--jobs-fleet-minute` seconds (30 by default,
`FLEETSIM_LOCAL_JOBS_MINUTE_S`), so 1,000 executions at 1,000 a minute roll out in 30 s: 33
executions a second, each with its notifications, start-next and updates, which local core and
1,000 devices sustain on 2 shared cores; a 6 s minute (167 a second) did not (794 a minute
observed, notify -> SUCCEEDED p99 10.6 s, at a load average of 11).

Reported (from the run's JSON summary): the observed rollout rate against the configured one
(wait_job's `expect_rate_within: 2` check), the wall time of the rollout (create-job to every
execution ended), notify -> SUCCEEDED p50/p99 on the devices (`jobs.execution`: from the moment
a device heard of its execution to its SUCCEEDED update accepted), and the counts by status.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.report import Row
from bench.system import machine_info, utc_now
from fleetsim.metrics.histogram import Histogram

ROOT = Path(__file__).resolve().parent.parent
RATE = re.compile(r"rollout rate ([\d.]+)/min")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("jobs-fleet")
    group.add_argument("--jobs-fleet-devices", type=int, default=1000,
                       help="fleetsim devices (default 1000)")
    group.add_argument("--jobs-fleet-rate", type=int, default=1000,
                       help="maximumPerMinute of the rollout (default 1000)")
    group.add_argument("--jobs-fleet-minute", type=float, default=30.0,
                       help="seconds local core's jobs minute lasts (default 30)")


def scenario(devices: int, rate: int) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "scenarios" / "jobs-rollout.yaml").read_text())
    doc["fleets"][0]["count"] = devices
    steps = {next(iter(s)): s[next(iter(s))] for s in doc["steps"]}
    steps["provision"]["pacing"] = {"rate": "200/s"}
    steps["add_to_thing_group"]["pacing"] = {"rate": "200/s"}
    steps["connect"]["pacing"] = {"rate": "200/s"}
    steps["job_agent"].update(outcomes={"succeed": 1.0}, progress=0,
                              execution_time={"distribution": "uniform", "min": "0.1s",
                                              "max": "0.5s"})
    steps["create_job"]["rollout_config"] = {"maximumPerMinute": rate}
    del steps["create_job"]["abort_config"]
    steps["wait_job"].update(expect_aborted=False, expect_status="COMPLETED", poll="1s",
                             timeout="10m", expect_rate_within=2)
    return dict(doc)


def _op(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next((o for o in summary["metrics"]["ops"] if o["op"] == name), {})


def _one(devices: int, rate: int, minute: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-jobs-fleet-") as tmp:
        path = Path(tmp) / "jobs-rollout.yaml"
        path.write_text(yaml.safe_dump(scenario(devices, rate)))
        out_json = Path(tmp) / "summary.json"
        env = {**os.environ, "FLEETSIM_LOCAL_JOBS_MINUTE_S": f"{minute:g}",
               "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "fleetsim", "run", str(path), "--json",
                              str(out_json), "--state-dir", str(Path(tmp) / "state"),
                              "--api-port", "0", "--mqtt-port", "0"],
                             cwd=tmp, env=env, capture_output=True, text=True, timeout=1800)
        elapsed = time.perf_counter() - started
        if not out_json.exists():
            raise RuntimeError(f"fleetsim run wrote no summary: {out.stderr[-2000:]}")
        summary = json.loads(out_json.read_text())
    steps = {s["name"].partition(".")[2]: s for s in summary["metrics"]["steps"]}
    detail = steps["wait_job"]["detail"]
    match = RATE.search(detail)
    observed = float(match.group(1)) if match else None
    execution = Histogram.from_dict(_op(summary, "jobs.execution")["latency_us"])
    counters = summary["metrics"]["counters"]
    return {
        "devices": devices, "configured_per_minute": rate, "minute_s": minute,
        "observed_per_minute": observed,
        "rate_error_pct": round((observed - rate) / rate * 100, 2) if observed else None,
        "rollout_wall_s": round(steps["create_job"]["duration_s"]
                                + steps["wait_job"]["duration_s"], 1),
        "ideal_rollout_s": round((devices - 1) / rate * minute, 1),
        "notify_to_succeeded_ms": {f"p{p}": round(execution.percentile(p) / 1000, 1)
                                   for p in (50, 99)},
        "statuses": {k.rpartition(".")[2]: v for k, v in counters.items()
                     if k.startswith("job.status.")},
        "checks": {c["name"]: c["passed"] for c in summary["metrics"]["checks"]},
        "passed": summary["passed"], "run_s": round(elapsed, 1), "detail": detail}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.perf_counter()
    r = _one(args.jobs_fleet_devices, args.jobs_fleet_rate, args.jobs_fleet_minute)
    data: dict[str, Any] = {"when": utc_now(), "machine": machine_info(), "results": [r],
                            "elapsed_s": round(time.perf_counter() - started, 1)}
    n, rate = r["devices"], r["configured_per_minute"]
    error = r["rate_error_pct"]
    rows = [Row(f"{n} devices: executions notified per minute", r["observed_per_minute"],
                "/min", f"{rate} +-2%", error is not None and abs(error) <= 2,
                f"minute of {r['minute_s']:g} s"),
            Row(f"{n} devices: rollout wall time", r["rollout_wall_s"], "s",
                f"ideal {r['ideal_rollout_s']} s"),
            Row(f"{n} devices: notify -> SUCCEEDED p99", r["notify_to_succeeded_ms"]["p99"],
                "ms"),
            Row(f"{n} devices: SUCCEEDED", r["statuses"].get("SUCCEEDED", 0), "",
                str(n), r["statuses"].get("SUCCEEDED", 0) == n)]
    if not r["passed"]:
        data["errors"] = {"run": r["detail"]}
    return data, rows
