"""`DeviceSession`: one device's MQTT connection over mutual TLS, timed and classified.

    async with DeviceSession(identity, target, metrics, tls=factory.for_identity(identity)) as s:
        await s.publish_json("dt/telemetry", {"temp": "{seq}"}, qos=1)
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttCodeError, MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from fleetsim.device import payload as payloads
from fleetsim.device.errors import DeviceError, connack_kind, connect_failure_kind, lost_kind
from fleetsim.device.identity import DeviceIdentity
from fleetsim.device.tls import TlsContextFactory
from fleetsim.metrics import Metrics
from fleetsim.target import Target

CONNECTED_GAUGE = "devices.connected"
T = TypeVar("T")


class _ClosedBeforeConnack(MqttCodeError):
    pass


class _Client(aiomqtt.Client):
    """aiomqtt's client, plus two things it lacks (checked against aiomqtt 2.5's internals):
    a connection the server closes before CONNACK (AWS IoT's answer to an unknown or inactive
    certificate, a denied connect, or a TLS 1.3 certificate rejection) fails the connect at
    once instead of after the timeout; and a loss after CONNACK is reported to the session."""

    def __init__(self, *args: Any, on_lost: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_error_log = ""
        self._on_lost = on_lost
        self._client.on_log = self._on_log

    def _on_log(self, client: paho.Client, userdata: Any, level: int, buf: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            self.last_error_log = buf

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags,
                       reason_code: ReasonCode, properties: Any = None) -> None:
        if not self._connected.done():
            self._connected.set_exception(_ClosedBeforeConnack(reason_code, "closed"))
            return
        was_connected = self._connected.exception() is None and not self._disconnected.done()
        super()._on_disconnect(client, userdata, flags, reason_code, properties)
        # Reading the exception also marks it retrieved: aiomqtt's __aexit__ never looks at it.
        error = self._disconnected.exception() if self._disconnected.done() else None
        if was_connected and error is not None:
            self._on_lost(reason_code)


class DeviceSession:
    """An async context manager: connects on enter ("mqtt.connect" timed into `metrics`),
    disconnects on exit. Failures raise `DeviceError` with the kind recorded."""

    def __init__(self, identity: DeviceIdentity, target: Target, metrics: Metrics | None = None,
                 *, tls: ssl.SSLContext | None = None, client_id: str | None = None,
                 keepalive: int = 60, timeout: float = 10.0, clean_session: bool = True,
                 max_queued_incoming: int = 0):
        self.identity = identity
        self.target = target
        self.metrics = metrics or Metrics()
        self.client_id = client_id or identity.thing_name
        self.timeout = timeout
        self._tls = tls
        self._keepalive = keepalive
        self._clean_session = clean_session
        self._max_queued = max_queued_incoming
        self._client: _Client | None = None
        self._lost: asyncio.Future[str] | None = None
        self._inflight = 0
        self._last_op = "mqtt.connect"
        self._seq = 0

    # --- connection ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and self._lost is not None and not self._lost.done()

    @property
    def client(self) -> aiomqtt.Client:
        """The aiomqtt client, for what this class does not wrap."""
        if self._client is None:
            raise DeviceError("not_connected", self.identity.thing_name)
        return self._client

    async def __aenter__(self) -> DeviceSession:
        tls = self._tls or TlsContextFactory(self.target).for_identity(self.identity)
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        client = _Client(self.target.mqtt_host, self.target.mqtt_port,
                         identifier=self.client_id, tls_context=tls,
                         keepalive=self._keepalive, timeout=self.timeout,
                         clean_session=self._clean_session,
                         max_queued_incoming_messages=self._max_queued,
                         on_lost=self._on_lost)
        client._client.connect_timeout = self.timeout  # paho's TCP+TLS connect; aiomqtt hides it
        try:
            async with self.metrics.time("mqtt.connect"):
                await self._connect(client)
        except DeviceError as e:
            self._lost.set_result(e.kind)
            raise
        self._client = client
        self.metrics.gauge(CONNECTED_GAUGE, 1)
        return self

    async def _connect(self, client: _Client) -> None:
        try:
            await client.__aenter__()
        except MqttConnectError as e:
            raise DeviceError(connack_kind(e.rc or 0), self.client_id) from e
        except _ClosedBeforeConnack as e:
            kind = connect_failure_kind(client.last_error_log)
            if kind == "connect_failed":
                kind = "closed_before_connack"
            raise DeviceError(kind, client.last_error_log or self.client_id) from e
        except aiomqtt.MqttError as e:
            raise DeviceError(connect_failure_kind(str(e)), str(e)) from e

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._lost is not None and not self._lost.done():
            self._lost.set_result("closed")
            self.metrics.gauge(CONNECTED_GAUGE, -1)
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            await asyncio.wait_for(client.__aexit__(exc_type, exc, tb), self.timeout)

    def _on_lost(self, reason: int | ReasonCode) -> None:
        if self._lost is None or self._lost.done():
            return
        kind = lost_kind(reason)
        self._lost.set_result(kind)
        self.metrics.gauge(CONNECTED_GAUGE, -1)
        if not self._inflight:
            # Nothing in flight will raise it, so count it against what the device did last
            # (a QoS 0 publish the server refused shows up only this way).
            self.metrics.error(kind, self._last_op)

    async def wait_closed(self) -> str:
        """Until the connection ends; returns why (`closed` when we closed it)."""
        if self._lost is None:
            raise DeviceError("not_connected", self.client_id)
        return await asyncio.shield(self._lost)

    async def _guarded(self, op: str, call: Callable[[aiomqtt.Client], Awaitable[T]],
                       check: Callable[[T], None] | None = None) -> T:
        """Run `call(client)` timed as `op`, failing fast if the server drops the connection;
        `check` may reject the result (inside the timing, so it counts as an error only)."""
        self._last_op = op
        self._inflight += 1
        try:
            async with self.metrics.time(op):
                if self._client is None or self._lost is None:
                    raise DeviceError("not_connected", f"{op} on {self.client_id}")
                if self._lost.done():
                    raise DeviceError(self._lost.result(), f"{op} on {self.client_id}")
                task = asyncio.ensure_future(call(self._client))
                done, _ = await asyncio.wait({task, self._lost},
                                             return_when=asyncio.FIRST_COMPLETED)
                if task not in done:
                    task.cancel()
                    raise DeviceError(self._lost.result(), f"{op} on {self.client_id}")
                try:
                    result = task.result()
                except aiomqtt.MqttError as e:
                    kind = "timeout" if "timed out" in str(e) else "mqtt_error"
                    raise DeviceError(kind, str(e)) from e
                if check is not None:
                    check(result)
                return result
        finally:
            self._inflight -= 1

    # --- operations ------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes | str | None = None, qos: int = 0,
                      retain: bool = False) -> None:
        """QoS 0 completes when written to the socket, QoS 1 on PUBACK."""
        await self._guarded("mqtt.publish", lambda c: c.publish(
            topic, payload, qos=qos, retain=retain, timeout=self.timeout))

    async def publish_json(self, topic: str, template: Any,
                           variables: Mapping[str, Any] | None = None, qos: int = 0,
                           retain: bool = False, stamp: bool = True) -> dict[str, Any]:
        """Render `template` (see `payload.render`) with thing_name, index, seq, ts_ms and
        `variables`, stamp its send time and publish it; returns what was sent."""
        self._seq += 1
        values = {"thing_name": self.identity.thing_name, "client_id": self.client_id,
                  "index": self.identity.index, "seq": self._seq,
                  "ts_ms": time.time_ns() // 1_000_000, **(variables or {})}
        body = payloads.render(template, values)
        data = payloads.encode(body, stamp=stamp)
        await self.publish(topic, data, qos=qos, retain=retain)
        return body

    async def subscribe(self, topic_filter: str, qos: int = 0) -> int:
        """Returns the granted QoS; a refused subscription raises `suback_refused`."""
        def refused(result: Any) -> None:
            if _granted(result) >= 0x80:
                raise DeviceError("suback_refused", topic_filter)

        result = await self._guarded("mqtt.subscribe", lambda c: c.subscribe(
            topic_filter, qos, timeout=self.timeout), refused)
        return _granted(result)

    async def messages(self) -> AsyncIterator[aiomqtt.Message]:
        """Messages as they arrive, until the connection ends."""
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self.client.messages:
                yield message


def _granted(suback: Any) -> int:
    first = suback[0]
    return first.value if isinstance(first, ReasonCode) else int(first)
