"""Peer comparison (issue 9): fleetsim against Locust's MqttUser, back to back, same broker,
same certificates, same workload, measured from outside the processes.

    .venv/bin/python -m bench peer                 # 3 rounds of 1,000 devices (~8 min)
    .venv/bin/python -m bench.peer --rounds 1 --devices 300
    .venv/bin/python -m bench.peer --big           # the 20,000-device run (fleetsim only)

Local core runs pinned to CPU 0, each generator pinned to CPU 1. The workload: N devices with
their own EC P-256 certificates (made once by an unmeasured `fleetsim run` with persistent
identities, which both generators then use), 100 connects/s, 20 s idle, then one QoS 0 message
per device every 5 s (200 msg/s per 1,000 devices) for 30 s. The generator is
`fleetsim run` of that scenario (re-using the persistent identities, as a user's second run
does) and `locust -f bench/peer_locustfile.py --headless`; then, as a third generator, the floor
(`bench/peer_floor.py`: the workload with no client library and no engine, on fleetsim's
OpenSSL client context), to tell what is left to the engine
(`--no-floor`: without it). A sampler reads
/proc/<pid>/stat and /status every 50 ms; phase edges come from fleetsim's JSON summary (step
start and duration) and from the marks the locustfile writes. Locust needs the `bench` extra
(`pip install -e '.[bench]'`); without it only fleetsim is measured.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.profile import py_spy
from bench.report import RESULTS_DIR, error_kinds
from bench.system import (
    CLOCK_TICKS,
    load_average,
    machine_info,
    system_busy_seconds,
    taskset_prefix,
    utc_now,
)

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = "peer-bench"
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect",
     "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"},
    {"Effect": "Allow", "Action": "iot:Publish",
     "Resource": "arn:aws:iot:*:*:topic/dt/sensors/${iot:ClientId}/telemetry"}]}
CORE_CPU, GENERATOR_CPU = 0, 1


def scenario_yaml(n: int, rate: float, idle: float, telemetry: float, interval: float,
                  concurrency: int, provision_only: bool = False,
                  tls_backend: str | None = None) -> str:
    """The workload as a scenario; `provision_only`: its first two steps (the same name, so
    the same identities and persistent journal); `tls_backend`: the devices' TLS path (None:
    the default's)."""
    steps = _steps(rate, idle, telemetry, interval, concurrency)
    target: Any = "local" if tls_backend is None else {"kind": "local",
                                                       "tls_backend": tls_backend}
    return json.dumps({
        "name": SCENARIO, "target": target,
        "fleets": [{"name": "sensors", "prefix": "peer", "count": n, "key_type": "ec-p256",
                    "thing_name": "{prefix}-{index:05d}", "identities": "persistent"}],
        "steps": steps[:2] if provision_only else steps}, indent=1)  # JSON is YAML


def _steps(rate: float, idle: float, telemetry: float, interval: float,
           concurrency: int) -> list[dict[str, Any]]:
    return [
            {"create_policy": {"fleet": "sensors", "policy": "peer-bench-sensor",
                               "document": POLICY}},
            {"provision": {"fleet": "sensors", "policy": "peer-bench-sensor",
                           "pacing": {"concurrency": 32}}},
            {"connect": {"fleet": "sensors", "timeout": "30s",
                         "pacing": {"rate": f"{rate:g}/s", "concurrency": concurrency}}},
            {"wait": f"{idle:g}s"},
            {"telemetry": {"fleet": "sensors", "topic": "dt/sensors/{thing_name}/telemetry",
                           "payload": {"seq": "{seq}",
                                       "temperature": "{rand_float(18, 26, 1)}",
                                       "humidity": "{rand_int(30, 60)}",
                                       "at": "{timestamp_ms}"},
                           "rate": f"1/{interval:g}s", "duration": f"{telemetry:g}s"}},
            {"disconnect": "sensors"},
        ]


