"""Just-in-time provisioning bench, against local core in its own process (temp state):

    python -m bench jit
    python -m bench jit --jit-devices 1000 --jit-key-type rsa-2048

`--jit-devices` devices of one CA power up at once (`scenarios/jitp.yaml` with the workshop's
JITP template, EC P-256 keys by default: RSA key generation would dominate on small machines)
and retry with back-off and jitter until admitted, then publish to ji/tp. Then JITR the same
way (`scenarios/jitr.yaml`: the workshop's function deployed, the topic rule on the CA's
registration events; registration = until the function activated the certificate), with the
function's invocations per second read back from its log group (REPORT lines). Reported per
lab: time until every device is admitted and has published, p50/p99 of each phase (first
attempt, registration until ACTIVE, admitted, first publish acknowledged), registrations per
second and attempts per device, CPU of local core and of the devices.
Results: bench/results/jit.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.fleet_provision import start_core
from bench.provisioning import _fleetsim_run
from bench.report import RESULTS_DIR, Row
from bench.system import CpuWindow, machine_info, raise_fd_limit, utc_now

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("jit.first_attempt", "jit.registration", "jit.admitted", "jit.first_publish")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("jit")
    group.add_argument("--jit-devices", type=int, default=1000,
                       help="devices of one CA connecting at once (default 1000)")
    group.add_argument("--jit-key-type", choices=("ec-p256", "rsa-2048"), default="ec-p256")


def _scenario(workdir: Path, lab: str, devices: int, key_type: str) -> str:
    """scenarios/<lab>.yaml for `devices` devices powering up at once, its CA (and function)
    in the temp dir.

    Edited as data, not as text: the register_ca and jit_connect steps must name the same CA
    folder (a text edit that missed one made the devices' certificates come from a CA nobody
    had registered, so no device was ever admitted)."""
    if not (workdir / "workshop").exists():
        shutil.copytree(ROOT / "scenarios" / "workshop", workdir / "workshop")
    doc = yaml.safe_load((ROOT / "scenarios" / f"{lab}.yaml").read_text())
    doc["fleets"][0].update(count=devices, key_type=key_type)
    for step in doc["steps"]:
        (kind, body), = step.items()
        if kind in ("register_ca", "jit_connect"):
            body["ca"] = f"certs/{lab}-ca"
        if kind == "deploy_function":
            shutil.copytree(ROOT / body["source"].removeprefix("../"), workdir / "function",
                            ignore=shutil.ignore_patterns("__pycache__"))
            body["source"] = "function"
        if kind == "jit_connect":
            body["pacing"] = {"concurrency": devices}  # every device at once
        if kind == "expect":
            body["timeout"] = "120s"
    return yaml.safe_dump(doc, sort_keys=False)


def _invocations_per_s(core: Any, function: str) -> float | None:
    """The function's invocations per second while it ran: REPORT lines in its log group."""
    import boto3  # the bench's own client, as a user reads the log group

    logs = boto3.client("logs", endpoint_url=core.api_url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")
    stamps: list[int] = []
    for page in logs.get_paginator("filter_log_events").paginate(
            logGroupName=f"/aws/lambda/{function}", filterPattern='"REPORT RequestId"'):
        stamps += [e["timestamp"] for e in page["events"]]
    if len(stamps) < 2 or max(stamps) == min(stamps):
        return None
    return round(len(stamps) / ((max(stamps) - min(stamps)) / 1000), 1)


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    raise_fd_limit()
    started = time.perf_counter()
    data: dict[str, Any] = {"benchmark": "jit", "started": utc_now(),
                            "machine": machine_info(), "devices": args.jit_devices,
                            "key_type": args.jit_key_type, "errors": {}}
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-jit-") as tmp:
        workdir = Path(tmp)
        core = start_core(workdir / "state" / "localcore", workdir / "localcore.log")
        try:
            for lab in ("jitp", "jitr"):
                try:
                    data[lab] = _run_lab(args, core, workdir, lab)
                except Exception as e:
                    data["errors"][lab] = str(e)
            if "jitr" in data:
                data["jitr"]["invocations_per_s"] = _invocations_per_s(core, "jitr")
        finally:
            core.stop()
            RESULTS_DIR.mkdir(exist_ok=True)  # local core's log outlives the temp dir
            shutil.copyfile(workdir / "localcore.log", RESULTS_DIR / "jit-localcore.log")
            data["localcore_log"] = str(RESULTS_DIR / "jit-localcore.log")
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data, _rows(data)


def _run_lab(args: argparse.Namespace, core: Any, workdir: Path, lab: str) -> dict[str, Any]:
    """`fleetsim run` of one lab's scenario, with the CPU it cost each side."""
    profile: dict[str, Any] | None = {} if getattr(args, "profile", False) else None
    load0, window = os.getloadavg(), CpuWindow(core.pid)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    window.start(time.perf_counter())
    result: dict[str, Any] = _fleetsim_run(core, workdir, lab, _scenario(
        workdir, lab, args.jit_devices, args.jit_key_type), profile)
    window.stop(time.perf_counter())
    result["cpu"] = _cpu(window, children0, load0)
    if profile:
        result["profiles"] = profile
    return result


def _cpu(core: CpuWindow, children0: resource.struct_rusage,
         load0: tuple[float, float, float]) -> dict[str, Any]:
    """CPU seconds of local core and of the `fleetsim run` process (the devices; with
    --profile, py-spy's too) over the whole run, and how loaded the machine was: the figures
    of one run are comparable with each other, runs on a shared machine less so."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    devices = (children.ru_utime - children0.ru_utime) + (children.ru_stime - children0.ru_stime)
    return {"wall_s": round(core.wall, 1), "localcore_cpu_s": round(core.cpu, 1),
            "devices_cpu_s": round(devices, 1), "loadavg_before": load0,
            "loadavg_after": os.getloadavg(), "cpus": os.cpu_count()}


def _rows(data: dict[str, Any]) -> list[Row]:
    return _lab_rows(data, "jitp", "JITP") + _lab_rows(data, "jitr", "JITR")


def _lab_rows(data: dict[str, Any], lab: str, title: str) -> list[Row]:
    jitp = data.get(lab)
    if not jitp:
        return []
    n = data["devices"]
    online = jitp["ops"].get("jit_connect/jit.fleet_online")
    until = None if online is None else round(online["p50_ms"] / 1000, 2)  # one figure
    rows = [Row(f"{title}, {n} devices at once: until all admitted and published", until, "s",
                "< 30 s", None if until is None else until < 30)]
    if "jit_connect" in jitp["steps"]:
        rows.append(Row("  jit_connect step (with making the identities)",
                        jitp["steps"]["jit_connect"]["duration_s"], "s"))
    for phase in PHASES:
        op = jitp["ops"].get(f"jit_connect/{phase}")
        if op:
            rows.append(Row(f"  {phase} p50", op["p50_ms"] / 1000, "s"))
            rows.append(Row(f"  {phase} p99", op["p99_ms"] / 1000, "s"))
    if until:
        rows.append(Row("  registrations/s", round(n / until, 1), "1/s"))
    attempts = jitp["counters"].get("jit.attempts")
    if attempts:
        rows.append(Row("  attempts per device (mean)", round(attempts / n, 2), ""))
    for op in ("mqtt.connect", "api.DescribeCertificate", "api.ListCertificatesByCA"):
        entry = jitp["ops"].get(f"jit_connect/{op}")
        if entry:
            failed = sum(entry["errors"].values())
            rows.append(Row(f"  {op} calls", entry["count"] + failed, "", note=f"{failed} failed"))
    if jitp.get("invocations_per_s"):
        rows.append(Row("  Lambda invocations/s", jitp["invocations_per_s"], "1/s"))
    cpu = jitp.get("cpu")
    if cpu:
        rows.append(Row("  CPU over the run: local core", cpu["localcore_cpu_s"], "s"))
        rows.append(Row("  CPU over the run: devices (fleetsim run)", cpu["devices_cpu_s"], "s"))
        rows.append(Row("  load average (1 min) before the run", cpu["loadavg_before"][0], "",
                        note=f"after: {cpu['loadavg_after'][0]:.1f}; {cpu['cpus']} CPUs"))
    return rows
