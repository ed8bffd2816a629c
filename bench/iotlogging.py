"""`python -m bench iotlogging`: AWS IoT logging in local core while 1,000 devices publish.

Local core runs in this process (its broker on real TLS sockets on 127.0.0.1), 1,000 devices
with allow-all certificates connect, and each publishes QoS 0 messages for a fixed time, once
with logging off and once with v2 logging at INFO for everyone (each publish then writes a
Publish-In entry through the logs feature). Reported: log entries written per second, and the
publishes the broker took per second with logging off and on (what logging costs the broker).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fleet_provision import FLEET, provision
from bench.mqtt_client import Counters, LoadConnection, client_context, open_mqtt, publish_packet
from bench.report import Row
from bench.system import machine_info, utc_now
from fleetsim.device import IdentityStore
from fleetsim.localcore.core import LocalCore, LocalCoreConfig
from fleetsim.localcore.scope import Scope


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iotlogging-devices", type=int, default=1000, metavar="N",
                        help="iotlogging bench: devices publishing")
    parser.add_argument("--iotlogging-seconds", type=float, default=10.0, metavar="S",
                        help="iotlogging bench: seconds of publishing per phase")


async def _publish_for(conns: list[LoadConnection], seconds: float) -> int:
    """Every device publishes one message per round, rounds back to back: messages sent."""
    sent = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for i, conn in enumerate(conns):
            conn.write(publish_packet(f"dt/bench/{i}/telemetry", b'{"t":21.5}', 0))
        sent += len(conns)
        await asyncio.sleep(0.01)  # let the broker read what was written
    return sent


async def _measure(state: Path, ids: Path, devices: int, seconds: float) -> dict[str, Any]:
    core = LocalCore(LocalCoreConfig(state_dir=state, api_port=0, mqtt_port=0))
    endpoints = await core.start()
    logging_service = core.services.get("iotlogging")
    scope = Scope(core.config.account_id, core.config.region)
    out: dict[str, Any] = {"devices": devices, "seconds_per_phase": seconds}
    conns: list[LoadConnection] = []
    try:
        counters = Counters()
        for d in IdentityStore(ids, FLEET).load_all()[:devices]:
            ctx = client_context(str(endpoints.root_ca), str(d.cert_path), str(d.key_path))
            conns.append(await open_mqtt(endpoints.mqtt_port, ctx, d.thing_name, counters))
        for phase, level in (("off", None), ("info", "INFO")):
            if level is not None:
                logging_service.set_v2(scope, "arn:aws:iam::123456789012:role/bench", level,
                                       False)
            written_before = logging_service.written
            cpu_before = time.process_time()
            started = time.perf_counter()
            sent = await _publish_for(conns, seconds)
            await asyncio.sleep(1.0)  # the last batch is flushed after flush_interval
            logging_service.flush()
            elapsed = time.perf_counter() - started
            written = logging_service.written - written_before
            out[phase] = {"published": sent, "publishes_per_s": round(sent / elapsed),
                          "entries_written": written,
                          "entries_per_s": round(written / elapsed),
                          "cpu_s": round(time.process_time() - cpu_before, 2)}
    finally:
        for conn in conns:
            conn.close()
        await core.stop()
    return out


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.perf_counter()
    data: dict[str, Any] = {"benchmark": "iotlogging", "started": utc_now(),
                            "machine": machine_info(), "errors": {}}
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-iotlogging-") as tmp:
        state, ids = Path(tmp) / "state", Path(tmp) / "ids"
        provision(state, ids, args.iotlogging_devices)
        data |= asyncio.run(_measure(state, ids, args.iotlogging_devices,
                                     args.iotlogging_seconds))
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    off, on = data["off"], data["info"]
    rows = [Row(f"{data['devices']} devices publishing, logging off", off["publishes_per_s"],
                "publishes/s"),
            Row(f"{data['devices']} devices publishing, v2 logging at INFO",
                on["publishes_per_s"], "publishes/s"),
            Row("AWS IoT log entries written (AWSIotLogsV2)", on["entries_per_s"],
                "entries/s")]
    return data, rows
