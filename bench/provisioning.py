"""Provisioning bench, against local core in its own process (temp state, ephemeral ports):

    python -m bench provisioning
    python -m bench provisioning --bulk-devices 2000 --claim-devices 1000 --register-calls 300

- register-thing per second with the workshop's template, EC P-256 and RSA-2048 CSRs made
  before the timed section, `--register-concurrency` calls in flight (aioboto3, as the engine);
- a bulk registration task of `--bulk-devices` devices end to end until every device has
  published, by `fleetsim run` of a bulk scenario (EC P-256 keys: RSA key generation would
  dominate on small machines; the lab's RSA is `scenarios/bulk-provisioning.yaml`);
- fleet provisioning by claim of `--claim-devices` devices flat out, and paced at
  `--claim-rate` per second, by `fleetsim run` of a claim scenario until every device has
  published with its new identity.
Per-phase figures come from each run's JSON summary. Results: bench/results/provisioning.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fleet_provision import start_core
from bench.profile import py_spy
from bench.report import RESULTS_DIR, Row
from bench.system import machine_info, raise_fd_limit, utc_now
from fleetsim.control.clients import aws_clients
from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.metrics.histogram import Histogram
from fleetsim.pki import build_csr, generate_key
from fleetsim.runtime import run_async
from fleetsim.target import Target

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "scenarios" / "workshop" / "templateBody.json"
CLAIM_TEMPLATE = ROOT / "scenarios" / "fleet-provisioning" / "template.json"
ROLE = "arn:aws:iam::123456789012:role/IoTProvisioningRole"

# @COUNT@, @PACING@, @TEMPLATE@, @CLAIM_TEMPLATE@, @ROLE@ are filled in by `_scenario`.
BULK = """\
name: bench-bulk
fleets: [{name: bulky, prefix: bulky, count: @COUNT@, key_type: ec-p256,
          thing_name: "{prefix}{index}"}]
steps:
  - observe: {topics: [iot/ws]}
  - create_thing_group: bulk-group
  - create_thing_type: bulk-type
  - bulk_register:
      fleet: bulky
      template: @TEMPLATE@
      parameters: {ThingName: "{thing_name}", SerialNumber: "{index}"}
      bucket: "fleetsim-bulk-{run_id}"
      create_bucket: true
      key: bulk.json
      role_arn: @ROLE@
      poll: 0.2s
  - connect: {fleet: bulky, pacing: {concurrency: 200}}
  - publish: {fleet: bulky, topic: iot/ws, qos: 1, payload: {prov: bulk},
              pacing: {concurrency: 200}}
  - expect: {timeout: 60s, messages: [{topic: iot/ws, fleet: bulky}]}
  - disconnect: bulky
"""

CLAIM = """\
name: bench-claim
fleets: [{name: lamps, prefix: lamp, count: @COUNT@, thing_name: "{prefix}-{index}"}]
steps:
  - observe: {topics: [iot/ws]}
  - create_thing_group: claimed-lamps
  - create_policy:
      policy: bench-claim
      document: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "iot:*",
                                                     Resource: "*"}]}
  - create_provisioning_template: {template: bench-lamps, body: @CLAIM_TEMPLATE@,
                                   role_arn: @ROLE@}
  - fleet_provision:
      fleet: lamps
      template: bench-lamps
      parameters: {SerialNumber: "{index}"}
      claim_policy: bench-claim
      pacing: @PACING@
  - connect: {fleet: lamps, pacing: {concurrency: 200}}
  - publish: {fleet: lamps, topic: iot/ws, qos: 1, payload: {prov: claim},
              pacing: {concurrency: 200}}
  - expect: {timeout: 60s, messages: [{topic: iot/ws, fleet: lamps}]}
  - disconnect: lamps
