"""Fleet bench: N devices with their own keys, certificates and mutual-TLS MQTT sessions in one
fleetsim process, against local core in its own process (ephemeral 127.0.0.1 ports, temp
state dir).

    python -m bench.fleet                      # N = 1,000 then 5,000; ~4 min
    python -m bench.fleet --devices 200 --telemetry 10

Per N, a fresh fleetsim process (the worker) measures, in order: TLS contexts built ahead of
the ramp (CPU each), the connect ramp (connects/s, connect latency percentiles, CPU per connect),
RSS per connected device, idle CPU, steady telemetry (1 message per device per `--interval`
seconds, QoS `--qos`) with CPU per message and end-to-end latency seen by an observer on a
sampled wildcard, and the shutdown of every session. Results: bench/results/fleet.json.
With `--metrics`, each N runs twice: as above, then with the Prometheus endpoint of
`fleetsim run --metrics-port` served by the worker and scraped every second by this process,
and the ratio of their CPU per message is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.fleet_provision import FLEET, OBSERVER_FLEET, provision, start_core
from bench.report import error_kinds
from bench.system import cpu_seconds, steal_seconds
from fleetsim.device.behaviours.telemetry import Stream, publish_periodically
from fleetsim.device.payload import encode
from fleetsim.localcore.arguments import INFO_FILE

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fleet.json"
TOPIC = "bench/t/{shard}/{thing}"


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _pcts(hist: Any) -> dict[str, float]:
    if hist.count == 0:
        return {"count": 0}
    return {"count": hist.count, "p50_ms": hist.percentile(50) / 1000,
            "p90_ms": hist.percentile(90) / 1000, "p99_ms": hist.percentile(99) / 1000,
            "max_ms": hist.max / 1000}


# --- the worker: one fleetsim process ----------------------------------------------------------

class Window:
    """CPU (user and system, all threads) and wall time over a phase."""

    def __init__(self) -> None:
        self._r0 = resource.getrusage(resource.RUSAGE_SELF)
        self._t0 = time.perf_counter()
        self._steal0 = steal_seconds()
        self.user = self.sys = self.wall = self.steal = 0.0

    def stop(self) -> Window:
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.user, self.sys = r.ru_utime - self._r0.ru_utime, r.ru_stime - self._r0.ru_stime
        self.wall = time.perf_counter() - self._t0
        self.steal = steal_seconds() - self._steal0  # the whole machine's, every CPU
        return self

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def per(self, n: int, label: str = "ms") -> dict[str, float]:
        """CPU ms per unit (`n` units), split into user and system time."""
        n = max(n, 1)
        return {f"cpu_{label}": self.cpu * 1000 / n, f"user_{label}": self.user * 1000 / n,
                f"sys_{label}": self.sys * 1000 / n}


async def _connect_paced(sessions: list[Any], rate: float,
                         concurrency: int) -> tuple[list[Any], dict[str, float]]:
    """Start `rate` connects a second (at most `concurrency` in flight) with the connect
    step's pacer (`engine.pacing`, its default tick); returns the sessions connected, in
    order, and the ramp's rates (`ramp_rates`)."""
    from fleetsim.device import DeviceError
    from fleetsim.engine.pacing import Pacer, RateCurve, paced
    from fleetsim.scenario.model import Pacing

    ok = [False] * len(sessions)
    starts: list[float] = []
    connacks: list[float] = []

    async def one(i: int) -> None:
        starts.append(time.monotonic())
        try:
            await sessions[i].__aenter__()
            ok[i] = True
            connacks.append(time.monotonic())
        except DeviceError:
            pass

    await paced(range(len(sessions)), one, Pacer(RateCurve(rate), tick=Pacing().tick),
                concurrency)
    return ([s for s, connected in zip(sessions, ok, strict=True) if connected],
            ramp_rates(starts, connacks))


