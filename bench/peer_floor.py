"""The floor generator for bench/peer.py (issue 9): the peer workload with no MQTT client
library and no engine, what it costs a Python process with the OpenSSL fleetsim uses when
nothing else runs.

    PEER_IDENTITIES=... PEER_CA=... PEER_HOST=... PEER_PORT=... PEER_RATE=100 \\
    PEER_IDLE_S=20 PEER_TELEMETRY_S=30 PEER_INTERVAL_S=5 PEER_MARKS=marks.json \\
        .venv/bin/python -m bench.peer_floor

One thread, blocking sockets. At PEER_RATE devices per second, each device in turn: its
certificate and key read from their files and decoded (PEM, by OpenSSL, as fleetsim's openssl
backend decodes them), a TCP connect, the mutual-TLS handshake on fleetsim's shared client
context (`tls_openssl.OpenSslContext`: the server's chain verified once, no session tickets),
CONNECT and CONNACK written and read by hand (`connect311`); the connection is held. Then
PEER_IDLE_S idle, then each device writes one QoS 0 PUBLISH every PEER_INTERVAL_S (random
phase) for PEER_TELEMETRY_S, the payload the locustfile sends. Phase edges (epoch seconds),
CONNACKs per second and the messages sent go to PEER_MARKS as JSON, as the locustfile writes
them. A device that fails to connect ends the run (exit 1, naming it); no "done" mark is
written then.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from OpenSSL import SSL, crypto

from fleetsim.device.connect311 import CONNACK_LENGTH, connect_packet, parse_connack
from fleetsim.device.qos0 import publish_packet
from fleetsim.device.tls import trust_anchors
from fleetsim.device.tls_openssl import OpenSslContext, _expect_name

KEEPALIVE_S = 300


class Marks:
    """What the run tells bench/peer.py, saved at each phase edge."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {"ready": time.time(), "sent": 0, "connected_count": 0,
                                     "connects_per_s": {}}

    def connected(self) -> None:
        second = str(int(time.time()))
        self.data["connected_count"] += 1
        self.data["connects_per_s"][second] = self.data["connects_per_s"].get(second, 0) + 1

    def mark(self, name: str) -> float:
        self.data[name] = now = time.time()
        self.save()
        return now

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data))


def connect(tls: OpenSslContext, host: str, address: tuple[int, Any],
            identity: dict[str, str]) -> SSL.Connection:
    """One device connected to `host` at `address` ((family, sockaddr), resolved once): its
    files decoded, TCP, TLS, CONNECT and an accepting CONNACK."""
    cert = crypto.load_certificate(crypto.FILETYPE_PEM, Path(identity["cert"]).read_bytes())
    key = crypto.load_privatekey(crypto.FILETYPE_PEM, Path(identity["key"]).read_bytes())
    raw = socket.socket(address[0], socket.SOCK_STREAM)
    try:
        raw.settimeout(30)
        raw.connect(address[1])
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.setblocking(True)  # a timeout makes the fd non-blocking, which OpenSSL reports
        conn = tls.connection(raw, cert, key)
        _expect_name(conn, host)
        conn.set_connect_state()
        conn.do_handshake()
        conn.sendall(connect_packet(identity["name"].encode(), KEEPALIVE_S, True))
        connack = b""
        while len(connack) < CONNACK_LENGTH:
            chunk = conn.recv(CONNACK_LENGTH - len(connack))
            if not chunk:
                raise ConnectionError("closed before CONNACK")
            connack += chunk
        _, code = parse_connack(connack)
        if code:
            raise ConnectionError(f"CONNACK return code {code}")
        return conn
    except BaseException:
        raw.close()
        raise


def payload(seq: int) -> bytes:
    """The locustfile's telemetry body."""
    return json.dumps({"seq": seq, "temperature": round(random.uniform(18, 26), 1),
                       "humidity": random.randint(30, 60), "at": int(time.time() * 1000),
                       "sent_at": time.time()}).encode()


def _sleep_until(epoch: float) -> None:
    delay = epoch - time.time()
    if delay > 0:
        time.sleep(delay)


def run(env: dict[str, str]) -> int:
    identities: list[dict[str, str]] = json.loads(Path(env["PEER_IDENTITIES"]).read_text())
    host, port = env["PEER_HOST"], int(env["PEER_PORT"])
    rate = float(env["PEER_RATE"])
    idle, telemetry = float(env["PEER_IDLE_S"]), float(env["PEER_TELEMETRY_S"])
    interval = float(env["PEER_INTERVAL_S"])
    marks = Marks(Path(env["PEER_MARKS"]))
    marks.save()
    anchors = [x509.load_der_x509_certificate(der)
               for der in trust_anchors(Path(env["PEER_CA"]).read_bytes())]
    tls = OpenSslContext(anchors)
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    start = marks.mark("test_start")
    held: list[tuple[SSL.Connection, bytes]] = []
    for i, identity in enumerate(identities):
        _sleep_until(start + i / rate)
        try:
            conn = connect(tls, host, (family, sockaddr), identity)
        except (OSError, SSL.Error, ValueError) as e:
            print(f"peer_floor: {identity['name']} could not connect to {host}:{port}: "
                  f"{e!r}", file=sys.stderr)
            marks.save()
            return 1
        held.append((conn, f"dt/sensors/{identity['name']}/telemetry".encode()))
        marks.connected()
    connected = marks.mark("connected")
    marks.data["telemetry_start"] = begin = connected + idle
    marks.data["telemetry_end"] = end = begin + telemetry
    marks.save()
    due = [(begin + random.uniform(0, interval), i, 0) for i in range(len(held))]
    heapq.heapify(due)
    while due:
        at, i, seq = heapq.heappop(due)
        _sleep_until(at)
        if time.time() >= end:
            continue
        conn, topic = held[i]
        conn.sendall(publish_packet(topic, payload(seq + 1), False))
        marks.data["sent"] += 1
        heapq.heappush(due, (at + interval, i, seq + 1))
    _sleep_until(end + 0.5)
    marks.mark("done")
    return 0  # the connections close as the process exits


if __name__ == "__main__":
    raise SystemExit(run(dict(os.environ)))
