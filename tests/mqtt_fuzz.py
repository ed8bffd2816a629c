"""A seeded mutation fuzzer for the broker, in process and without TLS (issue 8).

Each case opens one to three connections on one long-lived `Broker`, each with an identity
drawn from a small registry (allowed everything, restricted, a policy that makes the evaluator
raise, inactive, unregistered). Each connection gets a valid MQTT 3.1.1 or MQTT 5 stream (CONNECT,
then PUBLISH / SUBSCRIBE / UNSUBSCRIBE / PINGREQ / PUBACK / DISCONNECT, MQTT 5 ones with random
properties: topic aliases, expiry, user properties, shared subscriptions, subscription options
and identifiers, AUTH), often mutated (bit flips,
byte changes, truncation, remaining-length corruption, splicing from another stream, deletion),
fed to `Connection.data_received` in random chunks, the connections interleaved. After each case
`Harness.check` asserts what must hold whatever the bytes were:

- no exception escaped and the broker logged no error, except the one allowed per connection of
  the identity whose policy breaks the evaluator (it costs that connection only);
- every connection is served (connected, and the broker's connection for its client id) or
  closed, or still waits for its CONNECT and is closed by the connect timeout;
- everything the broker wrote parses as MQTT packets a server may send;
- once the connections are gone and persistent sessions expired: no client, connection, offline
  session or subscription is left.

Used by `tests/unit/test_broker_fuzz.py` (10,000 cases) and `python -m bench broker-hardening`
(100,000 cases)."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any

from fleetsim.localcore.broker import codec, codec5
from fleetsim.localcore.broker import properties as P
from fleetsim.localcore.broker.connection import Connection
from fleetsim.localcore.broker.server import Broker
from fleetsim.localcore.policy_document import ALLOW_ALL_DOCUMENT
from tests.mqtt_testing import (
    ACCOUNT_ID,
    BREAKS_EVALUATOR,
    REGION,
    StaticAuthority,
    policy,
    stmt,
)

_U16 = struct.Struct(">H")
CLIENT_IDS = ("dev-a", "dev-b", "dev-c", "")
TOPICS = ("fleet/a", "fleet/b/c", "fleet/a/", "$aws/things/dev-a/shadow/update",
          "$aws/events/presence/connected/dev-a", "a/+/b", "#", "", "t" * 300, "fleet/\u00e9")
FILTERS = ("fleet/#", "fleet/+/c", "fleet/a", "#", "+", "$aws/events/#", "a/#/b", "",
           "$aws/things/+/shadow/#", "fleet/a/", "$share/g/fleet/#", "$share//a", "$share/g")
SERVER_PACKETS = {codec.CONNACK, codec.PUBLISH, codec.PUBACK, codec.SUBACK, codec.UNSUBACK,
                  codec.PINGRESP, codec.DISCONNECT}

_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"
RESTRICTED = policy(
    stmt("Allow", ["iot:Connect"], ["*"]),
    stmt("Allow", ["iot:Publish", "iot:Receive"], [f"{_ARN}:topic/fleet/*"]),
    stmt("Allow", ["iot:Subscribe"], [f"{_ARN}:topicfilter/fleet/*"]),
    stmt("Deny", ["iot:Receive"], [f"{_ARN}:topic/fleet/b/*"]))
# (certificate bytes, status or None for unregistered, policies)
IDENTITIES: tuple[tuple[bytes, str | None, tuple[dict[str, Any], ...]], ...] = (
    (b"cert-allow-all", "ACTIVE", (ALLOW_ALL_DOCUMENT,)),
    (b"cert-restricted", "ACTIVE", (RESTRICTED,)),
    (b"cert-breaks-evaluator", "ACTIVE", (BREAKS_EVALUATOR,)),
    (b"cert-inactive", "INACTIVE", (ALLOW_ALL_DOCUMENT,)),
    (b"cert-unregistered", None, ()),
)


class _SslObject:
    def __init__(self, der: bytes):
        self._der = der

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self._der


class FakeTransport:
    """What `Connection` uses of a TLS transport; closing calls connection_lost soon, as
    asyncio's transports do."""

    def __init__(self, der: bytes, loop: asyncio.AbstractEventLoop):
        self._ssl = _SslObject(der)
        self._loop = loop
        self.conn: Connection | None = None
        self.out = bytearray()
        self.closed = False
        self.congested = False
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._ssl
        if name == "peername":
            return ("127.0.0.1", 50000)
        return default

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.conn is not None
            self._loop.call_soon(self.conn.connection_lost, None)

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 1 << 30 if self.congested else 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


