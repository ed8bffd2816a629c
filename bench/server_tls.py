"""The broker's server-side TLS on Python's ssl (the system's OpenSSL) against pyOpenSSL on
cryptography's bundled OpenSSL: CPU per accepted mutual-TLS handshake (issue 9).

    .venv/bin/python -m bench server-tls                     # 1,000 handshakes, 3 rounds
    .venv/bin/python -m bench.server_tls --server-tls-devices 300 --server-tls-rounds 1

A server process on uvloop accepts TCP on 127.0.0.1 and runs each connection's handshake
with local core's own server identity and trust anchors, then answers the client's first bytes
(its MQTT CONNECT) with a CONNACK, and holds the connection. Three servers:
`stdlib`: the broker's `FLEETSIM_LOCAL_TLS=stdlib` path (`broker/handshake.py`'s `Handshakes`:
plain TCP, then uvloop's `start_tls` with `LocalCA.server_ssl_context()`); `stdlib-bio`:
Python's ssl on memory BIOs in a plain Protocol; `pyopenssl`: the broker's default path
(`broker/tlsopenssl.py`'s `OpenSslHandshakes` with `servertls.openssl_context`).
The client is `bench.tls_paths`'s worker (`openssl` path): N devices with EC P-256
certificates of local core's CA connected one after the other, closed, connected again. The
server's CPU (user + system, /proc) is read at each phase edge while the client waits. Rounds
alternate the order of the servers, so the ratio is one of a single run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.system import cpu_seconds, in_round, machine_info, raise_fd_limit, utc_now

SERVERS = ("stdlib", "pyopenssl", "stdlib-bio")
CONNACK = b"\x20\x02\x00\x00"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server-tls")
    group.add_argument("--server-tls-devices", type=int, default=1000,
                       help="handshakes per phase (default 1000)")
    group.add_argument("--server-tls-rounds", type=int, default=3,
                       help="rounds, alternating the order of the servers (default 3)")
    group.add_argument("--server-tls-version", choices=("1.2", "1.3"), default="1.2",
                       help="the TLS version the client asks for (default 1.2)")
    group.add_argument("--server-tls-callgrind", type=int, default=0, metavar="N",
                       help="also count each server's instructions under callgrind, N devices")


# --- the server process ------------------------------------------------------------------------

class _Answer(asyncio.Protocol):
    """After the handshake: a CONNACK to the first bytes, then the connection is held."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(CONNACK)


class _MemoryBioServer(asyncio.Protocol):
    """Python's ssl on memory BIOs in a plain Protocol (no `start_tls`): what the system's
    OpenSSL costs without uvloop's TLS protocol around it."""

    def __init__(self, ctx: Any):
        import ssl

        self._ssl_mod = ssl
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=True)
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        ssl, obj = self._ssl_mod, self._obj
        self._in.write(data)
        try:
            if not self._done:
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    return
                self._done = True
            while True:
                try:
                    plain = obj.read(65536)
                except ssl.SSLWantReadError:
                    break
                if not plain:
                    break
                obj.write(CONNACK)
        except ssl.SSLError:
            self.transport.abort()
        finally:
            out = self._out.read()
            if out:
                self.transport.write(out)


def serve(kind: str, state_dir: str, port_file: str) -> None:
    import uvloop

    state = Path(state_dir)

    async def main() -> None:
        from fleetsim.localcore.ca import LocalCA

        loop = asyncio.get_running_loop()
        local_ca = LocalCA.load_or_create(state)
        if kind == "stdlib":
            from fleetsim.localcore.broker.handshake import Handshakes

            factory: Any = Handshakes(local_ca.server_ssl_context(), _Answer,
                                      lambda: 10.0).protocol
        elif kind == "stdlib-bio":
            sctx = local_ca.server_ssl_context()

            def factory() -> asyncio.Protocol:
                return _MemoryBioServer(sctx)
        else:  # the broker's own pyOpenSSL path (local core's default)
            from fleetsim.localcore.broker.tlsopenssl import OpenSslHandshakes
            from fleetsim.localcore.servertls import openssl_context

            factory = OpenSslHandshakes(openssl_context(local_ca), _Answer,
                                        lambda: 10.0).protocol
        server = await loop.create_server(factory, "127.0.0.1", 0, backlog=2048)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    raise_fd_limit()
    uvloop.run(main())


# --- the parent --------------------------------------------------------------------------------


