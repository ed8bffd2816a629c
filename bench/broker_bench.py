"""Broker parts of the local core benchmark, run from client processes (bench.worker):
memory per idle connection, QoS 0 / QoS 1 throughput with the fleet connected, and TLS
handshakes accepted per second."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.devices import DeviceFiles
from bench.system import rss_kb, wait_for_quiet
from bench.worker import WorkerHandle, WorkerSpec


@dataclass
class BrokerParams:
    publishers: int = 1000
    subscribers_per_worker: int = 20
    workers: int = 1
    connect_concurrency: int = 64
    settle_s: float = 2.0
    warmup_s: float = 1.0
    duration_s: float = 5.0
    # (qos, messages per write, messages in flight, paced rate in msg/s or None = flat out).
    # QoS 1 in flight stays well under what the subscribers' sessions hold (100 in flight +
    # 1,000 queued each; the broker drops the oldest queued message beyond that).
    phases: tuple[tuple[int, int, int, float | None], ...] = (
        (0, 1, 10_000, 20_000), (0, 1, 10_000, None), (0, 10, 10_000, None),
        (1, 1, 4_000, 10_000), (1, 1, 4_000, None), (1, 10, 4_000, None))
    handshake_concurrency: int = 64
    handshake_duration_s: float = 8.0
    handshake_max: int = 4000
    quiet_wait_s: float = 0.0  # before each measured phase, wait this long at most for quiet


def _split(devices: list[DeviceFiles], parts: int) -> list[list[DeviceFiles]]:
    return [devices[i::parts] for i in range(parts)]


def start_workers(params: BrokerParams, devices: list[DeviceFiles], port: int, root_ca: str,
                  server_pid: int, cpu: int | None) -> list[WorkerHandle]:
    subs_total = params.subscribers_per_worker * params.workers
    subscribers = _split(devices[:subs_total], params.workers)
    publishers = _split(devices[subs_total:subs_total + params.publishers], params.workers)
    return [WorkerHandle(WorkerSpec(f"w{k}", port, root_ca, server_pid, publishers[k],
                                    subscribers[k], cpu)) for k in range(params.workers)]


def _all(workers: list[WorkerHandle], command: str, **args: Any) -> list[dict[str, Any]]:
    for w in workers:
        w.send(command, **args)
    return [w.result() for w in workers]


def fleet_memory_and_messages(params: BrokerParams, workers: list[WorkerHandle],
                              server_pid: int) -> dict[str, Any]:
    quiet: list[float] = []
    quiet.append(_quiet(params))
    rss_before = rss_kb(server_pid)
    connected = _all(workers, "connect", concurrency=params.connect_concurrency)
    time.sleep(params.settle_s)
    rss_after = rss_kb(server_pid)
    connections = sum(r["publishers"] + r["subscribers"] for r in connected)
    memory = {"connections": connections, "rss_before_kb": rss_before,
              "rss_after_kb": rss_after,
              "kb_per_connection": round((rss_after - rss_before) / connections, 1)
              if connections else None,
              "connect": connected}
    phases = []
    for qos, batch, window, rate in params.phases:
        quiet.append(_quiet(params))
        results = _all(workers, "pump", qos=qos, batch=batch, window=window,
                       rate=rate / len(workers) if rate else None,
                       warmup=params.warmup_s, duration=params.duration_s)
        phases.append(_merge_phase(results))
    _all(workers, "close")
    return {"memory": memory, "messages": phases, "machine_busy_cores_before_phase": quiet}


def _quiet(params: BrokerParams) -> float:
    return wait_for_quiet(params.quiet_wait_s) if params.quiet_wait_s > 0 else -1.0


def _merge_phase(results: list[dict[str, Any]]) -> dict[str, Any]:
    first = results[0]
    wall = max(r["seconds"] for r in results)
    delivered = sum(r["delivered"] for r in results)
    sent = sum(r["sent"] for r in results)
    server_cpu = max(r["server_cpu_s"] for r in results)  # each worker read the same process
    return {
        "qos": first["qos"], "batch": first["batch"], "window": first["window"],
        "paced_rate": first["paced_rate"] * len(results) if first["paced_rate"] else None,
        "publishers": sum(r["publishers"] for r in results),
        "subscribers": sum(r["subscribers"] for r in results),
        "seconds": wall, "sent": sent, "delivered": delivered,
        "pubacks": sum(r["pubacks"] for r in results),
        "sent_per_s": round(sent / wall, 1), "delivered_per_s": round(delivered / wall, 1),
        "server_cpu_s": server_cpu,
        "server_utilisation": round(server_cpu / wall, 3),
        "server_cpu_us_per_message": round(1e6 * server_cpu / delivered, 1) if delivered else None,
        "client_cpu_s": [r["client_cpu_s"] for r in results],
        "client_utilisation": [round(r["client_cpu_s"] / wall, 3) for r in results],
        "other_cpu_s": _other_cpu(results),
        "stalls": sum(r["stalls"] for r in results),
        "lost_after_drain": sum(r["lost_after_drain"] for r in results),
        "per_worker": results,
    }


def handshake_rate(params: BrokerParams, workers: list[WorkerHandle]) -> dict[str, Any]:
    per = max(1, params.handshake_concurrency // len(workers))
    _quiet(params)
    results = _all(workers, "handshakes", concurrency=per,
                   duration=params.handshake_duration_s,
                   max_count=params.handshake_max // len(workers))
    count = sum(r["handshakes"] for r in results)
    wall = max(r["seconds"] for r in results)
    server_cpu = max(r["server_cpu_s"] for r in results)
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {"handshakes": count, "seconds": wall, "per_second": round(count / wall, 1),
            "concurrency": per * len(workers), "errors": errors, "server_cpu_s": server_cpu,
            "other_cpu_s": _other_cpu(results),
            "server_utilisation": round(server_cpu / wall, 3),
            "server_cpu_ms_per_handshake": round(1000 * server_cpu / count, 3) if count else None,
            "client_cpu_ms_per_handshake": round(
                1000 * sum(r["client_cpu_s"] for r in results) / count, 3) if count else None,
            "latency_ms": results[0]["latency_ms"], "per_worker": results}


def _other_cpu(results: list[dict[str, Any]]) -> float:
    """CPU that processes other than local core and our clients used during the window (other
    engineers' tests share the machine): machine busy time minus ours."""
    busy = max(r["machine_busy_cpu_s"] for r in results)
    ours = max(r["server_cpu_s"] for r in results) + sum(r["client_cpu_s"] for r in results)
    return round(max(0.0, busy - ours), 3)
