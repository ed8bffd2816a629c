"""The QoS 0 fast path writes the very bytes paho would, and hands paho what the socket
does not take."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import _ConnectionState

from fleetsim.device.qos0 import remaining_length, try_write


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


def connected(sock: socket.socket) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dev")
    client._sock = sock
    client._state = _ConnectionState.MQTT_CS_CONNECTED
    return client


def drain(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


@given(st.integers(0, 268_435_455))
def test_remaining_length_round_trips(n: int) -> None:
    encoded = remaining_length(n)
    value = sum((b & 0x7F) << (7 * i) for i, b in enumerate(encoded))
    assert value == n and len(encoded) <= 4 and all(b & 0x80 for b in encoded[:-1])


@pytest.mark.parametrize("size", [0, 1, 120, 121, 122, 16_370, 16_380, 16_400, 70_000])
@pytest.mark.parametrize("retain", [False, True])
def test_same_bytes_as_paho(pair: tuple[socket.socket, socket.socket], size: int,
                            retain: bool) -> None:
    a, b = pair
    payload = bytes(i % 251 for i in range(size))
    topic = "dt/sensors/dev-0001/telemetry"
    ours = connected(a)
    assert try_write(ours, topic, payload, retain)
    a_bytes = drain(b)
    while ours._out_packet:  # a large payload may not fit the socket buffer at once
        ours.loop_write()
        a_bytes += drain(b)
    theirs = connected(a)
    theirs.publish(topic, payload, 0, retain)
    paho_bytes = drain(b)
    while theirs._out_packet:
        theirs.loop_write()
        paho_bytes += drain(b)
    assert a_bytes == paho_bytes


def test_left_to_paho_when_something_is_queued_or_not_connected(
        pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    client = connected(a)
    client._out_packet.append({"command": 0xC0, "mid": 0, "qos": 0, "pos": 0,
                               "to_process": 2, "packet": b"\xc0\x00", "info": None})
    assert not try_write(client, "t", b"x", False)  # order: behind what waits
    client._out_packet.clear()
    assert not try_write(client, "t/+", b"x", False)  # paho refuses wildcards
    client._state = _ConnectionState.MQTT_CS_DISCONNECTING
    assert not try_write(client, "t", b"x", False)
    assert drain(b) == b""


def test_what_the_socket_does_not_take_is_queued_for_paho(
        pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair

    class Full:
        def send(self, data: bytes) -> int:
            raise BlockingIOError

    client = connected(a)
    client._sock = Full()  # type: ignore[assignment]
    assert try_write(client, "t", b"hello", False)
    [queued] = client._out_packet
    assert queued["packet"] == b"\x30\x08\x00\x01thello" and queued["pos"] == 0
    client._sock = a
    client.loop_write()  # paho writes it and marks it published
    assert drain(b) == b"\x30\x08\x00\x01thello" and not client._out_packet
