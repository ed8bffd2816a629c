"""Local core's CPU per accepted connection (issue 9): what one device's connect costs the
broker, measured from outside its process.

    .venv/bin/python -m bench core-connect                          # 1,000 devices, 3 rounds
    .venv/bin/python -m bench core-connect --core-trees /tmp/base . # before/after, alternating
    .venv/bin/python -m bench core-connect --core-callgrind 200     # instructions, repeatable

N devices with EC P-256 keys and ACTIVE certificates of local core's CA (`fleet_provision`).
For each round and each source tree of local core (`--core-trees`: directories holding a
`fleetsim` package; default this checkout), local core is started from that tree on the same
state, and one client worker (`bench.tls_paths`'s, the `openssl` path: the cheapest client)
connects the N devices one after the other (TCP, mutual TLS, MQTT CONNECT, CONNACK, held), then
closes them and connects them all again. Local core's CPU (user + system, /proc/<pid>/stat)
is read at each phase edge while the worker waits: `connect` is the first phase per device,
`reconnect` the second (its window holds the N disconnects too), `disconnect` the difference.
Rounds alternate the order of the trees, so a ratio of two trees is one of a single run on a
noisy shared machine. `--core-callgrind N` runs local core under callgrind (instrumentation
toggled at the phase edges) for N devices per tree: instructions per connect, which noise does
not move.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.system import cpu_seconds, in_round, machine_info, raise_fd_limit, utc_now

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("1.2", "1.3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("core-connect")
    group.add_argument("--core-devices", type=int, default=1000,
                       help="devices connected one after the other (default 1000)")
    group.add_argument("--core-rounds", type=int, default=3,
                       help="rounds, alternating the order of the trees (default 3)")
    group.add_argument("--core-trees", nargs="+", type=Path, default=[ROOT], metavar="DIR",
                       help="source trees of local core to compare (default: this checkout)")
    group.add_argument("--core-tls", choices=VERSIONS, default="1.2",
                       help="the TLS version the devices ask for (default 1.2)")
    group.add_argument("--core-callgrind", type=int, default=0, metavar="N",
                       help="count local core's instructions under callgrind, with N devices")
    group.add_argument("--core-callgrind-out", type=Path, default=None, metavar="DIR",
                       help="keep the callgrind dumps there (callgrind_annotate reads them)")



def _start_tree(tree: Path, state: Path, log: Path, callgrind: Path | None = None) -> Any:
    from fleetsim.localcore.launcher import spawn_local_core

    prefix = ["env", f"--chdir={tree.resolve()}", f"PYTHONPATH={tree.resolve()}"]
    if callgrind is not None:
        prefix += ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={callgrind}.%p"]
    return spawn_local_core(state, log, api_port=0, mqtt_port=0, prefix=prefix,
                            timeout=300 if callgrind is not None else 30)


def _measure(tree: Path, version: str, state: Path, ids: Path, work: Path, n: int,
             callgrind: Path | None = None) -> dict[str, float]:
    """Start local core from `tree`, run the worker against it, local core's CPU per phase."""
    from bench.tls_paths import _run_worker
    from fleetsim.localcore.arguments import INFO_FILE

    core = _start_tree(tree, state, work / "localcore.log", callgrind)
    pid = core.process.pid  # env and valgrind exec: the launched pid is local core's
    edges: dict[str, float] = {}

    def on_mark(name: str) -> None:
        if callgrind is not None and name == "prepared":
            subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True,
                           capture_output=True)
        edges[name] = cpu_seconds(pid)
        if callgrind is not None and name == "connected":
            subprocess.run(["callgrind_control", "-i", "off", str(pid)], check=True,
                           capture_output=True)

    try:
        _run_worker("openssl", version, state / INFO_FILE, ids, on_mark=on_mark)
    finally:
        core.stop()
    connect = (edges["connected"] - edges["prepared"]) * 1000 / n
    reconnect = (edges["reconnected"] - edges["connected"]) * 1000 / n
    out = {"connect_ms": connect, "reconnect_ms": reconnect,
           "disconnect_ms": reconnect - connect}
    if callgrind is not None:
        from bench.tls_paths import _instructions

        out = {"instructions_per_connect": _instructions(callgrind) / n}
    return out


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    from bench.fleet_provision import provision
    from bench.tls_paths import _subset

    raise_fd_limit()
    started = time.perf_counter()
    n = args.core_devices
    trees = [t.resolve() for t in args.core_trees]
    data: dict[str, Any] = {"benchmark": "core-connect", "started": utc_now(),
                            "machine": machine_info(), "devices": n, "tls": args.core_tls,
                            "trees": [str(t) for t in trees], "key_type": "ec-p256",
                            "loadavg_before": os.getloadavg(), "rounds": [], "errors": {}}
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-core-") as tmp:
        work = Path(tmp)
        state, ids = work / "state", work / "identities"
        provision(state, ids, max(n if args.core_rounds else 0, args.core_callgrind))
        for r in range(args.core_rounds):
            order = in_round(trees, r)
            results: dict[str, Any] = {}
            for tree in order:
                try:
                    results[str(tree)] = _measure(tree, args.core_tls, state,
                                                  _subset(ids, work, n), work, n)
                except Exception as e:  # reported, the rest goes on
                    data["errors"][f"round {r + 1} {tree}"] = str(e)
            data["rounds"].append({"order": [str(t) for t in order], "results": results})
        if args.core_callgrind and shutil.which("valgrind"):
            m = args.core_callgrind
            data["callgrind"] = {"devices": m}
            for tree in trees:
                try:
                    data["callgrind"][str(tree)] = _measure(
                        tree, args.core_tls, state, _subset(ids, work, m), work, m,
                        callgrind=(args.core_callgrind_out or work)
                        / f"callgrind-{len(data['callgrind'])}")
                except Exception as e:
                    data["errors"][f"callgrind {tree}"] = str(e)
    data["loadavg_after"] = os.getloadavg()
    data["summary"] = _summary(data, trees)
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data, _rows(data)


def _summary(data: dict[str, Any], trees: list[Path]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for tree in trees:
        found = [rnd["results"][str(tree)] for rnd in data["rounds"]
                 if str(tree) in rnd["results"]]
        if found:
            summary[str(tree)] = {f: sum(x[f] for x in found) / len(found) for f in found[0]}
    if len(trees) > 1 and all(str(t) in summary for t in trees):
        base = summary[str(trees[0])]
        for tree in trees[1:]:
            summary[str(tree)]["ratio_to_first"] = {
                f: summary[str(tree)][f] / base[f] for f in ("connect_ms", "reconnect_ms")
                if base[f]}
    return summary


def _rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for tree, s in data.get("summary", {}).items():
        rows.append(Row(f"{tree}: local core CPU per connect", s["connect_ms"], "ms",
                        note=f"reconnect+disconnect {s['reconnect_ms']:.2f} ms; "
                             f"ratio {s.get('ratio_to_first', {})}"))
    for tree, c in data.get("callgrind", {}).items():
        if isinstance(c, dict):
            rows.append(Row(f"{tree}: local core instructions per connect (callgrind)",
                            c["instructions_per_connect"], "instr"))
    return rows
