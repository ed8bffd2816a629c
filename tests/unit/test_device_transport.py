"""`transport`'s non-blocking TCP connect, on real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator

import pytest

from fleetsim.device import transport


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every trip through the loop `transport` takes to wait for a socket (write=True/False)."""
    seen: list[bool] = []
    real = transport._ready

    async def counted(loop: asyncio.AbstractEventLoop, fd: int, write: bool) -> None:
        seen.append(write)
        await real(loop, fd, write)

    monkeypatch.setattr(transport, "_ready", counted)
    return seen


def _client() -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    return sock


async def test_a_loopback_connect_done_at_once_needs_no_wait(
        listener: socket.socket, waits: list[bool]) -> None:
    sock = _client()
    try:
        await transport._connect(asyncio.get_running_loop(), sock, listener.getsockname())
        assert sock.getpeername() == listener.getsockname()
        assert waits == []  # connect() said EINPROGRESS, but the handshake was done
    finally:
        sock.close()


async def test_a_refused_connect_still_fails_with_its_reason(waits: list[bool]) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    address = closed.getsockname()
    closed.close()  # nothing listens there: the kernel answers the SYN with a reset
    sock = _client()
    try:
        with pytest.raises(OSError, match="Connect call failed") as refused:
            await transport._connect(asyncio.get_running_loop(), sock, address)
        assert refused.value.errno == errno.ECONNREFUSED
    finally:
        sock.close()


def test_a_socket_still_connecting_is_not_established() -> None:
    sock = socket.socket()
    try:
        assert not transport._established(sock)  # never connected: no peer
    finally:
        sock.close()
