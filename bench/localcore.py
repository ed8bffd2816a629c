"""`python -m bench localcore`: issue 3's performance targets for local core, measured with
local core in its own process and the load in others (pinned to separate CPUs when there are
two or more)."""

from __future__ import annotations

import argparse
import os
import time
import traceback
from dataclasses import asdict
from typing import Any

from bench import api_bench, broker_bench
from bench.api_client import ApiClient
from bench.core_process import CoreProcess
from bench.devices import Provisioned, provision
from bench.profile import py_spy
from bench.report import RESULTS_DIR, Row
from bench.system import (
    load_average,
    machine_info,
    pin_self,
    raise_fd_limit,
    utc_now,
    wait_for_quiet,
)
from fleetsim.runtime import run_async

PARTS = ("create-thing", "create-keys", "broker", "handshakes")
NOISY_SHARE = 0.2  # other work above this share of a core makes a figure suspect
TARGETS = {"create_thing_per_s": 1000, "create_keys_per_s": 300, "handshakes_per_s": 300,
           "qos0_per_s": 20000, "kb_per_idle_connection": 80}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin local core and the load to separate CPUs")
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer clients")
    parser.add_argument("--publishers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="client processes for the broker")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured phase")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy local core during each part (collapsed stacks in "
                             "bench/results/, top frames in the JSON)")
    parser.add_argument("--quiet-wait", type=float, default=20.0, metavar="S",
                        help="before each part (and up to S/2 before each broker phase), wait "
                             "up to S seconds for other work on the machine to stop (default "
                             "20; 0 = do not wait)")
    parser.add_argument("--native", action="store_true",
                        help="with --profile: include native (C) frames")


def _cpus(no_pin: bool) -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(PARTS)}")
    raise_fd_limit()
    server_cpu, client_cpu = _cpus(args.no_pin)
    affinity = pin_self(client_cpu)
    duration = 2.0 if args.quick else args.duration
    params = broker_bench.BrokerParams(
        publishers=200 if args.quick else args.publishers, workers=args.workers,
        duration_s=duration, handshake_duration_s=duration + 3,
        handshake_max=1000 if args.quick else 4000, quiet_wait_s=args.quiet_wait / 2)
    result: dict[str, Any] = {
        "benchmark": "localcore", "started": utc_now(), "machine": machine_info(),
        "placement": {"local_core_cpu": server_cpu, "load_cpu": client_cpu,
                      "benchmark_process_affinity": affinity,
                      "how": "local core started under `taskset -c N`; the benchmark process "
                             "and its client processes pinned with sched_setaffinity"
                      if server_cpu is not None else "not pinned"},
        "parameters": {"parts": parts, "duration_s": duration, **asdict(params)},
        "targets": TARGETS, "errors": {}, "load_average_start": load_average(),
    }
    t0 = time.perf_counter()
    with CoreProcess(cpu=server_cpu) as core:
        result["local_core"] = {"pid": core.pid, "api_url": core.api_url,
                                "mqtt_port": core.mqtt_port}
        for part in parts:
            busy = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else None
            result.setdefault("machine_busy_cores_before_part", {})[part] = busy
            print(f"[bench localcore] {part} (machine busy before: {busy} cores) ...",
                  flush=True)
            profile: dict[str, Any] = {}
            try:
                with py_spy(core.pid, RESULTS_DIR / f"localcore-{part}.collapsed", args.profile,
                            profile, args.native):
                    _part(part, core, params, duration, client_cpu, result)
            except Exception as e:  # a failed part is reported, the others still run
                result["errors"][part] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            if profile:
                result.setdefault("profiles", {})[part] = profile
        result["local_core"]["log_tail"] = core.log_tail(3)
    result["finished"] = utc_now()
    result["load_average_end"] = load_average()
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return result, rows(result)


def _part(part: str, core: CoreProcess, params: broker_bench.BrokerParams, duration: float,
          client_cpu: int | None, result: dict[str, Any]) -> None:
    if part == "create-thing":
        result["create_thing"] = run_async(_create_thing(core, duration))
    elif part == "create-keys":
        result["create_keys_and_certificate"] = run_async(
            api_bench.create_keys_and_certificates(core.api_url, core.pid, 8, duration + 1,
                                                   5000))
    elif part in ("broker", "handshakes"):
        result.update(_broker(core, params, part, client_cpu, result))


async def _create_thing(core: CoreProcess, duration: float) -> dict[str, Any]:
    lean = await api_bench.create_things_lean(core.api_url, core.pid, 32, duration, 100_000)
    boto = await api_bench.create_things_boto(core.api_url, core.pid, 16, duration, 100_000)
    return {"lean": lean, "aioboto3": boto}