def ramp_rates(starts: list[float], connacks: list[float]) -> dict[str, float]:
    """A paced ramp's rates apart from its tail: starts per second from the first start to the
    last, the CONNACKs that came within that span per second of it, and how long after the
    last start the last CONNACK came. Connected devices over the whole ramp's wall time also
    count that tail, the latency of the last connects (0.02-0.95 s of the 40 s ramps of
    session 12)."""
    if len(starts) < 2 or not connacks:
        return {}
    first, last = min(starts), max(starts)
    span = max(last - first, 1e-9)
    return {"starts_per_s": (len(starts) - 1) / span,
            "connacks_per_s_while_starting": sum(1 for t in connacks if t <= last) / span,
            "tail_s": max(connacks) - last}


async def _telemetry(sessions: list[Any], args: argparse.Namespace, shards: int) -> int:
    """Steady telemetry driven by the engine's own ticker (`publish_periodically`, as
    `fleetsim run` does it): each device once per interval, at a random phase."""
    body = {"temp": 21.5, "humidity": 40, "status": "ok"}
    streams = [Stream(lambda s=s: s, TOPIC.format(shard=s.identity.index % shards,
                                                 thing=s.identity.thing_name),
                      lambda _seq: encode(body, stamp=True))
               for s in sessions]
    return await publish_periodically(streams, args.interval,
                                      time.monotonic() + args.telemetry, args.qos)


def _dump_tasks_on_sigusr1() -> None:
    """`kill -USR1 <worker>` prints where every task waits (for a bench that seems stuck)."""
    import signal

    def dump() -> None:
        for task in asyncio.all_tasks():
            task.print_stack(limit=6, file=sys.stderr)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


