"""`python -m bench broker-aliases`: local core's broker taking QoS 0 publishes from MQTT 5
clients with topic aliases off and on ("MQTT 5 supported features", Topic aliases: at most 8
per connection), and from MQTT 3.1.1 clients for reference: messages per second it processes
and local core's CPU per message.

Local core runs in its own process (pinned to one CPU when there are two); the publishers run
in this process (pinned to another). Each publisher writes a burst of QoS 0 PUBLISHes and a
PINGREQ, and waits for the PINGRESP, which the broker sends after it has handled every packet
before it: only processed messages are counted, none left in socket buffers. Nobody
subscribes, so this is the broker's ingest: framing, properties, alias resolution,
authorization and routing. The modes alternate, `--alias-rounds` times each, and the medians
are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from contextlib import suppress
from typing import Any

from bench.api_client import ApiClient
from bench.core_process import CoreProcess
from bench.devices import DeviceFiles, provision
from bench.mqtt_client import client_context, publish_packet, read_packet
from bench.report import Row
from bench.system import cpu_seconds, load_average, machine_info, pin_self, utc_now
from fleetsim.localcore.broker import codec, codec5
from fleetsim.localcore.broker import properties as P
from fleetsim.runtime import run_async

MODES = ("mqtt3.1.1", "mqtt5", "mqtt5+aliases")
TOPIC = "bench/aliases/{client}/telemetry/temperature"  # 44-50 bytes, as telemetry topics are
PAYLOAD = b'{"temperature": 21.5, "humidity": 40, "seq": 123456}'
PINGREQ, PINGRESP = b"\xc0\x00", 0xD0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alias-publishers", type=int, default=50, metavar="N",
                        help="broker-aliases bench: publishing connections (default 50)")
    parser.add_argument("--alias-seconds", type=float, default=4.0, metavar="S",
                        help="broker-aliases bench: seconds per measured mode (default 4)")
    parser.add_argument("--alias-rounds", type=int, default=3, metavar="R",
                        help="broker-aliases bench: rounds of the three modes (default 3)")
    parser.add_argument("--alias-burst", type=int, default=50, metavar="B",
                        help="broker-aliases bench: publishes per PINGREQ (default 50)")


class _Publisher:
    def __init__(self, device: DeviceFiles, mode: str, root_ca: str, port: int, burst: int):
        self.device, self.mode, self.port, self.burst = device, mode, port, burst
        self.ctx = client_context(root_ca, device.cert_path, device.key_path)
        self.sent = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.ctx, server_hostname="127.0.0.1")
        name, v5 = self.device.name, self.mode != "mqtt3.1.1"
        self.writer.write(codec5.encode_connect(name, 60) if v5 else
                          codec.encode_connect(name, 60))
        kind, body = await read_packet(self.reader)
        if kind != 0x20 or body[1] != 0:
            raise ConnectionError(f"{name}: CONNACK {body!r}")
        topic = TOPIC.format(client=name)
        if self.mode == "mqtt3.1.1":
            one = publish_packet(topic, PAYLOAD, 0)
        elif self.mode == "mqtt5":
            one = codec5.encode_publish(topic, PAYLOAD, 0)
        else:  # the topic once with its alias, then the alias alone
            self.writer.write(codec5.encode_publish(topic, PAYLOAD, 0,
                                                    props={P.TOPIC_ALIAS: 1}))
            one = codec5.encode_publish("", PAYLOAD, 0, props={P.TOPIC_ALIAS: 1})
        self.packet = one * self.burst + PINGREQ

    async def run(self, stop: asyncio.Event) -> None:
        assert self.reader is not None and self.writer is not None
        while not stop.is_set():
            self.writer.write(self.packet)
            while (await read_packet(self.reader))[0] != PINGRESP:
                pass
            self.sent += self.burst

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.write(b"\xe0\x00")  # DISCONNECT (both versions read it)
            self.writer.close()
            with suppress(TimeoutError, OSError):
                await asyncio.wait_for(self.writer.wait_closed(), 2)


async def _mode(mode: str, devices: list[DeviceFiles], core: CoreProcess,
                args: argparse.Namespace) -> dict[str, Any]:
    pubs = [_Publisher(d, mode, core.root_ca, core.mqtt_port, args.alias_burst)
            for d in devices]
    await asyncio.gather(*(p.connect() for p in pubs))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in pubs]
    await asyncio.sleep(1.0)  # warm-up
    sent0, cpu0, t0 = sum(p.sent for p in pubs), cpu_seconds(core.pid), time.perf_counter()
    client0 = time.process_time()
    await asyncio.sleep(args.alias_seconds)
    sent1, cpu1, t1 = sum(p.sent for p in pubs), cpu_seconds(core.pid), time.perf_counter()
    client1 = time.process_time()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(p.close() for p in pubs))
    n = sent1 - sent0
    return {"messages": n, "seconds": t1 - t0, "per_s": n / (t1 - t0),
            "server_cpu_us_per_msg": (cpu1 - cpu0) * 1e6 / max(n, 1),
            "server_cpu_share": (cpu1 - cpu0) / (t1 - t0),
            "client_cpu_us_per_msg": (client1 - client0) * 1e6 / max(n, 1)}


async def _measure(args: argparse.Namespace, core: CoreProcess) -> dict[str, Any]:
    async with ApiClient(core.api_url, 16) as api:
        prov = await provision(api, args.alias_publishers, core.workdir / "devices",
                               prefix="alias-dev", server_pid=core.pid)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(args.alias_rounds):
        for mode in MODES:
            runs[mode].append(await _mode(mode, prov.devices, core, args))
            await asyncio.sleep(0.5)
    return {mode: {"runs": r,
                   "per_s": statistics.median(x["per_s"] for x in r),
                   "server_cpu_us_per_msg": statistics.median(
                       x["server_cpu_us_per_msg"] for x in r)}
            for mode, r in runs.items()}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.perf_counter()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    affinity = pin_self(client_cpu)
    data: dict[str, Any] = {"benchmark": "broker-aliases", "started": utc_now(),
                            "machine": machine_info(), "load_average_start": load_average(),
                            "parameters": {"publishers": args.alias_publishers,
                                           "seconds": args.alias_seconds,
                                           "rounds": args.alias_rounds,
                                           "burst": args.alias_burst, "topic": TOPIC,
                                           "payload_bytes": len(PAYLOAD)},
                            "placement": {"local_core_cpu": server_cpu,
                                          "load_cpu": client_cpu, "affinity": affinity}}
    with CoreProcess(cpu=server_cpu) as core:
        data["modes"] = run_async(_measure(args, core))
    data["load_average_end"] = load_average()
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    rows = []
    for mode, m in data["modes"].items():
        rows.append(Row(f"QoS 0 ingest, {mode}", round(m["per_s"]), "msg/s"))
        rows.append(Row(f"  local core CPU per message, {mode}",
                        round(m["server_cpu_us_per_msg"], 1), "us"))
    return data, rows