"""


def _scenario(text: str, count: int, pacing: str = "") -> str:
    for key, value in (("@COUNT@", str(count)), ("@PACING@", pacing),
                       ("@TEMPLATE@", str(TEMPLATE)), ("@CLAIM_TEMPLATE@", str(CLAIM_TEMPLATE)),
                       ("@ROLE@", ROLE)):
        text = text.replace(key, value)
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--register-calls", type=int, default=300, metavar="N",
                        help="provisioning bench: register-thing calls per key type")
    parser.add_argument("--register-concurrency", type=int, default=32, metavar="N")
    parser.add_argument("--bulk-devices", type=int, default=2000, metavar="N")
    parser.add_argument("--claim-devices", type=int, default=1000, metavar="N")
    parser.add_argument("--claim-rate", type=float, default=100.0, metavar="R",
                        help="provisioning bench: paced claim run, devices per second")


async def _register_rate(core: RunningLocalCore, key_type: str, n: int,
                         concurrency: int) -> dict[str, Any]:
    csrs = [build_csr(generate_key(key_type), f"reg-{key_type}-{i}").decode()  # type: ignore[arg-type]
            for i in range(n)]
    body = TEMPLATE.read_text()
    target = Target.from_local_core(core.info)
    hist, errors = Histogram(), 0
    async with aws_clients(target, max_connections=concurrency) as clients:
        for op, name in (("create_thing_group", {"thingGroupName": "bulk-group"}),
                         ("create_thing_type", {"thingTypeName": "bulk-type"})):
            with contextlib.suppress(Exception):  # already there from the other key type
                await getattr(clients.iot, op)(**name)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    await clients.iot.register_thing(templateBody=body, parameters={
                        "ThingName": f"reg-{key_type}-{i}", "SerialNumber": str(i),
                        "CSR": csrs[i]})
                except Exception:  # counted
                    errors += 1
                    continue
                hist.record((time.perf_counter() - t0) * 1e6)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"calls": n, "errors": errors, "wall_s": round(wall, 2),
            "per_s": round(hist.count / wall, 1), "p50_ms": hist.percentile(50) / 1000,
            "p99_ms": hist.percentile(99) / 1000}


def _fleetsim_run(core: RunningLocalCore, workdir: Path, name: str, text: str,
                  profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """`fleetsim run` of scenario `text`; its wall time and per-step/per-op figures. With
    `profile` (a dict), both local core and the run are recorded with py-spy (`bench.profile`)
    and their hottest frames put in it under "localcore" and "devices"."""
    scenario, summary = workdir / f"{name}.yaml", workdir / f"{name}.json"
    scenario.write_text(text)
    started = time.perf_counter()
    with subprocess.Popen([sys.executable, "-m", "fleetsim", "run", str(scenario), "--json",
                           str(summary), "--state-dir", str(core.state_dir.parent),
                           "--concurrency", "200"],
                          cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}) as proc:
        on = profile is not None
        server: dict[str, Any] = {}
        client: dict[str, Any] = {}
        with py_spy(core.pid, RESULTS_DIR / f"{name}-localcore.collapsed", on, server), \
                py_spy(proc.pid, RESULTS_DIR / f"{name}-devices.collapsed", on, client):
            try:
                _, stderr = proc.communicate(timeout=1800)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
        if profile is not None:
            profile.update(localcore=server, devices=client)
    wall = time.perf_counter() - started
    if not summary.exists():
        raise RuntimeError(f"{name}: no summary; {stderr[-500:]}")
    data = json.loads(summary.read_text())
    steps = {s["name"].split(".", 1)[1]: {"status": s["status"],
                                          "duration_s": round(s["duration_s"], 2),
                                          "detail": s["detail"]}
             for s in data["metrics"]["steps"]}
    ops: dict[str, dict[str, Any]] = {}
    for entry in data["metrics"]["ops"]:
        step = entry["step"].split(".", 1)[1]
        hist = Histogram.from_dict(entry["latency_us"])
        if hist.count:
            ops[f"{step}/{entry['op']}"] = {
                "count": hist.count, "p50_ms": hist.percentile(50) / 1000,
                "p99_ms": hist.percentile(99) / 1000, "errors": entry["errors"]}
    return {"passed": data["passed"], "wall_s": round(wall, 1), "steps": steps, "ops": ops,
            "counters": data["metrics"]["counters"]}


def _until_published(run: dict[str, Any], first: str) -> float:
    """Seconds from the start of step `first` to the end of the publish step."""
    steps = list(run["steps"])
    span = steps[steps.index(first):steps.index("publish") + 1]
    return round(sum(run["steps"][s]["duration_s"] for s in span), 2)


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    raise_fd_limit()
    started = time.perf_counter()
    data: dict[str, Any] = {"benchmark": "provisioning", "started": utc_now(),
                            "machine": machine_info(), "errors": {}}
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-prov-") as tmp:
        workdir = Path(tmp)
        core = start_core(workdir / "state" / "localcore", workdir / "localcore.log")
        try:
            for key_type in ("ec-p256", "rsa-2048"):
                try:
                    data[f"register_{key_type}"] = run_async(_register_rate(
                        core, key_type, args.register_calls, args.register_concurrency))
                except Exception as e:  # the JSON says what failed
                    data["errors"][f"register_{key_type}"] = f"{type(e).__name__}: {e}"
            runs = [("bulk", _scenario(BULK, args.bulk_devices)),
                    ("claim_flat_out", _scenario(CLAIM, args.claim_devices,
                                                 "{concurrency: 200}")),
                    ("claim_paced", _scenario(CLAIM, args.claim_devices,
                                              f"{{rate: {args.claim_rate:g}/s, "
                                              "concurrency: 200}"))]
            for name, text in runs:
                try:
                    data[name] = _fleetsim_run(core, workdir, name, text)
                except Exception as e:
                    data["errors"][name] = f"{type(e).__name__}: {e}"
        finally:
            core.stop()
    if not data["errors"]:
        del data["errors"]
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data, _rows(data, args)


def _rows(data: dict[str, Any], args: argparse.Namespace) -> list[Row]:
    rows = []
    for key_type in ("ec-p256", "rsa-2048"):
        r = data.get(f"register_{key_type}")
        if r:
            rows.append(Row(f"register-thing/s, {key_type} CSR", r["per_s"], "calls/s",
                            note=f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"))
    bulk = data.get("bulk")
    if bulk:
        until = _until_published(bulk, "bulk_register")
        rows.append(Row(f"bulk task of {args.bulk_devices}: until all published", until, "s",
                        "< 60 s for 10,000", note=f"passed={bulk['passed']}"))
        task = bulk["ops"].get("bulk_register/provision.task")
        if task:
            rows.append(Row("  of which the registration task", task["p50_ms"] / 1000, "s"))
    for name, label in (("claim_flat_out", "flat out"),
                        ("claim_paced", f"at {args.claim_rate:g}/s")):
        claim = data.get(name)
        if claim:
            step = claim["steps"]["fleet_provision"]["duration_s"]
            rows.append(Row(f"claim of {args.claim_devices} {label}: devices/s",
                            args.claim_devices / step if step else None, "devices/s",
                            note=f"until all published {_until_published(claim, 'fleet_provision')}"
                                 f" s, passed={claim['passed']}"))
    return rows
