"""MQTT 3.1.1 CONNECT written and CONNACK read without paho (`connect311`): the very bytes
paho would send, and a device's connect against a scripted TLS server on 127.0.0.1 failing
and succeeding as the paho path does (refusal codes, a close before CONNACK, bytes that
follow CONNACK in the same TLS record)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from aiomqtt.exceptions import MqttConnectError
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.device.client import ClosedBeforeConnack, FleetClient
from fleetsim.device.connect311 import connect_packet, parse_connack
from fleetsim.device.errors import connack_kind
from fleetsim.pki import CertificateAuthority, certificate_pem, private_key_pem

pytestmark = pytest.mark.timeout(30)
CA = CertificateAuthority.create("unit CA")


def paho_connect(client_id: str, keepalive: int, clean_session: bool) -> bytes:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean_session)
    sent: list[bytes] = []
    client._packet_queue = lambda command, packet, mid, qos, info=None: (  # type: ignore[method-assign]
        sent.append(bytes(packet)) or paho.MQTT_ERR_SUCCESS)
    client._send_connect(keepalive)
    return sent[0]


@given(st.text(min_size=1, max_size=300), st.integers(0, 65_535), st.booleans())
def test_connect_is_the_packet_paho_sends(client_id: str, keepalive: int, clean: bool) -> None:
    assert connect_packet(client_id.encode(), keepalive, clean) == paho_connect(
        client_id, keepalive, clean)


def test_connack_flags_and_codes() -> None:
    assert parse_connack(b"\x20\x02\x00\x00") == (False, 0)
    assert parse_connack(b"\x20\x02\x01\x00") == (True, 0)
    assert parse_connack(b"\x20\x02\x00\x05") == (False, 5)
    for wrong in (b"\x30\x02\x00\x00", b"\x20\x03\x00\x00", b"\x20\x02\x02\x00", b"\x20\x02"):
        with pytest.raises(ValueError, match="CONNACK"):
            parse_connack(wrong)


# --- against a scripted server -------------------------------------------------------------

Script = Callable[[ssl.SSLSocket, bytes], None]  # (connection, the CONNECT it read)


@pytest.fixture
def server_tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = CA.issue_server(["localhost"])
    (tmp_path / "s.pem").write_bytes(certificate_pem(cert) + private_key_pem(key))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "s.pem")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=certificate_pem(CA.cert).decode())
    return server, client


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def serve(listener: socket.socket, ctx: ssl.SSLContext, script: Script) -> threading.Thread:
    def run() -> None:
        raw, _ = listener.accept()
        with contextlib.suppress(OSError), ctx.wrap_socket(raw, server_side=True) as tls:
            connect = tls.recv(1024)
            script(tls, connect)  # the device's side is what is tested

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def device(listener: socket.socket, client_tls: ssl.SSLContext) -> FleetClient:
    return FleetClient("localhost", listener.getsockname()[1], identifier="dev-1",
                       tls_context=client_tls, keepalive=30, timeout=5,
                       on_lost=lambda reason: None)


async def test_a_refusing_connack_fails_as_through_paho(
        listener: socket.socket, server_tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    got: list[bytes] = []

    def refuse(tls: ssl.SSLSocket, connect: bytes) -> None:
        got.append(connect)
        tls.sendall(b"\x20\x02\x00\x05")  # not authorized

    thread = serve(listener, server_tls[0], refuse)
    with pytest.raises(MqttConnectError) as caught:
        await device(listener, server_tls[1]).__aenter__()
    thread.join(5)
    assert got == [connect_packet(b"dev-1", 30, True)]
    assert connack_kind(caught.value.rc or 0) == "connack_5"


async def test_a_close_before_connack_is_closed_before_connack(
        listener: socket.socket, server_tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    thread = serve(listener, server_tls[0], lambda tls, connect: tls.unwrap())
    with pytest.raises(ClosedBeforeConnack):
        await device(listener, server_tls[1]).__aenter__()
    thread.join(5)


async def test_a_message_in_the_connacks_record_reaches_the_handler(
        listener: socket.socket, server_tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    # CONNACK and a QoS 0 PUBLISH in one write, so one TLS record: after CONNACK is read, the
    # PUBLISH waits decrypted in OpenSSL, where the socket's readiness does not show it.
    publish = b"\x30\x0b\x00\x03a/bhello!"
    done = threading.Event()

    def accept_and_publish(tls: ssl.SSLSocket, connect: bytes) -> None:
        tls.sendall(b"\x20\x02\x00\x00" + publish)
        done.wait(5)

    thread = serve(listener, server_tls[0], accept_and_publish)
    client = device(listener, server_tls[1])
    arrived: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
    client.message_handler = arrived.put_nowait
    await client.__aenter__()
    try:
        message = await asyncio.wait_for(arrived.get(), 5)
        assert (str(message.topic), message.payload) == ("a/b", b"hello!")
        assert client._client.is_connected()
    finally:
        done.set()
        client.force_close()
        thread.join(5)


async def test_paho_keeps_the_connection_alive_after_taking_it_over(
        listener: socket.socket, server_tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    pings: list[bytes] = []
    answered, done = threading.Event(), threading.Event()

    def accept_and_answer_a_ping(tls: ssl.SSLSocket, connect: bytes) -> None:
        tls.sendall(b"\x20\x02\x00\x00")
        pings.append(tls.recv(2))  # PINGREQ, once the keep-alive has passed without traffic
        tls.sendall(b"\xd0\x00")  # PINGRESP
        answered.set()
        done.wait(5)

    thread = serve(listener, server_tls[0], accept_and_answer_a_ping)
    client = FleetClient("localhost", listener.getsockname()[1], identifier="dev-1",
                         tls_context=server_tls[1], keepalive=1, timeout=5,
                         on_lost=lambda reason: None)
    await client.__aenter__()
    try:
        await asyncio.to_thread(answered.wait, 5)  # the loop runs paho's keep-alive meanwhile
        assert pings == [b"\xc0\x00"]
        await asyncio.sleep(0.2)  # PINGRESP read
        assert client._client.is_connected() and client._client._ping_t == 0
    finally:
        done.set()
        client.force_close()
        thread.join(5)
