"""`DeviceSession`: one device's MQTT connection over mutual TLS, timed and classified.

    async with DeviceSession(identity, target, metrics, tls=factory.device_tls(identity),
                             reconnect=ReconnectPolicy(base=1, cap=30)) as s:
        await s.publish("dt/telemetry", encode({"temp": 21.5}, stamp=True), qos=1)

With a reconnect policy, a connection lost after CONNACK is re-opened in the background
(exponential back-off, full jitter; each attempt timed as "mqtt.reconnect", failures counted
by kind) and subscriptions are restored; operations in the meantime fail fast with the kind of
the loss. Without one, the session ends with its first connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fleetsim.device.client import ClosedBeforeConnack, FleetClient, MessageHandler, PublishRefused
from fleetsim.device.errors import (
    DeviceError,
    connack_kind,
    connect_failure_kind,
    lost_kind,
    reason_kind,
)
from fleetsim.device.identity import DeviceIdentity
from fleetsim.device.reconnect import ReconnectPolicy, as_policy
from fleetsim.device.tls import AnyDeviceTls, TlsContextFactory
from fleetsim.metrics import Metrics
from fleetsim.target import Target

CONNECTED_GAUGE = "devices.connected"
RECONNECT_OP = "mqtt.reconnect"
GAVE_UP = "reconnect_gave_up"
T = TypeVar("T")


class DeviceSession:
    """An async context manager: connects on enter ("mqtt.connect" timed into `metrics`),
    disconnects on exit. Failures raise `DeviceError` with the kind recorded."""

    def __init__(self, identity: DeviceIdentity, target: Target, metrics: Metrics | None = None,
                 *, tls: ssl.SSLContext | AnyDeviceTls | None = None,
                 client_id: str | None = None,
                 keepalive: int = 60, timeout: float = 10.0, clean_session: bool = True,
                 max_queued_incoming: int = 0,
                 reconnect: bool | ReconnectPolicy | None = None,
                 connected_gauge: str = CONNECTED_GAUGE, protocol: str = "mqtt3.1.1",
                 session_expiry: int = 0,
                 user_properties: list[tuple[str, str]] | None = None):
        """`protocol` "mqtt5": MQTT 5 with `session_expiry` (seconds) and `user_properties`
        in CONNECT; `clean_session` is then Clean Start."""
        self.identity = identity
        self.target = target
        self.metrics = metrics or Metrics()
        self.client_id = client_id or identity.thing_name
        self.timeout = timeout
        self.policy = as_policy(reconnect)
        self.reconnects = 0  # connections re-opened after a loss
        self._tls = tls
        self._keepalive = keepalive
        self._clean_session = clean_session
        self._max_queued = max_queued_incoming
        self._client: FleetClient | None = None
        self._spare: FleetClient | None = None  # reused by the next connection attempt
        self._lost: asyncio.Future[str] | None = None  # the current connection's end
        self._ended: asyncio.Future[str] | None = None  # the session's end
        self._reconnector: asyncio.Task[None] | None = None
        self._subscriptions: dict[str, int] = {}
        self._handler: MessageHandler | None = None
        self._closing = False
        self._inflight = 0
        self._last_op = "mqtt.connect"
        self._gauge = connected_gauge  # counts this session while it is connected
        self.v5 = protocol == "mqtt5"
        self._connect_properties: Properties | None = None
        if self.v5:
            self._connect_properties = Properties(PacketTypes.CONNECT)
            if session_expiry:
                self._connect_properties.SessionExpiryInterval = session_expiry
            if user_properties:
                self._connect_properties.UserProperty = user_properties

    # --- state -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and self._lost is not None and not self._lost.done()

    @property
    def ended(self) -> bool:
        """Closed, or lost for good (no policy, or the policy gave up)."""
        return self._ended is not None and self._ended.done()

    @property
    def client(self) -> aiomqtt.Client:
        """The aiomqtt client of the current connection, for what this class does not wrap."""
        if self._client is None:
            raise DeviceError("not_connected", self.identity.thing_name)
        return self._client

    # --- connection ------------------------------------------------------------------------

    async def __aenter__(self) -> DeviceSession:
        if self._tls is None:
            self._tls = TlsContextFactory(self.target).device_tls(self.identity)
        self._ended = asyncio.get_running_loop().create_future()
        self._closing = False
        attempt = 0
        while True:
            try:
                await self._open("mqtt.connect")
                return self
            except DeviceError as e:
                attempt += 1
                policy = self.policy
                if policy is None or not policy.retry_initial or policy.gives_up_after(attempt):
                    self._end(e.kind)
                    raise
                await asyncio.sleep(policy.delay(attempt - 1))

    async def _open(self, op: str) -> None:
        """One connection attempt, timed as `op`."""
        assert self._tls is not None
        lost = self._lost = asyncio.get_running_loop().create_future()
        client, self._spare = self._spare, None  # the client of a connection that ended
        if client is None:
            client = FleetClient(self.target.mqtt_host, self.target.mqtt_port,
                                 identifier=self.client_id, tls_context=self._tls,
                                 keepalive=self._keepalive, timeout=self.timeout,
                                 max_queued_incoming_messages=self._max_queued,
                                 **(dict(protocol=aiomqtt.ProtocolVersion.V5,
                                         clean_start=self._clean_session,
                                         properties=self._connect_properties) if self.v5
                                    else dict(clean_session=self._clean_session)),
                                 on_lost=lambda reason: self._on_lost(lost, reason))
        else:
            client.rearm(lambda reason: self._on_lost(lost, reason))
        client.message_handler = self._handler
        try:
            async with self.metrics.time(op):
                await self._connect(client)
        except DeviceError as e:
            lost.set_result(e.kind)
            self._spare = client  # __aenter__ closed it and released its lock
            raise
        self._client = client
        self.metrics.gauge(self._gauge, 1)

    async def _connect(self, client: FleetClient) -> None:
        try:
            await client.__aenter__()
        except MqttConnectError as e:
            kind = (reason_kind("connack", e.rc) if self.v5 and isinstance(e.rc, ReasonCode)
                    else connack_kind(e.rc or 0))
            raise DeviceError(kind, self.client_id) from e
        except ClosedBeforeConnack as e:
            kind = connect_failure_kind(client.last_error_log)
            if kind == "connect_failed":
                kind = "closed_before_connack"
            raise DeviceError(kind, client.last_error_log or self.client_id) from e
        except aiomqtt.MqttError as e:
            raise DeviceError(connect_failure_kind(str(e)), str(e)) from e

    def close(self) -> bool:
        """Stop reconnecting, send DISCONNECT and close without waiting when the socket takes
        it at once (the usual case). Returns whether the connection is closed; if not, await
        `__aexit__` (or `close_many`) to finish."""
        self._closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
            self._reconnector = None
        self._mark_closed()
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.release()
        client = self._client
        if client is None:
            return True
        if client.disconnect_nowait():
            self._client = None
            client.release()
            return True
        return False

    def _mark_closed(self) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result("closed")
            self.metrics.gauge(self._gauge, -1)
        self._end("closed")

    def drop(self) -> None:
        """Lose the connection as a network failure would (no DISCONNECT, no close of the
        session): with a reconnect policy the session reconnects, as after any loss."""
        if self._client is not None:
            self._client.lose_connection()

    def force_close(self) -> None:
        """Drop the socket without waiting for anything."""
        self.close()
        client, self._client = self._client, None
        if client is not None:
            client.force_close()
            client.release()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.close():
            return
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await client.__aexit__(exc_type, exc, tb)
            client.release()

    def _end(self, kind: str) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(kind)

    def _on_lost(self, lost: asyncio.Future[str], reason: int | ReasonCode | str) -> None:
        if lost.done() or lost is not self._lost:
            return
        kind = lost_kind(reason)
        lost.set_result(kind)
        self.metrics.gauge(self._gauge, -1)
        if not self._inflight:
            # Nothing in flight will raise it, so count it against what the device did last
            # (a QoS 0 publish the server refused shows up only this way).
            self.metrics.error(kind, self._last_op)
        if self.policy is None or self._closing:
            self._end(kind)
        elif self._reconnector is None:
            self._reconnector = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        assert self.policy is not None
        old, self._client = self._client, None
        if old is not None:
            old.force_close()  # the socket is gone already; this releases the rest
            self._spare = old
        attempt = 0
        try:
            while not self._closing:
                if self.policy.gives_up_after(attempt):
                    self.metrics.error(GAVE_UP, RECONNECT_OP)
                    self._end(GAVE_UP)
                    return
                await asyncio.sleep(self.policy.delay(attempt))
                attempt += 1
                try:
                    await self._open(RECONNECT_OP)
                except DeviceError:
                    continue  # counted by kind under mqtt.reconnect
                self.reconnects += 1
                self._reconnector = None  # a loss while restoring starts a new outage
                await self._restore_subscriptions()
                return
        finally:
            if self._reconnector is asyncio.current_task():
                self._reconnector = None

    async def _restore_subscriptions(self) -> None:
        for topic_filter, qos in list(self._subscriptions.items()):
            try:
                await self.subscribe(topic_filter, qos)
            except DeviceError:
                return  # counted; a new loss will restore them again

    async def wait_closed(self) -> str:
        """Until the current connection ends; returns why (`closed` when we closed it)."""
        if self._lost is None:
            raise DeviceError("not_connected", self.client_id)
        return await asyncio.shield(self._lost)

    async def wait_ended(self) -> str:
        """Until the session ends: closed, or lost with no (more) reconnecting; returns why."""
        if self._ended is None:
            raise DeviceError("not_connected", self.client_id)
        return await asyncio.shield(self._ended)

    async def wait_connected(self) -> bool:
        """Until a reconnect in progress succeeds or gives up; whether connected now."""
        task = self._reconnector
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        return self.connected

    # --- operations ------------------------------------------------------------------------

    def _current(self, op: str) -> tuple[FleetClient, asyncio.Future[str]]:
        client, lost = self._client, self._lost
        if client is None or lost is None:
            raise DeviceError("not_connected", f"{op} on {self.client_id}")
        if lost.done():
            raise DeviceError(lost.result(), f"{op} on {self.client_id}")
        return client, lost

    async def _guarded(self, op: str, call: Callable[[aiomqtt.Client], Awaitable[T]],
                       check: Callable[[T], None] | None = None) -> T:
        """Run `call(client)` timed as `op`, failing fast if the server drops the connection;
        `check` may reject the result (inside the timing, so it counts as an error only)."""
        self._last_op = op
        self._inflight += 1
        try:
            async with self.metrics.time(op):
                client, lost = self._current(op)
                task = asyncio.ensure_future(call(client))
                done, _ = await asyncio.wait({task, lost},  # type: ignore[type-var]
                                            return_when=asyncio.FIRST_COMPLETED)
                if task not in done:
                    task.cancel()
                    raise DeviceError(lost.result(), f"{op} on {self.client_id}")
                try:
                    result = task.result()
                except PublishRefused as e:  # MQTT 5 PUBACK with a failure reason code
                    assert isinstance(e.rc, ReasonCode)
                    raise DeviceError(reason_kind("puback", e.rc), str(e)) from e
                except aiomqtt.MqttError as e:
                    kind = "timeout" if "timed out" in str(e) else "mqtt_error"
                    raise DeviceError(kind, str(e)) from e
                if check is not None:
                    check(result)
                return result
        finally:
            self._inflight -= 1

    async def publish(self, topic: str, payload: bytes | str | None = None, qos: int = 0,
                      retain: bool = False) -> None:
        """QoS 0 completes when written to the socket (no suspension), QoS 1 on PUBACK."""
        if qos == 0:
            self.publish_nowait(topic, payload, retain)
            return
        await self._guarded("mqtt.publish", lambda c: c.publish(
            topic, payload, qos=qos, retain=retain, timeout=self.timeout))

    def publish_nowait(self, topic: str, payload: bytes | str | None = None,
                       retain: bool = False) -> None:
        """A QoS 0 publish, synchronously: written now, or queued behind what the socket has
        not taken yet."""
        op = self._last_op = "mqtt.publish"
        self._inflight += 1
        try:
            with self.metrics.time(op):
                client, lost = self._current(op)
                try:
                    client.publish_qos0(topic, payload, retain)
                except aiomqtt.MqttError as e:
                    raise DeviceError(lost.result() if lost.done() else "mqtt_error",
                                      str(e)) from e
                if lost.done():  # the write found the connection gone
                    raise DeviceError(lost.result(), f"{op} on {self.client_id}")
        finally:
            self._inflight -= 1

    async def subscribe(self, topic_filter: str, qos: int = 0) -> int:
        """Returns the granted QoS; a refused subscription raises `suback_refused`. With a
        reconnect policy, granted subscriptions are restored after a reconnect."""
        def refused(result: Any) -> None:
            if _granted(result) >= 0x80:
                first = result[0]
                raise DeviceError(reason_kind("suback", first) if self.v5 and isinstance(
                    first, ReasonCode) else "suback_refused", topic_filter)

        result = await self._guarded("mqtt.subscribe", lambda c: c.subscribe(
            topic_filter, qos, timeout=self.timeout), refused)
        self._subscriptions[topic_filter] = qos
        return _granted(result)

    def on_message(self, handler: MessageHandler | None) -> None:
        """Deliver arriving messages to `handler`, called on the loop as each is read (no
        queue, no task per message); None goes back to `messages()`."""
        self._handler = handler
        if self._client is not None:
            self._client.message_handler = handler

    async def messages(self) -> AsyncIterator[aiomqtt.Message]:
        """Messages as they arrive, until the session ends (across reconnects)."""
        while True:
            client = self._client
            if client is not None:
                with contextlib.suppress(aiomqtt.MqttError):
                    async for message in client.messages:
                        yield message
            if self._ended is None or self.ended or self.policy is None or self._closing:
                return
            if not await self.wait_connected() and self._reconnector is None:
                return


def _granted(suback: Any) -> int:
    first = suback[0]
    return first.value if isinstance(first, ReasonCode) else int(first)
