"""Helpers for tests of the broker and of what runs on it: an in-memory Authority, device
identities issued by local core's CA, and a raw MQTT 3.1.1 client for wire-level assertions.
Test code: it lives under tests/, not in the product package."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiomqtt
from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.localcore.broker import codec
from fleetsim.localcore.broker.server import Broker
from fleetsim.localcore.ca import LocalCA
from fleetsim.localcore.policy_document import ALLOW_ALL_DOCUMENT
from fleetsim.localcore.principal import Principal, ThingInfo
from fleetsim.localcore.servertls import server_context
from fleetsim.pki import (
    CertificateAuthority,
    certificate_id,
    certificate_pem,
    generate_key,
    private_key_pem,
    write_private,
)

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class StaticAuthority:
    """A registry reduced to a dict: DER certificate → Principal."""

    def __init__(self) -> None:
        self._principals: dict[bytes, Principal] = {}
        self._epoch = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    def principal_for_certificate(self, cert_der: bytes) -> Principal | None:
        return self._principals.get(cert_der)

    def register(self, device: Device, status: str = "ACTIVE",
                 policies: tuple[dict[str, Any], ...] = (ALLOW_ALL_DOCUMENT,),
                 things: tuple[ThingInfo, ...] = ()) -> Principal:
        return self.register_der(device.cert_der, device.common_name, status, policies, things)

    def register_der(self, cert_der: bytes, common_name: str, status: str = "ACTIVE",
                     policies: tuple[dict[str, Any], ...] = (ALLOW_ALL_DOCUMENT,),
                     things: tuple[ThingInfo, ...] = ()) -> Principal:
        """Register certificate bytes as they are (the broker only hashes and looks them up)."""
        cert_id = certificate_id(cert_der)
        principal = Principal(cert_id, f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:cert/{cert_id}",
                              status, common_name, things=things, certificate_policies=policies)
        self._principals[cert_der] = principal
        self._epoch += 1
        return principal

    def update(self, device: Device, **changes: Any) -> None:
        self._principals[device.cert_der] = replace(self._principals[device.cert_der], **changes)
        self._epoch += 1



class FaultyPolicy(dict[str, Any]):
    """A policy document that fails when read: stands in for any fault inside authorization
    (the evaluator itself never raises on a JSON document), to show such a fault costs one
    connection only."""

    def _fault(self, *args: object) -> Any:
        raise RuntimeError("injected authorization fault")

    __getitem__ = get = items = keys = values = __iter__ = _fault


BREAKS_EVALUATOR = FaultyPolicy({"Version": "2012-10-17", "Statement": []})

@dataclass
class Device:
    name: str
    cert_path: Path
    key_path: Path
    cert_der: bytes
    common_name: str
    root_ca: Path
    _context: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def certificate_id(self) -> str:
        return certificate_id(self.cert_der)

    def ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            ctx = ssl.create_default_context(cafile=str(self.root_ca))
            ctx.load_cert_chain(self.cert_path, self.key_path)
            self._context = ctx
        return self._context


def issue_device(directory: Path, name: str, issuer: CertificateAuthority, root_ca: Path,
                 common_name: str | None = None) -> Device:
    key = generate_key("ec-p256")
    cert = issuer.issue_device(key.public_key(), common_name or name)
    cert_path, key_path = directory / f"{name}.certificate.pem", directory / f"{name}.private.key"
    cert_path.write_bytes(certificate_pem(cert))
    write_private(key_path, private_key_pem(key))
    return Device(name, cert_path, key_path, cert.public_bytes(Encoding.DER),
                  common_name or name, root_ca)


class RawClient:
    """MQTT 3.1.1 over TLS, one packet at a time, for asserting exactly what the broker sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, device: Device, host: str = "127.0.0.1") -> RawClient:
        reader, writer = await asyncio.open_connection(host, port, ssl=device.ssl_context(),
                                                       server_hostname=host)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, timeout: float = 3.0) -> tuple[int, bytes] | None:
        """(first byte, body) of the next packet, or None when the broker closed."""
        try:
            first = await asyncio.wait_for(self.reader.readexactly(1), timeout)
            length, shift = 0, 0
            while True:
                byte = (await asyncio.wait_for(self.reader.readexactly(1), timeout))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            body = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return None
        return first[0], body

    async def connect(self, client_id: str, clean: bool = True, keepalive: int = 60,
                      will: codec.Will | None = None) -> tuple[int, bytes] | None:
        await self.send(codec.encode_connect(client_id, keepalive, clean, will))
        return await self.read()

    async def close(self) -> None:
        self.writer.close()
        with suppress(TimeoutError, ConnectionError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


@dataclass
class Env:
    """A running broker with its registry and CA, for tests."""

    broker: Broker
    authority: StaticAuthority
    ca: LocalCA
    port: int
    tmp: Path

    def device(self, name: str, *, register: bool = True, status: str = "ACTIVE",
               policies: tuple[dict[str, Any], ...] = (ALLOW_ALL_DOCUMENT,),
               things: tuple[ThingInfo, ...] = ()) -> Device:
        device = issue_device(self.tmp, name, self.ca.authority, self.ca.root_ca_path)
        if register:
            self.authority.register(device, status, policies, things)
        return device

    async def raw(self, device: Device, client_id: str | None = None,
                  clean: bool = True) -> RawClient:
        """A raw client, connected and CONNACKed (asserted)."""
        client = await RawClient.open(self.port, device)
        reply = await client.connect(client_id or device.name, clean)
        assert reply is not None and reply[0] == 0x20 and reply[1][1] == 0, reply
        return client

    def aiomqtt(self, device: Device, client_id: str | None = None) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", self.port, identifier=client_id or device.name,
                              tls_context=device.ssl_context(), timeout=5)