# --- measuring from outside -----------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def _cpu_system_rss(pid: int) -> tuple[float, float, int]:
    """CPU seconds (user + system, all threads), of them system, and RSS in KB of `pid` and
    its children, with the CPU of children that exited (cutime, cstime: a split run's API
    child)."""
    cpu = system = 0.0
    rss = 0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks = [int(fields[11]), int(fields[12])]
            if p == pid:
                ticks = [ticks[0] + int(fields[13]), ticks[1] + int(fields[14])]
            cpu += (ticks[0] + ticks[1]) / CLOCK_TICKS
            system += ticks[1] / CLOCK_TICKS
            with open(f"/proc/{p}/status") as f:
                rss += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return cpu, system, rss


def _cpu_rss(pid: int) -> tuple[float, int]:
    """CPU seconds and RSS in KB of `pid`'s tree (`_cpu_system_rss`)."""
    cpu, _system, rss = _cpu_system_rss(pid)
    return cpu, rss


class Sampler(threading.Thread):
    """(epoch time, CPU s, RSS KB) of a process tree every `period` seconds until it exits."""

    def __init__(self, pid: int, period: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.t: list[float] = []
        self.cpu: list[float] = []
        self.system: list[float] = []
        self.rss: list[int] = []
        self.busy0 = system_busy_seconds()
        self.start()

    def run(self) -> None:
        while os.path.exists(f"/proc/{self.pid}"):
            cpu, system, rss = _cpu_system_rss(self.pid)
            if rss == 0:
                break  # a zombie: exited
            self.t.append(time.time())
            self.cpu.append(cpu)
            self.system.append(system)
            self.rss.append(rss)
            time.sleep(self.period)

    def at(self, when: float) -> tuple[float, int]:
        """CPU (interpolated) and RSS (the sample at or after) at epoch time `when`."""
        at_or_after = min(bisect.bisect_left(self.t, when), len(self.t) - 1)
        return _interpolated(self.t, self.cpu, when), self.rss[at_or_after]

    def cpu_between(self, a: float, b: float) -> float:
        return self.at(b)[0] - self.at(a)[0]

    def system_between(self, a: float, b: float) -> float:
        """System CPU seconds between epoch times `a` and `b` (interpolated)."""
        return _interpolated(self.t, self.system, b) - _interpolated(self.t, self.system, a)


def _interpolated(t: list[float], values: list[float], when: float) -> float:
    """`values` (sampled at times `t`) at `when`, linearly between the samples around it;
    the first or last sample outside them."""
    i = min(max(bisect.bisect_left(t, when), 1), len(t) - 1)
    t0, t1 = t[i - 1], t[i]
    share = min(max((when - t0) / (t1 - t0), 0.0), 1.0) if t1 > t0 else 1.0
    return values[i - 1] + share * (values[i] - values[i - 1])


def memory_line(s: Sampler, connects_per_s: dict[int, int], n: int,
                settled: float) -> tuple[float, float] | None:
    """(fixed RSS KB, RSS KB per connected device): the least-squares line of the process's
    RSS against its count of connected devices, from the end of each second of the ramp in
    which at least a tenth of the fleet was connected, to `settled` (all `n` connected).
    The RSS at the ramp's first instant is no measure of what is fixed: what every generator
    pays once at its first connect (the TLS library's code and tables touched, ~4 MB for
    fleetsim) lands before or after a 50 ms sample by chance, and moved 4 KB per device
    between the two figures from one round to the next. None: too few points for a line."""
    points: list[tuple[float, float]] = []
    connected = 0
    for second in sorted(connects_per_s):
        connected += connects_per_s[second]
        if connected >= n / 10 and second + 1 < settled:
            points.append((connected, s.at(second + 1)[1]))
    points.append((n, s.at(settled)[1]))
    if len(points) < 3:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / var
    return my - slope * mx, slope


def figures(s: Sampler, launched: float, ramp: tuple[float, float], idle: tuple[float, float],
            telemetry: tuple[float, float], n: int, sent: int,
            connects_per_s: dict[int, int]) -> dict[str, Any]:
    """The issue's table for one generator, from its samples, phase edges and CONNACKs per
    (epoch) second."""
    ramp0, ramp1 = ramp
    idle0, idle1 = idle[0] + 3.0, idle[1] - 1.0  # settled: the last CONNACKs' work done
    cpu_ramp = s.cpu_between(ramp0, ramp1)
    cpu_launch = s.at(ramp1)[0]  # the process's CPU counters start at 0 at launch
    rss_start, rss_connected = s.at(ramp0)[1], s.at(idle0)[1]
    line = memory_line(s, connects_per_s, n, idle0)
    rss_fixed, rss_per_device = line or (rss_start, (rss_connected - rss_start) / n)
    idle_ms_s = s.cpu_between(idle0, idle1) * 1000 / max(idle1 - idle0, 1e-9)
    tele_cpu = s.cpu_between(*telemetry)
    tele_s = telemetry[1] - telemetry[0]
    return {
        "devices": n, "messages": sent,
        "ramp_s": round(ramp1 - ramp0, 2), "connects_per_s": round(n / (ramp1 - ramp0), 1),
        "cpu_ms_per_connect": cpu_ramp * 1000 / n,
        "cpu_ms_per_connect_from_launch": cpu_launch * 1000 / n,
        "startup_cpu_s": s.at(ramp0)[0],
        "fixed_rss_mb": rss_fixed / 1024,
        "rss_kb_per_device": rss_per_device,
        # What the two were before the line: from the RSS at the ramp's first instant.
        "rss_at_ramp_start_mb": rss_start / 1024,
        "rss_kb_per_device_from_ramp_start": (rss_connected - rss_start) / n,
        "idle_cpu_ms_per_s_per_1000": idle_ms_s * 1000 / n,
        "cpu_ms_per_message": tele_cpu * 1000 / max(sent, 1),
        "cpu_ms_per_message_net_of_idle":
            (tele_cpu * 1000 - idle_ms_s * tele_s) / max(sent, 1),
        "messages_per_s": sent / tele_s,
        "peak_rss_mb": max(s.rss) / 1024,
        "machine_other_busy_cores": _other_busy(s),
    }


def _other_busy(s: Sampler) -> float:
    """Cores the rest of the machine (other engineers, local core) kept busy meanwhile."""
    wall = (s.t[-1] - s.t[0]) if len(s.t) > 1 else 1.0
    return round((system_busy_seconds() - s.busy0 - (s.cpu[-1] - s.cpu[0])) / wall, 2)


# --- the two generators ---------------------------------------------------------------------

def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_fleetsim(work: Path, n: int, args: argparse.Namespace, measured: bool,
                 pin: bool, tls_backend: str = "stdlib") -> dict[str, Any] | None:
    scenario = work / (f"peer-{tls_backend}.yaml" if measured else "peer-provision.yaml")
    summary = work / "summary.json"
    summary.unlink(missing_ok=True)
    cmd = [*(taskset_prefix(GENERATOR_CPU) if pin else []), sys.executable, "-m", "fleetsim",
           "run", str(scenario), "--state-dir", str(work / "state"), "--json", str(summary)]
    launched = time.time()
    proc = subprocess.Popen(cmd, cwd=work, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid) if measured else None
    profile: dict[str, Any] = {}
    with py_spy(proc.pid, RESULTS_DIR / "peer-fleetsim.collapsed",
                measured and getattr(args, "profile", False), profile):
        out, _ = proc.communicate(timeout=args.timeout)
    if sampler is not None:
        sampler.join(5)
    if proc.returncode != 0 or not summary.exists():
        raise RuntimeError(f"fleetsim run failed ({proc.returncode}):\n{out[-3000:]}")
    if sampler is None:
        return None
    data = json.loads(summary.read_text())
    steps = {s["name"].split(".", 1)[1]: s for s in data["metrics"]["steps"]}

    def span(name: str) -> tuple[float, float]:
        s = steps[name]
        return s["started_at"], s["started_at"] + s["duration_s"]

    sent = _histogram(data, "mqtt.publish", "telemetry").count
    connected = _histogram(data, "mqtt.connect").count
    connects = data["metrics"]["timeline"].get("mqtt.connect", [])
    result = figures(sampler, launched, span("connect"), span("wait"), span("telemetry"),
                     n, sent, {int(t): count for t, count in connects})
    if profile:
        result["profile"] = profile
    result.update(connected=connected, counters=data["metrics"].get("counters", {}),
                  errors=error_kinds(data["metrics"]),
                  connect_latency_ms=_latency(data, "mqtt.connect"))
    return result


def _histogram(data: dict[str, Any], op: str, step: str = "") -> Any:
    from fleetsim.metrics.histogram import Histogram

    merged = Histogram()
    for o in data["metrics"]["ops"]:
        if o["op"] == op and o["step"].endswith(step):
            merged.merge(Histogram.from_dict(o["latency_us"]))
    return merged


def _latency(data: dict[str, Any], op: str) -> dict[str, Any]:
    h = _histogram(data, op)
    if not h.count:
        return {}
    return {f"p{p}_ms": h.percentile(p) / 1000 for p in (50, 90, 99)} | {"max_ms": h.max / 1000}


def locust_available() -> bool:
    """Without importing it: importing locust monkey-patches this process with gevent."""
    import importlib.util

    return (importlib.util.find_spec("locust") is not None
            and (Path(sys.executable).parent / "locust").exists())


def identity_files(work: Path, n: int) -> Path:
    folder = work / "state" / "identities" / SCENARIO / "sensors"
    ids = [{"name": f"peer-{i:05d}", "cert": str(folder / f"peer-{i:05d}.crt"),
            "key": str(folder / f"peer-{i:05d}.key")} for i in range(n)]
    path = work / "identities.json"
    path.write_text(json.dumps(ids))
    return path


def _marked_env(work: Path, n: int, info: dict[str, Any],
                args: argparse.Namespace) -> dict[str, str]:
    """The environment of a generator that reports its phases by marks (the locustfile's and
    the floor's)."""
    return {**_env(), "PEER_IDENTITIES": str(identity_files(work, n)),
            "PEER_CA": str(info["root_ca"]), "PEER_HOST": str(info["mqtt_host"]),
            "PEER_PORT": str(info["mqtt_port"]), "PEER_RATE": f"{args.rate:g}",
            "PEER_IDLE_S": str(args.idle), "PEER_TELEMETRY_S": str(args.telemetry),
            "PEER_INTERVAL_S": str(args.interval), "PEER_MARKS": str(work / "marks.json")}


def _run_marked(who: str, cmd: list[str], work: Path, n: int, info: dict[str, Any],
                args: argparse.Namespace, pin: bool) -> dict[str, Any]:
    """Run a generator that writes marks, sampled from outside; its figures."""
    env = _marked_env(work, n, info, args)
    marks = Path(env["PEER_MARKS"])
    marks.unlink(missing_ok=True)
    launched = time.time()
    proc = subprocess.Popen([*(taskset_prefix(GENERATOR_CPU) if pin else []), *cmd], cwd=work,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    sampler = Sampler(proc.pid)
    out, _ = proc.communicate(timeout=args.timeout + 60)
    sampler.join(5)
    m = json.loads(marks.read_text()) if marks.exists() else {}
    if "done" not in m:
        raise RuntimeError(f"{who} did not finish the workload ({proc.returncode}; "
                           f"{m.get('connected_count', 0)} connected):\n{out[-3000:]}")
    return figures(sampler, launched, (m["test_start"], m["connected"]),
                   (m["connected"], m["telemetry_start"]),
                   (m["telemetry_start"], m["telemetry_end"]), n, m["sent"],
                   {int(t): count for t, count in m["connects_per_s"].items()})


def run_locust(work: Path, n: int, info: dict[str, Any], args: argparse.Namespace,
               pin: bool) -> dict[str, Any]:
    locust = str(Path(sys.executable).parent / "locust")
    return _run_marked("locust", [
        locust, "-f", str(ROOT / "bench" / "peer_locustfile.py"), "--headless", "-u", str(n),
        "-r", f"{args.rate:g}", "--run-time", f"{int(args.timeout)}s", "--only-summary",
        "--loglevel", "WARNING", "--skip-log-setup"], work, n, info, args, pin)


def run_floor(work: Path, n: int, info: dict[str, Any], args: argparse.Namespace,
              pin: bool) -> dict[str, Any]:
    """`bench.peer_floor`: the workload with no client library and no engine."""
    return _run_marked("the floor generator", [sys.executable, "-m", "bench.peer_floor"],
                       work, n, info, args, pin)


# --- rounds and ratios ------------------------------------------------------------------

RATIOS = [  # (figure, key, target ratio fleetsim/Locust or None)
    ("CPU per connect, TLS context included", "cpu_ms_per_connect", 0.33),
    ("CPU per connect, from launch", "cpu_ms_per_connect_from_launch", None),
    ("RSS per connected device", "rss_kb_per_device", 0.5),
    ("fixed RSS (RSS at 0 devices, from the line)", "fixed_rss_mb", None),
    ("idle CPU per 1,000 devices", "idle_cpu_ms_per_s_per_1000", None),
    ("CPU per QoS 0 message", "cpu_ms_per_message", 0.25),
]


def ratios(fs: dict[str, Any], lo: dict[str, Any]) -> dict[str, float]:
    return {key: fs[key] / lo[key] if lo[key] else float("nan") for _, key, _ in RATIOS}


def _start_core(work: Path, pin: bool) -> Any:
    from fleetsim.localcore.launcher import spawn_local_core

    return spawn_local_core(work / "state" / "localcore", work / "localcore.log",
                            api_port=0, mqtt_port=0,
                            prefix=taskset_prefix(CORE_CPU) if pin else (), tied=True)


def collect(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    n = args.devices
    report: dict[str, Any] = {
        "bench": "peer", "at": utc_now(), "machine": machine_info(),
        "load_avg_at_start": load_average(), "pinned": bool(pin),
        "parameters": {k: v for k, v in vars(args).items() if k != "names"}, "rounds": []}
    have_locust = locust_available() and not args.no_locust
    report["locust"] = have_locust
    with tempfile.TemporaryDirectory(prefix="fleetsim-peer-") as tmp:
        work = Path(tmp)
        for backend in args.tls_backends:
            (work / f"peer-{backend}.yaml").write_text(scenario_yaml(
                n, args.rate, args.idle, args.telemetry, args.interval, args.concurrency,
                tls_backend=backend))
        (work / "peer-provision.yaml").write_text(scenario_yaml(
            n, args.rate, args.idle, args.telemetry, args.interval, args.concurrency, True))
        core = _start_core(work, bool(pin))
        try:
            print(f"peer bench: provisioning {n} persistent identities (unmeasured) ...",
                  flush=True)
            run_fleetsim(work, n, args, measured=False, pin=bool(pin))
            for r in range(args.rounds):
                row: dict[str, Any] = {"load_avg": load_average()}
                for backend in args.tls_backends:  # the first as "fleetsim", others by name
                    key = _generator(backend, args.tls_backends)
                    print(f"peer bench round {r + 1}/{args.rounds}: {key} ...", flush=True)
                    row[key] = run_fleetsim(work, n, args, measured=True, pin=bool(pin),
                                            tls_backend=backend)
                if have_locust:
                    print(f"peer bench round {r + 1}/{args.rounds}: locust ...", flush=True)
                    row["locust"] = run_locust(work, n, core.info, args, bool(pin))
                    for backend in args.tls_backends:
                        key = _generator(backend, args.tls_backends)
                        row[key.replace("fleetsim", "ratios")] = ratios(row[key], row["locust"])
                if not args.no_floor:
                    print(f"peer bench round {r + 1}/{args.rounds}: floor ...", flush=True)
                    row["floor"] = run_floor(work, n, core.info, args, bool(pin))
                    if have_locust:
                        row["floor-ratios"] = ratios(row["floor"], row["locust"])
                report["rounds"].append(row)
                print(json.dumps(_summary(row)), flush=True)
        finally:
            core.stop()
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def _generator(backend: str, backends: list[str]) -> str:
    """A round's key for fleetsim with `backend`: "fleetsim" for the first one measured."""
    return "fleetsim" if backend == backends[0] else f"fleetsim-{backend}"


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for who in row:
        if who.startswith("fleetsim") or who in ("locust", "floor"):
            out[who] = {k: round(v, 3) if isinstance(v, float) else v
                        for k, v in row[who].items() if k not in ("counters", "errors")}
        elif who.startswith("ratios") or who == "floor-ratios":
            out[who] = {k: round(v, 2) for k, v in row[who].items()}
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=float, default=100.0, help="connects per second")
    p.add_argument("--idle", type=float, default=20.0, help="seconds idle after the ramp")
    p.add_argument("--telemetry", type=float, default=30.0, help="seconds of telemetry")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between messages")
    p.add_argument("--concurrency", type=int, default=200, help="connects in flight")
    p.add_argument("--timeout", type=float, default=600.0, help="bound on each generator run")
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--no-locust", action="store_true", help="measure fleetsim only")
    p.add_argument("--no-floor", action="store_true",
                   help="without the floor generator (bench/peer_floor.py)")
    p.add_argument("--tls-backends", nargs="+", choices=("stdlib", "openssl"),
                   default=["openssl"], metavar="B",
                   help="fleetsim once per device TLS backend in each round, in this order "
                        "(default: openssl, fleetsim's default)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the fleetsim generator (whole run; skews its figures)")
    p.add_argument("--big", action="store_true",
                   help="the 20,000-device run instead (fleetsim only, 500 connects/s)")
    return p


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m bench peer`'s options (the rest: `python -m bench.peer --help`)."""
    parser.add_argument("--peer-devices", type=int, default=1000, metavar="N")
    parser.add_argument("--peer-rounds", type=int, default=3, metavar="R")
    parser.add_argument("--peer-tls-backends", nargs="+", choices=("stdlib", "openssl"),
                        default=["openssl"], metavar="B",
                        help="peer bench: fleetsim's device TLS backends (default: openssl, "
                             "fleetsim's default)")
    parser.add_argument("--peer-big", action="store_true",
                        help="peer bench: only the 20,000-device run")
    parser.add_argument("--peer-no-big", action="store_true",
                        help="peer bench: the rounds against Locust only")
    parser.add_argument("--peer-no-floor", action="store_true",
                        help="peer bench: the rounds without the floor generator")


BIG_RATE = 500  # connects/s offered in the 20,000-device run


def big_run(devices: int = 20_000, tls_backend: str = "openssl") -> dict[str, Any]:
    """The issue's one-process run: 20,000 devices at 500 connects/s, one message each every
    5 s, on bench/fleet.py's worker (the engine's sessions, connect pacing and telemetry ticker
    in one process; identities issued straight into local core's store: provisioning 20,000
    through the API would take most of an hour on this machine). Bounded in time."""
    from bench import fleet

    out = RESULTS_DIR / "peer-big-fleet.json"
    fleet.main(["--devices", str(devices), "--rate", str(BIG_RATE), "--concurrency", "500",
                "--interval", "5", "--telemetry", "30", "--idle", "10",
                "--connect-timeout", "30", "--worker-timeout", "900", "--out", str(out),
                "--tls", "openssl" if tls_backend == "openssl" else "shared"])
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def _rows(report: dict[str, Any]) -> list[Any]:
    from bench.report import Row

    rows = []
    for i, row in enumerate(report["rounds"], 1):
        for who in [k for k in row if k.startswith("fleetsim")]:
            fs, ratio_key = row[who], who.replace("fleetsim", "ratios")
            rows += [Row(f"round {i}: {who} connected", fs["connected"], "devices"),
                     Row(f"round {i}: {who} connect p99",
                         fs["connect_latency_ms"].get("p99_ms"), "ms")]
            for label, key, target in RATIOS:
                if ratio_key not in row:
                    rows.append(Row(f"round {i}: {who} {label}", fs[key],
                                    key.rsplit("_", 1)[-1]))
                    continue
                ratio = row[ratio_key][key]
                rows.append(Row(f"round {i}: {label} {who}/Locust", ratio, "x",
                                f"<= {target}" if target else "",
                                None if target is None else ratio <= target,
                                f"{who} {fs[key]:.3f}, Locust {row['locust'][key]:.3f}"))
        if "floor" in row:
            rows += _floor_rows(i, row)
    return rows


FLOOR_FIGURES = [(label, key) for label, key, _ in RATIOS
                 if key in ("cpu_ms_per_connect", "rss_kb_per_device", "cpu_ms_per_message")]


def _floor_rows(i: int, row: dict[str, Any]) -> list[Any]:
    """The floor generator against Locust and against fleetsim: what is left to the engine."""
    from bench.report import Row

    floor, fs = row["floor"], row["fleetsim"]
    rows = []
    for label, key in FLOOR_FIGURES:
        if "floor-ratios" in row:
            rows.append(Row(f"round {i}: {label} floor/Locust", row["floor-ratios"][key], "x",
                            note=f"floor {floor[key]:.3f}, Locust {row['locust'][key]:.3f}"))
        rows.append(Row(f"round {i}: {label} fleetsim/floor",
                        fs[key] / floor[key] if floor[key] else float("nan"), "x",
                        note=f"fleetsim {fs[key]:.3f}, floor {floor[key]:.3f}"))
    return rows


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    """`python -m bench peer`: the rounds against Locust, then the 20,000-device run."""
    backends = ["--tls-backends", *args.peer_tls_backends]
    if args.peer_big:  # only the big run: its own results file, as `python -m bench.peer --big`
        report, rows = _run(parser().parse_args(["--big", *backends]))
        return {**report, "_results": "peer-big"}, rows
    report, rows = _run(parser().parse_args(
        ["--devices", str(args.peer_devices), "--rounds", str(args.peer_rounds), *backends,
         *(["--no-floor"] if args.peer_no_floor else [])]))
    if not args.peer_no_big:
        for backend in args.peer_tls_backends:
            big = big_run(tls_backend=backend)
            report.setdefault("big", {})[backend] = big
            rows += _big_rows(big, f"{backend}: ")
    return report, rows


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    if args.big:
        report = big_run(args.devices if args.devices != 1000 else 20_000,
                         args.tls_backends[0])
        return report, _big_rows(report)
    report = collect(args)
    return report, _rows(report)


def _big_rows(report: dict[str, Any], label: str = "") -> list[Any]:
    from bench.report import Row

    rows = []
    for n, r in report["runs"].items():
        c, t, m = r["connect"], r["telemetry"], r["memory"]
        p99 = c["latency"].get("p99_ms")
        n_label = f"{label}{n} dev"
        rows += [
            Row(f"{n_label}: connected (held)", c["ok"], "devices", n, c["ok"] == int(n)),
            *_rate_rows(n_label, c),
            Row(f"{n_label}: connect p50", c["latency"].get("p50_ms"), "ms"),
            Row(f"{n_label}: connect p99", p99, "ms", "< 1000", p99 is not None and p99 < 1000),
            Row(f"{n_label}: RSS per device", m["kb_per_connected_device"], "KB"),
            Row(f"{n_label}: CPU per connect", c["cpu_ms_per_connect_incl_tls_context"], "ms"),
            Row(f"{n_label}: CPU per message", t["cpu_ms_per_msg"], "ms"),
            Row(f"{n_label}: messages/s", t["msgs_per_s"], "/s", f"{int(n) / 5:.0f}")]
    return rows


# The rate a ramp keeps: within 0.5% of the connects/s offered.
RATE_KEPT = BIG_RATE * 0.995


def _rate_rows(n_label: str, c: dict[str, Any]) -> list[Any]:
    """The 20,000-device ramp's rate: starts and CONNACKs per second while it starts devices
    (`fleet.ramp_rates`), and connected devices over its wall time, which also counts the
    latency of its last connects."""
    from bench.report import Row

    rows = [Row(f"{n_label}: connected / ramp wall time", c["connects_per_s"], "/s")]
    for key, label in (("starts_per_s", "starts/s"),
                       ("connacks_per_s_while_starting", "CONNACKs/s while starting")):
        if key in c:
            rows.append(Row(f"{n_label}: {label}", c[key], "/s", f">= {RATE_KEPT:g}",
                            c[key] >= RATE_KEPT))
    if "tail_s" in c:
        rows.append(Row(f"{n_label}: last CONNACK after the last start", c["tail_s"], "s"))
    if "machine_steal_s" in c:
        rows.append(Row(f"{n_label}: CPU the host took over the ramp (steal)",
                        c["machine_steal_s"], "s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    from bench.report import print_table, write_json

    args = parser().parse_args(argv)
    report, rows = _run(args)
    path = write_json("peer-big" if args.big else "peer", report)
    print_table(f"peer ({report['elapsed_s']} s; full results in {path})", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
