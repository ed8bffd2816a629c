"""`python -m bench broker-hardening`: the broker against hostile clients (issue 8).

- *abandoned handshakes*: local core in its own process; 10 rounds of 2,000 TCP connections that
  send a TLS ClientHello, read the server's first flight and then say nothing until local core's
  handshake timeout (10 s) closes them (no certificate needed). Local core's RSS before, after
  each round, and once settled (every handshake deadline passed, then a few sweeps); the target
  is "after" within 10% of "before".
- *dribbler*: QoS 1 publish-to-delivery latency between two devices, alone and then while client
  processes send 1-byte TLS records flat out (a CONNECT announcing 100 KB, one byte per record;
  each is closed by the connect timeout or the malformed CONNECT, and reconnects). The figure:
  how much the dribblers add to the others' latency (p50, p99).
- *fuzz*: 100,000 seeded, mutated MQTT streams through the broker in process
  (`tests/mqtt_fuzz.py`; `make test` runs 10,000).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import ssl
import statistics
import time
import traceback
from typing import Any

from bench.api_client import ApiClient
from bench.core_process import CoreProcess
from bench.devices import DeviceFiles, provision
from bench.mqtt_client import client_context, read_packet
from bench.report import Row
from bench.system import cpu_seconds, machine_info, raise_fd_limit, rss_kb, utc_now
from fleetsim.localcore.broker import codec
from fleetsim.runtime import run_async
from tests.mqtt_testing import client_hello

PARTS = ("handshakes", "dribbler", "fuzz")
HANDSHAKE_TIMEOUT_S = 10.0  # local core's (Broker.handshake_timeout)
SWEEP_S = 1.0  # local core's (Broker.sweep_interval)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("broker-hardening")
    group.add_argument("--hardening-parts", default=",".join(PARTS),
                       help=f"comma-separated subset of {', '.join(PARTS)}")
    group.add_argument("--handshake-rounds", type=int, default=10)
    group.add_argument("--handshakes-per-round", type=int, default=2000)
    group.add_argument("--dribblers", type=int, default=4, help="dribbling client processes")
    group.add_argument("--dribble-rate", type=int, default=2000,
                       help="one-byte TLS records per second per dribbler (0: flat out)")
    group.add_argument("--dribbler-nice", type=int, default=0,
                       help="niceness of the dribbling processes (on a machine with few cores, "
                            "19 tells their CPU contention apart from local core's work)")
    group.add_argument("--latency-samples", type=int, default=300)
    group.add_argument("--fuzz-cases", type=int, default=100_000)
    group.add_argument("--fuzz-seed", type=int, default=1)


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    parts = [p.strip() for p in args.hardening_parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(PARTS)}")
    raise_fd_limit()
    result: dict[str, Any] = {"benchmark": "broker-hardening", "started": utc_now(),
                              "machine": machine_info(), "errors": {}}
    t0 = time.perf_counter()
    for part in parts:
        print(f"[bench broker-hardening] {part} ...", flush=True)
        try:
            if part == "handshakes":
                with CoreProcess() as core:
                    result["abandoned_handshakes"] = run_async(abandoned_handshakes(
                        core, args.handshake_rounds, args.handshakes_per_round))
            elif part == "dribbler":
                with CoreProcess() as core:
                    result["dribbler"] = run_async(dribbler_latency(
                        core, args.dribblers, args.dribble_rate, args.latency_samples,
                        args.dribbler_nice))
            else:
                result["fuzz"] = run_async(fuzz(args.fuzz_seed, args.fuzz_cases))
        except Exception as e:  # a failed part is reported, the others still run
            result["errors"][part] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
    result["finished"] = utc_now()
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return result, rows(result)


# --- abandoned handshakes -------------------------------------------------------------------

async def _abandon(port: int, hello: bytes) -> bool:
    """ClientHello, the server's flight, then silence until the server closes; True if the
    server closed it."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(hello)
        await writer.drain()
        while await asyncio.wait_for(reader.read(65536), HANDSHAKE_TIMEOUT_S + 10):
            pass
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        writer.transport.abort()