def _broker(core: CoreProcess, params: broker_bench.BrokerParams, part: str,
            client_cpu: int | None, result: dict[str, Any]) -> dict[str, Any]:
    devices = result.get("_devices")
    out: dict[str, Any] = {}
    if devices is None:
        needed = params.publishers + params.subscribers_per_worker * params.workers
        prov = run_async(_provision(core, needed))
        devices = result["_devices"] = prov.devices
        out["provisioning"] = {
            "devices": len(devices),
            "create_certificate_from_csr_ec_p256": {
                **prov.create_cert.summary(), "concurrency": 16,
                "server_cpu_ms_per_request": round(
                    1000 * (prov.create_cert_server_cpu_s or 0) / max(1, prov.create_cert.count),
                    3)},
            "attach_policy": prov.attach.summary()}
    workers = broker_bench.start_workers(params, devices, core.mqtt_port, core.root_ca,
                                         core.pid, client_cpu)
    try:
        out["client_processes"] = [w.ready for w in workers]
        if part == "broker":
            out.update(broker_bench.fleet_memory_and_messages(params, workers, core.pid))
        else:
            out["handshakes"] = broker_bench.handshake_rate(params, workers)
    finally:
        for w in workers:
            w.stop()
    return out


async def _provision(core: CoreProcess, count: int) -> Provisioned:
    async with ApiClient(core.api_url, 16) as api:
        return await provision(api, count, core.workdir / "devices", server_pid=core.pid)


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []

    def add(figure: str, value: float | None, unit: str, target: float | None = None,
            higher_is_better: bool = True, note: str = "", tolerance: float = 1.0) -> None:
        ok = None
        if target is not None and value is not None:
            ok = (value >= tolerance * target if higher_is_better
                  else value <= target)
        sign = ">=" if higher_is_better else "<="
        out.append(Row(figure, value, unit, f"{sign} {target:,}" if target else "", ok, note))

    def noise(d: dict[str, Any]) -> str:
        share = d.get("other_cpu_s", 0) / d["seconds"] if d.get("seconds") else 0
        return (f"other processes on the machine used {100 * share:.0f}% of a core meanwhile"
                if share > NOISY_SHARE else "")

    if "create_thing" in r:
        lean, boto = r["create_thing"]["lean"], r["create_thing"]["aioboto3"]
        add("create-thing (lean client)", lean["per_second"], "/s", TARGETS["create_thing_per_s"],
            note=noise(lean))
        add("  server CPU per create-thing", lean["server_cpu_ms_per_request"], "ms")
        add("create-thing (aioboto3)", boto["per_second"], "/s", note=noise(boto))
    if "create_keys_and_certificate" in r:
        keys = r["create_keys_and_certificate"]
        add(f"create-keys-and-certificate ({keys['key_type']})", keys["per_second"], "/s",
            TARGETS["create_keys_per_s"])
        add("  server CPU per create-keys", keys["server_cpu_ms_per_request"], "ms")
    if "provisioning" in r:
        csr = r["provisioning"]["create_certificate_from_csr_ec_p256"]
        add("create-certificate-from-csr (EC P-256)", csr["per_second"], "/s",
            note="the device makes the key and the CSR; local core signs")
        add("  server CPU per create-certificate-from-csr", csr["server_cpu_ms_per_request"],
            "ms")
    if "memory" in r:
        add("memory per idle connection", r["memory"]["kb_per_connection"], "KB",
            TARGETS["kb_per_idle_connection"], higher_is_better=False)
    for phase in r.get("messages", []):
        paced = phase["paced_rate"]
        target = TARGETS["qos0_per_s"] if phase["qos"] == 0 else None
        how = f"paced at {paced:,.0f}/s" if paced else "flat out"
        lost = phase["lost_after_drain"]
        add(f"QoS {phase['qos']} delivered, {how}, {phase['batch']} msg/write",
            phase["delivered_per_s"], "msg/s", target,
            # paced: the target is met when everything offered at the target rate arrives
            tolerance=0.99 if paced else 1.0,
            note="; ".join(n for n in (
                f"{lost} messages not delivered after drain" if lost else "", noise(phase)) if n))
        add("  server CPU per message", phase["server_cpu_us_per_message"], "us",
            note="" if not paced else f"local core busy {100 * phase['server_utilisation']:.0f}%"
            f" of one core at {paced:,.0f} msg/s")
    if "handshakes" in r:
        hs = r["handshakes"]
        add("TLS+CONNECT handshakes", hs["per_second"], "/s", TARGETS["handshakes_per_s"],
            note=noise(hs))
        add("  server CPU per handshake", hs["server_cpu_ms_per_handshake"], "ms")
    return out