async def _worker(args: argparse.Namespace) -> dict[str, Any]:
    from fleetsim.device import (
        DeviceSession,
        IdentityStore,
        Observer,
        TlsContextFactory,
        close_many,
        connect_many,
    )
    from fleetsim.metrics import Metrics
    from fleetsim.runtime import raise_fd_limit
    from fleetsim.target import Target

    raise_fd_limit()
    _dump_tasks_on_sigusr1()
    ids = Path(args.identities)
    identities = IdentityStore(ids, FLEET).load_all()
    target = Target.from_local_core_info(Path(args.core_info))
    metrics, obs_metrics = Metrics(), Metrics()
    factory = TlsContextFactory(target, share=args.tls[0] != "per-device",
                                backend="openssl" if args.tls[0] == "openssl" else "stdlib")
    shards = max(1, round(1 / args.observe_share))
    n = len(identities)
    out: dict[str, Any] = {"devices": n, "tls": args.tls[0],
                           "loop": type(asyncio.get_running_loop()).__module__}

    observer_id = IdentityStore(ids, OBSERVER_FLEET).load("bench-observer")
    observer_session = DeviceSession(observer_id, target, obs_metrics,
                                     tls=factory.device_tls(observer_id), timeout=30)
    await observer_session.__aenter__()
    observer = await Observer(observer_session, [TOPIC.format(shard=0, thing="#")],
                              obs_metrics).__aenter__()

    if args.serve_metrics:  # what `fleetsim run --metrics-port` serves, scraped from outside
        from fleetsim.metrics.exporter import MetricsServer

        server = await MetricsServer(lambda: metrics).__aenter__()
        Path(args.serve_metrics).write_text(server.url)

    rss0 = _rss_kb()
    w = Window()
    contexts = [factory.device_tls(i) for i in identities]
    w.stop()
    out["tls_context"] = {**w.per(n, "ms_each"), "wall_s": w.wall}
    ctx_cpu = w.cpu

    sessions = [DeviceSession(i, target, metrics, tls=c, timeout=args.connect_timeout,
                              protocol=args.protocol[0])
                for i, c in zip(identities, contexts, strict=True)]
    del contexts
    w = Window()
    rates: dict[str, float] = {}
    if args.rate:
        connected, rates = await _connect_paced(sessions, args.rate, args.concurrency)
    else:
        connected = await connect_many(sessions, args.concurrency)
    w.stop()
    n_ok = len(connected)
    out["connect"] = {
        "ok": n_ok, "failed": n - n_ok, "concurrency": args.concurrency,
        "wall_s": w.wall, "connects_per_s": n_ok / w.wall, **rates,
        **w.per(n_ok, "ms_per_connect"),
        "cpu_ms_per_connect_incl_tls_context": (w.cpu + ctx_cpu) * 1000 / max(n_ok, 1),
        "latency": _pcts(metrics.histogram("mqtt.connect")),
        "machine_steal_s": w.steal, "errors": error_kinds(metrics.snapshot())}
    await asyncio.sleep(3)
    rss1 = _rss_kb()
    out["memory"] = {"rss_before_kb": rss0, "rss_connected_kb": rss1,
                     "kb_per_connected_device": (rss1 - rss0) / max(n_ok, 1)}

    w = Window()
    await asyncio.sleep(args.idle)
    w.stop()
    idle_ms_per_s = w.cpu * 1000 / w.wall
    out["idle"] = {"cpu_ms_per_s": idle_ms_per_s, "sys_ms_per_s": w.sys * 1000 / w.wall,
                   "cpu_us_per_device_s": idle_ms_per_s * 1000 / max(n_ok, 1)}

    seen0 = observer.mark()
    w = Window()
    sent = await _telemetry(connected, args, shards)
    w.stop()
    await asyncio.sleep(1)
    out["telemetry"] = {
        "seconds": w.wall, "interval_s": args.interval, "qos": args.qos,
        "sent": sent, "msgs_per_s": sent / w.wall, **w.per(sent, "ms_per_msg"),
        "cpu_ms_per_msg_net_of_idle": (w.cpu * 1000 - idle_ms_per_s * w.wall) / max(sent, 1),
        "observer_share": 1 / shards, "observer_received": observer.mark() - seen0,
        "publish_latency": _pcts(metrics.histogram("mqtt.publish")),
        "e2e_latency": _pcts(obs_metrics.histogram("e2e")),
        "errors": error_kinds(metrics.snapshot())}

    await observer.__aexit__(None, None, None)
    w = Window()
    dropped = await close_many([*connected, observer_session])
    w.stop()
    out["shutdown"] = {"sessions": n_ok + 1, "wall_s": w.wall, "cpu_s": w.cpu,
                       "dropped_without_disconnect": dropped}
    out["rusage_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.serve_metrics:
        await server.__aexit__(None, None, None)
    return out


def _run_worker(args: argparse.Namespace) -> None:
    from fleetsim.runtime import run_async

    result = run_async(_worker(args))
    Path(args.result).write_text(json.dumps(result, indent=1))


# --- the orchestrator ----------------------------------------------------------------------

class Scraper(threading.Thread):
    """Scrapes the URL the worker writes to `url_file`, once a second, until stopped."""

    def __init__(self, url_file: Path) -> None:
        super().__init__(daemon=True)
        self.url_file, self.scrapes, self.failures, self.bytes = url_file, 0, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            if not self.url_file.exists():
                continue
            try:
                with urllib.request.urlopen(self.url_file.read_text(), timeout=5) as r:
                    self.bytes = len(r.read())
                self.scrapes += 1
            except OSError:
                self.failures += 1


def _one(n: int, args: argparse.Namespace, tmp: Path, protocol: str,
         tls: str = "shared", metrics: bool = False) -> dict[str, Any]:
    state, ids = tmp / f"core-{n}", tmp / f"ids-{n}"
    provision_s = 0.0
    if not ids.exists():  # one fleet per N, whatever the protocol
        t = time.perf_counter()
        provision(state, ids, n)
        provision_s = time.perf_counter() - t
    core = start_core(state, tmp / f"core-{n}-{protocol}-{tls}.log")
    try:
        core_cpu0 = cpu_seconds(core.pid)
        result_file = tmp / f"result-{n}-{protocol}-{tls}.json"
        cmd = [sys.executable, "-m", "bench.fleet", "--worker", "--identities", str(ids),
               "--core-info", str(state / INFO_FILE), "--result", str(result_file),
               "--telemetry", str(args.telemetry), "--interval", str(args.interval),
               "--idle", str(args.idle), "--qos", str(args.qos), "--protocol", protocol,
               "--tls", tls,
               "--concurrency", str(args.concurrency), "--rate", str(args.rate),
               "--observe-share", str(args.observe_share),
               "--connect-timeout", str(args.connect_timeout)]
        url_file = tmp / f"metrics-url-{n}-{protocol}"
        url_file.unlink(missing_ok=True)
        scraper = Scraper(url_file)
        if metrics:
            cmd += ["--serve-metrics", str(url_file)]
            scraper.start()
        try:
            subprocess.run(cmd, check=True, cwd=ROOT, timeout=args.worker_timeout)
        finally:
            scraper.done.set()
        result = json.loads(result_file.read_text())
        if metrics:
            result["metrics_endpoint"] = {"scrapes": scraper.scrapes,
                                          "failed_scrapes": scraper.failures,
                                          "last_scrape_bytes": scraper.bytes}
        result["provision_s_untimed"] = provision_s
        result["protocol"] = protocol
        result["local_core_cpu_s"] = cpu_seconds(core.pid) - core_cpu0
        return result
    finally:
        core.stop()


def _machine() -> dict[str, Any]:
    import ssl

    import aiomqtt
    import paho.mqtt

    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count(), "openssl": ssl.OPENSSL_VERSION,
            "aiomqtt": aiomqtt.__version__ if hasattr(aiomqtt, "__version__") else "?",
            "paho": paho.mqtt.__version__, "load_avg_at_start": os.getloadavg()}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1000, 5000])
    p.add_argument("--telemetry", type=float, default=25.0, help="seconds of telemetry")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between messages")
    p.add_argument("--idle", type=float, default=5.0, help="seconds of idle measurement")
    p.add_argument("--qos", type=int, default=0, choices=(0, 1))
    p.add_argument("--protocol", nargs="+", default=["mqtt3.1.1"],
                   choices=("mqtt3.1.1", "mqtt5"),
                   help="the devices' MQTT version(s) (mqtt5: telemetry with topic aliases); "
                        "with both, each N runs on each, one after the other, on one "
                        "provisioned fleet")
    p.add_argument("--tls", nargs="+", default=["shared"],
                   choices=("shared", "per-device", "openssl"),
                   help="devices share a context per kind of key, or have one each, or go "
                        "through pyOpenSSL (tls_backend: openssl); with several, each N runs "
                        "with each, one after the other (compare within one invocation: this "
                        "machine's load varies)")
    p.add_argument("--concurrency", type=int, default=200, help="connects in flight")
    p.add_argument("--rate", type=float, default=0.0,
                   help="connects started per second (0: as fast as --concurrency allows)")
    p.add_argument("--observe-share", type=float, default=0.1,
                   help="share of devices whose messages the observer subscribes to")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--worker-timeout", type=float, default=240.0)
    p.add_argument("--metrics", action="store_true",
                   help="each N again with the Prometheus endpoint scraped every second")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--serve-metrics", help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--identities", help=argparse.SUPPRESS)
    p.add_argument("--core-info", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p


def _collect(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    report: dict[str, Any] = {"bench": "fleet", "machine": _machine(), "parameters": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        if k not in ("worker", "identities", "core_info", "result", "out", "serve_metrics")},
        "runs": {}}
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-") as tmp:
        for n in args.devices:
            for protocol in args.protocol:
                for tls in args.tls:
                    for metrics in (False, True) if args.metrics else (False,):
                        print(f"fleet bench: {n} devices, {protocol}, tls {tls}"
                              f"{' +metrics' if metrics else ''} ...", flush=True)
                        key = " ".join([str(n), *([protocol] if len(args.protocol) > 1 else []),
                                        *([f"tls={tls}"] if len(args.tls) > 1 else []),
                                        *(["+metrics"] if metrics else [])])
                        report["runs"][key] = run = _one(n, args, Path(tmp), protocol, tls,
                                                         metrics)
                        print(json.dumps(_summary(run)), flush=True)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        _run_worker(args)
        return 0
    report = _collect(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


# --- `python -m bench fleet` ---------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet-devices", type=int, nargs="+", default=[1000, 5000],
                        metavar="N", help="fleet bench: devices per run (default 1000 5000)")
    parser.add_argument("--fleet-telemetry", type=float, default=25.0, metavar="S",
                        help="fleet bench: seconds of steady telemetry")
    parser.add_argument("--fleet-qos", type=int, default=0, choices=(0, 1))
    parser.add_argument("--fleet-protocol", nargs="+", default=["mqtt3.1.1"],
                        choices=("mqtt3.1.1", "mqtt5"),
                        help="fleet bench: MQTT version(s), each N on each")
    parser.add_argument("--fleet-metrics", action="store_true",
                        help="fleet bench: each N again with the Prometheus endpoint "
                             "(fleetsim run --metrics-port) scraped every second")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Any]]:
    quick = getattr(args, "quick", False)
    mine = _parser().parse_args([
        "--devices", *(["500"] if quick else [str(n) for n in args.fleet_devices]),
        "--telemetry", "10" if quick else str(args.fleet_telemetry),
        "--qos", str(args.fleet_qos), "--protocol", *args.fleet_protocol,
        *(["--metrics"] if getattr(args, "fleet_metrics", False) else [])])
    report = _collect(mine)
    return report, _rows(report)


