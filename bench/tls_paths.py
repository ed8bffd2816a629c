"""Device TLS paths compared (issue 9): CPU per client connect and handshake, and RSS per
connected device, of the three ways a device can hold its key and certificate.

    .venv/bin/python -m bench tls-paths                     # 1,000 devices, 2 rounds
    .venv/bin/python -m bench.tls_paths --tls-devices 200 --tls-rounds 1
    .venv/bin/python -m bench.tls_paths --tls-callgrind 40  # instructions instead of CPU time

Paths: `stdlib-shared` (today's: one Python `ssl` context per kind of key, each device's
chain loaded into it right before its socket is wrapped), `stdlib-per-device` (a context of
its own per device, its chain loaded at its first connect) and `openssl` (pyOpenSSL, the
device's key and certificate decoded once and handed to each connection, `tls_openssl`).

N devices with EC P-256 keys and certificates from local core's CA (`fleet_provision`),
local core in its own process. For each TLS version (1.2, 1.3) and path, a fresh worker
process: prepares every device's TLS (`TlsContextFactory.device_tls`), then connects the N
devices one after the other (blocking TCP connect, mutual-TLS handshake, MQTT CONNECT and
CONNACK, connections held), closes them, and connects them all again (reconnects). The worker
measures its own CPU (`time.process_time`) per phase; RSS is read from outside
(/proc/<pid>/status) at each phase edge, while the worker waits. Rounds alternate the order
of the paths; the machine is shared, so only ratios within a run mean much.
`--tls-callgrind N`: the connect phases run under callgrind (instructions, repeatable on a
noisy machine), with N devices.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.system import (
    drive_worker,
    in_round,
    machine_info,
    raise_fd_limit,
    rss_kb,
    utc_now,
)

PATHS = ("stdlib-shared", "stdlib-per-device", "openssl")
VERSIONS = ("1.2", "1.3")
ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tls-paths")
    group.add_argument("--tls-devices", type=int, default=1000,
                       help="devices connected per path and TLS version (default 1000)")
    group.add_argument("--tls-rounds", type=int, default=2,
                       help="rounds, alternating the order of the paths (default 2)")
    group.add_argument("--tls-paths", nargs="+", choices=PATHS, default=list(PATHS),
                       help="the paths to compare (default: all)")
    group.add_argument("--tls-callgrind", type=int, default=0, metavar="N",
                       help="also count instructions under callgrind, with N devices")


# --- the worker: one process, one path, one TLS version ----------------------------------------

def _connect_packet(client_id: str) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session, keep-alive 300 s."""
    name = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02" + struct.pack("!H", 300) + struct.pack("!H", len(name)) + name
    return bytes((0x10, len(body))) + body


