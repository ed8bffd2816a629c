"""Scale-out bench (`python -m bench ray`): one scenario of 10,000 devices in one process, then
with `--ray --workers 2` and `--workers 4` (a local Ray cluster each run starts), against local
core in its own process (temp state dir, ephemeral ports).

    python -m bench ray                                  # 10,000 devices; 1 process, x2, x4
    python -m bench ray --ray-devices 1000 --ray-workers 2

The fleet's identities are persistent: the first run (one process) provisions them, the later
runs reuse them, so every run's connect and publish steps start from the same registry. Each
run connects its devices on one global ramp (50/s to 500/s over 10 s, then 500/s), has each
publish MESSAGES messages, and disconnects.

Per run: CPU seconds of every fleetsim process (the single process; the driver and each Ray
worker) and of local core, sampled from /proc every SAMPLE_S and cut at the steps' bounds, so
CPU per connect and per message are those of their steps alone; devices per worker; the
driver's CPU and peak memory; the rate error of the connect ramp: its steady part (the whole
seconds after the ramp, on the merged timeline of connects) against 500/s, and the time to
start every device against the curve's schedule. The machine's load average is recorded: on
a shared machine the ramp's rate is capped by the CPU left to the run, which the error shows.
Results: bench/results/ray.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.fleet_provision import start_core
from bench.report import Row, error_kinds
from bench.system import cpu_seconds, load_average, machine_info
from fleetsim.engine.pacing import RateCurve
from fleetsim.engine.runner import shard_range

ROOT = Path(__file__).resolve().parent.parent
RAMP = RateCurve(50, 500, 10.0)  # connects per second across all workers (--ray-rate: end)
MESSAGES = 5  # per device
SAMPLE_S = 0.25
SCENARIO = """\
name: bench-ray
fleets:
  - {{name: d, prefix: benchray, count: {devices}, thing_name: "{{prefix}}-{{index:06d}}",
     identities: persistent}}
steps:
  - create_policy:
      policy: bench-ray
      document: {{Version: "2012-10-17", Statement: [{{Effect: Allow, Action: "iot:*",
                                                       Resource: "*"}}]}}
  - provision: {{fleet: d, policy: bench-ray, pacing: {{concurrency: 64}}}}
  - connect:
      fleet: d
      pacing: {{ramp: {{start: {ramp.start}/s, end: {ramp.end}/s, over: {ramp.over}s}},
               concurrency: 500}}
      timeout: 60s
  - publish: {{fleet: d, topic: "bench/{{thing_name}}", payload: {{v: 1}}, count: {messages}}}
  - disconnect: d
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ray")
    group.add_argument("--ray-devices", type=int, default=10_000)
    group.add_argument("--ray-workers", type=int, nargs="+", default=[2, 4])
    group.add_argument("--ray-rate", type=float, default=RAMP.end,
                       help="the connect ramp's end rate, per second across all workers")


class CpuSampler:
    """CPU seconds of a set of processes over time: the run's own process and local core,
    and the processes the run starts (a local Ray cluster): each Ray worker (`ray::ShardWorker`,
    its process title), the rest summed as Ray's own."""

    def __init__(self, root: int, pids: dict[str, int]):
        self.root = root
        self.pids = dict(pids)
        self.samples: list[tuple[float, dict[str, float]]] = []  # (epoch s, process -> CPU s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        ray: dict[int, float] = {}  # Ray's own processes: pid -> CPU s
        ticks = 0
        while not self._stop.wait(SAMPLE_S):
            if ticks % 4 == 0:
                self._find_descendants(ray)
            ticks += 1
            cpu: dict[str, float] = {}
            for name, pid in self.pids.items():
                with contextlib.suppress(OSError):  # exited: its last sample stands
                    cpu[name] = cpu_seconds(pid)
            for pid in ray:
                with contextlib.suppress(OSError):
                    ray[pid] = cpu_seconds(pid)
            if ray:
                cpu["ray system"] = sum(ray.values())
            self.samples.append((time.time(), cpu))

    def _find_descendants(self, ray: dict[int, float]) -> None:
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text()
                    parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
        workers = set(self.pids.values())
        for pid in parents:
            ancestor = parents.get(pid)
            while ancestor and ancestor != self.root:
                ancestor = parents.get(ancestor)
            if ancestor != self.root or pid in workers:
                continue
            with contextlib.suppress(OSError):  # a worker is titled so once its actor starts
                title = (Path("/proc") / str(pid) / "cmdline").read_bytes()
                if title.startswith(b"ray::ShardWorker"):
                    self.pids[f"worker pid {pid}"] = pid
                    ray.pop(pid, None)
                else:
                    ray.setdefault(pid, 0.0)

    def at(self, when: float) -> dict[str, float]:
        """CPU seconds of each process at epoch `when` (its latest sample before)."""
        out: dict[str, float] = {}
        for t, cpu in self.samples:
            if t > when:
                break
            out.update(cpu)
        return out

    def between(self, start: float, end: float) -> dict[str, float]:
        before, after = self.at(start), self.at(end)
        return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}


def schedule_s(curve: RateCurve, starts: int) -> float:
    """Seconds from the first start to the `starts`-th on the curve's schedule."""
    t = 0.0
    for _ in range(starts - 1):
        t += 1.0 / curve.rate_at(t)
    return t