@asynccontextmanager
async def running_broker(tmp_path: Path, tls: str | None = None) -> AsyncIterator[Env]:
    """A broker on 127.0.0.1; `tls` names its TLS backend (default: `$FLEETSIM_LOCAL_TLS`)."""
    ca = LocalCA.load_or_create(tmp_path / "core")
    authority = StaticAuthority()
    broker = Broker(authority, server_context(ca, tls), ACCOUNT_ID, REGION)
    port = await broker.start("127.0.0.1", 0)
    try:
        yield Env(broker, authority, ca, port, tmp_path)
    finally:
        await broker.stop()


def client_hello() -> bytes:
    """The first flight of a TLS client (a ClientHello), for clients that stop right there."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def pub(topic: str, payload: bytes, qos: int = 0, retain: bool = False, pid: int = 1) -> bytes:
    """A PUBLISH packet as a client sends it."""
    return codec.publish(codec.encode_topic(topic), payload, qos, retain, packet_id=pid)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def stmt(effect: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Effect": effect, "Action": actions, "Resource": resources}


async def subscribe(client: RawClient, *filters: tuple[str, int], packet_id: int = 1) -> bytes:
    """SUBSCRIBE and return the SUBACK return codes."""
    await client.send(codec.encode_subscribe(packet_id, list(filters)))
    reply = await client.read()
    assert reply is not None and reply[0] == 0x90, reply
    return reply[1][2:]


def split_packet(packet: bytes) -> tuple[int, bytes]:
    """(first byte, body) of `packet`, one whole packet (asserted)."""
    header = codec.frame_header(packet, 0, 1 << 20)
    assert header is not None
    start, length = header
    assert start + length == len(packet)
    return packet[0], packet[start:]


async def next_packet(client: RawClient, kind: int, timeout: float = 3.0
                      ) -> tuple[int, bytes] | None:
    """(first byte, body) of the next packet of type `kind` (MQTT 3.1.1 or 5), skipping other
    packets; None on timeout or close."""
    while True:
        try:
            packet = await client.read(timeout)
        except TimeoutError:
            return None
        if packet is None:
            return None
        if packet[0] >> 4 == kind:
            return packet


async def next_publish(client: RawClient, timeout: float = 3.0
                       ) -> tuple[str, bytes, int, bool, bool, int] | None:
    """(topic, payload, qos, retain, dup, packet id) of the next PUBLISH, skipping other
    packets; None on timeout or close."""
    packet = await next_packet(client, codec.PUBLISH, timeout)
    if packet is None:
        return None
    first, body = packet
    topic, payload, qos, retain, pid = codec.decode_publish(first & 0x0F, body)
    return topic, payload, qos, retain, bool(first & 0x08), pid
