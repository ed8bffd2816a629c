"""A client whose CONNECT is still incomplete after a read is read again only after
PRE_CONNECT_READ_INTERVAL_S: a client dribbling its CONNECT (one-byte TLS records, flat out)
then waits on TCP back-pressure instead of having local core decrypt its records as fast as it
sends them. A CONNECT sent at once is not slowed."""

from __future__ import annotations

import asyncio

from fleetsim.localcore.broker import codec
from fleetsim.localcore.broker.connection import PRE_CONNECT_READ_INTERVAL_S, Connection
from tests.mqtt_fuzz import FakeTransport, Harness

DER = b"cert-allow-all"


def connection(harness: Harness) -> tuple[Connection, FakeTransport]:
    transport = FakeTransport(DER, asyncio.get_running_loop())
    conn = Connection(harness.broker)
    transport.conn = conn
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


async def test_a_dribbled_connect_pauses_reading_until_the_interval_ends() -> None:
    harness = Harness()
    conn, transport = connection(harness)
    connect = codec.encode_connect("dribbler", 60)
    conn.data_received(connect[:1])
    conn.data_received(connect[1:3])
    assert transport.paused and not conn.connected
    await asyncio.sleep(PRE_CONNECT_READ_INTERVAL_S * 1.5)
    assert not transport.paused  # read again, once the interval has passed
    conn.data_received(connect[3:])
    assert conn.connected and not transport.paused


async def test_a_connect_sent_at_once_is_not_slowed() -> None:
    harness = Harness()
    conn, transport = connection(harness)
    conn.data_received(codec.encode_connect("prompt", 60))
    assert conn.connected and not transport.paused


async def test_a_large_connect_arriving_in_full_reads_is_not_slowed() -> None:
    """A CONNECT with a 60 KB will, read 8 KiB at a time (full TLS records), is read on at
    once: only reads that bring little (a dribbler's) are slowed down."""
    harness = Harness()
    conn, transport = connection(harness)
    will = codec.Will("fleet/last-words", bytes(60_000), 1, False)
    connect = codec.encode_connect("large", 60, will=will)
    for i in range(0, len(connect), 8192):
        assert not transport.paused
        conn.data_received(connect[i:i + 8192])
    assert conn.connected and not transport.paused
