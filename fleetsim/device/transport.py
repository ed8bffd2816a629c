"""TCP connect and TLS handshake on the event loop, for paho to take over.

aiomqtt runs paho's blocking connect (TCP connect, then a blocking TLS handshake) in the
default thread pool: with thousands of concurrent connects the pool (cpu_count + 4 threads)
becomes the queue, threads contend for the GIL with the loop, and every connect pays two
thread hops. Here the socket is non-blocking from the start and the handshake is driven by
readiness callbacks, so a connect costs the loop only the crypto and a few syscalls. Its local
port is the next of the process's (`source_ports`), not one connect() searches for.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import time

from fleetsim.device.source_ports import SourcePorts
from fleetsim.device.tls import AnyDeviceTls, AnyTlsSocket

_DNS_TTL_S = 30.0
_resolved: dict[tuple[str, int], tuple[float, tuple[int, tuple[object, ...]]]] = {}
_source_ports = SourcePorts.of_this_machine()


async def resolve(host: str, port: int) -> tuple[int, tuple[object, ...]]:
    """(family, sockaddr) of `host`, cached for a few seconds: thousands of devices connecting
    to one endpoint must not each queue a getaddrinfo in the thread pool."""
    now = time.monotonic()
    hit = _resolved.get((host, port))
    if hit is not None and hit[0] > now:
        return hit[1]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"no address for {host}")
    family, _, _, _, sockaddr = infos[0]
    _resolved[(host, port)] = (now + _DNS_TTL_S, (family, sockaddr))
    return family, sockaddr


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, write: bool) -> None:
    waiter = loop.create_future()
    if write:
        loop.add_writer(fd, _wake, waiter)
    else:
        loop.add_reader(fd, _wake, waiter)
    try:
        await waiter
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                   sockaddr: tuple[object, ...]) -> None:
    """Connect a non-blocking socket to a resolved address. Not `loop.sock_connect`: uvloop's
    resolves the address again (getaddrinfo in its thread pool, a thread wake-up per connect:
    ~8% of a device's connect on the openssl path, py-spy of `python -m bench.connect_path`).
    A non-blocking TCP connect answers EINPROGRESS even when the handshake is already done
    (on loopback the SYN-ACK is handled before connect() returns): a socket that has a peer
    then is used at once, without a trip through the loop to learn it is writable."""
    code = sock.connect_ex(sockaddr)
    if code in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
        if not _established(sock):
            await _ready(loop, sock.fileno(), write=True)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, f"Connect call failed {sockaddr}: {os.strerror(code)}")


def _established(sock: socket.socket) -> bool:
    """Whether a connecting socket's TCP handshake is complete (it has a peer address)."""
    try:
        sock.getpeername()
    except OSError:  # ENOTCONN: still connecting, or failed (SO_ERROR then says why)
        return False
    return True


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def open_tls(host: str, port: int, context: ssl.SSLContext | AnyDeviceTls,
                   server_hostname: str | None = None) -> AnyTlsSocket:
    """A connected, non-blocking TLS socket whose handshake is complete. The caller bounds the
    time (e.g. `asyncio.timeout`); on any failure or cancellation the socket is closed."""
    loop = asyncio.get_running_loop()
    family, sockaddr = await resolve(host, port)
    raw = socket.socket(family, socket.SOCK_STREAM)
    tls: AnyTlsSocket | None = None
    try:
        raw.setblocking(False)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # MQTT packets are small
        if _source_ports is not None:
            _source_ports.bind(raw, family)
        await _connect(loop, raw, sockaddr)
        tls = context.wrap_socket(raw, server_hostname=server_hostname or host,
                                  do_handshake_on_connect=False)
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                await _ready(loop, tls.fileno(), write=False)
            except ssl.SSLWantWriteError:
                await _ready(loop, tls.fileno(), write=True)
    except BaseException:
        (tls or raw).close()
        raise


async def send_all(sock: AnyTlsSocket, data: bytes) -> None:
    """Write all of `data` on a non-blocking TLS socket, waiting for the socket as needed
    (OpenSSL wants the very same bytes again after a partial or refused write)."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except ssl.SSLWantReadError:
            await _ready(loop, sock.fileno(), write=False)
        except (ssl.SSLWantWriteError, BlockingIOError):
            await _ready(loop, sock.fileno(), write=True)


async def recv_exactly(sock: AnyTlsSocket, n: int) -> bytes:
    """`n` bytes from a non-blocking TLS socket (no more: what follows stays in OpenSSL's
    buffer or the kernel's); b"" if the peer closed first. OSError as the socket raises it."""
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except (ssl.SSLWantReadError, BlockingIOError):
            await _ready(loop, sock.fileno(), write=False)
            continue
        except ssl.SSLWantWriteError:
            await _ready(loop, sock.fileno(), write=True)
            continue
        if not chunk:
            return b""
        data += chunk
    return data
