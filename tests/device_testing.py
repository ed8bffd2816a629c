"""Devices for integration tests against a running local core: a thing with an active
certificate and a policy (`provision`), and a stock MQTT client (aiomqtt, i.e. paho) that
queues what it receives (`Device`, opened by the `connect` fixture's function)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt

from fleetsim.localcore.launcher import RunningLocalCore
from tests.helpers import ALLOW_ALL


def provision(iot: Any, tmp: Path, root_ca: Path, thing: str,
              policy: str = ALLOW_ALL) -> tuple[ssl.SSLContext, Path, Path]:
    """Create `thing`, an active certificate (files in `tmp`, key 0600) attached to it and a
    policy; the TLS context to connect as it, and the certificate and key paths."""
    iot.create_thing(thingName=thing)
    keys = iot.create_keys_and_certificate(setAsActive=True)
    cert, key = tmp / f"{thing}.pem", tmp / f"{thing}.key"
    cert.write_text(keys["certificatePem"])
    key.write_text(keys["keyPair"]["PrivateKey"])
    key.chmod(0o600)
    iot.create_policy(policyName=f"{thing}-policy", policyDocument=policy)
    iot.attach_policy(policyName=f"{thing}-policy", target=keys["certificateArn"])
    iot.attach_thing_principal(thingName=thing, principal=keys["certificateArn"])
    ctx = ssl.create_default_context(cafile=str(root_ca))
    ctx.load_cert_chain(cert, key)
    return ctx, cert, key


class Device:
    """An aiomqtt client and what it received, by topic (JSON payloads)."""

    def __init__(self, client: aiomqtt.Client):
        self.client = client
        self.received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            await self.received.put((message.topic.value, json.loads(message.payload)))

    async def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def expect(self, *topics: str, timeout: float = 10.0) -> tuple[str, dict[str, Any]]:
        """The next message on one of `topics` (others before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            topic, payload = await self.next(max(0.01, deadline - time.monotonic()))
            if topic in topics:
                return topic, payload

    async def publish(self, topic: str, document: dict[str, Any] | bytes) -> None:
        payload = document if isinstance(document, bytes) else json.dumps(document).encode()
        await self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self._reader.cancel()


Connect = Callable[..., Awaitable[Device]]


@asynccontextmanager
async def devices(core: RunningLocalCore) -> AsyncIterator[Connect]:
    """`open_device(client_id, ssl_context, *filters)`; every device is closed at the end."""
    stack: list[tuple[aiomqtt.Client, Device]] = []

    async def open_device(client_id: str, ctx: ssl.SSLContext, *filters: str) -> Device:
        client = aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier=client_id,
                                tls_context=ctx, timeout=10)
        await client.__aenter__()
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        device = Device(client)
        stack.append((client, device))
        return device

    yield open_device
    for client, device in reversed(stack):
        device.close()
        await client.__aexit__(None, None, None)
