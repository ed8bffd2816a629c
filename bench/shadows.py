"""`python -m bench shadows`: device shadows through local core with 1,000 reporting devices.

Local core runs in its own process (pinned to CPU 0); the devices are raw MQTT connections in
this process (pinned to CPU 1), each with its own certificate and thing, each subscribed to its
classic shadow's `update/accepted`, `update/rejected` and `update/delta` topics.

- *round trips*: every device keeps one `update` of its reported state in flight and sends the
  next when `update/accepted` comes back: shadow update round trips per second, and each round
  trip's latency.
- *convergence*: the bench sets a desired value on every thing through the API
  (`iot-data` UpdateThingShadow, a fixed rate); each device answers the `update/delta` by
  reporting the desired value. Convergence = from sending the desired update to the device's
  `update/accepted` for the report that matches it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any

from bench.api_client import ApiClient
from bench.core_process import CoreProcess, measure_on_core
from bench.devices import DeviceFiles, provision
from bench.mqtt_client import KEEPALIVE_S, client_context, split_frames
from bench.report import Row
from bench.system import CpuWindow, raise_fd_limit
from fleetsim.localcore.broker import codec
from fleetsim.metrics.histogram import Histogram

_U16 = struct.Struct(">H")
ROUND_TRIPS_TARGET = "-"


class ShadowDevice(asyncio.Protocol):
    """One device: MQTT over TLS, parses the PUBLISHes it receives and hands them to
    `on_message(device, topic, payload)`; QoS 1 deliveries are acknowledged."""

    def __init__(self, name: str, on_message: Callable[[ShadowDevice, str, bytes], None]):
        loop = asyncio.get_running_loop()
        self.name = name
        self.prefix = f"$aws/things/{name}/shadow/"
        self.update_topic = codec.encode_topic(self.prefix + "update")
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] = loop.create_future()
        self.suback: asyncio.Future[bytes] = loop.create_future()
        self.sent_at = 0.0
        self.seq = 0
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.connack, self.suback):
            if not future.done():
                future.set_exception(ConnectionError(f"{self.name}: connection closed"))

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
        frames, self._buf = split_frames(data)
        acks: list[bytes] = []
        for first, start, length in frames:
            kind = first >> 4
            if kind == codec.PUBLISH:
                (topic_len,) = _U16.unpack_from(data, start)
                topic = data[start + 2:start + 2 + topic_len].decode()
                body_at = start + 2 + topic_len
                if first & 0x06:
                    acks.append(b"\x40\x02" + data[body_at:body_at + 2])
                    body_at += 2
                self.on_message(self, topic, data[body_at:start + length])
            elif kind == codec.CONNACK and not self.connack.done():
                self.connack.set_result(data[start + 1])
            elif kind == codec.SUBACK and not self.suback.done():
                self.suback.set_result(data[start + 2:start + length])
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))

    def report(self, reported: dict[str, Any]) -> None:
        assert self.transport is not None
        self.seq += 1
        payload = json.dumps({"state": {"reported": reported},
                              "clientToken": f"{self.name}-{self.seq}"}).encode()
        self.sent_at = time.perf_counter()
        self.transport.write(codec.publish(self.update_topic, payload))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"\xe0\x00")
            self.transport.close()


async def connect_device(files: DeviceFiles, port: int, root_ca: str,
                         on_message: Callable[[ShadowDevice, str, bytes], None]
                         ) -> ShadowDevice:
    loop = asyncio.get_running_loop()
    context: ssl.SSLContext = client_context(root_ca, files.cert_path, files.key_path)
    _, device = await asyncio.wait_for(loop.create_connection(
        lambda: ShadowDevice(files.name, on_message), "127.0.0.1", port, ssl=context,
        server_hostname="127.0.0.1"), 30)
    assert device.transport is not None
    device.transport.write(codec.encode_connect(files.name, KEEPALIVE_S))
    code = await asyncio.wait_for(device.connack, 30)
    if code != 0:
        raise ConnectionError(f"{files.name}: CONNACK {code}")
    filters = [(device.prefix + suffix, 1)
               for suffix in ("update/accepted", "update/rejected", "update/delta")]
    device.transport.write(codec.encode_subscribe(1, filters))
    codes = await asyncio.wait_for(device.suback, 30)
    if codes != b"\x01\x01\x01":
        raise ConnectionError(f"{files.name}: SUBACK {codes!r}")
    return device


class Measurement:
    """What the devices saw, phase by phase."""

    def __init__(self) -> None:
        self.phase = "idle"
        self.deadline = 0.0
        self.round_trip = Histogram()
        self.round_trips = 0
        self.converge = Histogram()
        self.desired_sent: dict[str, tuple[int, float]] = {}  # thing -> (target, sent at)
        self.expected = 0  # devices that are to converge
        self.converged: asyncio.Event = asyncio.Event()
        self.rejected: dict[int, int] = {}
        self.deltas = 0

    def on_message(self, device: ShadowDevice, topic: str, payload: bytes) -> None:
        now = time.perf_counter()
        suffix = topic[len(device.prefix):]
        if suffix == "update/rejected":
            code = json.loads(payload).get("code", 0)
            self.rejected[code] = self.rejected.get(code, 0) + 1
            if self.phase == "round-trips" and now < self.deadline:
                device.report({"seq": device.seq})
            return
        if suffix == "update/delta":
            self.deltas += 1
            device.report(json.loads(payload)["state"])
            return
        if suffix != "update/accepted":
            return
        if self.phase == "round-trips":
            self.round_trips += 1
            self.round_trip.record(int((now - device.sent_at) * 1e6))
            if now < self.deadline:
                device.report({"seq": device.seq})
            return
        reported = json.loads(payload).get("state", {}).get("reported") or {}
        wanted = self.desired_sent.get(device.name)
        if wanted is not None and reported.get("target") == wanted[0]:
            self.converge.record(int((now - wanted[1]) * 1e6))
            del self.desired_sent[device.name]
            if self.converge.count == self.expected:
                self.converged.set()


def _latency(h: Histogram) -> dict[str, Any]:
    if not h.count:
        return {"count": 0}
    return {"count": h.count, **{f"p{p}_ms": round(h.percentile(p) / 1000, 2)
                                 for p in (50, 90, 99)}, "max_ms": round(h.max / 1000, 2)}


async def _measure(args: argparse.Namespace, core: CoreProcess) -> dict[str, Any]:
    n, duration, rate = args.shadow_devices, args.shadow_duration, args.shadow_desired_rate
    if getattr(args, "quick", False):
        n, duration = min(n, 200), min(duration, 3.0)
    m = Measurement()
    async with ApiClient(core.api_url, concurrency=16) as api:
        provisioned = await provision(api, n, core.workdir / "devices", prefix="shadow-dev",
                                      server_pid=core.pid)
        for files in provisioned.devices:
            await api.create_thing(files.name)
        devices = [await connect_device(files, core.mqtt_port, core.root_ca, m.on_message)
                   for files in provisioned.devices]

        # Round trips: one update in flight per device, for `duration` seconds.
        window = CpuWindow(core.pid)
        m.phase, start = "round-trips", time.perf_counter()
        m.deadline = start + duration
        window.start(start)
        for device in devices:
            device.report({"seq": 0})
        await asyncio.sleep(duration + 1.0)  # the last answers drain
        window.stop(time.perf_counter())
        round_trips = {"devices": n, "seconds": duration, "round_trips": m.round_trips,
                       "per_second": round(m.round_trips / duration, 1),
                       "server_cpu_ms_per_round_trip": round(
                           1000 * window.cpu / m.round_trips, 3) if m.round_trips else None,
                       "latency": _latency(m.round_trip)}

        # Convergence: desired values set through the API at `rate` per second.
        m.phase, m.expected = "converge", len(devices)
        interval, t0 = 1.0 / rate, time.perf_counter()
        for i, device in enumerate(devices):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            m.desired_sent[device.name] = (i, time.perf_counter())
            await api.update_thing_shadow(device.name, {"state": {"desired": {"target": i}}})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(m.converged.wait(), 30)
        # What the shadows of devices that did not converge say, to tell where it stopped.
        unconverged = {name: (await api.get_thing_shadow(name)).get("state")
                       for name in list(m.desired_sent)[:5]}
        converge = {"desired_per_second": rate, "things": n,
                    "converged": m.converge.count, "deltas": m.deltas,
                    "latency": _latency(m.converge), "not_converged": unconverged}
        for device in devices:
            device.close()
    return {"round_trips": round_trips, "convergence": converge,
            "rejected_by_code": {str(k): v for k, v in sorted(m.rejected.items())}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shadow-devices", type=int, default=1000, metavar="N",
                        help="shadows bench: reporting devices (default 1000)")
    parser.add_argument("--shadow-duration", type=float, default=10.0, metavar="S",
                        help="shadows bench: seconds of round trips")
    parser.add_argument("--shadow-desired-rate", type=float, default=200.0, metavar="R",
                        help="shadows bench: desired updates per second through the API")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    raise_fd_limit()
    data = measure_on_core("shadows", lambda core: _measure(args, core))
    return data, _rows(data)


def _rows(data: dict[str, Any]) -> list[Row]:
    if "round_trips" not in data:
        return []
    rt, cv = data["round_trips"], data["convergence"]
    return [
        Row(f"{rt['devices']} dev: shadow update round trips", rt["per_second"], "/s"),
        Row("round trip p50", rt["latency"].get("p50_ms"), "ms"),
        Row("round trip p99", rt["latency"].get("p99_ms"), "ms"),
        Row("server CPU per round trip", rt["server_cpu_ms_per_round_trip"], "ms"),
        Row("converged", cv["converged"], "things", str(cv["things"]),
            cv["converged"] == cv["things"]),
        Row("convergence p50", cv["latency"].get("p50_ms"), "ms",
            note=f"desired set at {cv['desired_per_second']:.0f}/s through the API"),
        Row("convergence p99", cv["latency"].get("p99_ms"), "ms"),
    ]
