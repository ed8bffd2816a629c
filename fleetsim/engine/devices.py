"""The engine's use of `fleetsim.device`: identities on disk, sessions, the observer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetsim.device import (
    DeviceError,
    DeviceIdentity,
    DeviceSession,
    IdentityStore,
    Observer,
    TlsContextFactory,
)
from fleetsim.device.fleet import close_many
from fleetsim.engine.context import Device, MessageHandler, RunContext
from fleetsim.engine.preloaded import NOT_PRELOADED
from fleetsim.errors import UserError

if TYPE_CHECKING:
    import aiomqtt

OBSERVER_FLEET = "observer"
OBSERVER_GAUGE = "observer.connected"
_HINTS = {
    "disconnected_by_server": ": the broker closed the connection, which is how AWS IoT answers "
                              "a publish its policies do not allow (iot:Publish on the topic)",
    "closed_before_connack": ": the broker closed the connection before accepting it, which is "
                             "how AWS IoT answers an unknown or inactive certificate or a "
                             "denied iot:Connect",
}


def tls_factory(ctx: RunContext) -> TlsContextFactory:
    if ctx.tls is None:
        # Parses the server CA bundle once per run.
        ctx.tls = TlsContextFactory(ctx.target, backend=ctx.scenario.target.tls_backend)
    return ctx.tls


def save_identity(ctx: RunContext, device: Device, key_pem: bytes,
                  certificate_pem: str) -> DeviceIdentity:
    identity = DeviceIdentity(device.fleet.name, device.index, device.thing_name,
                              device.fleet.key_type, key_pem
                              ).with_certificate(certificate_pem, device.certificate_arn)
    return IdentityStore(ctx.identities_dir, device.fleet.name).save(identity)


def load_identity(ctx: RunContext, device: Device) -> DeviceIdentity | None:
    """The device's stored identity (None: nothing stored): read before the API child forked
    (engine/preloaded.py) the first time it is asked for there, else from its files."""
    if ctx.preloaded is not None:
        found = ctx.preloaded.take(device.fleet.name, device.thing_name)
        if found is not NOT_PRELOADED:
            return found
    return _store(ctx.identities_dir, device.fleet.name).load_if_stored(device.thing_name)


@functools.lru_cache(maxsize=64)
def _store(identities_dir: Path, fleet: str) -> IdentityStore:
    """The store of a fleet (one per fleet, not one per device loaded)."""
    return IdentityStore(identities_dir, fleet)


def require_certificate(device: Device) -> str:
    if device.certificate_arn is None or device.identity is None:
        raise UserError(f"{device.thing_name} has no certificate yet: add a "
                        "'create_keys_and_certificate' step before this one")
    return device.certificate_arn


def _session(device: Device) -> DeviceSession:
    if device.session is None:
        raise UserError(f"{device.thing_name} is not connected: add a 'connect' step before "
                        "this one")
    return device.session


async def connect(ctx: RunContext, device: Device, client_id: str, timeout: float,
                  reconnect: bool = False) -> DeviceSession:
    require_certificate(device)
    assert device.identity is not None
    # The device's TLS prepared as it connects (its key and certificate read and, with the
    # openssl backend, decoded in its own turn of the paced schedule), not the whole fleet's
    # before the first connect; a damaged file then fails that device alone.
    session = DeviceSession(device.identity, ctx.target, ctx.metrics,
                            tls=tls_factory(ctx).device_tls(device.identity),
                            client_id=client_id, timeout=timeout, reconnect=reconnect,
                            protocol=device.fleet.protocol,
                            session_expiry=device.fleet.session_expiry)
    try:
        return await session.__aenter__()
    except DeviceError as e:
        raise UserError(f"{device.thing_name} could not connect to {ctx.target.mqtt_host}:"
                        f"{ctx.target.mqtt_port} ({e.kind}){_HINTS.get(e.kind, '')}") from e


async def publish(ctx: RunContext, device: Device, topic: str, payload: bytes,
                  qos: int) -> None:
    try:
        await _session(device).publish(topic, payload, qos=qos)
    except DeviceError as e:
        hint = _HINTS.get(e.kind, "")
        raise UserError(f"{device.thing_name} could not publish to {topic} "
                        f"({e.kind}){hint}") from e


async def subscribe(ctx: RunContext, device: Device, topics: list[str], qos: int) -> None:
    session = _session(device)
    for topic in topics:
        try:
            await session.subscribe(topic, qos)
        except DeviceError as e:
            raise UserError(f"{device.thing_name} could not subscribe to {topic} "
                            f"({e.kind})") from e
    listen(device, lambda _topic, _payload: ctx.metrics.incr("messages.received.devices"))


def listen(device: Device, handler: MessageHandler) -> None:
    """Hand `handler` every message the device receives from now on, beside its other
    behaviours' handlers (a session has one handler: this fans out)."""
    session = _session(device)
    handlers = device.handlers
    if handlers is None:
        handlers = device.handlers = []
    if not handlers:
        def dispatch(message: aiomqtt.Message) -> None:
            payload = message.payload
            body = payload if isinstance(payload, bytes) else (
                str(payload).encode() if payload is not None else b"")
            topic = str(message.topic)
            for h in list(handlers):
                h(topic, body)

        session.on_message(dispatch)
    handlers.append(handler)


