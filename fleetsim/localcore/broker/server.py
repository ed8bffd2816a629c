"""The MQTT broker of local core (MQTT 3.1.1 and 5): mutual TLS, IoT policies, AWS IoT semantics.

`Broker` owns the listening socket, the client-id → connection table, sessions, the subscription
trie with a per-topic route cache, retained messages, lifecycle events and the reserved-topic
router (`router.py`) through which local-core features answer `$aws/...` requests. Per-packet
work lives in `connection.py`; policy decisions in `authz.py` / `fleetsim.localcore.policy`.

Hooks set by the composition: `on_message` sees every message routed (it must be cheap: it is
called inside routing), `unknown_certificate` is offered certificates the Authority does not know
at CONNECT (JITP/JITR).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from OpenSSL import SSL

from fleetsim.collector import collect_all
from fleetsim.localcore.broker import activity, codec, lifecycle, memory
from fleetsim.localcore.broker.activity import ActivityHook
from fleetsim.localcore.broker.codec5 import SERVER_SHUTTING_DOWN
from fleetsim.localcore.broker.connection import (
    PRE_CONNECT_READ_INTERVAL_S,
    PRE_CONNECT_READS_PER_INTERVAL,
    Connection,
)
from fleetsim.localcore.broker.fdlimit import DescriptorWatch
from fleetsim.localcore.broker.handshake import Handshakes
from fleetsim.localcore.broker.properties import MessageProps, message_props
from fleetsim.localcore.broker.router import Request, Router
from fleetsim.localcore.broker.session import Session
from fleetsim.localcore.broker.shared import SharedGroup
from fleetsim.localcore.broker.slowlane import SlowLane
from fleetsim.localcore.broker.tlsopenssl import OpenSslHandshakes
from fleetsim.localcore.broker.topics import SubscriptionTrie, has_wildcard, split_shared
from fleetsim.localcore.principal import Authority, UnknownCertificateHook
from fleetsim.runtime import cancel_and_wait

log = logging.getLogger(__name__)

SESSION_EXPIRY = 3600.0  # AWS default persistent-session expiry: one hour after disconnect
_ROUTE_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Message:
    """A message routed by the broker, as `Broker.on_message` (rules, ...) sees it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    client_id: str | None  # None for messages published by local core itself
    principal_id: str | None
    props: MessageProps | None = None  # an MQTT 5 publisher's properties


