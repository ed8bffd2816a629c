"""Just-in-time provisioning bench, against local core in its own process (temp state):

    python -m bench jit
    python -m bench jit --jit-devices 1000 --jit-key-type rsa-2048

`--jit-devices` devices of one CA power up at once (`scenarios/jitp.yaml` with the workshop's
JITP template, EC P-256 keys by default: RSA key generation would dominate on small machines)
and retry with back-off and jitter until admitted, then publish to ji/tp. Reported: time
until every device is admitted and has published, p50/p99 of each phase (first attempt,
registration until ACTIVE, admitted, first publish acknowledged), registrations per second
and attempts per device. Then JITR the same way (`scenarios/jitr.yaml`: the workshop's function
deployed, the topic rule on the CA's registration events; registration = until the function
activated the certificate), with the function's invocations per second read back from its log
group (REPORT lines). Results: bench/results/jit.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fleet_provision import start_core
from bench.provisioning import _fleetsim_run
from bench.report import Row
from bench.system import machine_info, raise_fd_limit, utc_now

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("jit.first_attempt", "jit.registration", "jit.admitted", "jit.first_publish")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("jit")
    group.add_argument("--jit-devices", type=int, default=1000,
                       help="devices of one CA connecting at once (default 1000)")
    group.add_argument("--jit-key-type", choices=("ec-p256", "rsa-2048"), default="ec-p256")


def _scenario(workdir: Path, devices: int, key_type: str) -> str:
    shutil.copytree(ROOT / "scenarios" / "workshop", workdir / "workshop")
    text = (ROOT / "scenarios" / "jitp.yaml").read_text()
    text = text.replace("    count: 1\n", f"    count: {devices}\n")
    text = text.replace("key_type: rsa-2048                # openssl genrsa",
                        f"key_type: {key_type}  # openssl genrsa")
    text = text.replace("      ca: ../certs/jit-ca\n", "      ca: certs/jit-ca\n")
    text = text.replace("      fleet: jitp\n      ca:",
                        "      fleet: jitp\n      pacing: {concurrency: 1000}\n      ca:")
    return text.replace("timeout: 30s", "timeout: 120s")


def _jitr_scenario(workdir: Path, devices: int, key_type: str) -> str:
    """scenarios/jitr.yaml for `devices` at once, its function and CA in `workdir`."""
    if not (workdir / "workshop").exists():
        shutil.copytree(ROOT / "scenarios" / "workshop", workdir / "workshop")
    shutil.copytree(ROOT / "lambda" / "jitr", workdir / "lambda" / "jitr",
                    ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "scenarios" / "jitr.yaml").read_text()
    text = text.replace("    count: 1\n", f"    count: {devices}\n")
    text = text.replace("key_type: rsa-2048                # openssl genrsa",
                        f"key_type: {key_type}  # openssl genrsa")
    text = text.replace("ca: ../certs/jitr-ca", "ca: certs/jitr-ca")
    text = text.replace("source: ../lambda/jitr", "source: lambda/jitr")
    text = text.replace("      fleet: jitr\n      ca:",
                        "      fleet: jitr\n      pacing: {concurrency: 1000}\n"
                        "      give_up_after: 300s\n      ca:")
    return text.replace("timeout: 30s", "timeout: 120s")


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
            data["jitp"] = _fleetsim_run(core, workdir, "jitp", _scenario(
                workdir, args.jit_devices, args.jit_key_type))
        except Exception as e:
            data["errors"]["jitp"] = str(e)
        try:
            data["jitr"] = _fleetsim_run(core, workdir, "jitr", _jitr_scenario(
                workdir, args.jit_devices, args.jit_key_type))
            data["jitr"]["invocations_per_s"] = _invocations_per_s(core, "jitr")
        except Exception as e:
            data["errors"]["jitr"] = str(e)
        finally:
            core.stop()
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data, _rows(data)


def _rows(data: dict[str, Any]) -> list[Row]:
    return _lab_rows(data, "jitp", "JITP") + _lab_rows(data, "jitr", "JITR")


def _lab_rows(data: dict[str, Any], lab: str, title: str) -> list[Row]:
    jitp = data.get(lab)
    if not jitp:
        return []
    n = data["devices"]
    step = jitp["steps"].get("jit_connect", {})
    until = step.get("duration_s")
    rows = [Row(f"{title}, {n} devices at once: until all admitted and published", until, "s",
                "< 30 s", None if until is None else until < 30)]
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
    if jitp.get("invocations_per_s"):
        rows.append(Row("  Lambda invocations/s", jitp["invocations_per_s"], "1/s"))
    return rows
