"""CPU per connect in `fleetsim run`'s connect ramp (issue 9), user and system apart, per
source tree and device TLS backend, alternating in one invocation.

    .venv/bin/python -m bench.connect_ramp --rounds 2 --backends openssl stdlib
    .venv/bin/python -m bench.connect_ramp --baseline /tmp/base --rounds 3 --backends openssl
    .venv/bin/python -m bench.connect_ramp --rounds 1 --backends openssl --perf

The peer bench's workload (`bench.peer`: N persistent EC P-256 identities provisioned once,
unmeasured; local core pinned to CPU 0, the generator to CPU 1; 100 connects/s, 200 in
flight), with a short idle and telemetry: only the connect step is measured. For each round,
each source tree (`--baseline DIR`: a directory holding another tree's `fleetsim/`, run
first) and each backend, one `fleetsim run` re-using the identities; a sampler reads the
generator's /proc/<pid>/stat (utime, stime, and its children's) every 50 ms, and the connect
step's span comes from the run's `--json` summary, as do connect latencies (p50, p90, p99,
max: what local core's pauses show in). `--perf` records the generator with
`perf record -e cpu-clock -g -k CLOCK_MONOTONIC` and reports the connect span's samples by
shared object (`perf report --sort dso`). Results: `bench/results/connect-ramp.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.peer import GENERATOR_CPU, Sampler, _latency, _start_core, run_fleetsim, scenario_yaml
from bench.profile import py_spy
from bench.report import RESULTS_DIR, error_kinds
from bench.system import load_average, machine_info, source_trees, utc_now

ROOT = Path(__file__).resolve().parent.parent


def _perf_dsos(data: Path, span: tuple[float, float]) -> dict[str, float]:
    """Share (%) of the span's cpu-clock samples by shared object."""
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso",
         "--time", f"{span[0]:.6f},{span[1]:.6f}", "-g", "none", "--percent-limit", "0.5"],
        capture_output=True, text=True, check=False).stdout
    shares: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("%") and not line.startswith("#"):
            shares[" ".join(parts[1:])] = float(parts[0].rstrip("%"))
    return shares


def one_run(work: Path, tree: str, backend: str, n: int, perf: bool,
            spy: bool = False) -> dict[str, Any]:
    scenario = work / f"peer-{backend}.yaml"
    summary = work / "summary.json"
    summary.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [*filter(None, [os.environ.get("CONNECT_RAMP_SITE")]), tree or str(ROOT)])}
    cmd = ["taskset", "-c", str(GENERATOR_CPU), sys.executable, "-m", "fleetsim", "run",
           str(scenario), "--state-dir", str(work / "state"), "--json", str(summary)]
    mono_offset = time.time() - time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid)
    recorder = None
    perf_data = work / "perf.data"
    if perf:
        recorder = subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-g", "-k", "CLOCK_MONOTONIC", "-F", "999",
             "-p", str(proc.pid), "-o", str(perf_data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile: dict[str, Any] = {}
    with py_spy(proc.pid, RESULTS_DIR / f"connect-ramp-{backend}.collapsed", spy, profile):
        out, _ = proc.communicate(timeout=600)
    sampler.join(5)
    if recorder is not None:
        recorder.wait(60)
    if proc.returncode != 0 or not summary.exists():
        raise RuntimeError(f"fleetsim run failed ({proc.returncode}):\n{out[-3000:]}")
    data = json.loads(summary.read_text())
    step = next(s for s in data["metrics"]["steps"] if s["name"].endswith(".connect"))
    a, b = step["started_at"], step["started_at"] + step["duration_s"]
    cpu, system = sampler.cpu_between(a, b), sampler.system_between(a, b)
    result: dict[str, Any] = {
        "tree": tree or "this", "backend": backend, "ramp_s": round(b - a, 2),
        "user_ms_per_connect": round((cpu - system) * 1000 / n, 3),
        "system_ms_per_connect": round(system * 1000 / n, 3),
        "cpu_ms_per_connect": round(cpu * 1000 / n, 3),
        "connect_latency_ms": _latency(data, "mqtt.connect"),
        "errors": error_kinds(data["metrics"]), "span": [a, b]}
    if profile:
        result["py_spy"] = profile
    if perf:
        result["perf_dso_percent"] = _perf_dsos(perf_data, (a - mono_offset, b - mono_offset))
        keep = RESULTS_DIR / f"connect-ramp-{backend}.perf.data"
        shutil.copy(perf_data, keep)
        result["perf_data"] = str(keep)
        result["perf_span_monotonic"] = [a - mono_offset, b - mono_offset]
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.connect_ramp",
                                description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--backends", nargs="+", choices=("stdlib", "openssl"), default=["openssl"])
    p.add_argument("--baseline", help="a directory holding another tree's fleetsim/")
    p.add_argument("--perf", action="store_true", help="perf record the generator")
    p.add_argument("--py-spy", action="store_true",
                   help="py-spy the generator (whole run; skews its figures)")
    p.add_argument("--out", default=str(RESULTS_DIR / "connect-ramp.json"))
    args = p.parse_args(argv)
    n = args.devices
    trees = source_trees(args.baseline)
    report: dict[str, Any] = {"bench": "connect_ramp", "at": utc_now(),
                              "machine": machine_info(), "parameters": vars(args), "runs": []}
    with tempfile.TemporaryDirectory(prefix="fleetsim-ramp-") as tmp:
        work = Path(tmp)
        for backend in args.backends:
            (work / f"peer-{backend}.yaml").write_text(scenario_yaml(
                n, args.rate, 1.0, 1.0, 5.0, args.concurrency, tls_backend=backend))
        (work / "peer-provision.yaml").write_text(scenario_yaml(
            n, args.rate, 1.0, 1.0, 5.0, args.concurrency, True))
        core = _start_core(work, True)
        try:
            print(f"connect_ramp: provisioning {n} identities (unmeasured) ...", flush=True)
            run_fleetsim(work, n, argparse.Namespace(timeout=900), measured=False, pin=True)
            for r in range(args.rounds):
                for name, tree in trees.items():
                    for backend in args.backends:
                        row = one_run(work, tree, backend, n, args.perf, args.py_spy)
                        row.update(round=r + 1, tree=name, load_avg=load_average())
                        report["runs"].append(row)
                        print(json.dumps({k: v for k, v in row.items()
                                          if k not in ("perf_dso_percent", "py_spy")}), flush=True)
                        if "perf_dso_percent" in row:
                            print(json.dumps(row["perf_dso_percent"]), flush=True)
        finally:
            core.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