def _measure(kind: str, version: str, state: Path, ids: Path, work: Path,
             n: int, callgrind: bool = False) -> dict[str, float]:
    from bench.tls_paths import _run_worker
    from fleetsim.localcore.ca import ROOT_CA_FILE

    port_file = work / f"port-{kind}"
    port_file.unlink(missing_ok=True)
    prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
              f"--callgrind-out-file={work}/callgrind-{kind}.%p"] if callgrind else []
    server = subprocess.Popen([*prefix, sys.executable, "-m", "bench.server_tls", "--serve",
                               kind, str(state), str(port_file)],
                              env={**os.environ, "PYTHONMALLOC": "malloc"})
    try:
        deadline = time.monotonic() + (300 if callgrind else 30)
        while not port_file.exists() or not port_file.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not start")
            time.sleep(0.05)
        info = work / f"info-{kind}.json"
        info.write_text(json.dumps({"api_url": "http://127.0.0.1:1", "mqtt_host": "127.0.0.1",
                                    "mqtt_port": int(port_file.read_text()),
                                    "root_ca": str(state / ROOT_CA_FILE)}))
        edges: dict[str, float] = {}

        def on_mark(name: str) -> None:
            if callgrind and name in ("prepared", "connected"):
                subprocess.run(["callgrind_control", "-i", "on" if name == "prepared" else "off",
                                str(server.pid)], check=True, capture_output=True)
            edges[name] = cpu_seconds(server.pid)

        _run_worker("openssl", version, info, ids, on_mark=on_mark)
    finally:
        if callgrind:
            server.terminate()  # callgrind writes its dump as the process ends
            server.wait(timeout=120)
        server.kill()
        server.wait()
    if callgrind:
        from bench.tls_paths import _instructions

        return {"instructions_per_handshake": _instructions(work / f"callgrind-{kind}") / n}
    connect = (edges["connected"] - edges["prepared"]) * 1000 / n
    reconnect = (edges["reconnected"] - edges["connected"]) * 1000 / n
    return {"handshake_ms": connect, "reconnect_ms": reconnect}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    from bench.fleet_provision import provision
    from bench.tls_paths import _subset

    raise_fd_limit()
    started = time.perf_counter()
    n = args.server_tls_devices
    data: dict[str, Any] = {"benchmark": "server-tls", "started": utc_now(),
                            "machine": machine_info(), "devices": n,
                            "tls": args.server_tls_version, "key_type": "ec-p256",
                            "loadavg_before": os.getloadavg(), "rounds": [], "errors": {}}
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-server-tls-") as tmp:
        work = Path(tmp)
        state, ids = work / "state", work / "identities"
        provision(state, ids, max(n, args.server_tls_callgrind))
        for r in range(args.server_tls_rounds):
            order = in_round(SERVERS, r)
            results: dict[str, Any] = {}
            for kind in order:
                try:
                    results[kind] = _measure(kind, args.server_tls_version, state,
                                             _subset(ids, work, n), work, n)
                except Exception as e:  # reported, the rest goes on
                    data["errors"][f"round {r + 1} {kind}"] = str(e)
            data["rounds"].append({"order": list(order), "results": results})
        if args.server_tls_callgrind:
            m = args.server_tls_callgrind
            data["callgrind"] = {"devices": m}
            for kind in SERVERS:
                try:
                    data["callgrind"][kind] = _measure(kind, args.server_tls_version, state,
                                                       _subset(ids, work, m), work, m, True)
                except Exception as e:
                    data["errors"][f"callgrind {kind}"] = str(e)
    summary: dict[str, Any] = {}
    for kind in SERVERS:
        found = [rnd["results"][kind] for rnd in data["rounds"] if kind in rnd["results"]]
        if found:
            summary[kind] = {f: sum(x[f] for x in found) / len(found) for f in found[0]}
    if all(k in summary for k in SERVERS):
        summary["ratio"] = {kind: {f: summary[kind][f] / summary["stdlib"][f]
                                   for f in summary["stdlib"] if summary["stdlib"][f]}
                            for kind in SERVERS[1:]}
    data["summary"] = summary
    data["loadavg_after"] = os.getloadavg()
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    rows = [Row(f"{kind}: server CPU per handshake", s["handshake_ms"], "ms",
                note=f"reconnect+close {s['reconnect_ms']:.2f} ms")
            for kind, s in summary.items() if kind in SERVERS]
    for kind, ratio in summary.get("ratio", {}).items():
        rows.append(Row(f"{kind} / stdlib", ratio["handshake_ms"], "x"))
    counts = data.get("callgrind", {})
    for kind in SERVERS:
        if kind in counts:
            rows.append(Row(f"{kind}: server instructions per handshake (callgrind)",
                            counts[kind]["instructions_per_handshake"], "instr"))
    return data, rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(*argv[1:4])
        return 0
    from bench.report import print_table, write_json

    parser = argparse.ArgumentParser(prog="python -m bench.server_tls", description=__doc__)
    add_arguments(parser)
    data, rows = run(parser.parse_args(argv))
    path = write_json("server-tls", data)
    print_table(f"server-tls  ({data['elapsed_s']} s; full results in {path})", rows)
    for part, error in data["errors"].items():
        print(f"  ! {part} failed: {error}")
    return 1 if data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