# --- streams --------------------------------------------------------------------------------

def valid_stream(rng: random.Random, client_id: str) -> list[bytes]:
    """CONNECT, then a random sequence of the packets a client sends; one packet per item."""
    if rng.random() < 0.5:
        return valid_stream5(rng, client_id)
    will = None
    if rng.random() < 0.2:
        will = codec.Will(rng.choice(TOPICS), rng.randbytes(rng.randrange(8)),
                          rng.randrange(2), rng.random() < 0.3)
    packets = [codec.encode_connect(client_id, rng.choice((0, 5, 60, 1200)),
                                    rng.random() < 0.7, will)]
    for _ in range(rng.randrange(9)):
        packets.append(_packet(rng))
    if rng.random() < 0.3:
        packets.append(b"\xe0\x00")  # DISCONNECT
    return packets


def _props(rng: random.Random, choices: dict[int, Any]) -> dict[int, Any]:
    return {k: v(rng) for k, v in choices.items() if rng.random() < 0.3}


_TEXT = ("", "a", "\u00e9t\u00e9", "x" * 40)
_PUBLISH_PROPS = {
    P.PAYLOAD_FORMAT: lambda r: r.randrange(2), P.MESSAGE_EXPIRY: lambda r: r.choice((0, 1, 60)),
    P.CONTENT_TYPE: lambda r: r.choice(_TEXT), P.RESPONSE_TOPIC: lambda r: r.choice(TOPICS),
    P.CORRELATION_DATA: lambda r: r.randbytes(r.randrange(4)),
    P.TOPIC_ALIAS: lambda r: r.choice((1, 2, 8, 9, 0)),
    P.USER_PROPERTY: lambda r: [(r.choice(_TEXT), r.choice(_TEXT))] * r.randint(1, 3)}
_CONNECT_PROPS = {
    P.SESSION_EXPIRY: lambda r: r.choice((0, 5, 0xFFFFFFFF)),
    P.RECEIVE_MAXIMUM: lambda r: r.choice((1, 5, 65535)),
    P.MAXIMUM_PACKET_SIZE: lambda r: r.choice((20, 100, 1 << 20)),
    P.TOPIC_ALIAS_MAXIMUM: lambda r: r.choice((0, 10)),
    P.REQUEST_PROBLEM_INFO: lambda r: r.randrange(2),
    P.USER_PROPERTY: lambda r: [("k", "v")]}


def valid_stream5(rng: random.Random, client_id: str) -> list[bytes]:
    """An MQTT 5 stream: CONNECT with random properties (and will), then random packets."""
    will = will_props = None
    if rng.random() < 0.2:
        will = codec.Will(rng.choice(TOPICS), rng.randbytes(rng.randrange(8)),
                          rng.randrange(2), rng.random() < 0.3)
        will_props = {P.WILL_DELAY: rng.choice((0, 1, 100))} | _props(rng, _PUBLISH_PROPS)
        will_props.pop(P.TOPIC_ALIAS, None)
    packets = [codec5.encode_connect(client_id, rng.choice((0, 5, 60, 1200)),
                                     rng.random() < 0.7, _props(rng, _CONNECT_PROPS), will,
                                     will_props)]
    for _ in range(rng.randrange(9)):
        packets.append(_packet5(rng))
    if rng.random() < 0.3:
        packets.append(rng.choice((b"\xe0\x00", b"\xe0\x01\x04",
                                   b"\xe0\x06\x00\x05\x11\x00\x00\x00\x05")))
    return packets


def _packet5(rng: random.Random) -> bytes:
    kind = rng.randrange(7)
    pid = rng.randrange(1, 65536)
    if kind == 0:
        topic = rng.choice((*TOPICS, ""))
        return codec5.encode_publish(topic, rng.randbytes(rng.randrange(16)),
                                     rng.choice((0, 0, 1, 1, 2)), rng.random() < 0.2, pid,
                                     _props(rng, _PUBLISH_PROPS))
    if kind == 1:
        props = {P.SUBSCRIPTION_ID: [rng.randrange(1, 5)]} if rng.random() < 0.1 else None
        return codec5.encode_subscribe(pid, [(rng.choice(FILTERS), rng.choice(
            (0, 1, 1, 2, 0x05, 0x09, 0x11, 0x21))) for _ in range(rng.randint(1, 3))], props)
    if kind == 2:
        body = _U16.pack(pid) + b"\x00" + b"".join(
            codec.encode_topic(rng.choice(FILTERS)) for _ in range(rng.randint(1, 2)))
        return b"\xa2" + codec.encode_length(len(body)) + body
    if kind == 3:
        return b"\xc0\x00"  # PINGREQ
    if kind == 4:
        tail = rng.choice((b"", b"\x00", b"\x10\x00"))  # PUBACK: short, reason, properties
        return b"\x40" + bytes((2 + len(tail),)) + _U16.pack(pid) + tail
    if kind == 5:
        return b"\xf0\x00"  # AUTH: not supported
    return b"\x62\x03" + _U16.pack(pid) + b"\x00"  # PUBREL: QoS 2 flows are ignored