def _rows(report: dict[str, Any]) -> list[Any]:
    from bench.report import Row

    rows = []
    for n, r in report["runs"].items():
        c, t = r["connect"], r["telemetry"]
        cpu_connect = c["cpu_ms_per_connect_incl_tls_context"]
        kb = r["memory"]["kb_per_connected_device"]
        rows += [
            Row(f"{n} dev: connected", c["ok"], "devices", f"{r['devices']}",
                c["ok"] == r["devices"]),
            Row(f"{n} dev: connects/s", c["connects_per_s"], "/s"),
            Row(f"{n} dev: connect p99", c["latency"].get("p99_ms"), "ms"),
            Row(f"{n} dev: CPU per connect", cpu_connect, "ms", "<= 3", cpu_connect <= 3,
                "incl. the device's SSLContext"),
            Row(f"{n} dev: RSS per device", kb, "KB", "<= 100", kb <= 100),
            Row(f"{n} dev: CPU per message", t["cpu_ms_per_msg"], "ms", "<= 0.3",
                t["cpu_ms_per_msg"] <= 0.3),
            Row(f"{n} dev: e2e p99", t["e2e_latency"].get("p99_ms"), "ms"),
            Row(f"{n} dev: shutdown", r["shutdown"]["wall_s"], "s"),
        ]
        plain = report["runs"].get(n.removesuffix(" +metrics"))
        if n.endswith(" +metrics") and plain:
            ratio = t["cpu_ms_per_msg"] / max(plain["telemetry"]["cpu_ms_per_msg"], 1e-9)
            rows.append(Row(f"{n} dev: CPU per message vs without", ratio, "x", "",
                            None, f"{r['metrics_endpoint']['scrapes']} scrapes, 1/s"))
    return rows


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    c, t = run["connect"], run["telemetry"]
    return {"devices": run["devices"], "connected": c["ok"],
            "connects_per_s": round(c["connects_per_s"]),
            **{k: round(c[k], 3 if k == "tail_s" else 1)
               for k in ("starts_per_s", "connacks_per_s_while_starting", "tail_s") if k in c},
            "steal_s": round(c.get("machine_steal_s", 0.0), 2),
            "connect_p50_p99_ms": [c["latency"].get("p50_ms"), c["latency"].get("p99_ms")],
            "cpu_ms_per_connect": round(c["cpu_ms_per_connect_incl_tls_context"], 2),
            "sys_ms_per_connect": round(c["sys_ms_per_connect"], 2),
            "kb_per_device": round(run["memory"]["kb_per_connected_device"], 1),
            "idle_cpu_ms_per_s": round(run["idle"]["cpu_ms_per_s"], 1),
            "cpu_ms_per_msg": round(t["cpu_ms_per_msg"], 3),
            "sys_ms_per_msg": round(t["sys_ms_per_msg"], 3),
            "e2e_p50_p99_ms": [t["e2e_latency"].get("p50_ms"), t["e2e_latency"].get("p99_ms")],
            "shutdown_s": round(run["shutdown"]["wall_s"], 2)}


if __name__ == "__main__":
    raise SystemExit(main())