async def abandoned_handshakes(core: CoreProcess, rounds: int, per_round: int
                               ) -> dict[str, Any]:
    hello = client_hello()
    await asyncio.sleep(2)
    before = rss_kb(core.pid)
    per: list[dict[str, Any]] = []
    cpu0 = cpu_seconds(core.pid)
    for i in range(rounds):
        t = time.perf_counter()
        closed = await asyncio.gather(*(_abandon(core.mqtt_port, hello)
                                        for _ in range(per_round)))
        per.append({"round": i + 1, "closed_by_server": sum(closed),
                    "seconds": round(time.perf_counter() - t, 1), "rss_kb": rss_kb(core.pid)})
        print(f"  round {i + 1}: RSS {per[-1]['rss_kb']} KB", flush=True)
    settle = HANDSHAKE_TIMEOUT_S + 3 * SWEEP_S + 2
    timeline = []
    t = time.perf_counter()
    while time.perf_counter() - t < settle:
        await asyncio.sleep(1)
        timeline.append(rss_kb(core.pid))
    after = timeline[-1]
    return {"rounds": rounds, "per_round": per_round,
            "how": "ClientHello, read the server's flight, then silent until local core's "
                   f"{HANDSHAKE_TIMEOUT_S:.0f} s handshake timeout closes the connection",
            "rss_before_kb": before, "rss_after_kb": after,
            "after_over_before": round(after / before, 3),
            "within_10_percent": after <= 1.10 * before,
            "peak_rss_kb": max(r["rss_kb"] for r in per),
            "server_cpu_s": round(cpu_seconds(core.pid) - cpu0, 2),
            "settle_timeline_kb": timeline, "per_round_results": per}


# --- dribbler -------------------------------------------------------------------------------

def _context(device: DeviceFiles, root_ca: str) -> ssl.SSLContext:
    return client_context(root_ca, device.cert_path, device.key_path)


async def _open(port: int, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader,
                                                           asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname="127.0.0.1")


async def _connected(port: int, ctx: ssl.SSLContext, client_id: str
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await _open(port, ctx)
    writer.write(codec.encode_connect(client_id, keepalive=1200))
    first, body = await read_packet(reader)
    assert first == 0x20 and body[1] == 0, f"CONNACK {body!r}"
    return reader, writer


async def _latencies(port: int, pub_ctx: ssl.SSLContext, sub_ctx: ssl.SSLContext,
                     samples: int) -> list[float]:
    """QoS 1 publish → delivery to a subscriber, one message at a time, paced 20 ms apart."""
    sub_r, sub_w = await _connected(port, sub_ctx, "latency-sub")
    sub_w.write(codec.encode_subscribe(1, [("bench/latency", 1)]))
    await read_packet(sub_r)  # SUBACK
    pub_r, pub_w = await _connected(port, pub_ctx, "latency-pub")
    topic = codec.encode_topic("bench/latency")
    out = []
    for i in range(samples):
        t = time.perf_counter()
        pub_w.write(codec.publish(topic, b"x", 1, packet_id=i % 65535 + 1))
        while True:
            first, body = await asyncio.wait_for(read_packet(sub_r), 10)
            if first >> 4 == codec.PUBLISH:
                break
        out.append(1000 * (time.perf_counter() - t))
        sub_w.write(codec.puback(int.from_bytes(body[2 + int.from_bytes(body[:2], "big"):][:2],
                                                "big")))
        await read_packet(pub_r)  # PUBACK
        await asyncio.sleep(0.02)
    for w in (sub_w, pub_w):
        w.close()
    return out


def _dribble_process(port: int, device: DeviceFiles, root_ca: str, seconds: float,
                     rate: int, sent: Any, nice: int = 0) -> None:
    """`rate` one-byte TLS records per second (0: flat out, 256 per socket write), TLS through
    memory BIOs so that each byte written is its own record; reconnect whenever local core
    closes the connection."""
    if nice:
        os.nice(nice)
    batch = 256 if not rate else max(1, rate // 100)
    ctx = _context(device, root_ca)
    stream = (b"\x10" + codec.encode_length(100_000) + codec.encode_topic("MQTT")
              + b"\x04" * 100_000)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed during the handshake") from None
                    incoming.write(data)
            sock.sendall(outgoing.read())
            for i in range(0, len(stream), batch):
                for j in range(i, min(i + batch, len(stream))):
                    tls.write(stream[j:j + 1])  # one record per byte
                sock.sendall(outgoing.read())
                with sent.get_lock():
                    sent.value += batch
                if rate:
                    time.sleep(0.01)
                if time.monotonic() >= deadline:
                    break
        except (OSError, ssl.SSLError):
            time.sleep(0.05)
        finally:
            sock.close()


async def dribbler_latency(core: CoreProcess, dribblers: int, rate: int, samples: int,
                           nice: int = 0) -> dict[str, Any]:
    async with ApiClient(core.api_url, 4) as api:
        devices = (await provision(api, 2 + dribblers, core.workdir / "devices")).devices
    pub_ctx, sub_ctx = (_context(d, core.root_ca) for d in devices[:2])
    baseline = await _latencies(core.mqtt_port, pub_ctx, sub_ctx, samples)
    seconds = samples * 0.05 + 30
    spawn = multiprocessing.get_context("spawn")  # not fork: this process runs an event loop
    sent = spawn.Value("q", 0)
    procs = [spawn.Process(target=_dribble_process, daemon=True, args=(
        core.mqtt_port, d, core.root_ca, seconds, rate, sent, nice)) for d in devices[2:]]
    for p in procs:
        p.start()
    await asyncio.sleep(3)
    sent0, t0, cpu0 = sent.value, time.perf_counter(), cpu_seconds(core.pid)
    loaded = await _latencies(core.mqtt_port, pub_ctx, sub_ctx, samples)
    wall = time.perf_counter() - t0
    records = sent.value - sent0
    server_cpu = cpu_seconds(core.pid) - cpu0
    for p in procs:
        p.terminate()
        p.join(5)
    return {"dribblers": dribblers, "records_per_s_each": rate or "flat out", "samples": samples,
            "dribbler_nice": nice,
            "baseline_ms": _summary(baseline), "with_dribblers_ms": _summary(loaded),
            "added_p50_ms": round(statistics.median(loaded) - statistics.median(baseline), 3),
            "added_p99_ms": round(_pct(loaded, 99) - _pct(baseline, 99), 3),
            "one_byte_records_per_s": round(records / wall),
            "server_utilisation": round(server_cpu / wall, 3)}


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 3), "p90": round(_pct(values, 90), 3),
            "p99": round(_pct(values, 99), 3), "max": round(max(values), 3)}


