"""One client connection: MQTT 3.1.1 and MQTT 5 framing and per-packet handling over TLS.

Denials answered as AWS IoT answers an MQTT 3.1.1 client: unknown or inactive certificate and
iot:Connect denied close the connection without a CONNACK; a publish that is denied (or to a
reserved topic clients may not publish to, or with RETAIN set on any reserved topic, or
malformed, or over the payload limit) disconnects the client; a denied subscription gets return
code 0x80 in SUBACK; QoS 2 requests get neither PUBACK nor SUBACK.

An MQTT 5 client is answered with the reason codes AWS IoT lists ("MQTT 5 supported features",
"MQTT reason codes"): CONNACK 0x87 when iot:Connect is denied, 0x85 for a client id it refuses,
0x90 / 0x9B for a will it refuses; a denied QoS 1 publish gets PUBACK 0x87 (0x90 for a topic it
may not publish to) and the connection stays open, a denied QoS 0 publish (which has no
acknowledgement) a DISCONNECT with the same code; SUBACK 0x87 / 0x8F / 0x97 per filter; a server
DISCONNECT carries the reason (0x8E session taken over, 0x8D keep alive timeout, 0x87 not
authorized, 0x81 / 0x82 / 0x94 / 0x95 / 0x9B / 0xA1 for what the client did wrong, 0x8B at
shutdown). Reason strings go only to a client whose Request Problem Information is 1.

A certificate the Authority does not know, or knows as PENDING_ACTIVATION with an issuing CA, is
offered to the broker's `unknown_certificate` hook (JITP/JITR) before the connection is refused;
reading pauses while the hook runs.

Faults stay with one connection: an exception while handling a client's packet, authorizing it
(`Authorizer.allowed` never raises) or delivering to it is logged once with its client id and
closes that connection only (`fail`); the publisher and every other subscriber are served.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import uuid
from typing import Any, Protocol, cast

from fleetsim.localcore.broker import activity, codec, codec5, lifecycle, preconnect
from fleetsim.localcore.broker import properties as P
from fleetsim.localcore.broker.activity import Activity, ActivityHook
from fleetsim.localcore.broker.authz import Authorizer
from fleetsim.localcore.broker.codec import MalformedPacket, ProtocolError
from fleetsim.localcore.broker.fdlimit import DescriptorWatch
from fleetsim.localcore.broker.properties import MessageProps
from fleetsim.localcore.broker.session import MAX_INFLIGHT, Session
from fleetsim.localcore.broker.slowlane import SlowLane
from fleetsim.localcore.broker.topics import topic_filter_error, topic_name_error
from fleetsim.localcore.principal import (
    Authority,
    Principal,
    UnknownCertificate,
    UnknownCertificateHook,
)

log = logging.getLogger(__name__)

MAX_PAYLOAD = 128 * 1024
MAX_PACKET = MAX_PAYLOAD + 1024  # payload + topic (<= 256 bytes) + headers, with room to spare
MAX_CLIENT_ID_BYTES = 128
MAX_FILTERS_PER_SUBSCRIBE = 8
# "AWS IoT Core message broker and protocol limits and quotas": subscriptions per connection,
# 50 by default (adjustable); a SUBSCRIBE that would go beyond it is refused for the filters
# over the quota (SUBACK 0x97 Quota exceeded to MQTT 5, 0x80 to MQTT 3.1.1); a filter the
# session holds already is a replacement, not a new subscription.
MAX_SUBSCRIPTIONS = 50
MAX_KEEPALIVE = 1200  # AWS: keepalive 0 means 1200 s, values below 30 count as 30
# MQTT 5 ("MQTT 5 properties"): the largest packet AWS IoT accepts and sends is 128 KB, and it
# accepts at most 8 topic aliases ("MQTT 5 supported features", Topic aliases).
MAX_PACKET_5 = 128 * 1024
TOPIC_ALIAS_MAX = 8
# What every CONNACK to an MQTT 5 client announces ("MQTT 5 properties"): QoS 1 at most,
# retained messages, wildcard and shared subscriptions yes, subscription identifiers no, and the
# quotas above (Receive Maximum: the 100 in-flight QoS 1 messages the broker allows).
CONNACK_PROPERTIES: dict[int, int] = {
    P.RECEIVE_MAXIMUM: MAX_INFLIGHT, P.MAXIMUM_QOS: 1, P.RETAIN_AVAILABLE: 1,
    P.MAXIMUM_PACKET_SIZE: MAX_PACKET_5, P.TOPIC_ALIAS_MAXIMUM: TOPIC_ALIAS_MAX,
    P.WILDCARD_AVAILABLE: 1, P.SUBSCRIPTION_IDS_AVAILABLE: 0, P.SHARED_AVAILABLE: 1}
# The reason code an MQTT 5 client is told when the broker closes its connection for `reason`.
_DISCONNECT_CODES = {
    lifecycle.DUPLICATE_CLIENTID: codec5.SESSION_TAKEN_OVER,
    lifecycle.MQTT_KEEP_ALIVE_TIMEOUT: codec5.KEEP_ALIVE_TIMEOUT,
    lifecycle.AUTH_ERROR: codec5.NOT_AUTHORIZED,
    lifecycle.CLIENT_ERROR: codec5.PROTOCOL_ERROR,
    lifecycle.SERVER_INITIATED_DISCONNECT: codec5.UNSPECIFIED_ERROR,
}


class BrokerPort(Protocol):
    """What a Connection needs from the broker that owns it (`server.Broker`)."""

    authority: Authority
    arn_prefix: str
    min_keepalive: int
    session_expiry: float  # the account's maximum Session Expiry Interval, seconds
    high_water: int
    connections: set[Connection]
    descriptors: DescriptorWatch
    unknown_certificate: UnknownCertificateHook | None
    activity: ActivityHook | None
    slow_lane: SlowLane

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def schedule_flush(self, conn: Connection) -> None: ...

    def released(self) -> None: ...

    def attach(self, conn: Connection, clean_start: bool, expiry: float) -> bool: ...

    def on_connected(self, conn: Connection) -> None: ...

    def on_disconnect(self, conn: Connection, reason: str) -> None: ...

    def publish_from(self, conn: Connection, topic: str, payload: bytes, qos: int,
                     retain: bool, props: MessageProps | None = None) -> None: ...

    def subscribe(self, session: Session, topic_filter: str, options: int) -> bool: ...

    def unsubscribe(self, session: Session, topic_filter: str) -> bool: ...

    def send_retained(self, conn: Connection, topic_filter: str, granted: int) -> None: ...


# A connection whose CONNECT is still incomplete after a read of less than
# PRE_CONNECT_PROGRESS bytes is read again only this much later: a client sends its CONNECT at
# once, and one dribbling it (say one-byte TLS records) then waits on TCP back-pressure
# instead of having local core decrypt its records flat out.
# At most PRE_CONNECT_READS_PER_INTERVAL such connections are read in an interval
# (`slowlane.py`); each read is small (`preconnect.py`).
PRE_CONNECT_READ_INTERVAL_S = 0.25
PRE_CONNECT_READS_PER_INTERVAL = 4
# A read bringing this many bytes is not slowed down: a one-byte-record dribbler brings a few
# hundred per read (its records are 23 bytes each on the wire, and a read is at most the
# small buffers of `preconnect.py`), a client sending a large CONNECT (a will of up to 128 KB)
# in full records several KiB.
PRE_CONNECT_PROGRESS = 2048


class Connection(asyncio.Protocol):
    __slots__ = ("_aliases", "_buf", "_failed", "_max_in", "_need", "_out", "_pending",
                 "_rcvbuf", "_slowed", "authz", "broker", "cert_der", "certificate_id", "client_id",
                 "closing", "connected", "created", "keepalive", "last_rx", "max_out",
                 "peer_ip", "peer_port", "problem_info", "session", "session_id", "transport",
                 "v5", "version", "will", "will_on_disconnect")

    def __init__(self, broker: BrokerPort):
        self.broker = broker
        self.transport: asyncio.Transport | None = None
        self.cert_der = b""
        self.certificate_id = ""
        self.peer_ip = ""
        self.peer_port = 0
        self.client_id = ""
        self.authz: Authorizer | None = None
        self.session: Session | None = None
        self.session_id = ""
        self.version = 0
        self.will: codec.Will | None = None
        self.will_on_disconnect = False  # MQTT 5 DISCONNECT 0x04: send the will all the same
        self.v5 = False  # the client speaks MQTT 5
        self.problem_info = True  # MQTT 5 Request Problem Information: reason strings wanted
        self.max_out = MAX_PACKET_5  # the MQTT 5 client's Maximum Packet Size
        self._max_in = MAX_PACKET
        self._aliases: dict[int, str] = {}  # MQTT 5 topic aliases the client set
        self.connected = False
        self.closing = False
        self.keepalive = 0.0
        self.created = self.last_rx = broker.loop.time()
        self._buf = bytearray()  # bytes of a packet not complete yet
        self._need = 0  # how many bytes that packet needs, when its header is complete
        self._out: list[bytes] | None = None
        self._pending: asyncio.Task[None] | None = None  # CONNECT waiting for the hook
        self._failed = False
        self._slowed = False  # reading paused until the next pre-CONNECT read
        self._rcvbuf = 0  # the socket's receive buffer before CONNECT (preconnect.py)

    def __del__(self) -> None:
        self.broker.released()  # what it held is free: the broker may give memory back

    # --- transport callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            transport.abort()
            return
        self.cert_der = der
        self.certificate_id = hashlib.sha256(der).hexdigest()
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        self.peer_port = int(peer[1]) if peer and len(peer) > 1 else 0
        self._rcvbuf = preconnect.narrow(transport)  # until the CONNECT is accepted
        self.broker.connections.add(self)
        self.broker.descriptors.check(len(self.broker.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        self.broker.connections.discard(self)
        self._cancel_pending()
        if self.authz is not None:
            # Its callbacks are this connection's bound methods: a cycle (with the session,
            # which keeps the authorizer) that left every ended connection, its TLS objects
            # and policies to the cycle collector, whose full collections then took 100-160 ms
            # of local core's loop at a time (issue 9: connect p99 after another run's devices
            # left). A session kept offline needs the authorizer, not the connection.
            self.authz.on_failed = self.authz.on_revoked = None
        if not self.closing:
            self.closing = True
            self._out = None
            self.broker.on_disconnect(self, lifecycle.CONNECTION_LOST)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_rx = self.broker.loop.time()
        buf = self._buf
        if buf:
            # Appending is amortised O(1): a client dribbling a large packet a byte at a time
            # (one TLS record each) costs O(1) per byte, not a copy of everything so far.
            buf += data
            if self._pending is not None:
                return
            if len(buf) < self._need:
                if not self.connected:
                    self._slow_down(len(data))
                return
            data, self._buf = bytes(buf), bytearray()
        elif self._pending is not None:  # the CONNECT is not answered yet: keep the rest
            buf += data
            return
        pos, end = 0, len(data)
        need = 0
        try:
            while end - pos >= 2:
                header = codec.frame_header(data, pos, self._max_in)
                if header is None:
                    break
                start, length = header
                if start + length > end:
                    need = start + length - pos
                    break
                self._packet(data[pos], data[start:start + length])
                pos = start + length
                if self.closing:
                    return
                if self._pending is not None:
                    break
        except MalformedPacket as e:
            log.debug("client %r: malformed packet: %s", self.client_id, e)
            if self.v5 and not self.connected and not self.closing:
                self.send(codec5.connack(False, e.code))  # [MQTT-4.13.1-1]
            self.drop(lifecycle.CLIENT_ERROR, e.code)
            return
        except Exception:
            self.fail("handling its packet")
            self.drop(lifecycle.SERVER_INITIATED_DISCONNECT)
            return
        if pos < end:
            self._buf = bytearray(data[pos:] if pos else data)
        self._need = need
        if not self.connected and self._pending is None and pos < end:
            self._slow_down(end)

    def _accepted(self) -> None:
        self.connected = True
        if self.transport is not None:
            preconnect.widen(self.transport, self._rcvbuf)

    def _slow_down(self, received: int) -> None:
        """The CONNECT is incomplete after a read that brought `received` bytes."""
        if self._slowed or self.transport is None or received >= PRE_CONNECT_PROGRESS:
            return  # a large CONNECT arriving in full records is read on at once
        self._slowed = True
        self.transport.pause_reading()
        self.broker.slow_lane.wait(self._read_again)  # in turn, after the interval

    def _read_again(self) -> bool:
        self._slowed = False
        if not self.closing and self._pending is None and self.transport is not None:
            self.transport.resume_reading()
            return True
        return False

    # --- output ------------------------------------------------------------------------------

    def send_publish(self, topic: bytes, payload: bytes, qos: int, retain: bool, dup: bool,
                     packet_id: int, props: MessageProps | None) -> bool:
        """Queue a PUBLISH encoded for this client's protocol; False if it is not sent: expired
        (whatever the receiver's protocol, as AWS expires it), or larger than the MQTT 5
        client's Maximum Packet Size (discarded, [MQTT-3.1.2-25])."""
        if not self.v5:
            if props is not None and props.expired(self.broker.loop.time()):
                return False
            self.send(codec.publish(topic, payload, qos, retain, dup, packet_id))
            return True
        block = P.EMPTY if props is None else props.block(self.broker.loop.time())
        if block is None:
            return False
        packet = codec5.publish(topic, payload, qos, retain, dup, packet_id, block)
        if len(packet) > self.max_out:
            return False
        self.send(packet)
        return True

    def send(self, data: bytes) -> None:
        """Queue bytes; everything queued in one loop iteration goes out in one TLS write."""
        out = self._out
        if out is None:
            if self.closing:
                return
            self._out = [data]
            self.broker.schedule_flush(self)
        else:
            out.append(data)

    def flush(self) -> None:
        out, self._out = self._out, None
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def congested(self) -> bool:
        transport = self.transport
        return transport is None or transport.get_write_buffer_size() > self.broker.high_water

    def drop(self, reason: str, code: int | None = None) -> None:
        """Close the connection (after what is queued) and account for it exactly once. An
        MQTT 5 client is sent a DISCONNECT with `code` (by default the code for `reason`)."""
        if self.closing:
            return
        if self.v5 and self.connected and reason != lifecycle.CLIENT_INITIATED_DISCONNECT:
            code = _DISCONNECT_CODES.get(reason) if code is None else code
            if code is not None:
                self.send(codec5.disconnect(code))
        self.flush()
        self.closing = True
        self._cancel_pending()
        if self.transport is not None:
            self.transport.close()
        self.broker.on_disconnect(self, reason)

    def fail(self, what: str) -> None:
        """Call from an `except` block: an exception while `what` for this client. Logged
        once; the connection closes after the current work (never inside someone else's
        delivery), and nobody else is affected."""
        if not self._failed:
            self._failed = True
            log.exception("client %r: failed %s; disconnecting it", self.client_id, what)
        self._close_soon()

    def _close_soon(self) -> None:
        if not self.closing:
            self.broker.loop.call_soon(self.drop, lifecycle.SERVER_INITIATED_DISCONNECT)

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()  # the client is gone: its CONNECT needs no answer
            self._pending = None

    # --- packets -----------------------------------------------------------------------------

    def _packet(self, first: int, body: bytes) -> None:
        kind, flags = first >> 4, first & 0x0F
        if kind != codec.PUBLISH:
            expected = codec.CLIENT_FLAGS.get(kind)
            if expected is None:  # a packet only servers send, or reserved type 0 or 15
                if kind == 15 and self.v5:  # AUTH: AWS IoT does not support it
                    raise ProtocolError("AUTH is not supported")
                raise MalformedPacket(f"unexpected packet type {kind}")
            if flags != expected:  # [MQTT-2.2.2-2]
                raise MalformedPacket(f"packet type {kind} with reserved flags {flags:#x}")
        if not self.connected:
            if kind != codec.CONNECT:  # [MQTT-3.1.0-1]
                raise MalformedPacket("first packet is not CONNECT")
            # Answer a malformed MQTT 5 CONNECT as MQTT 5 ("MQTT", level 5).
            self.v5 = body[:7] == b"\x00\x04MQTT\x05"
            self._connect(codec5.decode_any_connect(body))
        elif kind == codec.PINGREQ:  # the same in MQTT 3.1.1 and MQTT 5
            codec.expect_empty(body, "PINGREQ")
            self.send(codec.PINGRESP_PACKET)
        elif self.v5:
            self._packet5(kind, flags, body)
        elif kind == codec.PUBLISH:
            self._publish(flags, body)
        elif kind == codec.PUBACK:
            self._acknowledged(codec.decode_ack(body))
        elif kind == codec.SUBSCRIBE:
            self._subscribe(*codec.decode_subscribe(body))
        elif kind == codec.UNSUBSCRIBE:
            self._unsubscribe(*codec.decode_unsubscribe(body))
        elif kind == codec.DISCONNECT:
            codec.expect_empty(body, "DISCONNECT")
            self.will = None
            self.drop(lifecycle.CLIENT_INITIATED_DISCONNECT)
        elif kind == codec.CONNECT:  # [MQTT-3.1.0-2]
            log.debug("client %r sent a second CONNECT", self.client_id)
            self.drop(lifecycle.CLIENT_ERROR)
        else:  # PUBREC, PUBREL, PUBCOMP
            codec.decode_ack(body)  # AWS IoT does not support QoS 2 for MQTT 3: ignored

    def _acknowledged(self, packet_id: int) -> None:
        """The client's PUBACK of a QoS 1 message the broker sent it."""
        if self.session is not None:
            self.session.acknowledge(packet_id)

    def _connect(self, packet: codec.Connect) -> None:
        broker = self.broker
        level = packet.protocol_level
        if packet.protocol_name != "MQTT" or level not in (4, 5):
            # MQTT 3.1.1 [MQTT-3.1.2-2]: return code 0x01 to a level it does not serve (the
            # CONNACK of levels 3 and 4); MQTT 5 section 3.1.2.2: reason code 0x84 in an MQTT 5
            # CONNACK to a later level.
            self.send(codec5.connack(False, codec5.UNSUPPORTED_PROTOCOL_VERSION)
                      if level > 5 and packet.protocol_name == "MQTT"
                      else codec.connack(False, codec.UNACCEPTABLE_PROTOCOL_VERSION))
            self.drop(lifecycle.CLIENT_ERROR)
            return
        if self.v5:
            self._max_in = MAX_PACKET_5
            if P.AUTH_METHOD in packet.properties:  # AWS IoT does not support AUTH
                self._refuse(codec5.BAD_AUTHENTICATION_METHOD)
                return
        client_id = packet.client_id
        if not client_id and (packet.clean_session or self.v5):
            client_id = uuid.uuid4().hex  # MQTT 5: returned as Assigned Client Identifier
        if not client_id or len(client_id.encode()) > MAX_CLIENT_ID_BYTES:
            if self.v5:
                self._refuse(codec5.CLIENT_IDENTIFIER_NOT_VALID)
                return
            self.send(codec.connack(False, codec.IDENTIFIER_REJECTED))
            self.drop(lifecycle.CLIENT_ERROR)
            return
        persistent = (packet.properties.get(P.SESSION_EXPIRY, 0) > 0 if self.v5
                      else not packet.clean_session)
        attributes = tuple(name for name, present in (
            ("PersistentConnect", persistent), ("LastWill", packet.will))
            if present)
        self.client_id = client_id
        epoch = broker.authority.epoch
        principal = broker.authority.principal_for_certificate(self.cert_der)
        pending = principal if principal is not None and principal.ca_certificate_id and \
            principal.status == "PENDING_ACTIVATION" else None
        if (principal is None or pending) and broker.unknown_certificate is not None:
            assert self.transport is not None
            self.transport.pause_reading()
            self._pending = broker.loop.create_task(self._connect_unknown(
                broker.unknown_certificate, packet, attributes, pending))
            return
        self._authorize(packet, attributes, principal, epoch)

    async def _connect_unknown(self, hook: UnknownCertificateHook, packet: codec.Connect,
                               attributes: tuple[str, ...], pending: Principal | None) -> None:
        transport = self.transport
        assert transport is not None
        unknown = UnknownCertificate(self.cert_der, _peer_chain(transport), self.client_id,
                                     self.peer_ip, _server_name(transport), pending)
        try:
            principal = await hook(unknown)
        except Exception:
            log.exception("unknown-certificate hook failed for client %r", self.client_id)
            principal = None
        if self.closing:
            return
        self._pending = None
        try:
            self._authorize(packet, attributes, principal, self.broker.authority.epoch)
        except Exception:
            self.fail("authorizing its CONNECT")
            self.drop(lifecycle.SERVER_INITIATED_DISCONNECT)
            return
        if not self.closing:
            if not self._slowed:
                transport.resume_reading()
            if self._buf:
                self.data_received(b"")

    def _authorize(self, packet: codec.Connect, attributes: tuple[str, ...],
                   principal: Principal | None, epoch: int) -> None:
        broker, client_id = self.broker, self.client_id
        self.authz = Authorizer(broker.authority, self.cert_der, client_id, attributes,
                                broker.arn_prefix, principal, epoch)
        self.authz.on_failed = self._close_soon  # it has logged why
        # Unknown or inactive certificate, or iot:Connect denied: AWS IoT hangs up, no CONNACK
        # (MQTT 3.1.1); CONNACK 0x87 Not authorized (MQTT 5, "MQTT reason codes").
        if not self.authz.allowed("iot:Connect", "client", client_id):
            log.info("client %r (certificate %s) refused: %s", client_id,
                     self.certificate_id[:12], "not authorized" if self.authz.active
                     else "certificate not registered or not ACTIVE")
            self.tell(activity.CONNECT, activity.FAILURE, None, activity.AUTHORIZATION_FAILURE)
            if self.v5:
                self.send(codec5.connack(False, codec5.NOT_AUTHORIZED))
            self.drop(lifecycle.AUTH_ERROR)
            return
        will = packet.will
        # "You can't publish to a reserved topic with the RETAIN flag set" (developer guide,
        # "MQTT retained messages"): a will that would do so is refused like an invalid one.
        if will is not None and (topic_name_error(will.topic) or (
                will.retain and will.topic.startswith("$"))):
            self._refuse(codec5.TOPIC_NAME_INVALID)
            return
        if will is not None and will.qos == 2 and self.v5:
            self._refuse(codec5.QOS_NOT_SUPPORTED)  # [MQTT-3.2.2-12]
            return
        self.authz.on_revoked = self._revoked
        self.will = will
        keepalive = (min(max(packet.keepalive, broker.min_keepalive), MAX_KEEPALIVE)
                     if packet.keepalive else MAX_KEEPALIVE)
        self.keepalive = 1.5 * keepalive
        self.session_id = str(uuid.uuid4())
        if not self.v5:
            expiry = 0.0 if packet.clean_session else broker.session_expiry
            session_present = broker.attach(self, packet.clean_session, expiry)
            self._accepted()
            self.send(codec.connack(session_present, codec.ACCEPTED))
        else:
            props = packet.properties
            requested = props.get(P.SESSION_EXPIRY, 0)
            # AWS: a Session Expiry Interval above the account's maximum is lowered to it
            # and the CONNACK says so ("MQTT 5 properties").
            expiry = min(requested, broker.session_expiry)
            self.problem_info = bool(props.get(P.REQUEST_PROBLEM_INFO, 1))
            self.max_out = min(props.get(P.MAXIMUM_PACKET_SIZE, MAX_PACKET_5), MAX_PACKET_5)
            session_present = broker.attach(self, packet.clean_session, expiry)
            assert self.session is not None
            self.session.window = min(props.get(P.RECEIVE_MAXIMUM, MAX_INFLIGHT), MAX_INFLIGHT)
            self._accepted()
            answer: dict[int, object] = dict(CONNACK_PROPERTIES)
            if expiry != requested:
                answer[P.SESSION_EXPIRY] = int(expiry)
            if client_id != packet.client_id:
                answer[P.ASSIGNED_CLIENT_ID] = client_id
            if keepalive != packet.keepalive:  # [MQTT-3.2.2-21]: the client uses ours
                answer[P.SERVER_KEEP_ALIVE] = keepalive
            self.send(codec5.connack(session_present, codec5.SUCCESS, answer))
        self.tell(activity.CONNECT, activity.SUCCESS)
        broker.on_connected(self)
        if session_present and self.session is not None:
            self.session.resume()

    def _refuse(self, code: int) -> None:
        """Refuse a CONNECT: MQTT 5 clients get a CONNACK with `code`, MQTT 3.1.1 ones none."""
        if self.v5:
            self.send(codec5.connack(False, code))
        self.drop(lifecycle.CLIENT_ERROR)

    def tell(self, event_type: str, status: str, topic: str | None = None,
             reason: str | None = None) -> None:
        """Hand what this client did to the broker's activity observer, if one is set."""
        hook = self.broker.activity
        if hook is None:
            return
        authz = self.authz
        try:
            hook(Activity(event_type, status, self.client_id, self.certificate_id, self.peer_ip,
                          self.peer_port, authz.principal if authz is not None else None,
                          topic, reason))
        except Exception:  # an observer's fault never costs the client its work
            log.exception("activity observer failed on %s of client %r", event_type,
                          self.client_id)

    def _revoked(self) -> None:
        # Called from inside an authorization check: close once the current work is done.
        self.broker.loop.call_soon(self.drop, lifecycle.AUTH_ERROR)

    def _publish(self, flags: int, body: bytes) -> None:
        topic, payload, qos, retain, packet_id = codec.decode_publish(flags, body)
        if qos == 2:
            return  # AWS IoT: QoS 2 is not supported, no acknowledgement is sent
        error = topic_name_error(topic)
        if not error and retain and topic.startswith("$"):
            # Developer guide, "MQTT retained messages": "You can't publish to a reserved
            # topic with the RETAIN flag set". MQTT 3.1.1 has no negative PUBACK, so the
            # publish is refused as every other refused publish is: by disconnecting.
            error = "is a reserved topic: RETAIN is not allowed"
        if error or len(payload) > MAX_PAYLOAD:
            log.debug("client %r: publish refused: topic %r %s", self.client_id, topic,
                      error or "payload too large")
            self.drop(lifecycle.CLIENT_ERROR)
            return
        authz = self.authz
        assert authz is not None
        if not authz.allowed("iot:Publish", "topic", topic) or (
                retain and not authz.allowed("iot:RetainPublish", "topic", topic)):
            log.info("client %r: publish to %r not authorized; disconnecting", self.client_id,
                     topic)
            self.tell(activity.PUBLISH_IN, activity.FAILURE, topic,
                      activity.AUTHORIZATION_FAILURE)
            self.drop(lifecycle.AUTH_ERROR)
            return
        if self.broker.activity is not None:
            self.tell(activity.PUBLISH_IN, activity.SUCCESS, topic)
        self.broker.publish_from(self, topic, payload, qos, retain)
        if qos:
            self.send(codec.puback(packet_id))

    def _subscribe(self, packet_id: int, filters: list[tuple[str, int]]) -> None:
        if any(qos == 2 for _, qos in filters):
            return  # AWS IoT: no SUBACK when QoS 2 is requested
        authz, session = self.authz, self.session
        assert authz is not None and session is not None
        codes: list[int] = []
        granted: list[tuple[str, int]] = []
        room = _Room(session.subscriptions)
        for i, (topic_filter, qos) in enumerate(filters):
            if (i >= MAX_FILTERS_PER_SUBSCRIBE or topic_filter_error(topic_filter)
                    or not authz.allowed("iot:Subscribe", "topicfilter", topic_filter)
                    or not room.take(topic_filter)):
                codes.append(codec.SUBACK_FAILURE)
                self.tell(activity.SUBSCRIBE, activity.FAILURE, topic_filter,
                          activity.AUTHORIZATION_FAILURE)
                continue
            self.tell(activity.SUBSCRIBE, activity.SUCCESS, topic_filter)
            codes.append(qos)
            granted.append((topic_filter, qos))
        for topic_filter, qos in granted:
            self.broker.subscribe(session, topic_filter, qos)
        self.send(codec.suback(packet_id, codes))
        for topic_filter, qos in granted:
            self.broker.send_retained(self, topic_filter, qos)

    def _unsubscribe(self, packet_id: int, filters: list[str]) -> None:
        assert self.session is not None
        for topic_filter in filters:
            self.broker.unsubscribe(self.session, topic_filter)
        self.send(codec.unsuback(packet_id))

    # --- MQTT 5 ------------------------------------------------------------------------------

    def _packet5(self, kind: int, flags: int, body: bytes) -> None:
        if kind == codec.PUBLISH:
            self._publish5(codec5.decode_publish(flags, body))
        elif kind == codec.PUBACK:
            self._acknowledged(codec5.decode_ack(body)[0])
        elif kind == codec.SUBSCRIBE:
            self._subscribe5(*codec5.decode_subscribe(body))
        elif kind == codec.UNSUBSCRIBE:
            self._unsubscribe5(*codec5.decode_unsubscribe(body))
        elif kind == codec.DISCONNECT:
            self._disconnect5(*codec5.decode_disconnect(body))
        elif kind == codec.CONNECT:  # [MQTT-3.1.0-2]
            raise ProtocolError("second CONNECT")
        else:  # PUBREC, PUBREL, PUBCOMP: AWS IoT does not support QoS 2; ignored
            codec5.decode_ack(body, kind)

    def _reason(self, text: str) -> str | None:
        return text if self.problem_info else None

    def _publish5(self, packet: codec5.Publish) -> None:
        qos, topic, props = packet.qos, packet.topic, packet.props
        if qos == 2:  # above the Maximum QoS of CONNACK [MQTT-3.2.2-11]
            self.drop(lifecycle.CLIENT_ERROR, codec5.QOS_NOT_SUPPORTED)
            return
        alias = props.get(P.TOPIC_ALIAS)
        if alias is not None:
            if not 0 < alias <= TOPIC_ALIAS_MAX:  # [MQTT-3.3.2-9], [MQTT-3.3.2-10]
                self.drop(lifecycle.CLIENT_ERROR, codec5.TOPIC_ALIAS_INVALID)
                return
            if topic:
                self._aliases[alias] = topic
            else:
                known = self._aliases.get(alias)
                if known is None:  # an alias never set [MQTT-3.3.4-?]: protocol error
                    raise ProtocolError("topic alias not set")
                topic = known
        elif not topic:
            raise ProtocolError("PUBLISH without topic name or alias")
        error = topic_name_error(topic)
        if not error and packet.retain and topic.startswith("$"):
            error = "is a reserved topic: RETAIN is not allowed"  # "MQTT retained messages"
        if error:
            self._deny(packet, codec5.TOPIC_NAME_INVALID, f"topic {topic!r} {error}")
            return
        authz = self.authz
        assert authz is not None
        if not authz.allowed("iot:Publish", "topic", topic) or (
                packet.retain and not authz.allowed("iot:RetainPublish", "topic", topic)):
            log.info("client %r: publish to %r not authorized", self.client_id, topic)
            self.tell(activity.PUBLISH_IN, activity.FAILURE, topic,
                      activity.AUTHORIZATION_FAILURE)
            self._deny(packet, codec5.NOT_AUTHORIZED, f"publish to {topic!r} is not authorized")
            return
        if self.broker.activity is not None:
            self.tell(activity.PUBLISH_IN, activity.SUCCESS, topic)
        message = P.message_props(packet.forwarded, props.get(P.MESSAGE_EXPIRY),
                                  self.broker.loop.time())
        self.broker.publish_from(self, topic, packet.payload, qos, packet.retain, message)
        if qos:
            self.send(codec5.puback(packet.packet_id))

    def _deny(self, packet: codec5.Publish, code: int, text: str) -> None:
        """A refused publish: PUBACK with `code` for QoS 1 (the connection stays), DISCONNECT
        with it for QoS 0, which has no acknowledgement."""
        if packet.qos:
            self.send(codec5.puback(packet.packet_id, code, self._reason(text)))
        else:
            self.drop(lifecycle.AUTH_ERROR if code == codec5.NOT_AUTHORIZED
                      else lifecycle.CLIENT_ERROR, code)

    def _subscribe5(self, packet_id: int, props: P.Properties,
                    subscriptions: list[codec5.Subscription]) -> None:
        if P.SUBSCRIPTION_ID in props:  # announced as unavailable in CONNACK
            self.drop(lifecycle.CLIENT_ERROR, codec5.SUBSCRIPTION_IDS_NOT_SUPPORTED)
            return
        if any(s.qos == 2 for s in subscriptions):
            return  # AWS IoT: no SUBACK when QoS 2 is requested
        authz, session = self.authz, self.session
        assert authz is not None and session is not None
        codes: list[int] = []
        granted: list[codec5.Subscription] = []
        room = _Room(session.subscriptions)
        for i, sub in enumerate(subscriptions):
            shared = sub.topic_filter.startswith("$share/")
            if shared and sub.no_local:  # [MQTT-3.8.3-4]
                raise ProtocolError("No Local on a shared subscription")
            if i >= MAX_FILTERS_PER_SUBSCRIBE:
                codes.append(codec5.QUOTA_EXCEEDED)
            elif topic_filter_error(sub.topic_filter):
                codes.append(codec5.TOPIC_FILTER_INVALID)
            elif not authz.allowed("iot:Subscribe", "topicfilter", sub.topic_filter):
                codes.append(codec5.NOT_AUTHORIZED)
                self.tell(activity.SUBSCRIBE, activity.FAILURE, sub.topic_filter,
                          activity.AUTHORIZATION_FAILURE)
            elif not room.take(sub.topic_filter):
                codes.append(codec5.QUOTA_EXCEEDED)
            else:
                self.tell(activity.SUBSCRIBE, activity.SUCCESS, sub.topic_filter)
                codes.append(sub.qos)
                granted.append(sub)
        fresh = []
        for sub in granted:
            options = sub.qos | (0x04 if sub.no_local else 0) | (
                0x08 if sub.retain_as_published else 0)
            fresh.append(self.broker.subscribe(session, sub.topic_filter, options))
        self.send(codec5.suback(packet_id, codes))
        for sub, new in zip(granted, fresh, strict=True):
            # Retain Handling: 0 send retained messages, 1 only for a new subscription, 2 never.
            if sub.retain_handling == 0 or (sub.retain_handling == 1 and new):
                self.broker.send_retained(self, sub.topic_filter, sub.qos)

    def _unsubscribe5(self, packet_id: int, filters: list[str]) -> None:
        assert self.session is not None
        codes = []
        for topic_filter in filters:
            if topic_filter_error(topic_filter):
                codes.append(codec5.TOPIC_FILTER_INVALID)
                continue
            self.broker.unsubscribe(self.session, topic_filter)
            codes.append(codec5.SUCCESS)
        self.send(codec5.unsuback(packet_id, codes))

    def _disconnect5(self, reason: int, props: P.Properties) -> None:
        session = self.session
        expiry = props.get(P.SESSION_EXPIRY)
        if expiry is not None and session is not None:
            if not session.expiry and expiry:  # [MQTT-3.14.2-2]
                raise ProtocolError("DISCONNECT sets a Session Expiry Interval CONNECT had at 0")
            session.expiry = min(expiry, self.broker.session_expiry)
        if reason == codec5.DISCONNECT_WITH_WILL:
            self.will_on_disconnect = True
        else:
            self.will = None
        self.drop(lifecycle.CLIENT_INITIATED_DISCONNECT)


def _server_name(transport: asyncio.Transport) -> str | None:
    """The SNI the client sent (recorded by the server context's `sni_callback`, `ca.py`)."""
    name = getattr(transport.get_extra_info("ssl_object"), "server_name_indication", None)
    return name if isinstance(name, str) else None


def _peer_chain(transport: asyncio.Transport) -> tuple[bytes, ...]:
    """DER of the certificates the client sent after its own, when the TLS layer exposes them
    (pyOpenSSL; Python's ssl from 3.13: `get_unverified_chain`); empty otherwise."""
    ssl_object: Any = transport.get_extra_info("ssl_object")
    if hasattr(ssl_object, "chain_der"):  # tlsopenssl.PeerView
        return tuple(ssl_object.chain_der())
    get_chain = getattr(ssl_object, "get_unverified_chain", None)
    if get_chain is None:
        return ()
    try:
        chain = get_chain() or []
        return tuple(ssl.PEM_cert_to_DER_cert(cert.public_bytes()) for cert in chain[1:])
    except (ssl.SSLError, ValueError, AttributeError):
        return ()


class _Room:
    """How many more subscriptions a session may take (`MAX_SUBSCRIPTIONS`) while one
    SUBSCRIBE is answered: `take` a filter, False if it would be one too many."""

    __slots__ = ("_held", "_taken")

    def __init__(self, held: dict[str, int]):
        self._held = held
        self._taken: set[str] = set()

    def take(self, topic_filter: str) -> bool:
        if topic_filter in self._held or topic_filter in self._taken:
            return True
        if len(self._held) + len(self._taken) >= MAX_SUBSCRIPTIONS:
            return False
        self._taken.add(topic_filter)
        return True
