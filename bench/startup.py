"""Start-up of `fleetsim run` re-using persistent identities (issue 9): fixed RSS and CPU.

    .venv/bin/python -m bench.startup                      # 1,000 and 10,000 identities
    .venv/bin/python -m bench.startup --devices 1000 --rounds 1
    .venv/bin/python -m bench.startup --devices 10000 --rounds 3 --baseline /tmp/base

The peer scenario (bench/peer.py) with persistent identities, made once by an unmeasured
first run; each measured run re-uses them: `create_policy`, `provision`, then a `wait` (a
device step: where the peer scenario's `connect` starts, nothing connected yet). A sampler
reads /proc of the run's process tree every 20 ms (CPU of children that exited included:
cutime/cstime). Figures per run:

- `startup_cpu_s`: CPU of the process tree from launch to the start of the first device
  step (interpreter, imports, the API steps, identity loading);
- `fixed_rss_mb`: RSS of the tree at that moment (the device process alone once the API steps
  ran in a child that exited);
- `per_identity_ms`: for N identities, (start-up CPU at N - start-up CPU of the same
  scenario with 1 identity, in a state directory and local core of its own) / (N - 1), both
  measured in the same round, alternating: the part that grows with the number of
  identities; `growing_cpu_s`: that part for N identities.

`--imports` adds RSS after each group of imports (a fresh interpreter importing them in
order), as the README's "Fixed RSS" paragraph lists them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.peer import SCENARIO, _cpu_rss, _start_core, scenario_yaml
from bench.report import Row
from bench.system import in_round, load_average, machine_info, utc_now

ROOT = Path(__file__).resolve().parent.parent

# Groups of imports, in the order a run meets them; RSS after each (`--imports`).
IMPORT_GROUPS: list[tuple[str, list[str]]] = [
    ("interpreter", []),
    ("cli", ["fleetsim.cli"]),
    ("pydantic + scenario", ["pydantic", "fleetsim.scenario.model"]),
    ("device (aiomqtt, paho)", ["fleetsim.device"]),
    ("the peer scenario's step kinds", [f"fleetsim.engine.steps.{k}" for k in (
        "create_policy", "provision", "connect", "wait", "telemetry", "disconnect")]),
    ("commands.run", ["fleetsim.commands.run"]),
    # Only with `tls_backend: openssl`; a run over Python's ssl never imports them.
    ("openssl backend (pyOpenSSL, cryptography)", ["fleetsim.device.tls_openssl"]),
    # Only in the API child (engine/split.py), never in the device process.
    ("aioboto3/botocore/aiohttp", ["aioboto3", "botocore.session", "aiohttp"]),
]


class TreeSampler(threading.Thread):
    def __init__(self, pid: int, period: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, float, int]] = []
        self.start()

    def run(self) -> None:
        while os.path.exists(f"/proc/{self.pid}"):
            cpu, rss = _cpu_rss(self.pid)
            if rss == 0:
                break
            self.samples.append((time.time(), cpu, rss))
            time.sleep(self.period)

    def at(self, when: float) -> tuple[float, int]:
        """CPU and RSS of the first sample at or after `when` (the last one if none)."""
        for t, cpu, rss in self.samples:
            if t >= when:
                return cpu, rss
        return self.samples[-1][1:]


def _fleetsim(work: Path, scenario: Path, devices: int | None,
             tree: Path = ROOT) -> tuple[subprocess.Popen[str], Path]:
    summary = work / "summary.json"
    summary.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "fleetsim", "run", str(scenario),
           "--state-dir", str(work / "state"), "--json", str(summary),
           *(["--devices", str(devices)] if devices else [])]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True), summary


def measured_run(work: Path, scenario: Path, devices: int | None,
                 tree: Path = ROOT) -> dict[str, Any]:
    """One run of `scenario` by the `fleetsim` of source tree `tree`."""
    proc, summary = _fleetsim(work, scenario, devices, tree)
    sampler = TreeSampler(proc.pid)
    out, _ = proc.communicate(timeout=1800)
    sampler.join(5)
    if proc.returncode != 0 or not summary.exists():
        raise RuntimeError(f"fleetsim run failed ({proc.returncode}):\n{out[-3000:]}")
    data = json.loads(summary.read_text())
    steps = {s["name"].split(".", 1)[1]: s for s in data["metrics"]["steps"]}
    wait, provision = steps["wait"], steps["provision"]
    cpu_start, rss_start = sampler.at(wait["started_at"])
    cpu_p0, _ = sampler.at(provision["started_at"])
    cpu_p1, _ = sampler.at(provision["started_at"] + provision["duration_s"])
    counters = data["metrics"].get("counters", {})
    return {"devices": devices, "startup_cpu_s": round(cpu_start, 3),
            "fixed_rss_mb": round(rss_start / 1024, 1),
            "provision_step_cpu_s": round(cpu_p1 - cpu_p0, 3),
            "provision_step_s": round(provision["duration_s"], 3),
            "reused": counters.get("identities.reused", 0),
            "statuses": sorted({s["status"] for s in data["metrics"]["steps"]})}


def import_groups() -> list[dict[str, Any]]:
    """RSS after each group of IMPORT_GROUPS, in a fresh interpreter, and modules loaded."""
    code = (
        "import json, sys, importlib\n"
        "def rss():\n"
        "    with open('/proc/self/status') as f:\n"
        "        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS:'))\n"
        f"groups = {IMPORT_GROUPS!r}\n"
        "out = []\n"
        "for name, mods in groups:\n"
        "    for m in mods: importlib.import_module(m)\n"
        "    out.append({'group': name, 'rss_mb': round(rss() / 1024, 1),\n"
        "                'modules': len(sys.modules)})\n"
        "print(json.dumps(out))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    return list(json.loads(done.stdout))


def _provision(work: Path, n: int) -> None:
    scenario = work / "provision.yaml"
    scenario.write_text(scenario_yaml(n, 100, 1, 1, 5, 200, provision_only=True))
    proc, _ = _fleetsim(work, scenario, None)
    out, _ = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"provisioning {n} identities failed:\n{out[-3000:]}")


def measured_scenario(work: Path, n: int) -> Path:
    data = json.loads(scenario_yaml(n, 100, 1, 1, 5, 200, provision_only=True))
    data["steps"].append({"wait": "2s"})
    path = work / "startup.yaml"
    path.write_text(json.dumps(data, indent=1))
    return path


class Workspace:
    """A state directory with its own local core and N persistent identities made in it."""

    def __init__(self, root: Path, n: int):
        self.work, self.n = root / f"n{n}", n
        self.work.mkdir()
        self.core = _start_core(self.work, False)
        print(f"startup bench: provisioning {n} persistent identities (unmeasured)",
              flush=True)
        _provision(self.work, n)
        self.scenario = measured_scenario(self.work, n)

    def measure(self, tree: Path = ROOT) -> dict[str, Any]:
        return measured_run(self.work, self.scenario, None, tree)


def _round(n: int, r: int, big: Workspace, one: Workspace, tree: Path,
           big_first: bool) -> dict[str, Any]:
    """One round of one tree: N identities and one, the order alternating."""
    row: dict[str, Any] = {"tree": str(tree)}
    for key, space in ([("all", big), ("one", one)] if big_first
                       else [("one", one), ("all", big)]):
        print(f"startup bench: {n} identities, round {r + 1}, {key}, {tree}", flush=True)
        row[key] = space.measure(tree)
    growing = row["all"]["startup_cpu_s"] - row["one"]["startup_cpu_s"]
    row["per_identity_ms"] = round(growing * 1000 / max(n - 1, 1), 4)
    row["growing_cpu_s"] = round(growing * n / max(n - 1, 1), 3)
    return row


def collect(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    # This tree, and another one's `fleetsim` (`--baseline`) on the same identities.
    trees = [ROOT, *([Path(args.baseline).resolve()] if getattr(args, "baseline", None)
                     else [])]
    report: dict[str, Any] = {"bench": "startup", "at": utc_now(), "machine": machine_info(),
                              "load_avg_at_start": load_average(), "scenario": SCENARIO,
                              "sizes": {}}
    if args.imports:
        report["imports"] = import_groups()
    with tempfile.TemporaryDirectory(prefix="fleetsim-startup-") as tmp:
        spaces: list[Workspace] = []
        try:
            one = Workspace(Path(tmp), 1)
            spaces.append(one)
            for n in args.devices:
                big = Workspace(Path(tmp), n)
                spaces.append(big)
                rounds = []
                for r in range(args.rounds):
                    for tree in in_round(trees, r):
                        row = _round(n, r, big, one, tree, r % 2 == 0)
                        rounds.append(row)
                        print(json.dumps(row), flush=True)
                report["sizes"][str(n)] = rounds
                big.core.stop()
                spaces.remove(big)
        finally:
            for space in spaces:
                space.core.stop()
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def rows(report: dict[str, Any]) -> list[Row]:
    out = []
    for n, all_rounds in report["sizes"].items():
        rounds = [r for r in all_rounds if r.get("tree", str(ROOT)) == str(ROOT)]
        best = min(rounds, key=lambda r: r["growing_cpu_s"])
        out += [Row(f"{n} identities: start-up CPU to the first device step",
                    best["all"]["startup_cpu_s"], "s"),
                Row(f"{n} identities: of which grows with N", best["growing_cpu_s"], "s",
                    "< 1 s at 10,000", best["growing_cpu_s"] < 1.0 if n == "10000" else None),
                Row(f"{n} identities: fixed RSS", best["all"]["fixed_rss_mb"], "MB",
                    "<= 60", best["all"]["fixed_rss_mb"] <= 60)]
    for group in report.get("imports", []):
        out.append(Row(f"RSS after importing {group['group']}", group["rss_mb"], "MB",
                       note=f"{group['modules']} modules"))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--startup-devices", type=int, nargs="+", default=[1000, 10000],
                        metavar="N")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    ns = argparse.Namespace(devices=args.startup_devices, rounds=2, imports=True)
    report = collect(ns)
    return report, rows(report)


def main(argv: list[str] | None = None) -> int:
    from bench.report import print_table, write_json

    p = argparse.ArgumentParser(prog="python -m bench.startup",
                                description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-imports", dest="imports", action="store_false")
    p.add_argument("--baseline", metavar="DIR",
                   help="another source tree's fleetsim, measured on the same identities, "
                        "alternating with this tree's round by round (e.g. `git archive "
                        "<commit> fleetsim | tar -x -C DIR`)")
    p.add_argument("--out", default="startup", help="results file name (bench/results/)")
    args = p.parse_args(argv)
    report = collect(args)
    path = write_json(args.out, report)
    print_table(f"startup ({report['elapsed_s']} s; {path})", rows(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
