"""One client connection: MQTT 3.1.1 framing and per-packet handling over a TLS transport.

Denials answered as AWS IoT answers an MQTT 3.1.1 client: unknown or inactive certificate and
iot:Connect denied close the connection without a CONNACK; a publish that is denied (or to a
reserved topic clients may not publish to, or with RETAIN set on any reserved topic, or
malformed, or over the payload limit) disconnects the client; a denied subscription gets return
code 0x80 in SUBACK; QoS 2 requests get neither PUBACK nor SUBACK.

A certificate the Authority does not know is offered to the broker's `unknown_certificate` hook
(JITP/JITR) before the connection is refused; reading pauses while the hook runs.

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

from fleetsim.localcore.broker import activity, codec, lifecycle
from fleetsim.localcore.broker.activity import Activity, ActivityHook
from fleetsim.localcore.broker.authz import Authorizer
from fleetsim.localcore.broker.codec import MalformedPacket
from fleetsim.localcore.broker.session import Session
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
MAX_KEEPALIVE = 1200  # AWS: keepalive 0 means 1200 s, values below 30 count as 30


class BrokerPort(Protocol):
    """What a Connection needs from the broker that owns it (`server.Broker`)."""

    authority: Authority
    arn_prefix: str
    min_keepalive: int
    high_water: int
    connections: set[Connection]
    unknown_certificate: UnknownCertificateHook | None
    activity: ActivityHook | None

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def schedule_flush(self, conn: Connection) -> None: ...

    def released(self) -> None: ...

    def attach(self, conn: Connection, clean_session: bool) -> bool: ...

    def on_connected(self, conn: Connection) -> None: ...

    def on_disconnect(self, conn: Connection, reason: str) -> None: ...

    def publish_from(self, conn: Connection, topic: str, payload: bytes, qos: int,
                     retain: bool) -> None: ...

    def subscribe(self, session: Session, topic_filter: str, qos: int) -> None: ...

    def unsubscribe(self, session: Session, topic_filter: str) -> None: ...

    def send_retained(self, conn: Connection, topic_filter: str, granted: int) -> None: ...


# A connection whose CONNECT is still incomplete after a read is read again only this much
# later: a client sends its CONNECT at once, and one dribbling it (say one-byte TLS records)
# then waits on TCP back-pressure instead of having local core decrypt its records flat out.
PRE_CONNECT_READ_INTERVAL_S = 0.25


class Connection(asyncio.Protocol):
    __slots__ = ("_buf", "_failed", "_need", "_out", "_pending", "_slowed", "authz", "broker",
                 "cert_der", "certificate_id", "client_id", "closing", "connected", "created",
                 "keepalive", "last_rx", "peer_ip", "peer_port", "session", "session_id",
                 "transport", "version", "will")

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
        self.broker.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.broker.connections.discard(self)
        self._cancel_pending()
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
                    self._slow_down()
                return
            data, self._buf = bytes(buf), bytearray()
        elif self._pending is not None:  # the CONNECT is not answered yet: keep the rest
            buf += data
            return
        pos, end = 0, len(data)
        need = 0
        try:
            while end - pos >= 2:
                header = codec.frame_header(data, pos, MAX_PACKET)
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
            self.drop(lifecycle.CLIENT_ERROR)
            return
        except Exception:
            self.fail("handling its packet")
            self.drop(lifecycle.SERVER_INITIATED_DISCONNECT)
            return
        if pos < end:
            self._buf = bytearray(data[pos:] if pos else data)
        self._need = need
        if not self.connected and self._pending is None and pos < end:
            self._slow_down()

    def _slow_down(self) -> None:
        if self._slowed or self.transport is None:
            return
        self._slowed = True
        self.transport.pause_reading()
        self.broker.loop.call_later(PRE_CONNECT_READ_INTERVAL_S, self._read_again)

    def _read_again(self) -> None:
        self._slowed = False
        if not self.closing and self._pending is None and self.transport is not None:
            self.transport.resume_reading()

    # --- output ------------------------------------------------------------------------------

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

    def drop(self, reason: str) -> None:
        """Close the connection (after what is queued) and account for it exactly once."""
        if self.closing:
            return
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
                raise MalformedPacket(f"unexpected packet type {kind}")
            if flags != expected:  # [MQTT-2.2.2-2]
                raise MalformedPacket(f"packet type {kind} with reserved flags {flags:#x}")
        if not self.connected:
            if kind != codec.CONNECT:  # [MQTT-3.1.0-1]
                raise MalformedPacket("first packet is not CONNECT")
            self._connect(codec.decode_connect(body))
        elif kind == codec.PUBLISH:
            self._publish(flags, body)
        elif kind == codec.PUBACK:
            packet_id = codec.decode_ack(body)
            if self.session is not None:
                self.session.acknowledge(packet_id)
        elif kind == codec.PINGREQ:
            codec.expect_empty(body, "PINGREQ")
            self.send(codec.PINGRESP_PACKET)
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

    def _connect(self, packet: codec.Connect) -> None:
        broker = self.broker
        if packet.protocol_name != "MQTT" or packet.protocol_level != 4:
            self.send(codec.connack(False, codec.UNACCEPTABLE_PROTOCOL_VERSION))
            self.drop(lifecycle.CLIENT_ERROR)
            return
        client_id = packet.client_id
        if not client_id and packet.clean_session:
            client_id = uuid.uuid4().hex
        if not client_id or len(client_id.encode()) > MAX_CLIENT_ID_BYTES:
            self.send(codec.connack(False, codec.IDENTIFIER_REJECTED))
            self.drop(lifecycle.CLIENT_ERROR)
            return
        attributes = tuple(name for name, present in (
            ("PersistentConnect", not packet.clean_session), ("LastWill", packet.will))
            if present)
        self.client_id = client_id
        epoch = broker.authority.epoch
        principal = broker.authority.principal_for_certificate(self.cert_der)
        if principal is None and broker.unknown_certificate is not None:
            assert self.transport is not None
            self.transport.pause_reading()
            self._pending = broker.loop.create_task(
                self._connect_unknown(broker.unknown_certificate, packet, attributes))
            return
        self._authorize(packet, attributes, principal, epoch)

    async def _connect_unknown(self, hook: UnknownCertificateHook, packet: codec.Connect,
                               attributes: tuple[str, ...]) -> None:
        transport = self.transport
        assert transport is not None
        unknown = UnknownCertificate(self.cert_der, _peer_chain(transport), self.client_id,
                                     self.peer_ip)
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
        # Unknown or inactive certificate, or iot:Connect denied: AWS IoT hangs up, no CONNACK.
        if not self.authz.allowed("iot:Connect", "client", client_id):
            log.info("client %r (certificate %s) refused: %s", client_id,
                     self.certificate_id[:12], "not authorized" if self.authz.active
                     else "certificate not registered or not ACTIVE")
            self.tell(activity.CONNECT, activity.FAILURE, None, activity.AUTHORIZATION_FAILURE)
            self.drop(lifecycle.AUTH_ERROR)
            return
        will = packet.will
        # "You can't publish to a reserved topic with the RETAIN flag set" (developer guide,
        # "MQTT retained messages"): a will that would do so is refused like an invalid one.
        if will is not None and (topic_name_error(will.topic) or (
                will.retain and will.topic.startswith("$"))):
            self.drop(lifecycle.CLIENT_ERROR)
            return
        self.authz.on_revoked = self._revoked
        self.will = will
        self.keepalive = 1.5 * (min(max(packet.keepalive, broker.min_keepalive), MAX_KEEPALIVE)
                                if packet.keepalive else MAX_KEEPALIVE)
        self.session_id = str(uuid.uuid4())
        session_present = broker.attach(self, packet.clean_session)
        self.connected = True
        self.send(codec.connack(session_present, codec.ACCEPTED))
        self.tell(activity.CONNECT, activity.SUCCESS)
        broker.on_connected(self)
        if session_present and self.session is not None:
            self.session.resume()

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
        for i, (topic_filter, qos) in enumerate(filters):
            if (i >= MAX_FILTERS_PER_SUBSCRIBE or topic_filter_error(topic_filter)
                    or not authz.allowed("iot:Subscribe", "topicfilter", topic_filter)):
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


def _peer_chain(transport: asyncio.Transport) -> tuple[bytes, ...]:
    """DER of the certificates the client sent after its own, when the TLS layer exposes them
    (`get_unverified_chain`, Python 3.13+); empty otherwise."""
    ssl_object: Any = transport.get_extra_info("ssl_object")
    get_chain = getattr(ssl_object, "get_unverified_chain", None)
    if get_chain is None:
        return ()
    try:
        chain = get_chain() or []
        return tuple(ssl.PEM_cert_to_DER_cert(cert.public_bytes()) for cert in chain[1:])
    except (ssl.SSLError, ValueError, AttributeError):
        return ()