def _connect(device_tls: Any, host: str, port: int, client_id: str) -> Any:
    raw = socket.create_connection((host, port), timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.setblocking(True)  # a timeout makes the fd non-blocking, which OpenSSL then reports
    tls = device_tls.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
    tls.do_handshake()
    tls.sendall(_connect_packet(client_id))
    connack = b""
    while len(connack) < 4:
        chunk = tls.recv(4 - len(connack))
        if not chunk:
            raise ConnectionError(f"{client_id}: closed before CONNACK")
        connack += chunk
    if connack != b"\x20\x02\x00\x00":
        raise ConnectionError(f"{client_id}: CONNACK {connack.hex()}")
    return tls


def _malloc_in_use_kb() -> float | None:
    """Bytes glibc's malloc has handed out and not had back (`mallinfo2().uordblks`), in KB:
    OpenSSL's allocations, without Python objects (pymalloc keeps those in arenas of its own)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None
    return float(libc.mallinfo2().uordblks) / 1024


def _mark(name: str, **values: Any) -> None:
    """Tell the parent a phase ended and wait until it has read our RSS."""
    print(json.dumps({"mark": name, "malloc_kb": _malloc_in_use_kb(), **values}), flush=True)
    sys.stdin.readline()


def worker(path: str, version: str, core_info: str, ids: str) -> None:
    from bench.fleet_provision import FLEET
    from fleetsim.device import IdentityStore
    from fleetsim.device.tls import TlsContextFactory
    from fleetsim.target import Target

    raise_fd_limit()
    target = Target.from_local_core_info(Path(core_info))
    identities = IdentityStore(Path(ids), FLEET).load_all()
    factory = TlsContextFactory(target, version, version, share=path == "stdlib-shared",  # type: ignore[arg-type]
                                backend="openssl" if path == "openssl" else "stdlib")
    _mark("loaded")
    t0 = time.process_time()
    tls = [factory.device_tls(identity) for identity in identities]
    prepare = time.process_time() - t0
    _mark("prepared", cpu_s=prepare)
    rounds: list[float] = []
    for label in ("connected", "reconnected"):
        t0 = time.process_time()
        held = [_connect(t, target.mqtt_host, target.mqtt_port, i.thing_name)
                for t, i in zip(tls, identities, strict=True)]
        rounds.append(time.process_time() - t0)
        version_seen = held[0].version()
        _mark(label, cpu_s=rounds[-1], version=version_seen)
        for sock in held:
            sock.close()
        del held
    _mark("done")


# --- the parent ------------------------------------------------------------------------------

def _run_worker(path: str, version: str, core_info: Path, ids: Path,
                callgrind_out: Path | None = None,
                on_mark: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one worker; `on_mark(name)` is called at each phase edge while it waits."""
    cmd = [sys.executable, "-m", "bench.tls_paths", "--worker", path, version,
           str(core_info), str(ids)]
    if callgrind_out is not None:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={callgrind_out}.%p", *cmd]

    def act(name: str, mark: dict[str, Any], pid: int) -> None:
        mark["rss_kb"] = rss_kb(pid)
        if callgrind_out is not None and name in ("loaded", "connected"):
            _callgrind(pid, "-i", "on" if name == "loaded" else "off")
        if on_mark is not None:
            on_mark(name)

    return drive_worker(cmd, ROOT, act, f"{path} TLS {version}")


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _instructions(prefix: Path) -> int:
    total = 0
    for dump in prefix.parent.glob(prefix.name + ".*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


def _figures(marks: dict[str, dict[str, Any]], n: int) -> dict[str, Any]:
    loaded, prepared = marks["loaded"], marks["prepared"]
    connected, reconnected = marks["connected"], marks["reconnected"]
    return {
        "version_negotiated": connected.get("version"),
        "prepare_ms_per_device": prepared["cpu_s"] * 1000 / n,
        "connect_ms": connected["cpu_s"] * 1000 / n,
        "connect_incl_prepare_ms": (prepared["cpu_s"] + connected["cpu_s"]) * 1000 / n,
        "reconnect_ms": reconnected["cpu_s"] * 1000 / n,
        "rss_prepared_kb_per_device": (prepared["rss_kb"] - loaded["rss_kb"]) / n,
        "rss_connected_kb_per_device": (connected["rss_kb"] - loaded["rss_kb"]) / n,
        **({"malloc_prepared_kb_per_device": (prepared["malloc_kb"] - loaded["malloc_kb"]) / n,
            "malloc_connected_kb_per_device": (connected["malloc_kb"] - loaded["malloc_kb"]) / n}
           if loaded.get("malloc_kb") is not None else {}),
    }


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    from bench.fleet_provision import provisioned_core

    raise_fd_limit()
    started = time.perf_counter()
    n = args.tls_devices
    data: dict[str, Any] = {"benchmark": "tls-paths", "started": utc_now(),
                            "machine": machine_info(), "devices": n, "key_type": "ec-p256",
                            "loadavg_before": os.getloadavg(), "rounds": [], "errors": {}}
    with provisioned_core(max(n if args.tls_rounds else 0, args.tls_callgrind),
                          "fleetsim-bench-tls-") as (work, info, ids):
        for r in range(args.tls_rounds):
            paths = tuple(p for p in PATHS if p in args.tls_paths)
            order = in_round(paths, r)
            results: dict[str, Any] = {}
            for version in VERSIONS:
                for path in order:
                    key = f"{path} tls{version}"
                    try:
                        results[key] = _figures(
                            _run_worker(path, version, info, _subset(ids, work, n)), n)
                    except Exception as e:  # reported, the rest goes on
                        data["errors"][f"round {r + 1} {key}"] = str(e)
            data["rounds"].append({"order": list(order), "results": results})
        if args.tls_callgrind and shutil.which("valgrind"):
            data["callgrind"] = _callgrind_round(args.tls_callgrind, info,
                                                 _subset(ids, work, args.tls_callgrind),
                                                 work, data["errors"])
    data["loadavg_after"] = os.getloadavg()
    data["summary"] = _summary(data)
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data, _rows(data)


def _subset(ids: Path, work: Path, n: int) -> Path:
    """An identities directory holding the first `n` devices (the callgrind run uses fewer)."""
    from bench.fleet_provision import FLEET

    out = work / f"identities-{n}"
    if not out.exists():
        (out / FLEET).mkdir(parents=True)
        for i in range(n):
            for f in (ids / FLEET).glob(f"bench-{i}.*"):
                os.link(f, out / FLEET / f.name)
    return out


def _callgrind_round(n: int, info: Path, ids: Path, work: Path,
                     errors: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": n}
    for version in VERSIONS:
        for path in PATHS:
            key = f"{path} tls{version}"
            prefix = work / f"callgrind-{path}-{version}"
            try:
                _run_worker(path, version, info, ids, prefix)
                out[key] = {"instructions_per_connect_incl_prepare": _instructions(prefix) / n}
            except Exception as e:
                errors[f"callgrind {key}"] = str(e)
    return out


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    """Per path and version: the mean over rounds, and ratios to stdlib-shared."""
    summary: dict[str, Any] = {}
    for version in VERSIONS:
        for path in PATHS:
            key = f"{path} tls{version}"
            found = [rnd["results"][key] for rnd in data["rounds"] if key in rnd["results"]]
            if not found:
                continue
            summary[key] = {f: sum(x[f] for x in found) / len(found) for f in found[0]
                            if isinstance(found[0][f], float)}
        base = summary.get(f"stdlib-shared tls{version}")
        for path in PATHS[1:]:
            other = summary.get(f"{path} tls{version}")
            if base and other:
                other["ratio_to_shared"] = {f: other[f] / base[f] for f in (
                    "connect_incl_prepare_ms", "reconnect_ms") if base[f]}
    return summary


def _rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for key, s in data.get("summary", {}).items():
        rows.append(Row(f"{key}: CPU per connect (incl. prepare)",
                        s["connect_incl_prepare_ms"], "ms",
                        note=f"reconnect {s['reconnect_ms']:.2f} ms; ratios to shared "
                             f"{s.get('ratio_to_shared', {})}"))
        rows.append(Row(f"{key}: RSS per connected device",
                        s["rss_connected_kb_per_device"], "KB"))
    for key, c in data.get("callgrind", {}).items():
        if isinstance(c, dict):
            rows.append(Row(f"{key}: instructions per connect (callgrind)",
                            c["instructions_per_connect_incl_prepare"], "instr"))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(*argv[1:5])
        return 0
    from bench.report import print_table, write_json

    parser = argparse.ArgumentParser(prog="python -m bench.tls_paths", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    data, rows = run(args)
    path = write_json("tls-paths", data)
    print_table(f"tls-paths  ({data['elapsed_s']} s; full results in {path})", rows)
    for part, error in data["errors"].items():
        print(f"  ! {part} failed: {error}")
    return 1 if data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
