"""The loads a client process puts on the broker: a fleet of idle connections, a closed-loop
publish pump (messages in flight bounded by a window, so QoS 0 is never dropped for congestion
and QoS 1 never overflows a session's queue), and a connect/disconnect handshake loop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any

from bench.mqtt_client import Counters, LoadConnection, open_mqtt, publish_packet, subscribe
from bench.system import cpu_seconds, system_busy_seconds

_U16 = struct.Struct(">H")
PACE_TICK_S = 0.002
PAYLOAD = b'{"seq":0,"temperature":21.5,"humidity":40.1,"pad":"xxxxxxxxxxxxxxxx"}'


@dataclass(frozen=True)
class Snapshot:
    wall: float
    sent: int
    delivered: int
    acked: int
    server_cpu: float
    client_cpu: float
    busy: float

    @classmethod
    def take(cls, now: float, c: Counters, server_pid: int) -> Snapshot:
        return cls(now, c.sent, c.delivered, c.acked, cpu_seconds(server_pid),
                   time.process_time(), system_busy_seconds())


@dataclass
class Identity:
    client_id: str
    ctx: ssl.SSLContext


class Fleet:
    """Publishers and subscribers of one client process, connected once and kept open."""

    def __init__(self, port: int, tag: str):
        self.port = port
        self.tag = tag
        self.counters = Counters()
        self.publishers: list[LoadConnection] = []
        self.subscribers: list[LoadConnection] = []
        self.topics: list[str] = []

    async def connect(self, publishers: list[Identity], subscribers: list[Identity],
                      concurrency: int) -> dict[str, Any]:
        """Subscribers first (each on `bench/<tag>/<s>/+`), then publishers; publisher i
        publishes to `bench/<tag>/<i % S>/<i>` (fixed-length topics)."""
        t0 = time.perf_counter()
        for s, ident in enumerate(subscribers):
            conn = await open_mqtt(self.port, ident.ctx, ident.client_id, self.counters, True)
            await subscribe(conn, f"bench/{self.tag}/{s:02d}/+", 1)
            self.subscribers.append(conn)
        slots: list[LoadConnection | None] = [None] * len(publishers)
        errors = 0
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            nonlocal errors
            async with sem:
                try:
                    slots[i] = await open_mqtt(self.port, publishers[i].ctx,
                                               publishers[i].client_id, self.counters)
                except (OSError, ConnectionError, TimeoutError):
                    errors += 1

        await asyncio.gather(*(one(i) for i in range(len(publishers))))
        n_subs = max(1, len(subscribers))
        for i, conn in enumerate(slots):
            if conn is not None:
                self.publishers.append(conn)
                self.topics.append(f"bench/{self.tag}/{i % n_subs:02d}/{i:05d}")
        return {"publishers": len(self.publishers), "subscribers": len(self.subscribers),
                "errors": errors, "seconds": round(time.perf_counter() - t0, 3)}

    async def pump(self, qos: int, batch: int, window: int, warmup: float, duration: float,
                   server_pid: int, rate: float | None = None) -> dict[str, Any]:
        """Publish round-robin over the publishers, `batch` messages per write, at most
        `window` messages in flight (sent, not yet delivered — and for QoS 1 not yet
        PUBACKed); as fast as that allows, or paced at `rate` messages/s. Measured over
        `duration` seconds after `warmup`."""
        loop = asyncio.get_running_loop()
        c = self.counters
        c.low_mark = window - max(batch, window // 8)
        for conn in self.publishers + self.subscribers:
            conn.qos = qos
        pubs = self.publishers
        n = len(pubs)
        packets = [publish_packet(t, PAYLOAD, 0) * batch for t in self.topics]
        prefixes = [publish_packet(t, PAYLOAD, 1)[:-(len(PAYLOAD) + 2)] for t in self.topics]
        pid = 0
        i = 0
        stalls = 0
        start = time.perf_counter()
        measure_at, end = start + warmup, start + warmup + duration
        mark: Snapshot | None = None
        while True:
            now = time.perf_counter()
            if mark is None and now >= measure_at:
                mark = Snapshot.take(now, c, server_pid)
            if now >= end:
                break
            room = window - c.outstanding(qos)
            if rate is not None:
                due = int(rate * (now - start)) - c.sent
                if due < batch:
                    await asyncio.sleep(PACE_TICK_S)
                    continue
                room = min(room, due)
            if room < batch:
                c.waiter = loop.create_future()
                try:
                    await asyncio.wait_for(c.waiter, 2.0)
                except TimeoutError:
                    stalls += 1
                    if stalls >= 3:
                        break
                finally:
                    c.waiter = None
                continue
            for _ in range(min(room // batch, n)):
                if qos == 0:
                    pubs[i].write(packets[i])
                else:
                    parts = []
                    for _ in range(batch):
                        pid = pid % 65535 + 1
                        parts += (prefixes[i], _U16.pack(pid), PAYLOAD)
                    pubs[i].write(b"".join(parts))
                c.sent += batch
                i = i + 1 if i + 1 < n else 0
            await asyncio.sleep(0)
        last = Snapshot.take(time.perf_counter(), c, server_pid)
        first = mark or last
        # Drain what is in flight, so the next phase starts empty.
        drain_deadline = time.perf_counter() + 5
        while c.outstanding(qos) > 0 and time.perf_counter() < drain_deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # anything still on its way (should be nothing)
        wall = last.wall - first.wall
        delivered = last.delivered - first.delivered
        sent = last.sent - first.sent
        result = {
            "qos": qos, "batch": batch, "window": window, "paced_rate": rate, "publishers": n,
            "subscribers": len(self.subscribers), "seconds": round(wall, 3),
            "sent": sent, "delivered": delivered, "pubacks": last.acked - first.acked,
            "delivered_per_s": round(delivered / wall, 1) if wall else 0.0,
            "sent_per_s": round(sent / wall, 1) if wall else 0.0,
            "server_cpu_s": round(last.server_cpu - first.server_cpu, 3),
            "client_cpu_s": round(last.client_cpu - first.client_cpu, 3),
            "machine_busy_cpu_s": round(last.busy - first.busy, 3),
            "stalls": stalls,
            "total_sent": c.sent, "total_delivered": c.delivered,
            "lost_after_drain": c.sent - c.delivered,
            "unacked_after_drain": c.sent - c.acked if qos else None,
        }
        c.sent = c.delivered = c.acked = 0
        return result

    async def close(self) -> None:
        conns = self.publishers + self.subscribers
        for conn in conns:
            conn.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.closed for c in conns)), 10)
        self.publishers.clear()
        self.subscribers.clear()
        self.topics.clear()


async def handshakes(port: int, identities: list[Identity], concurrency: int, duration: float,
                     max_count: int, server_pid: int) -> dict[str, Any]:
    """Connect (TLS + CONNECT/CONNACK), DISCONNECT, close; `concurrency` at a time, each
    identity in turn, until `max_count` or `duration`."""
    counters = Counters()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_index = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal next_index
        while next_index < max_count and time.perf_counter() < deadline:
            ident = identities[next_index % len(identities)]
            next_index += 1
            t0 = time.perf_counter()
            try:
                conn = await open_mqtt(port, ident.ctx, ident.client_id, counters)
            except (OSError, ConnectionError, TimeoutError, ssl.SSLError) as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - t0)
            conn.close()

    server0, client0, busy0 = cpu_seconds(server_pid), time.process_time(), system_busy_seconds()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    await asyncio.sleep(0.5)  # the server finishes the last closes: part of the work measured
    server_cpu, client_cpu = cpu_seconds(server_pid) - server0, time.process_time() - client0
    busy = system_busy_seconds() - busy0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else 0.0

    return {"handshakes": len(lat), "errors": errors, "seconds": round(wall, 3),
            "concurrency": concurrency, "server_cpu_s": round(server_cpu, 3),
            "client_cpu_s": round(client_cpu, 3), "machine_busy_cpu_s": round(busy, 3),
            "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1)}}