# --- fuzz -----------------------------------------------------------------------------------

async def fuzz(seed: int, cases: int) -> dict[str, Any]:
    from tests.mqtt_fuzz import Harness  # the harness `make test` runs, at 10x the cases

    stats = await Harness().run(seed, cases)
    rate = round(stats.cases / stats.seconds) if stats.seconds else None
    return {"seed": seed, "requested": cases, **stats.__dict__, "cases_per_s": rate}


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    hs = r.get("abandoned_handshakes")
    if hs:
        out.append(Row("RSS before abandoned handshakes", hs["rss_before_kb"] / 1024, "MB"))
        out.append(Row(f"RSS after {hs['rounds']} x {hs['per_round']:,} abandoned, settled",
                       hs["rss_after_kb"] / 1024, "MB",
                       f"<= {1.1 * hs['rss_before_kb'] / 1024:,.1f}", hs["within_10_percent"],
                       f"peak {hs['peak_rss_kb'] / 1024:,.0f} MB while they were open"))
    dr = r.get("dribbler")
    if dr:
        out.append(Row("latency p50, alone", dr["baseline_ms"]["p50"], "ms"))
        out.append(Row(f"latency p50 added by {dr['dribblers']} dribblers", dr["added_p50_ms"],
                       "ms", note=f"{dr['one_byte_records_per_s']:,} one-byte TLS records/s"))
        out.append(Row(f"latency p99 added by {dr['dribblers']} dribblers", dr["added_p99_ms"],
                       "ms"))
    fz = r.get("fuzz")
    if fz:
        passed = fz["cases"] - len(fz["failures"])
        out.append(Row("fuzz cases without a failure", passed, "cases",
                       f">= {fz['requested']:,}", passed >= fz["requested"],
                       "; ".join(fz["failures"][:1]) or f"{fz['cases_per_s']:,} cases/s"))
    return out

