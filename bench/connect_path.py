"""The device engine's CPU per connect, source trees compared in one invocation (issue 9).

    .venv/bin/python -m bench.connect_path --devices 300 --rounds 3
    .venv/bin/python -m bench.connect_path --baseline /tmp/base --devices 300 --rounds 3
    .venv/bin/python -m bench.connect_path --devices 100 --callgrind   # instructions
    .venv/bin/python -m bench.connect_path --devices 300 --profile     # py-spy, collapsed

N devices with EC P-256 keys and certificates from local core's CA (`fleet_provision`), local
core in its own process. Each worker (a fresh process, on uvloop as `fleetsim run` is) builds
the target's `TlsContextFactory` (`tls_backend`, openssl by default), then per phase:
- `prepare`: every device's TLS (`device_tls`: its key and certificate decoded);
- `connect`: for each device one after the other, a `DeviceSession` (reconnect policy, as
  the connect step opens it) entered: TCP, mutual-TLS handshake, MQTT CONNECT/CONNACK,
  "mqtt.connect" timed into the metrics;
- `reconnect`: each session's connection dropped (`drop`) and re-opened by its reconnect
  policy (no delay), one after the other;
- `bare`: the floor, the same devices connected with no engine at all (blocking socket,
  handshake, CONNECT written and CONNACK read by hand, as `bench.tls_paths` does).
CPU is the worker's `time.process_time` per phase, divided by N. `--baseline DIR` runs the
same worker on another source tree's `fleetsim` (e.g. `git archive <commit> fleetsim | tar -x
-C DIR`), alternating with this tree's in every round, so both see the same machine load.
`--callgrind` also counts instructions per phase (repeatable on a noisy machine; the dumps are
kept in `--callgrind-dir` for `callgrind_annotate`). CPU per connect as `bench.peer` counts it
(TLS context included) is `prepare + connect`. Results: `bench/results/connect-path.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.system import drive_worker
from bench.tls_paths import _callgrind

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("prepare", "connect", "reconnect", "bare")
DUMPS = ("prepared", "connected", "reconnected", "bare")  # callgrind dumps 1-4


# --- the worker --------------------------------------------------------------------------------

def _mark(name: str, **values: Any) -> None:
    """Tell the parent a phase edge passed and wait until it has acted on it."""
    print(json.dumps({"mark": name, **values}), flush=True)
    sys.stdin.readline()


def worker(tree: str, core_info: str, ids: str, backend: str) -> None:
    if tree:
        sys.path.insert(0, tree)  # that tree's fleetsim, not this one's
    from fleetsim.runtime import raise_fd_limit, run_async

    raise_fd_limit()
    run_async(_work(core_info, ids, backend))


class _Phases:
    """CPU of the process per phase: `time.process_time`, its system part (`os.times`) and
    the share spent in the cyclic garbage collector (`gc.callbacks`)."""

    def __init__(self) -> None:
        import gc

        self.cpu: dict[str, float] = {}
        self.sys: dict[str, float] = {}
        self.gc: dict[str, float] = {}
        self._in_gc = 0.0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.process_time()
        else:
            self._in_gc += time.process_time() - self._gc_started

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        self._in_gc, sys0, cpu0 = 0.0, os.times().system, time.process_time()
        yield
        self.cpu[name] = time.process_time() - cpu0
        self.sys[name] = os.times().system - sys0
        self.gc[name] = self._in_gc


async def _work(core_info: str, ids: str, backend: str) -> None:
    import asyncio

    import fleetsim
    from bench.fleet_provision import FLEET
    from bench.tls_paths import _connect
    from fleetsim.device import DeviceSession, IdentityStore
    from fleetsim.device.reconnect import ReconnectPolicy
    from fleetsim.device.tls import TlsContextFactory
    from fleetsim.metrics import Metrics
    from fleetsim.target import Target

    target = Target.from_local_core_info(Path(core_info))
    identities = IdentityStore(Path(ids), FLEET).load_all()
    metrics = Metrics()
    policy = ReconnectPolicy(base=0.0, cap=0.0)
    _mark("loaded", fleetsim=str(Path(fleetsim.__file__).parent))
    phases = _Phases()
    with phases.measure("prepare"):
        factory = TlsContextFactory(target, backend=backend)  # type: ignore[arg-type]
        tls = [factory.device_tls(identity) for identity in identities]
    _mark("prepared")
    with phases.measure("connect"):
        sessions = []
        for identity, device_tls in zip(identities, tls, strict=True):
            session = DeviceSession(identity, target, metrics, tls=device_tls, reconnect=policy)
            sessions.append(await session.__aenter__())
    _mark("connected")
    with phases.measure("reconnect"):
        for session in sessions:
            session.drop()
            await asyncio.sleep(0)  # the reconnect task starts
            if not await session.wait_connected():
                raise RuntimeError(f"{session.client_id} did not reconnect")
    _mark("reconnected")
    for session in sessions:
        await session.__aexit__(None, None, None)
    with phases.measure("bare"):
        held = [_connect(t, target.mqtt_host, target.mqtt_port, i.thing_name)
                for t, i in zip(tls, identities, strict=True)]
    _mark("bare")
    for sock in held:
        sock.close()
    _mark("done", cpu_s=phases.cpu, gc_s=phases.gc, sys_s=phases.sys)


# --- the parent ----------------------------------------------------------------------------------

def _run_worker(tree: str, info: Path, ids: Path, backend: str,
                callgrind: Path | None = None, profile: Path | None = None,
                cache_sim: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.connect_path", "--worker", tree, str(info), str(ids),
           backend]
    if callgrind is not None:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--cache-sim={'yes' if cache_sim else 'no'}",
               f"--callgrind-out-file={callgrind}.%p", *cmd]
    if profile is not None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        cmd = [spy, "record", "--format", "raw", "-r", "500", "-o", str(profile),
               "--", *cmd]

    def on_mark(name: str, mark: dict[str, Any], pid: int) -> None:
        if callgrind is None:
            return
        if name == "loaded":
            _callgrind(pid, "-i", "on")
        if name in DUMPS:
            _callgrind(pid, "-d", name)
        if name == DUMPS[-1]:
            _callgrind(pid, "-i", "off")

    return drive_worker(cmd, ROOT, on_mark, tree or "of this tree", timeout=600)


def _dumped(prefix: Path) -> dict[str, dict[str, int]]:
    """Callgrind's event totals per phase (Ir: instructions; with --cache-sim also D1mr,
    DLmr, ... misses); callgrind numbers its dumps (`<prefix>.<pid>.1`: prepared, ...)."""
    out: dict[str, dict[str, int]] = {}
    for dump in prefix.parent.glob(prefix.name + ".*.*"):
        phase = dict(zip(("1", "2", "3", "4"), PHASES, strict=True)).get(
            dump.name.rsplit(".", 1)[1])
        if phase is None:
            continue
        events: list[str] = []
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("events:"):
                events = line.split()[1:]
            if line.startswith(("summary:", "totals:")):
                out[phase] = dict(zip(events, map(int, line.split()[1:]), strict=False))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.fleet_provision import provisioned_core
    from bench.system import in_round, source_trees, tree_record

    trees = source_trees(args.baseline)
    data = tree_record("connect-path", trees, devices=args.devices, backend=args.backend)
    with provisioned_core(args.devices, "fleetsim-bench-connect-") as (_, info, ids):
        for r in range(args.rounds):
            order = in_round(trees, r)
            results: dict[str, Any] = {}
            for name in order:
                cg = (Path(args.callgrind_dir) / f"cg-{name}-{r}" if args.callgrind
                      else None)
                if cg is not None:  # an earlier run's dumps would be read as this one's
                    for stale in cg.parent.glob(cg.name + ".*"):
                        stale.unlink()
                prof = (ROOT / "bench" / "results" / f"connect-path-{name}.collapsed"
                        if args.profile and r == 0 else None)
                marks = _run_worker(trees[name], info, ids, args.backend, cg, prof,
                                    args.cache_sim)
                cpu = marks["done"]["cpu_s"]
                res = {f"{p}_ms": cpu[p] * 1000 / args.devices for p in PHASES}
                for part in ("gc", "sys"):
                    res.update({f"{p}_{part}_ms": marks["done"][f"{part}_s"][p] * 1000
                                / args.devices for p in PHASES})
                res["fleetsim"] = marks["loaded"]["fleetsim"]
                if cg is not None:
                    dumps = _dumped(cg)
                    for phase, totals in dumps.items():
                        res[f"{phase}_instr"] = totals.get("Ir", 0) / args.devices
                        res.update({f"{phase}_{event}": n / args.devices
                                    for event, n in totals.items() if event != "Ir"})
                results[name] = res
                print(name, {k: round(v, 3) if isinstance(v, float) else v
                             for k, v in res.items()}, flush=True)
            data["rounds"].append({"order": order, "results": results})
    data["loadavg_after"] = os.getloadavg()
    if "baseline" in trees:
        data["ratios"] = [{k: r["results"]["this"][k] / r["results"]["baseline"][k]
                           for k in r["results"]["this"] if isinstance(
                               r["results"]["this"][k], float) and r["results"]["baseline"][k]}
                          for r in data["rounds"]]
    return data


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(*argv[1:5])
        return 0
    from bench.report import write_json

    parser = argparse.ArgumentParser(prog="python -m bench.connect_path", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", choices=("stdlib", "openssl"), default="openssl")
    parser.add_argument("--baseline", metavar="DIR",
                        help="another source tree whose fleetsim is compared with this one's")
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions (valgrind) instead of CPU time alone")
    parser.add_argument("--cache-sim", action="store_true",
                        help="with --callgrind: also simulate the caches (misses per phase)")
    parser.add_argument("--callgrind-dir", default=tempfile.gettempdir(),
                        help="where callgrind's dumps are kept (callgrind_annotate them)")
    parser.add_argument("--profile", action="store_true",
                        help="record the first round's workers with py-spy")
    parser.add_argument("--out", default="connect-path", help="results file name")
    args = parser.parse_args(argv)
    data = run(args)
    if "ratios" in data:
        for i, ratio in enumerate(data["ratios"]):
            print(f"round {i + 1}: this / baseline", {k: round(v, 3) for k, v in ratio.items()})
    print("results:", write_json(args.out, data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
