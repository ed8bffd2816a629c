"""Where a connected device's memory goes, and its CPU per connect and per message, source
trees compared in one invocation (issue 9).

    .venv/bin/python -m bench.device_memory --devices 500 --rounds 2
    .venv/bin/python -m bench.device_memory --baseline /tmp/base --backends stdlib openssl
    .venv/bin/python -m bench.device_memory --devices 300 --tracemalloc   # who allocated it

N devices with EC P-256 keys and certificates from local core's CA (`fleet_provision`), local
core in its own process. Each worker (a fresh process, on uvloop as `fleetsim run` is) builds
the target's `TlsContextFactory` for one `tls_backend`, then per phase, one device after the
other:
- `prepare`: every device's TLS (`device_tls`: its key and certificate decoded);
- `connect`: a `DeviceSession` per device entered (TCP, mutual-TLS handshake, CONNECT/CONNACK);
- `publish`: `--messages` QoS 0 PUBLISHes per device (`publish_nowait`), round robin.
At every phase edge the worker reports its RSS (`/proc/self/statm`), the C heap in use
(glibc's `mallinfo2().uordblks`: OpenSSL's allocations) and, with `--tracemalloc`, Python's
(tracemalloc's traced total, and the top allocation sites of the connect phase in the JSON;
tracemalloc costs CPU: CPU figures of such a run are not comparable). Per device figures are
the growth of a phase divided by N; CPU is `time.process_time` of a phase divided by N (per
message: by N x messages). `--baseline DIR` runs another source tree's `fleetsim` (e.g.
`git archive <commit> fleetsim | tar -x -C DIR`) alternating with this tree's, round by round.
Results: `bench/results/device-memory.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.system import drive_worker
from bench.tls_paths import _malloc_in_use_kb

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("prepare", "connect", "publish")


# --- the worker --------------------------------------------------------------------------------

def _rss_kb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def _python_kb() -> float | None:
    import tracemalloc

    return tracemalloc.get_traced_memory()[0] / 1024 if tracemalloc.is_tracing() else None


def _mark(name: str, **values: Any) -> None:
    import gc

    gc.collect()
    print(json.dumps({"mark": name, "rss_kb": _rss_kb(), "malloc_kb": _malloc_in_use_kb(),
                      "python_kb": _python_kb(), **values}), flush=True)
    sys.stdin.readline()


def worker(tree: str, core_info: str, ids: str, backend: str, messages: str,
           trace: str) -> None:
    if tree:
        sys.path.insert(0, tree)  # that tree's fleetsim, not this one's
    if trace == "1":
        import tracemalloc

        tracemalloc.start(8)
    from fleetsim.runtime import raise_fd_limit, run_async

    raise_fd_limit()
    run_async(_work(core_info, ids, backend, int(messages)))


def _top(before: Any, after: Any, n: int) -> list[dict[str, Any]]:
    stats = after.compare_to(before, "traceback")
    out = []
    for stat in stats[:n]:
        frames = [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}"
                  for f in list(stat.traceback)[-4:]]
        out.append({"kb": round(stat.size_diff / 1024, 1), "count": stat.count_diff,
                    "where": frames})
    return out


async def _work(core_info: str, ids: str, backend: str, messages: int) -> None:
    import asyncio
    import tracemalloc

    import fleetsim
    from bench.fleet_provision import FLEET
    from fleetsim.device import DeviceSession, IdentityStore
    from fleetsim.device.tls import TlsContextFactory
    from fleetsim.metrics import Metrics
    from fleetsim.target import Target

    target = Target.from_local_core_info(Path(core_info))
    identities = IdentityStore(Path(ids), FLEET).load_all()
    metrics = Metrics()
    factory = TlsContextFactory(target, backend=backend)  # type: ignore[arg-type]
    factory.device_tls(identities[0])  # the shared context is built before the devices
    cpu: dict[str, float] = {}
    _mark("loaded", fleetsim=str(Path(fleetsim.__file__).parent))
    t0 = time.process_time()
    tls = [factory.device_tls(identity) for identity in identities]
    cpu["prepare"] = time.process_time() - t0
    _mark("prepared")
    snap = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
    t0 = time.process_time()
    sessions = []
    for identity, device_tls in zip(identities, tls, strict=True):
        session = DeviceSession(identity, target, metrics, tls=device_tls)
        sessions.append(await session.__aenter__())
    cpu["connect"] = time.process_time() - t0
    top = _top(snap, tracemalloc.take_snapshot(), 40) if snap is not None else None
    _mark("connected", top=top)
    payload = b'{"temperature": 21.5, "humidity": 40}'
    t0 = time.process_time()
    for m in range(messages):
        for session in sessions:
            session.publish_nowait(f"dt/{session.client_id}/telemetry", payload)
        if m % 10 == 9:
            await asyncio.sleep(0)  # let the loop run as a paced fleet's would
    cpu["publish"] = time.process_time() - t0
    await asyncio.sleep(0.5)
    _mark("published")
    for session in sessions:
        await session.__aexit__(None, None, None)
    _mark("done", cpu_s=cpu)


# --- the parent ----------------------------------------------------------------------------------

def _run_worker(tree: str, info: Path, ids: Path, backend: str, messages: int,
                trace: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.device_memory", "--worker", tree, str(info), str(ids),
           backend, str(messages), "1" if trace else "0"]
    return drive_worker(cmd, ROOT, lambda name, mark, pid: None, tree or "of this tree",
                        timeout=600)


def _figures(marks: dict[str, Any], n: int, messages: int) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for part in ("rss", "malloc", "python"):
        a, b = marks["prepared"][f"{part}_kb"], marks["connected"][f"{part}_kb"]
        if a is not None and b is not None:
            res[f"connected_{part}_kb"] = (b - a) / n
        a = marks["loaded"][f"{part}_kb"]
        if a is not None and b is not None:
            res[f"prepared_and_connected_{part}_kb"] = (b - a) / n
    cpu = marks["done"]["cpu_s"]
    res["prepare_ms"] = cpu["prepare"] * 1000 / n
    res["connect_ms"] = cpu["connect"] * 1000 / n
    res["publish_us"] = cpu["publish"] * 1e6 / (n * messages) if messages else 0.0
    if marks["connected"].get("top"):
        res["top"] = marks["connected"]["top"]
    return res


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.fleet_provision import provisioned_core
    from bench.system import in_round, source_trees, tree_record

    trees = source_trees(args.baseline)
    data = tree_record("device-memory", trees, devices=args.devices, messages=args.messages,
                       backends=args.backends, tracemalloc=args.tracemalloc)
    with provisioned_core(args.devices, "fleetsim-bench-mem-") as (_, info, ids):
        for r in range(args.rounds):
            order = in_round(trees, r)
            results: dict[str, Any] = {}
            for backend in args.backends:
                for name in order:
                    marks = _run_worker(trees[name], info, ids, backend, args.messages,
                                        args.tracemalloc)
                    res = _figures(marks, args.devices, args.messages)
                    res["fleetsim"] = marks["loaded"]["fleetsim"]
                    results[f"{backend}/{name}"] = res
                    print(f"{backend}/{name}", {k: round(v, 3) if isinstance(v, float)
                                                else v for k, v in res.items()
                                                if k != "top"}, flush=True)
            data["rounds"].append({"order": order, "results": results})
    data["loadavg_after"] = os.getloadavg()
    return data


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.device_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=500)
    p.add_argument("--rounds", type=int, default=2, help="rounds, tree order alternating")
    p.add_argument("--messages", type=int, default=20, help="QoS 0 messages per device")
    p.add_argument("--backends", nargs="+", choices=("stdlib", "openssl"), default=["openssl"])
    p.add_argument("--baseline", metavar="DIR", help="a source tree to compare this one with")
    p.add_argument("--tracemalloc", action="store_true",
                   help="trace Python's allocations (top sites of the connect phase)")
    return p


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        worker(*argv[1:7])
        return 0
    from bench.report import write_json

    print(f"results: {write_json('device-memory', run(_parser().parse_args(argv)))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
