"""`FleetClient`: aiomqtt's client made cheap enough to run thousands in one process.

What it changes in aiomqtt 2.5 (whose private hooks it overrides, checked against 2.5.1 on
paho 2.2):
- connect: TCP and TLS on the event loop (`transport.open_tls`), handed to paho, instead of
  paho's blocking connect in the default thread pool; for MQTT 3.1.1, CONNECT and CONNACK
  are exchanged here (`connect311`) and paho takes the socket over connected;
- reconnect: the client of an ended connection is made ready again (`rearm`) instead of
  building a new one;
- housekeeping: one shared task per loop (`housekeeping`) instead of a task per client
  waking every second;
- writes: paho's queued packets are written directly, on the loop thread, and the socket is
  watched for writability only while the kernel buffer is full (aiomqtt registers a writer
  through `call_soon_threadsafe` for every packet: an eventfd write, two epoll_ctl and a loop
  iteration per publish);
- QoS 0 publish returns once written, without the Event and timeout task aiomqtt creates;
- messages can go straight to a handler instead of through a queue and a task per message;
- a connection closed before CONNACK fails the connect at once, and a loss after CONNACK is
  reported (`on_lost`), with an MQTT 5 server DISCONNECT's reason as its kind;
- MQTT 5: a PUBACK with a failure reason code fails the publish (`PublishRefused`), and QoS 0
  publishes use topic aliases up to the server's Topic Alias Maximum.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttCodeError, MqttConnectError, MqttReentrantError
from paho.mqtt._packet import convert_connack_rc_to_reason_code
from paho.mqtt.enums import _ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fleetsim.device.connect311 import CONNACK_LENGTH, connect_packet, parse_connack
from fleetsim.device.errors import reason_kind
from fleetsim.device.housekeeping import housekeeper
from fleetsim.device.paho_compact import compact
from fleetsim.device.qos0 import try_write
from fleetsim.device.tls import AnyDeviceTls, AnyTlsSocket
from fleetsim.device.tls_trim import release_buffers, shed_credentials
from fleetsim.device.transport import open_tls, recv_exactly, send_all

log = logging.getLogger(__name__)
_CONNECTED = _ConnectionState.MQTT_CS_CONNECTED
DROPPED_BY_DEVICE = "dropped_by_device"  # the kind of a loss `lose_connection` caused
MessageHandler = Callable[[aiomqtt.Message], None]


class ClosedBeforeConnack(MqttCodeError):
    pass


class PublishRefused(MqttCodeError):
    """MQTT 5: the server answered a QoS 1 PUBLISH with a failure reason code."""


class FleetClient(aiomqtt.Client):
    # FleetClient's own attributes in slots: the instance dict then holds only aiomqtt's (~26
    # keys), which CPython keeps key-shared (~0.3 KB); with these 13 besides it became a dict of
    # its own (~1.6 KB per device; issue 9, tracemalloc of a peer run).
    __slots__ = ("_alias_max", "_aliases", "_flush_scheduled", "_keeper", "_ready_socket",
                 "_refused", "_report_lost", "_tls", "_writer_fd", "_writing",
                 "last_error_log", "message_handler", "v5")

    def __init__(self, *args: Any, on_lost: Callable[[int | ReasonCode | str], None],
                 tls_context: ssl.SSLContext | AnyDeviceTls, **kwargs: Any):
        # paho only looks at the context's check_hostname: our sockets come from open_tls.
        super().__init__(*args, tls_context=tls_context if isinstance(
            tls_context, ssl.SSLContext) else tls_context.context, **kwargs)
        self.v5 = kwargs.get("protocol") == aiomqtt.ProtocolVersion.V5
        self._refused: dict[int, ReasonCode] = {}  # MQTT 5 PUBACKs with a failure code
        self._alias_max = 0  # the server's Topic Alias Maximum
        # topic -> (alias, properties carrying it); the first publish on a topic sends both
        self._aliases: dict[str, tuple[int, Properties]] = {}
        self.last_error_log = ""
        self.message_handler: MessageHandler | None = None
        self._tls = tls_context
        self._report_lost = on_lost
        self._keeper = housekeeper()
        self._writer_fd: int | None = None
        self._flush_scheduled = False
        self._writing = False
        self._ready_socket: AnyTlsSocket | None = None
        # paho formats every debug line for an on_log callback; a logger is asked its level.
        self._client._logger = _ErrorKeeper(self, self._logger)  # type: ignore[assignment]
        # paho opens (and blocks on) its socket in _create_socket; give it ours, connected.
        self._client._create_socket = self._take_socket  # type: ignore[method-assign]
        compact(self._client)  # a smaller queue of packets to write, one lock for six

    # aiomqtt builds an asyncio.Queue per client for `messages` (~3 KB with its deques and
    # Event); devices with a message handler never use it, so it is made on first use.
    @property
    def _queue(self) -> asyncio.Queue[aiomqtt.Message]:
        queue = self.__dict__.get("_lazy_queue")
        if queue is None:
            queue = self.__dict__["_lazy_queue"] = asyncio.Queue(self.__dict__["_queue_max"])
        return queue

    @_queue.setter
    def _queue(self, queue: asyncio.Queue[aiomqtt.Message]) -> None:
        self.__dict__["_queue_max"] = queue.maxsize  # aiomqtt's own, made in its __init__
        self.__dict__.pop("_lazy_queue", None)

    def rearm(self, on_lost: Callable[[int | ReasonCode | str], None]) -> None:
        """Make a client whose connection has ended ready for the next `__aenter__`, as a new
        client would be: paho's per-connection state (queued and in-flight messages) and the
        MQTT 5 topic aliases (which last one network connection: MQTT 5 §3.3.2.3.4) go. A
        reconnect then costs no new paho and aiomqtt client (paho's `__init__`: ~10 locks and
        a hundred attributes)."""
        if self._lock.locked():
            raise MqttReentrantError("rearm: the client is still connected")
        self._abort()
        if self._connected.done():
            self._connected = self._loop.create_future()
        self._report_lost = on_lost
        self._refused.clear()
        self._aliases.clear()
        self._alias_max = 0
        self.last_error_log = ""
        client = self._client
        with client._out_message_mutex:
            client._out_messages.clear()
            client._inflight_messages = 0
        with client._in_message_mutex:
            client._in_messages.clear()

    def _take_socket(self) -> AnyTlsSocket:
        sock, self._ready_socket = self._ready_socket, None
        if sock is None:
            raise OSError("no connected socket (FleetClient connects only in __aenter__)")
        return sock

    # --- connect / disconnect ---------------------------------------------------------------

    async def __aenter__(self) -> FleetClient:
        if self._lock.locked():
            raise MqttReentrantError("The client context manager is reusable, but not reentrant")
        await self._lock.acquire()
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    self._ready_socket = await open_tls(self._hostname, self._port, self._tls)
                except OSError as e:  # ssl.SSLError included
                    raise aiomqtt.MqttError(_describe(e)) from None
                shed_credentials(self._ready_socket)  # the handshake is done with them
                if self._lean():
                    await self._connect_311(self._ready_socket)
                else:
                    self._client.connect(self._hostname, self._port, self._keepalive,
                                         clean_start=self._clean_start,
                                         properties=self._properties)
                    await self._connected
        except BaseException as e:
            self._abort()
            self._lock.release()
            self._connected = asyncio.Future()
            if isinstance(e, TimeoutError):
                raise aiomqtt.MqttError("Operation timed out") from None
            raise
        if self._disconnected.done():
            self._disconnected = asyncio.Future()
        return self

    def _lean(self) -> bool:
        """Whether CONNECT and CONNACK can bypass paho (`connect311`): MQTT 3.1.1 with no will,
        user name or bridge mode."""
        client = self._client
        return (not self.v5 and not client._will and client._username is None
                and client._client_mode == paho.MQTT_CLIENT)

    async def _connect_311(self, sock: AnyTlsSocket) -> None:
        """CONNECT written and CONNACK read here, then the socket handed to paho connected,
        failing as the paho path fails: a refusal as MqttConnectError with paho's reason
        code, a close before CONNACK as ClosedBeforeConnack with paho's error line. One
        difference: paho reported return code 1 (unacceptable protocol version) as a close
        before CONNACK (it would have retried MQTT 3.1); here it is the refusal it is."""
        client = self._client
        try:
            await send_all(sock, connect_packet(client._client_id, self._keepalive,
                                                bool(client._clean_session)))
            connack = await recv_exactly(sock, CONNACK_LENGTH)
        except OSError as e:
            self.last_error_log = f"failed to receive on socket: {e}"
            raise ClosedBeforeConnack(paho.MQTT_ERR_CONN_LOST, "closed") from None
        if not connack:
            raise ClosedBeforeConnack(paho.MQTT_ERR_CONN_LOST, "closed")
        try:
            _, code = parse_connack(connack)
        except ValueError as e:
            raise aiomqtt.MqttError(str(e)) from None
        if code != paho.CONNACK_ACCEPTED:
            raise MqttConnectError(convert_connack_rc_to_reason_code(code))  # type: ignore[arg-type]
        self._take_over(sock)

    def _take_over(self, sock: AnyTlsSocket) -> None:
        """paho's state after `connect` and an accepting CONNACK (`reconnect`,
        `_handle_connack`), on a socket that has exchanged them."""
        client = self._client
        client._host, client._port = self._hostname, self._port
        client._keepalive = self._keepalive
        client._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [],
                             "remaining_mult": 1, "remaining_length": 0,
                             "packet": bytearray(b""), "to_process": 0, "pos": 0}
        client._ping_t = 0.0
        client._out_packet.clear()
        client._last_bytes_received = client._last_msg_out = paho.time_func()
        client._messages_reconnect_reset()
        client._sock, self._ready_socket = sock, None
        client._registered_write = False
        client._state = _CONNECTED
        client._reconnect_delay = None
        client._mqttv5_first_connect = False
        client._call_socket_open(sock)
        self._connected.set_result(None)
        if sock.pending():  # bytes after CONNACK already decrypted: the fd will not tell
            self._loop.call_soon(self._on_readable)
        else:
            release_buffers(sock)  # an idle connection keeps no read buffer (`tls_trim`)

    def _abort(self) -> None:
        """Close whatever socket exists, without MQTT DISCONNECT."""
        if self._ready_socket is not None:
            self._ready_socket.close()
            self._ready_socket = None
        self._client._sock_close()

    def disconnect_nowait(self) -> bool:
        """Send DISCONNECT and close, without waiting if the socket takes it at once (the
        usual case); returns whether the client is now closed."""
        if not self._disconnected.done():
            if self._client.disconnect() == paho.MQTT_ERR_SUCCESS and self._writer_fd is None:
                self._write()  # paho closes the socket once DISCONNECT is written
            if self._client.socket() is None and not self._disconnected.done():
                self._disconnected.set_result(None)
        closed = self._disconnected.done()
        if closed and self._lock.locked():
            self._lock.release()
        return closed

    def lose_connection(self) -> None:
        """Drop the connection as a network failure would (no DISCONNECT): reported lost, as
        `dropped_by_device` (the server did nothing)."""
        self._fail(ConnectionResetError("connection dropped by the device"), DROPPED_BY_DEVICE)

    def force_close(self) -> None:
        self._abort()
        if not self._disconnected.done():
            self._disconnected.set_result(None)
        if self._lock.locked():
            self._lock.release()

    def release(self) -> None:
        """Done with for good, its connection closed: the references paho holds to it (the
        callbacks aiomqtt and this class set, the error keeper) go, so that reference
        counting frees both clients, not a full collection (`fleetsim.collector`: a
        connected fleet's clients are frozen out of its way). It cannot connect again."""
        client = self._client
        for name, value in vars(client).items():
            if getattr(value, "__self__", None) is self:
                setattr(client, name, None)
        client._logger = self._logger

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.disconnect_nowait():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._disconnected), self.timeout)
        except (TimeoutError, aiomqtt.MqttError, MqttCodeError):
            pass
        finally:
            self.force_close()

    # --- paho's socket callbacks (all on the loop thread, since we connect on it) -------------

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._keeper.add(client, self._keepalive)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        if fd > -1:
            self._loop.remove_reader(fd)
        self._stop_writer()
        self._keeper.discard(client)

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if not self._writing and self._writer_fd is None and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any,
                                    sock: Any) -> None:
        self._stop_writer()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._writer_fd is None:
            self._write()

    def _write(self) -> None:
        client = self._client
        # For each QoS 0 PUBLISH written, paho builds a ReasonCode and a Properties for
        # on_publish, which only aiomqtt's QoS 0 publish (not used here) waits on. QoS 1
        # confirmations come from reads, where on_publish stays set.
        on_publish, client._on_publish = client._on_publish, None
        try:
            client.loop_write()
        except Exception as e:  # a broken pipe: the connection is gone, as aiomqtt treats it
            self._fail(e)
            return
        finally:
            client._on_publish = on_publish
        sock = client.socket()
        if client.want_write() and sock is not None:
            if self._writer_fd is None:
                self._writer_fd = sock.fileno()
                self._loop.add_writer(self._writer_fd, self._write)
        else:
            self._stop_writer()

    def _stop_writer(self) -> None:
        if self._writer_fd is not None:
            self._loop.remove_writer(self._writer_fd)
            self._writer_fd = None

    def _on_readable(self) -> None:
        client = self._client
        try:
            while True:
                client.loop_read()
                sock = client.socket()
                # OpenSSL may hold decoded bytes that the fd no longer signals (an
                # ssl.SSLSocket, or tls_openssl's TlsSocket).
                pending = getattr(sock, "pending", None)
                if pending is None or not pending():
                    break
        except Exception as e:  # as above
            self._fail(e)
            return
        release_buffers(sock)  # nothing left to read: no read buffer kept (`tls_trim`)

    def _fail(self, error: Exception, lost: int | str = paho.MQTT_ERR_CONN_LOST) -> None:
        was_connected = self._connected.done() and self._connected.exception() is None
        if not self._connected.done():
            self._connected.set_exception(aiomqtt.MqttError(str(error)))
        self._client._sock_close()
        if was_connected and not self._disconnected.done():
            self._disconnected.set_exception(aiomqtt.MqttError(str(error)))
            self._disconnected.exception()  # retrieved: the loss is reported just below
            self._report_lost(lost)

    # --- paho's MQTT callbacks --------------------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason_code: ReasonCode, properties: Any = None) -> None:
        if self.v5 and properties is not None:
            self._alias_max = getattr(properties, "TopicAliasMaximum", 0)
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags,
                       reason_code: ReasonCode, properties: Any = None) -> None:
        if not self._connected.done():
            self._connected.set_exception(ClosedBeforeConnack(reason_code, "closed"))
            return
        was_connected = self._connected.exception() is None and not self._disconnected.done()
        super()._on_disconnect(client, userdata, flags, reason_code, properties)
        # Reading the exception also marks it retrieved: nobody else may look at it.
        error = self._disconnected.exception() if self._disconnected.done() else None
        if was_connected and error is not None:
            if self.v5 and flags.is_disconnect_packet_from_server:
                self._report_lost(reason_kind("disconnect", reason_code))
            else:
                self._report_lost(reason_code)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int,
                    reason_code: ReasonCode, properties: Any) -> None:
        if reason_code.is_failure:
            self._refused[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def _on_message(self, client: paho.Client, userdata: Any,
                    message: paho.MQTTMessage) -> None:
        if self.message_handler is None:
            super()._on_message(client, userdata, message)
            return
        try:
            self.message_handler(aiomqtt.Message._from_paho_message(message))
        except Exception:  # a handler's bug must not drop the connection
            log.exception("message handler failed")

    # --- operations -------------------------------------------------------------------------

    async def publish(self, topic: str, payload: Any = None, qos: int = 0,
                      retain: bool = False, properties: Any = None, *args: Any,
                      timeout: float | None = None, **kwargs: Any) -> None:
        if qos == 0:
            self.publish_qos0(topic, payload, retain)
            return
        info = self._client.publish(topic, payload, qos, retain, properties, *args, **kwargs)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttCodeError(info.rc, "Could not publish message")
        if not info.is_published():
            confirmation = asyncio.Event()
            with self._pending_call(info.mid, confirmation, self._pending_publishes):
                await self._wait_for(confirmation.wait(), timeout=timeout)
        refused = self._refused.pop(info.mid, None)
        if refused is not None:
            raise PublishRefused(refused, "publish refused")

    def publish_qos0(self, topic: str, payload: Any = None, retain: bool = False) -> None:
        """Queue and write a QoS 0 PUBLISH now (into the kernel buffer, or queued behind what
        is waiting for it). MQTT 5: the topic goes once, then only its alias, for as many
        topics as the server accepts aliases."""
        if not self.v5 and self._writer_fd is None:
            try:
                written = try_write(self._client, topic, payload, retain)
            except OSError as e:
                self._fail(e)
                raise MqttCodeError(paho.MQTT_ERR_CONN_LOST, "Could not publish message") from e
            if written:
                if self._client.want_write():
                    self._write()  # registers the writer for what the socket did not take
                return
        properties = None
        if self._alias_max:
            known = self._aliases.get(topic)
            if known is not None:
                topic, properties = "", known[1]
            elif len(self._aliases) < self._alias_max:
                alias = len(self._aliases) + 1
                fresh = Properties(PacketTypes.PUBLISH)
                fresh.TopicAlias = alias
                properties = cast(Properties, PackedProperties(fresh))
                self._aliases[topic] = (alias, properties)
        self._writing = True
        try:
            info = self._client.publish(topic, payload, 0, retain, properties)
        finally:
            self._writing = False
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttCodeError(info.rc, "Could not publish message")
        if self._writer_fd is None:
            self._write()


class PackedProperties:
    """A PUBLISH's properties, packed once. paho packs the Properties of every PUBLISH anew
    (`Properties.pack` scans all of MQTT 5's property names, tens of microseconds), which made
    an MQTT 5 telemetry message cost ~40% more CPU than a 3.1.1 one; `pack` is all paho's
    publish path asks of it."""

    __slots__ = ("_packed",)

    def __init__(self, properties: Properties):
        self._packed: bytes = properties.pack()

    def pack(self) -> bytes:
        return self._packed


class _ErrorKeeper:
    """Stands in for paho's logger: keeps the client's last error line (which tells why a
    connection closed before CONNACK) and passes warnings and errors on."""

    __slots__ = ("_client", "_logger")

    def __init__(self, client: FleetClient, logger: logging.Logger):
        self._client = client
        self._logger = logger

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if level >= logging.WARNING:
            if level >= logging.ERROR:
                self._client.last_error_log = fmt % args if args else fmt
            self._logger.log(level, fmt, *args)


def _describe(error: OSError) -> str:
    """The error's text, led by the system's wording of its errno: loops word a failed
    connect differently (uvloop: "Connect call failed ...")."""
    if error.errno and not isinstance(error, ssl.SSLError):
        return f"{os.strerror(error.errno)}: {error}"
    return str(error)