async def disconnect_many(devices: list[Device]) -> None:
    sessions = [d.session for d in devices if d.session is not None]
    for d in devices:
        for reporter in (d.shadows or {}).values():
            reporter.close()
        if d.job_agent is not None:
            d.job_agent.close()
        d.session, d.handlers, d.shadows, d.job_agent = None, None, None, None
    await close_many(sessions)


async def stop_background(ctx: RunContext, fleet: str | None = None) -> None:
    """Stop the background behaviours of one fleet (at its disconnect) or of all."""
    names = [fleet] if fleet is not None else list(ctx.background)
    tasks = [t for name in names for t in ctx.background.pop(name, [])]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def observer_identity(ctx: RunContext) -> DeviceIdentity:
    """The observer's identity: its key is kept on disk and reused by every run of the
    scenario (one per scenario, whatever the number of runs), or made if there is none."""
    store = IdentityStore(ctx.identities_dir, OBSERVER_FLEET)
    if store.exists(OBSERVER_FLEET):
        with contextlib.suppress(OSError, ValueError, KeyError):
            stored = store.load(OBSERVER_FLEET)
            return DeviceIdentity(OBSERVER_FLEET, 0, OBSERVER_FLEET, stored.key_type,
                                  stored.private_key_pem)
    return await ctx.keys.new_identity(OBSERVER_FLEET, 0, OBSERVER_FLEET, "ec-p256")


async def start_observer(ctx: RunContext, client_id: str, identity: DeviceIdentity,
                         created: dict[str, Any], topics: list[str], qos: int) -> Observer:
    """Connect the observer with the certificate `created` for `identity`'s key."""
    identity = identity.with_certificate(created["certificatePem"], created["certificateArn"])
    identity = IdentityStore(ctx.identities_dir, OBSERVER_FLEET).save(identity)
    session = DeviceSession(identity, ctx.target, ctx.metrics,
                            tls=tls_factory(ctx).device_tls(identity), client_id=client_id,
                            connected_gauge=OBSERVER_GAUGE)  # not a device of the fleet
    try:
        await session.__aenter__()
        observer = Observer(session, topics, ctx.metrics, qos=qos)
        await observer.__aenter__()
    except DeviceError as e:
        await session.__aexit__(None, None, None)
        raise UserError(f"the observer could not connect and subscribe to "
                        f"{', '.join(topics)}: {e}") from e
    return observer


async def close_all(ctx: RunContext) -> None:
    """Disconnect every device and the observer (also after a failure or Ctrl-C)."""
    await stop_background(ctx)
    await disconnect_many([d for devices in ctx.devices.values() for d in devices])
    ctx.keys.close()
    observer, ctx.observer = ctx.observer, None
    if observer is not None:
        with contextlib.suppress(Exception):
            await observer.__aexit__(None, None, None)
            await observer.session.__aexit__(None, None, None)