def rate_errors(ramp: RateCurve, timeline: list[list[int]], started_at: float, devices: int,
                connect_s: float) -> dict[str, float | None]:
    """The steady part: connects per whole second after the ramp (first and last seconds
    partial, left out) against the curve's end rate; the whole: the seconds to start every
    device against the schedule's (positive: faster than asked)."""
    after = [n for t, n in timeline if t >= started_at + ramp.over + 1][:-1]
    steady = sum(after) / len(after) if after else None
    assert ramp.end is not None
    return {"steady_per_s": None if steady is None else round(steady, 1),
            "steady_error": None if steady is None else round(steady / ramp.end - 1, 4),
            "schedule_s": round(schedule_s(ramp, devices), 2),
            "connect_step_s": round(connect_s, 2),
            "schedule_error": round(schedule_s(ramp, devices) / connect_s - 1, 4)}


def _run(workdir: Path, state: Path, devices: int, workers: int | None, ramp: RateCurve,
         core_pid: int, env: dict[str, str]) -> dict[str, Any]:
    scenario = workdir / "bench-ray.yaml"
    scenario.write_text(SCENARIO.format(devices=devices, ramp=ramp, messages=MESSAGES))
    out = workdir / f"summary-{workers or 1}.json"
    args = [sys.executable, "-m", "fleetsim", "run", str(scenario), "--state-dir", str(state),
            "--json", str(out)]
    if workers is not None:
        args += ["--ray", "--workers", str(workers)]
    load = load_average()
    started = time.monotonic()
    with subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        name = "driver" if workers else "process"
        with CpuSampler(proc.pid, {name: proc.pid, "local core": core_pid}) as sampler:
            output, _ = proc.communicate()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"fleetsim run exited {proc.returncode}: {output[-3000:]}")
    summary = json.loads(out.read_text())
    m = summary["metrics"]
    steps = {s["name"].split(".", 1)[1]: s for s in m["steps"]}
    cpu = {step: sampler.between(s["started_at"], s["started_at"] + s["duration_s"])
           for step, s in steps.items() if step in ("provision", "connect", "publish")}
    messages = devices * MESSAGES

    def per(step: str, n: int, core: bool) -> float:
        """CPU ms per item of fleetsim's processes (Ray's own left out), or local core's."""
        total = sum(v for k, v in cpu[step].items()
                    if (k == "local core") == core and k != "ray system")
        return round(1000 * total / n, 3)

    connect = steps["connect"]
    return {
        "workers": workers or 1, "ray": workers is not None, "wall_s": round(wall, 1),
        "load_average_before": load, "load_average_after": load_average(),
        "devices_per_worker": [len(shard_range(devices, (k, workers)))
                               for k in range(1, workers + 1)] if workers else [devices],
        "steps_s": {k: round(s["duration_s"], 2) for k, s in steps.items()},
        "counters": {k: v for k, v in m["counters"].items()
                     if k.startswith(("identities", "devices", "workers"))},
        "errors": error_kinds(m),
        "cpu_s_by_step": cpu,
        "cpu_s_whole_run": sampler.at(time.time()),
        "cpu_ms_per_connect": per("connect", devices, False),
        "cpu_ms_per_message": per("publish", messages, False),
        "core_cpu_ms_per_connect": per("connect", devices, True),
        "core_cpu_ms_per_message": per("publish", messages, True),
        "connects_per_s": round(devices / connect["duration_s"], 1),
        "msgs_per_s": round(messages / steps["publish"]["duration_s"], 1),
        "rate": rate_errors(ramp, m["timeline"].get("mqtt.connect", []), connect["started_at"],
                            devices, connect["duration_s"]),
        "usage": summary.get("usage"),
        "live_view_merge_ms": summary.get("live_view_merge_ms"),
    }


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.monotonic()
    ramp = RateCurve(min(RAMP.start, args.ray_rate), args.ray_rate, RAMP.over)
    data: dict[str, Any] = {"devices": args.ray_devices, "messages_per_device": MESSAGES,
                            "ramp": {"start": ramp.start, "end": ramp.end, "over_s": ramp.over},
                            "machine": machine_info(), "runs": [], "errors": {}}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        workdir = Path(tmp)
        state = workdir / "state"
        core = start_core(state / "localcore", workdir / "core.log")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        try:
            for workers in [None, *args.ray_workers]:
                name = f"ray x{workers}" if workers else "one process"
                try:
                    data["runs"].append(_run(workdir, state, args.ray_devices, workers,
                                             ramp, core.pid, env))
                except Exception as e:  # a failed part is reported, not fatal
                    data["errors"][name] = str(e)
        finally:
            core.stop()
    data["elapsed_s"] = round(time.monotonic() - started, 1)
    return data, rows_of(data)


def rows_of(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for r in data["runs"]:
        name = f"ray x{r['workers']}" if r["ray"] else "one process"
        own = r["usage"]["driver"] if r["usage"] else None
        rate = r["rate"]
        rows += [Row(f"{name}: devices per worker", max(r["devices_per_worker"]), ""),
                 Row(f"{name}: CPU per connect (fleetsim processes)",
                     r["cpu_ms_per_connect"], "ms"),
                 Row(f"{name}: CPU per message (fleetsim processes)",
                     r["cpu_ms_per_message"], "ms"),
                 Row(f"{name}: connects/s", r["connects_per_s"], "/s"),
                 Row(f"{name}: msgs/s", r["msgs_per_s"], "/s"),
                 Row(f"{name}: steady connect rate error vs {data['ramp']['end']:.0f}/s",
                     None if rate["steady_error"] is None else 100 * rate["steady_error"], "%"),
                 Row(f"{name}: ramp schedule error", 100 * rate["schedule_error"], "%")]
        if own:
            rows += [Row(f"{name}: driver CPU", own["cpu_s"], "s"),
                     Row(f"{name}: driver peak memory", own["max_rss_mb"], "MB")]
    return rows
