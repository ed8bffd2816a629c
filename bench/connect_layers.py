"""CPU per connect by layer, one process, the layers alternating (issue 9): where the engine's
connect costs more than a bare one.

    .venv/bin/python -m bench.connect_layers --devices 300 --rounds 5

N devices (`fleet_provision`, EC P-256, local core pinned to CPU 0, the worker to CPU 1, on
uvloop as `fleetsim run` is, `tls_backend: openssl`), connected one after the other, each
layer in turn in every round (the connections closed, untimed, after each):
- `bare`: blocking socket, handshake, CONNECT and CONNACK by hand (`bench.tls_paths`);
- `transport`: `transport.open_tls` on the loop, then `connect311`'s CONNECT and CONNACK;
- `client`: a `FleetClient` made and entered (paho takes the socket over);
- `session`: a `DeviceSession` entered (reconnect policy, "mqtt.connect" timed);
- `paced`: as `session`, but at 100 connects/s by the connect step's pacer (its tick), each
  device's TLS prepared (key and certificate decoded) as it starts: what a connect of the
  peer bench's ramp costs without `fleetsim run`'s step around it.
CPU is `time.process_time` (and its system part) per layer, divided by N. Results:
`bench/results/connect-layers.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR
from bench.system import machine_info, taskset_prefix, utc_now

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("bare", "transport", "client", "session", "paced")
PACED_RATE = 100.0  # connects/s, as the peer bench's ramp


async def _work(info: str, ids: str, n: int, rounds: int) -> dict[str, list[list[float]]]:
    from bench.fleet_provision import FLEET
    from bench.tls_paths import _connect
    from fleetsim.device import DeviceSession, IdentityStore, connect311, transport
    from fleetsim.device.client import FleetClient
    from fleetsim.device.reconnect import ReconnectPolicy
    from fleetsim.device.tls import TlsContextFactory
    from fleetsim.engine.pacing import Pacer, RateCurve, paced
    from fleetsim.metrics import Metrics
    from fleetsim.scenario.model import Pacing
    from fleetsim.target import Target

    target = Target.from_local_core_info(Path(info))
    identities = IdentityStore(Path(ids), FLEET).load_all()[:n]
    factory = TlsContextFactory(target, backend="openssl")
    tls = [factory.device_tls(i) for i in identities]
    host, port, metrics = target.mqtt_host, target.mqtt_port, Metrics()
    pairs = list(zip(tls, identities, strict=True))

    async def bare() -> list[Any]:
        return [_connect(t, host, port, i.thing_name) for t, i in pairs]

    async def on_loop() -> list[Any]:
        held = []
        for t, i in pairs:
            sock = await transport.open_tls(host, port, t)
            await transport.send_all(sock, connect311.connect_packet(
                i.thing_name.encode(), 60, True))
            if await transport.recv_exactly(sock, 4) != b"\x20\x02\x00\x00":
                raise RuntimeError(f"{i.thing_name}: no CONNACK")
            held.append(sock)
        return held

    async def client() -> list[Any]:
        return [await FleetClient(host, port, identifier=i.thing_name, tls_context=t,
                                  keepalive=60, timeout=10, clean_session=True,
                                  on_lost=lambda _: None).__aenter__() for t, i in pairs]

    policy = ReconnectPolicy(base=0.0, cap=0.0)  # the session layers' reconnects: no delay

    async def session() -> list[Any]:
        return [await DeviceSession(i, target, metrics, tls=t, reconnect=policy).__aenter__()
                for t, i in pairs]

    async def paced_sessions() -> list[Any]:
        held: list[Any] = []

        async def start(i: Any) -> None:
            s = DeviceSession(i, target, metrics, tls=factory.device_tls(i), reconnect=policy)
            held.append(await s.__aenter__())

        await paced(identities, start, Pacer(RateCurve(PACED_RATE), tick=Pacing().tick), n)
        return held

    layers: dict[str, Callable[[], Awaitable[list[Any]]]] = {
        "bare": bare, "transport": on_loop, "client": client, "session": session,
        "paced": paced_sessions}
    out: dict[str, list[list[float]]] = {name: [] for name in LAYERS}
    for _ in range(rounds):
        for name in LAYERS:
            sys0, cpu0 = os.times().system, time.process_time()
            held = await layers[name]()
            cpu, system = time.process_time() - cpu0, os.times().system - sys0
            out[name].append([round(cpu * 1000 / n, 3), round(system * 1000 / n, 3)])
            for h in held:
                (h.force_close if hasattr(h, "force_close") else h.close)()
            await asyncio.sleep(0.5)  # local core has seen them go
    return out


def worker(info: str, ids: str, n: int, rounds: int) -> None:
    from fleetsim.runtime import raise_fd_limit, run_async

    raise_fd_limit()
    print(json.dumps(run_async(_work(info, ids, n, rounds))), flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2], int(argv[3]), int(argv[4]))
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.connect_layers",
                                description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    from bench.fleet_provision import provisioned_core

    # local core on CPU 0, the worker on CPU 1
    with provisioned_core(args.devices, "fleetsim-bench-layers-", cpu=0) as (_, info, ids):
        out = subprocess.run([*taskset_prefix(1), sys.executable, "-m", "bench.connect_layers",
                              "--worker", str(info), str(ids), str(args.devices),
                              str(args.rounds)], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    per_layer = json.loads(out.stdout.strip().splitlines()[-1])
    report = {"bench": "connect_layers", "at": utc_now(), "machine": machine_info(),
              "devices": args.devices, "rounds": args.rounds,
              "cpu_ms_and_system_ms_per_connect": per_layer,
              "median_cpu_ms": {k: sorted(c for c, _ in v)[len(v) // 2]
                                for k, v in per_layer.items()}}
    (RESULTS_DIR / "connect-layers.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report["median_cpu_ms"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
