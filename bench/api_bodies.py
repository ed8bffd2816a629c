"""Large request bodies: local core's RSS before, at peak and after 8 concurrent 60 MB bodies
sent to the iot API (once with Content-Length, once chunked), and the status each got.

Local core caps a rest-json body at 1 MiB and checks the size while it streams in, so its RSS
should barely move; before the cap, 8 x 60 MB took it from ~69 MB to ~610 MB."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from typing import Any
from urllib.parse import urlparse

from bench.core_process import CoreProcess
from bench.report import Row
from bench.system import machine_info, rss_kb, utc_now

AUTH = ("AWS4-HMAC-SHA256 Credential=KEY/20240101/us-east-1/iot/aws4_request, "
        "SignedHeaders=host, Signature=00")
CHUNK = 1 << 20


def _send(host: str, port: int, size: int, chunked: bool, statuses: list[str]) -> None:
    """POST `size` bytes to create-thing; record the status line (or how it ended)."""
    head = (f"POST /things/big HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {AUTH}\r\n"
            "Content-Type: application/json\r\n"
            + ("Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n")
            + "\r\n")
    block = b"x" * CHUNK
    try:
        with socket.create_connection((host, port), timeout=60) as sock:
            sock.sendall(head.encode())
            sent = 0
            while sent < size:
                n = min(CHUNK, size - sent)
                data = block[:n]
                sock.sendall(f"{n:x}\r\n".encode() + data + b"\r\n" if chunked else data)
                sent += n
            if chunked:
                sock.sendall(b"0\r\n\r\n")
            statuses.append(sock.recv(64).split(b"\r\n", 1)[0].decode(errors="replace"))
        return
    except OSError as e:  # the server answered early and closed: read what it said
        statuses.append(f"closed while sending ({type(e).__name__})")


def _round(core: CoreProcess, size: int, clients: int, chunked: bool) -> dict[str, Any]:
    url = urlparse(core.api_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    statuses: list[str] = []
    threads = [threading.Thread(target=_send, args=(host, port, size, chunked, statuses))
               for _ in range(clients)]
    before = rss_kb(core.pid)
    peak = before
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_kb(core.pid))
        time.sleep(0.01)
    time.sleep(0.5)
    return {"chunked": chunked, "rss_before_kb": before, "rss_peak_kb": peak,
            "rss_after_kb": rss_kb(core.pid), "statuses": sorted(set(statuses))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--body-mb", type=int, default=60, metavar="MB",
                        help="api_bodies bench: size of each request body (default 60)")
    parser.add_argument("--body-clients", type=int, default=8, metavar="N",
                        help="api_bodies bench: concurrent senders (default 8)")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.perf_counter()
    data: dict[str, Any] = {"benchmark": "api_bodies", "started": utc_now(),
                            "machine": machine_info(), "body_mb": args.body_mb,
                            "clients": args.body_clients}
    with CoreProcess() as core:
        try:
            data["rounds"] = [_round(core, args.body_mb << 20, args.body_clients, chunked)
                              for chunked in (False, True)]
        except Exception as e:  # the JSON still says what failed and where
            data["errors"] = {"api_bodies": f"{type(e).__name__}: {e}; log: {core.log_tail()}"}
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data, _rows(data)


def _rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for r in data.get("rounds", []):
        kind = "chunked" if r["chunked"] else "Content-Length"
        rows.append(Row(f"{data['clients']} x {data['body_mb']} MB ({kind}): RSS before",
                        r["rss_before_kb"] / 1024, "MB"))
        rows.append(Row("  RSS peak", r["rss_peak_kb"] / 1024, "MB",
                        note=", ".join(r["statuses"])))
        rows.append(Row("  RSS after", r["rss_after_kb"] / 1024, "MB"))
    return rows