def _packet(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    pid = rng.randrange(1, 65536)
    if kind == 0:
        return codec.publish(codec.encode_topic(rng.choice(TOPICS)),
                             rng.randbytes(rng.randrange(16)), rng.choice((0, 0, 1, 1, 2)),
                             rng.random() < 0.2, False, pid)
    if kind == 1:
        return codec.encode_subscribe(pid, [(rng.choice(FILTERS), rng.choice((0, 1, 1, 2)))
                                            for _ in range(rng.randint(1, 3))])
    if kind == 2:
        body = _U16.pack(pid) + b"".join(codec.encode_topic(rng.choice(FILTERS))
                                         for _ in range(rng.randint(1, 2)))
        return b"\xa2" + codec.encode_length(len(body)) + body
    if kind == 3:
        return b"\xc0\x00"  # PINGREQ
    if kind == 4:
        return b"\x40\x02" + _U16.pack(pid)  # PUBACK
    return b"\x62\x02" + _U16.pack(pid)  # PUBREL: QoS 2 flows are ignored


def mutate(rng: random.Random, packets: list[bytes], donor: bytes) -> bytes:
    """Bit flips, byte changes, truncation, remaining-length corruption, splicing, deletion."""
    data = bytearray(b"".join(packets))
    starts = [0]
    for p in packets[:-1]:
        starts.append(starts[-1] + len(p))
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        op = rng.randrange(6)
        i = rng.randrange(len(data))
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[i] = rng.randrange(256)
        elif op == 2:
            del data[i:]
        elif op == 3:
            at = rng.choice(starts) + 1
            if at < len(data):
                data[at] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 4:
            j = rng.randrange(len(donor) + 1)
            data[i:i] = donor[j:j + rng.randrange(1, 64)]
        else:
            del data[i:i + rng.randrange(1, 16)]
    return bytes(data)


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = rng.choice((1, 2, 7, 64, len(data)))
        out.append(data[pos:pos + n])
        pos += n
    return out


def parse_server_output(out: bytes | bytearray) -> int:
    """The number of packets in what the broker wrote; AssertionError unless every one is a
    complete packet of a type servers send."""
    pos, count = 0, 0
    while pos < len(out):
        header = codec.frame_header(out, pos, 1 << 28)
        assert header is not None, f"truncated packet in broker output at {pos}"
        start, length = header
        assert out[pos] >> 4 in SERVER_PACKETS, f"broker sent packet type {out[pos] >> 4}"
        assert start + length <= len(out), "truncated packet in broker output"
        pos, count = start + length, count + 1
    return count


# --- the harness ----------------------------------------------------------------------------

class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Stats:
    cases: int = 0
    connections: int = 0
    mutated: int = 0
    accepted: int = 0  # connections that got CONNACK 0
    accepted5: int = 0  # ... of them MQTT 5 (a CONNACK with properties)
    closed_by_broker: int = 0
    packets_sent_by_broker: int = 0
    allowed_errors: int = 0  # logged for the identity whose policy breaks the evaluator
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


class Harness:
    def __init__(self) -> None:
        self.authority = StaticAuthority()
        for der, status, policies in IDENTITIES:
            if status is not None:
                self.authority.register_der(der, der.decode(), status, policies)
        self.broker = Broker(self.authority, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER),
                             ACCOUNT_ID, REGION)
        # No memory trims: the harness moves time by hand.
        self.broker.trim_interval = self.broker.trim_after_connections = 1 << 62
        self.errors = _Errors()
        self.stats = Stats()

    async def run(self, seed: int, count: int) -> Stats:
        """`count` cases from `seed`; stops at the first failure (in `stats.failures`)."""
        loop = asyncio.get_running_loop()
        logger = logging.getLogger("fleetsim.localcore.broker")
        logger.addHandler(self.errors)
        t0 = loop.time()
        try:
            for case in range(count):
                rng = random.Random(f"{seed}:{case}")
                try:
                    await self.case(rng)
                except AssertionError as e:
                    self.stats.failures.append(f"seed {seed} case {case}: {e}")
                    break
        finally:
            logger.removeHandler(self.errors)
            self.stats.seconds = round(loop.time() - t0, 2)
        return self.stats

    async def case(self, rng: random.Random) -> None:
        loop = asyncio.get_running_loop()
        broker, stats = self.broker, self.stats
        stats.cases += 1
        plan = []
        for _ in range(rng.randint(1, 3)):
            der, _, _ = rng.choice(IDENTITIES)
            packets = valid_stream(rng, rng.choice(CLIENT_IDS))
            data = b"".join(packets)
            if rng.random() < 0.7:
                stats.mutated += 1
                donor = b"".join(valid_stream(rng, rng.choice(CLIENT_IDS)))
                data = mutate(rng, packets, donor)
            transport = FakeTransport(der, loop)
            conn = Connection(broker)
            transport.conn = conn
            transport.congested = rng.random() < 0.1
            conn.connection_made(transport)  # type: ignore[arg-type]
            plan.append((der, conn, transport, chunks(rng, data)))
        stats.connections += len(plan)
        # Interleave the connections' chunks, letting the loop run now and then.
        pending = [(der, conn, transport, list(reversed(parts)))
                   for der, conn, transport, parts in plan]
        while any(parts for _, _, _, parts in pending):
            _, conn, transport, parts = rng.choice([p for p in pending if p[3]])
            chunk = parts.pop()
            if not transport.closed:
                conn.data_received(chunk)
            if rng.random() < 0.2:
                await asyncio.sleep(0)
        for _ in range(3):
            await asyncio.sleep(0)
        errors = self._take_errors(plan)
        for _, conn, transport, _ in plan:
            if conn.closing:
                stats.closed_by_broker += transport.closed
            elif conn.connected:
                assert broker.clients.get(conn.client_id) is conn, "served but not the client's"
                assert conn in broker.connections
            stats.packets_sent_by_broker += parse_server_output(transport.out)
            if _accepted(transport.out):
                stats.accepted += 1
                stats.accepted5 += transport.out[1] > 2
        assert not errors, f"unexpected error logged: {errors[0]}"
        # Connections still waiting for the rest of a CONNECT: the connect timeout closes them.
        broker._sweep_once(loop.time() + broker.connect_timeout + 1)
        for _, conn, transport, _ in plan:
            if not conn.connected:
                assert conn.closing and transport.closed, "a connection neither served nor closed"
            elif rng.random() < 0.5:
                transport.close()  # the client goes away
            else:
                conn.data_received(b"\xe0\x00")  # DISCONNECT (unless inside a partial packet)
                transport.close()
        for _ in range(2):
            await asyncio.sleep(0)
        self._check_empty(loop.time())

    def _take_errors(self, plan: list[tuple[bytes, Connection, FakeTransport, Any]]) -> list[str]:
        records, self.errors.records = self.errors.records, []
        allowed = {conn.client_id for der, conn, _, _ in plan if der == b"cert-breaks-evaluator"}
        unexpected = []
        for record in records:
            client = record.args[0] if isinstance(record.args, tuple) and record.args else None
            if client in allowed and "authorizing" in record.getMessage():
                self.stats.allowed_errors += 1
            else:
                unexpected.append(record.getMessage())
        return unexpected

    def _check_empty(self, now: float) -> None:
        broker = self.broker
        assert not broker.connections, "connections left after every client went away"
        assert not broker.clients, "clients left after every client went away"
        broker._sweep_once(now + broker.session_expiry + 1)  # persistent sessions expire
        assert not broker._offline, "sessions left after expiry"
        assert broker._trie.count == 0, "subscriptions left after every session ended"
        assert not broker._routes or all(not t for t in broker._routes.values())
        assert not broker._groups, "shared subscription groups left after every session ended"
        assert not broker._delayed_wills, "delayed wills left after their sessions ended"


def _accepted(out: bytes | bytearray) -> bool:
    """Whether the broker's output starts with a CONNACK that accepts (3.1.1 or 5)."""
    header = codec.frame_header(out, 0, 1 << 28) if out[:1] == b"\x20" else None
    return header is not None and len(out) > header[0] + 1 and out[header[0] + 1] == 0