class Broker:
    def __init__(self, authority: Authority, ssl_context: ssl.SSLContext | SSL.Context,
                 account_id: str, region: str):
        self.authority = authority
        self.ssl_context = ssl_context
        self.arn_prefix = f"arn:aws:iot:{region}:{account_id}:"
        # Tunables (tests shorten them): seconds.
        self.min_keepalive = 30
        self.connect_timeout = 10.0
        self.handshake_timeout = 10.0
        self.sweep_interval = 1.0
        self.session_expiry = SESSION_EXPIRY
        self.high_water = 512 * 1024  # QoS 0 messages to a subscriber this far behind are dropped
        # Freed TLS memory goes back to the OS (`memory.py`) once this many connections ended
        # (at most every min_trim_interval), or every trim_interval if any did; once no
        # connection came or went for quiet_before_trim, as its full collection stops the
        # loop (60-90 ms with 1,000 devices connected: every connect in flight then took that
        # much longer), or, with connections churning on, after twice trim_interval.
        self.trim_after_connections = 100
        self.min_trim_interval = 5.0
        self.trim_interval = 60.0
        self.quiet_before_trim = 2.0
        self.memory_trims = 0
        self._released = self._released_at_trim = 0
        self._trimmed_at = self._churned_at = 0.0
        self._trim_task: asyncio.Task[None] | None = None
        self.connections: set[Connection] = set()
        self.descriptors = DescriptorWatch()  # warns near the open-file limit
        self.clients: dict[str, Connection] = {}
        self._offline: dict[str, Session] = {}
        self._trie = SubscriptionTrie()
        self._routes: dict[str, list[tuple[Session | SharedGroup, int]]] = {}
        self._groups: dict[tuple[str, str], SharedGroup] = {}
        self._retained: dict[str, tuple[bytes, int, MessageProps | None]] = {}
        # MQTT 5 wills waiting for their Will Delay Interval: client id -> (due, conn, will)
        self._delayed_wills: dict[str, tuple[float, Connection, codec.Will]] = {}
        self._versions: dict[str, int] = {}
        self.router = Router()
        # Called with every message routed, after delivery; must be cheap and must not route.
        self.on_message: Callable[[Message], None] | None = None
        # Offered, at CONNECT, each certificate the Authority does not know (JITP/JITR).
        self.unknown_certificate: UnknownCertificateHook | None = None
        # Told every client action (connect, publish in and out, subscribe, disconnect) while
        # set (AWS IoT logging); None costs the hot paths one attribute test.
        self.activity: ActivityHook | None = None
        self._broadcast = _Broadcast(self)
        # Python's ssl context: `handshake.py` (start_tls); pyOpenSSL's: `tlsopenssl.py`.
        self.handshakes: Handshakes | OpenSslHandshakes
        if isinstance(ssl_context, ssl.SSLContext):
            self.handshakes = Handshakes(ssl_context, self._accepted,
                                         lambda: self.handshake_timeout)
        else:
            self.handshakes = OpenSslHandshakes(ssl_context, self._accepted,
                                                lambda: self.handshake_timeout)
        self._dirty: list[Connection] = []
        # Connections whose CONNECT is incomplete after a read, read again in turn.
        self.slow_lane = SlowLane(lambda: self.loop, PRE_CONNECT_READ_INTERVAL_S,
                                  PRE_CONNECT_READS_PER_INTERVAL)
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # --- public interface --------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        self._loop = asyncio.get_running_loop()
        self._trimmed_at = self._churned_at = self._loop.time()
        # The TLS handshake is run by `handshakes`, which logs the ones it refuses.
        self._server = await self._loop.create_server(
            self.handshakes.protocol, host, port, backlog=2048)
        self._sweeper = self._loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._sweeper is not None:
            await cancel_and_wait(self._sweeper)
        if self._trim_task is not None:
            await self._trim_task
        await self.router.close()
        self.slow_lane.close()
        if self._server is not None:
            self._server.close()
        await self.handshakes.close()
        for conn in list(self.connections):
            conn.will = None
            conn.drop(lifecycle.SERVER_INITIATED_DISCONNECT, SERVER_SHUTTING_DOWN)
            if conn.transport is not None:
                conn.transport.abort()
        self.connections.clear()
        if self._server is not None:
            await self._server.wait_closed()

    def publish_internal(self, topic: str, payload: bytes, qos: int = 0,
                         retain: bool = False) -> None:
        """Publish as local core itself (events, feature messages): no publish policy check;
        each subscriber's iot:Receive still applies; `on_message` sees it."""
        self.route(topic, payload, min(qos, 1), retain, None)

    def disconnect_certificate(self, certificate_id: str) -> None:
        """Drop every live connection of this certificate (deactivated, revoked or deleted)."""
        for conn in list(self.connections):
            if conn.certificate_id == certificate_id:
                conn.drop(lifecycle.AUTH_ERROR)

    # --- connections -------------------------------------------------------------------------

    def _accepted(self) -> Connection:
        """The `Connection` of a TCP connection just accepted."""
        conn = Connection(self)
        self._churned_at = conn.created
        return conn

    def released(self) -> None:
        """A `Connection` was freed: served, refused, or its TLS handshake never completed
        (it exists from the TCP accept on, before the handshake)."""
        self._released += 1
        self._churned_at = self.loop.time()

    def attach(self, conn: Connection, clean_start: bool, expiry: float) -> bool:
        """Bind a newly authorized connection to its session (ending `expiry` seconds after a
        disconnect; 0: at once); True if a session was resumed."""
        client_id = conn.client_id
        previous = self.clients.get(client_id)
        if previous is not None:
            previous.drop(lifecycle.DUPLICATE_CLIENTID)  # AWS: the new connection wins
        self._delayed_wills.pop(client_id, None)  # reconnected within the Will Delay Interval
        session = self._offline.pop(client_id, None)
        if session is not None and clean_start:
            self._discard(session)
            session = None
        present = session is not None
        if session is None:
            session = Session(client_id, expiry)
        session.expiry = expiry
        session.conn = conn
        session.authz = conn.authz
        conn.session = session
        self.clients[client_id] = conn
        self._versions[client_id] = conn.version = self._versions.get(client_id, -1) + 1
        return present

    def on_connected(self, conn: Connection) -> None:
        if lifecycle.wants_events(conn.client_id):
            self.publish_internal(*lifecycle.connected(
                conn.client_id, conn.session_id, conn.certificate_id, conn.peer_ip,
                conn.version), qos=1)

    def on_disconnect(self, conn: Connection, reason: str) -> None:
        """Called exactly once per connection, whatever ended it."""
        self.connections.discard(conn)
        if not conn.connected:
            return
        if self.clients.get(conn.client_id) is conn:
            del self.clients[conn.client_id]
        will, conn.will = conn.will, None
        session = conn.session
        if will is not None and (reason in lifecycle.SENDS_WILL or conn.will_on_disconnect):
            # MQTT 5 Will Delay Interval: sent when it passes or the session ends, if earlier.
            delay = min(will.delay, session.expiry) if session is not None else 0
            if delay > 0:
                self._delayed_wills[conn.client_id] = (self.loop.time() + delay, conn, will)
            else:
                self._publish_will(conn, will)
        if session is not None:
            session.conn = None
            if session.persistent:
                session.expires_at = self.loop.time() + session.expiry
                self._offline[session.client_id] = session
            else:
                self._discard(session)
        if self.activity is not None:
            conn.tell(activity.DISCONNECT, activity.SUCCESS, None, reason)
        if lifecycle.wants_events(conn.client_id):
            self.publish_internal(*lifecycle.disconnected(
                conn.client_id, conn.session_id, conn.certificate_id, reason, conn.version),
                qos=1)

    def publish_from(self, conn: Connection, topic: str, payload: bytes, qos: int,
                     retain: bool, props: MessageProps | None = None) -> None:
        """A client publish that passed its checks: to subscribers, and to the feature that
        registered its topic, if any (see `router.py` for what each delivery implies)."""
        found = self.router.match(topic) if topic[:1] == "$" else None
        if found is None:
            self.route(topic, payload, qos, retain, conn, props)
            return
        route, params = found
        if route.delivery == "broadcast":
            self.route(topic, payload, qos, retain, conn, props)
            reply: _Broadcast | _ToRequester = self._broadcast
        else:
            reply = _ToRequester(self, conn, qos, route.delivery == "subscribed_requester")
        authz = conn.authz
        self.router.submit(route, conn, Request(
            topic, payload, qos, conn.client_id, conn.certificate_id,
            authz.thing_name if authz is not None else None, params), reply)

    def send_to(self, conn: Connection, topic: str, payload: bytes, qos: int,
                unsubscribed_qos: int | None) -> None:
        """Deliver to one connection only, subscribed or not (requester replies), at
        min(qos, the QoS of its matching subscription, or `unsubscribed_qos` without one;
        `unsubscribed_qos` None: not at all without one); iot:Receive still applies."""
        session, authz = conn.session, conn.authz
        if conn.closing or session is None or authz is None or session.conn is not conn:
            return
        if not authz.allowed("iot:Receive", "topic", topic):
            return
        granted = self._trie.match(topic).get(session)
        if granted is None:
            if unsubscribed_qos is None:
                return
            granted = unsubscribed_qos
        qos = min(qos, granted & 3, 1)
        encoded = codec.encode_topic(topic)
        if qos:
            session.send_qos1(encoded, payload)
        else:
            conn.send_publish(encoded, payload, 0, False, False, 0, None)

    def _publish_will(self, conn: Connection, will: codec.Will) -> None:
        authz = conn.authz
        if authz is None or not authz.allowed("iot:Publish", "topic", will.topic) or (
                will.retain and not authz.allowed("iot:RetainPublish", "topic", will.topic)):
            return
        # AWS: a will's Message Expiry Interval starts when the broker sends it.
        props = message_props(will.forwarded, will.expiry, self.loop.time())
        self.route(will.topic, will.payload, min(will.qos, 1), will.retain, conn, props)

    # --- subscriptions -----------------------------------------------------------------------

    def subscribe(self, session: Session, topic_filter: str, options: int) -> bool:
        """Add or replace a subscription (`options`: QoS in bits 0-1, MQTT 5's No Local bit 2,
        Retain As Published bit 3); True if it is new."""
        new = topic_filter not in session.subscriptions
        session.subscriptions[topic_filter] = options
        shared = split_shared(topic_filter)
        if shared is None:
            self._trie.add(topic_filter, session, options)
        else:
            group = self._groups.get(shared)
            if group is None:
                group = self._groups[shared] = SharedGroup(shared)
                self._trie.add(shared[1], group, 1)
            group.members[session] = options
        self._routes.clear()
        return new

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        """Remove a subscription; True if it existed."""
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        self._remove(session, topic_filter)
        self._routes.clear()
        return True

    def _remove(self, session: Session, topic_filter: str) -> None:
        shared = split_shared(topic_filter)
        if shared is None:
            self._trie.remove(topic_filter, session)
            return
        group = self._groups.get(shared)
        if group is not None:
            group.members.pop(session, None)
            if not group.members:
                del self._groups[shared]
                self._trie.remove(shared[1], group)

    def _discard(self, session: Session) -> None:
        for topic_filter in session.subscriptions:
            self._remove(session, topic_filter)
        if session.subscriptions:
            self._routes.clear()
        session.subscriptions.clear()
        session.inflight.clear()
        session.pending.clear()

    def send_retained(self, conn: Connection, topic_filter: str, granted: int) -> None:
        # AWS: only a filter equal to the retained message's topic receives it on subscribe,
        # and shared subscriptions never do.
        if has_wildcard(topic_filter) or topic_filter.startswith("$share/"):
            return
        retained = self._retained.get(topic_filter)
        session = conn.session
        if retained is None or session is None or conn.authz is None:
            return
        if not conn.authz.allowed("iot:Receive", "topic", topic_filter):
            return
        payload, qos, props = retained
        if props is not None and props.expired(self.loop.time()):
            del self._retained[topic_filter]  # AWS: an expired retained message is not sent
            return
        topic = codec.encode_topic(topic_filter)
        if min(qos, granted & 3):
            session.send_qos1(topic, payload, True, props)
        else:
            conn.send_publish(topic, payload, 0, True, False, 0, props)

    # --- routing -----------------------------------------------------------------------------

    def route(self, topic: str, payload: bytes, qos: int, retain: bool,
              origin: Connection | None, props: MessageProps | None = None) -> None:
        """Deliver a message that is allowed into the broker to every subscriber allowed to
        receive it; store or clear it as retained; hand it to `on_message`."""
        if retain:
            if payload:
                self._retained[topic] = (payload, qos, props)
            else:
                self._retained.pop(topic, None)
        targets = self._routes.get(topic)
        if targets is None:
            targets = list(self._trie.match(topic).items())  # type: ignore[arg-type]
            if len(self._routes) >= _ROUTE_CACHE_LIMIT:
                self._routes.clear()
            self._routes[topic] = targets
        if targets:
            self._deliver(topic, payload, qos, targets, retain, origin, props)
        on_message = self.on_message
        if on_message is not None:
            try:
                on_message(Message(topic, payload, qos, retain,
                                   origin.client_id if origin else None,
                                   origin.certificate_id if origin else None, props))
            except Exception:
                log.exception("on_message failed on %s", topic)

    def _deliver(self, topic: str, payload: bytes, qos: int,
                 targets: list[tuple[Session | SharedGroup, int]], retain: bool = False,
                 origin: Connection | None = None, props: MessageProps | None = None) -> None:
        encoded = codec.encode_topic(topic)
        packet = None  # one QoS 0 encoding serves every MQTT 3.1.1 QoS 0 subscriber
        origin_session = origin.session if origin is not None else None
        observed = self.activity is not None
        for target, granted in targets:
            session = target
            try:
                if type(target) is SharedGroup:
                    picked = target.pick(qos)
                    if picked is None:
                        continue
                    session, granted = picked
                assert isinstance(session, Session)
                if granted & 0x04 and session is origin_session:
                    continue  # MQTT 5 No Local: not to the connection that published it
                authz = session.authz
                if authz is None or not authz.allowed("iot:Receive", "topic", topic):
                    continue  # AWS: a message the subscriber may not receive is not delivered
                if observed:
                    self._tell_out(session, topic)
                keep_retain = retain and bool(granted & 0x08)  # MQTT 5 Retain As Published
                if qos and granted & 3:
                    if props is None and not keep_retain:
                        session.send_qos1(encoded, payload)
                    else:
                        session.send_qos1(encoded, payload, keep_retain, props)
                    continue
                conn = session.conn
                if conn is None or conn.congested():
                    continue
                if props is None and not keep_retain and not conn.v5:
                    if packet is None:
                        packet = codec.publish(encoded, payload)
                    conn.send(packet)
                else:
                    conn.send_publish(encoded, payload, 0, keep_retain, False, 0, props)
            except Exception:  # costs this subscriber only: the others are still served
                if isinstance(session, Session):
                    self._failed(session, f"delivering a message on {topic!r}")
                else:
                    log.exception("delivering a message on %r to a shared group failed", topic)

    def _tell_out(self, session: Session, topic: str) -> None:
        conn = self.clients.get(session.client_id)
        if conn is not None and conn.session is session:
            conn.tell(activity.PUBLISH_OUT, activity.SUCCESS, topic)

    def _failed(self, session: Session, what: str) -> None:
        conn = self.clients.get(session.client_id)
        if conn is not None and conn.session is session:
            conn.fail(what)
        else:
            log.exception("client %r (offline): failed %s", session.client_id, what)

    # --- output batching and housekeeping ----------------------------------------------------

    def schedule_flush(self, conn: Connection) -> None:
        if not self._dirty:
            self.loop.call_soon(self._flush)
        self._dirty.append(conn)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    async def _sweep(self) -> None:
        """Connect timeouts, keepalive timeouts (1.5 x keepalive), expired sessions."""
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self._sweep_once(self.loop.time())
            except Exception:
                log.exception("broker housekeeping failed")

    def _sweep_once(self, now: float) -> None:
        for conn in list(self.connections):
            try:
                if conn.connected:
                    if now - conn.last_rx > conn.keepalive:
                        conn.drop(lifecycle.MQTT_KEEP_ALIVE_TIMEOUT)
                elif now - conn.created > self.connect_timeout:
                    conn.drop(lifecycle.CLIENT_ERROR)
            except Exception:
                conn.fail("closing it after a timeout")
        expired = [s for s in self._offline.values() if s.expires_at <= now]
        for session in expired:
            del self._offline[session.client_id]
            self._discard(session)
        due = [(c, w) for c, w in self._delayed_wills.items() if w[0] <= now]
        for client_id, (_, conn, will) in due:
            del self._delayed_wills[client_id]
            try:
                self._publish_will(conn, will)
            except Exception:
                log.exception("client %r: sending its delayed will failed", client_id)
        if self._trim_due(now):
            self._released_at_trim, self._trimmed_at = self._released, now
            self._trim_task = self.loop.create_task(self._release_memory())

    def _trim_due(self, now: float) -> bool:
        ended = self._released - self._released_at_trim
        if not ended or (self._trim_task is not None and not self._trim_task.done()):
            return False
        since = now - self._trimmed_at
        due = (ended >= self.trim_after_connections and since >= self.min_trim_interval
               ) or since >= self.trim_interval
        return due and (now - self._churned_at >= self.quiet_before_trim
                        or since >= 2 * self.trim_interval)

    async def _release_memory(self) -> None:
        # A full collection empties CPython's free lists, whose chunks pin pages (`memory.py`).
        # Of every object: a cycle through ended connections' objects frozen meanwhile
        # (`collector`) is found too.
        collect_all()
        # In a thread: the loop keeps serving meanwhile (it takes tens of ms on a large heap).
        await asyncio.to_thread(memory.release_free_memory)
        self.memory_trims += 1


class _Broadcast:
    """Replies through the broker, as local core: every allowed subscriber, and on_message."""

    __slots__ = ("_broker",)

    def __init__(self, broker: Broker):
        self._broker = broker

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self._broker.publish_internal(topic, payload, qos)


class _ToRequester:
    """Replies to the requesting connection only, unseen by other clients and on_message."""

    __slots__ = ("_broker", "_conn", "_qos")

    def __init__(self, broker: Broker, conn: Connection, request_qos: int,
                 subscribed_only: bool = False):
        # Without a subscription no QoS was negotiated: the request's QoS is the best guess
        # of what the client handles (None: a subscription is required).
        self._broker, self._conn = broker, conn
        self._qos: int | None = None if subscribed_only else request_qos

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self._broker.send_to(self._conn, topic, payload, qos, self._qos)
