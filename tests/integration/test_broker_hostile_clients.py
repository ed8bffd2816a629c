"""Clients that never finish: abandoned TLS handshakes leave nothing behind and their memory is
given back; a client dribbling one-byte TLS records is closed by the connect timeout while the
others are served (issue 8; what they cost is measured by `python -m bench broker-hardening`)."""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.broker import codec, preconnect
from fleetsim.localcore.broker.connection import Connection
from tests.mqtt_fuzz import FakeTransport
from tests.mqtt_testing import (
    Env,
    RawClient,
    client_hello,
    next_publish,
    running_broker,
    subscribe,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_broker(tmp_path) as running:
        running.broker.sweep_interval = 0.1
        yield running


async def abandon_handshake(port: int, hello: bytes) -> None:
    """Send a ClientHello, then nothing: the server's handshake timeout ends it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(hello)
    await writer.drain()
    while await reader.read(65536):  # the server's first flight, then its close
        pass
    writer.close()


def live_connections() -> int:
    gc.collect()
    return sum(isinstance(o, Connection) for o in gc.get_objects())


async def test_abandoned_handshakes_leave_nothing_and_their_memory_is_returned(env: Env):
    # Close after the server's timeout handshakes that do not complete (no certificate needed).
    await env.broker.stop()
    env.broker.handshake_timeout = 0.5
    env.port = await env.broker.start("127.0.0.1", 0)
    env.broker.trim_after_connections, env.broker.min_trim_interval = 150, 0.0
    env.broker.quiet_before_trim = 0.2
    before, trims = live_connections(), env.broker.memory_trims
    hello = client_hello()
    await asyncio.wait_for(asyncio.gather(*(abandon_handshake(env.port, hello)
                                            for _ in range(200))), 30)
    while env.broker.memory_trims == trims:  # once 150 of them have timed out and been freed
        # (asyncio's own SSL protocol, unlike uvloop's, leaves a failed handshake in a
        # reference cycle on Python 3.11: the cycle collector frees it.)
        gc.collect()
        await asyncio.sleep(0.1)
    assert not env.broker.connections and not env.broker.clients
    assert live_connections() <= before  # no Connection (nor what it holds) survives
    # and the broker still serves
    client = await env.raw(env.device("dev"))
    await client.send(b"\xc0\x00")
    assert await client.read() == (0xD0, b"")


async def test_a_client_dribbling_one_byte_records_is_dropped_and_others_are_served(env: Env):
    env.broker.connect_timeout = 1.0
    subscriber = await env.raw(env.device("subscriber"))
    await subscribe(subscriber, ("fleet/x", 1))
    publisher = await env.raw(env.device("publisher"))
    dribbler = await RawClient.open(env.port, env.device("dribbler"))
    # A CONNECT announcing 100 KB, sent one byte per TLS record, never finished in time.
    connect = b"\x10" + codec.encode_length(100_000) + codec.encode_topic("MQTT")
    stream = connect + b"\x04" * 100_000

    async def dribble() -> None:
        for i in range(len(stream)):
            dribbler.writer.write(stream[i:i + 1])  # one write, one TLS record
            await dribbler.writer.drain()
            await asyncio.sleep(0.002)

    task = asyncio.create_task(dribble())
    try:
        for i in range(5):  # served meanwhile
            await publisher.send(codec.publish(codec.encode_topic("fleet/x"), b"m", 1,
                                               packet_id=i + 1))
            assert await publisher.read() == (0x40, bytes((0, i + 1)))
            got = await next_publish(subscriber)
            assert got is not None and got[1] == b"m"
            await subscriber.send(codec.puback(got[5]))
        assert await dribbler.read(timeout=10) is None  # the connect timeout closed it
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert set(env.broker.clients) == {"subscriber", "publisher"}


async def test_a_packet_dribbled_a_byte_at_a_time_is_handled_once_complete(env: Env):
    """In process: a 100 KB PUBLISH fed one byte per data_received is delivered intact."""
    subscriber = await env.raw(env.device("subscriber"))
    await subscribe(subscriber, ("fleet/big", 0))
    env.authority.register_der(b"slow-cert", "slow")
    transport = FakeTransport(b"slow-cert", asyncio.get_running_loop())
    conn = transport.conn = Connection(env.broker)
    conn.connection_made(transport)  # type: ignore[arg-type]
    payload = bytes(range(256)) * 400
    stream = codec.encode_connect("slow") + codec.publish(codec.encode_topic("fleet/big"),
                                                          payload)
    for i in range(len(stream)):
        conn.data_received(stream[i:i + 1])
    got = await next_publish(subscriber)
    assert got is not None and got[:2] == ("fleet/big", payload)
    assert conn.connected and not conn.closing


async def test_read_buffers_are_small_until_the_connect_is_accepted(env: Env):
    """A dribbler is held by TCP back-pressure and each read of it is small (preconnect.py);
    a connected client gets the usual buffers back."""
    client = await RawClient.open(env.port, env.device("dev"))
    for _ in range(500):
        if env.broker.connections:
            break
        await asyncio.sleep(0.01)
    conn = next(iter(env.broker.connections))
    assert conn.transport is not None
    sock = conn.transport.get_extra_info("socket")
    tls: Any = conn.transport

    def receive_buffer() -> int:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    assert receive_buffer() <= 2 * preconnect.RECEIVE_BUFFER  # Linux reports it doubled
    assert tls.get_read_buffer_limits()[1] == preconnect.TLS_READ_BUFFER
    await client.send(codec.encode_connect("dev", 60))
    answer = await client.read()
    assert answer is not None and answer[0] == 0x20  # CONNACK
    assert receive_buffer() > 2 * preconnect.RECEIVE_BUFFER
    assert tls.get_read_buffer_limits()[1] > preconnect.TLS_READ_BUFFER


async def _connect_and_leave(env: Env, times: int) -> None:
    device = env.device(f"churn-{env.broker.memory_trims}")
    released = env.broker._released + times
    for _ in range(times):
        client = await env.raw(device)
        await client.close()
    while env.broker._released < released:  # each Connection freed (the transport lets go
        gc.collect()  # of it a loop turn or more after its connection_lost)
        await asyncio.sleep(0.05)


async def test_memory_is_given_back_when_connections_stop_coming_and_going(env: Env):
    """A trim's full collection stops the loop (60-90 ms with 1,000 devices connected): not
    while clients connect or leave, which would add that to every connect in flight (issue 9's
    connect p99), but once they stop, or when it is overdue (twice `trim_interval`)."""
    broker = env.broker
    broker.trim_after_connections, broker.min_trim_interval = 1, 0.0
    broker.quiet_before_trim, broker.trim_interval = 600.0, 3600.0
    trims = broker.memory_trims
    await _connect_and_leave(env, 3)
    now = broker.loop.time()
    for later in (0.0, 599.0):  # connections came and went less than 600 s before
        broker._sweep_once(now + later)
        assert broker.memory_trims == trims and broker._trim_task is None
    broker._sweep_once(now + 601.0)  # quiet for 600 s
    assert broker._trim_task is not None
    await broker._trim_task
    assert broker.memory_trims == trims + 1
    broker.quiet_before_trim = 1e9  # from now on connections never stop coming and going
    await _connect_and_leave(env, 2)
    overdue = broker._trimmed_at + 2 * 3600.0
    broker._sweep_once(overdue - 1.0)  # due (they ended), not quiet, not overdue yet
    assert broker.memory_trims == trims + 1 and broker._trim_task.done()
    broker._sweep_once(overdue + 0.5)  # (not `overdue`: a + 7200 - a may be 7199.99...)
    await broker._trim_task
    assert broker.memory_trims == trims + 2


class _Linked:
    def __init__(self) -> None:
        self.other: _Linked | None = None


async def test_a_trim_collects_cycles_among_frozen_objects(env: Env):
    """local core freezes what survives a full collection (`fleetsim.collector`): a cycle
    that ends among frozen objects is found by the next memory trim."""
    a = _Linked()
    a.other = _Linked()
    a.other.other = a
    ref = weakref.ref(a)
    del a
    gc.freeze()
    try:
        gc.collect()
        assert ref() is not None  # frozen: no ordinary collection walks it
        await env.broker._release_memory()
        assert ref() is None
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("ending", ["disconnect", "dropped", "session kept"])
async def test_an_ended_connection_is_freed_without_the_cycle_collector(env: Env, ending: str):
    """Nothing of an ended connection waits for a full collection (which, with 1,000 of them
    ended, took local core's loop 100-160 ms: issue 9's connect p99): freed as it ends."""
    device = env.device("dev")
    gc.collect()
    gc.disable()
    try:
        released = env.broker._released
        client = await env.raw(device, clean=ending != "session kept")
        if ending == "disconnect":
            await client.send(b"\xe0\x00")
        await client.close()
        for _ in range(100):
            if env.broker._released > released:
                break
            await asyncio.sleep(0.05)
        assert env.broker._released == released + 1
    finally:
        gc.enable()
