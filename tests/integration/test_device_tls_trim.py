"""A connected `tls_backend: stdlib` device gives back what its connection no longer needs
(`fleetsim.device.tls_trim`), against a real local core: OpenSSL 3.0's 16 KB read buffer once
nothing is left to read, and its own certificate and key once the handshake is done; and it
still receives and publishes after that (the buffer is allocated again for the next read)."""

from __future__ import annotations

import asyncio
import ctypes
from typing import Any

import pytest

from fleetsim.device import DeviceSession, TlsContextFactory
from fleetsim.device.tls_trim import _ssl_of
from fleetsim.metrics import Metrics
from tests.integration.test_device_session import Provisioner

pytestmark = pytest.mark.timeout(60)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _malloc_in_use() -> int:
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc's mallinfo2")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().uordblks)


@pytest.fixture(scope="module")
def prov(core: Any, tmp_path_factory: pytest.TempPathFactory) -> Provisioner:
    return Provisioner(core, tmp_path_factory.mktemp("tls-trim"))


def _idle_holds(session: DeviceSession) -> tuple[int, bool]:
    """(bytes SSL_free_buffers would still give back, whether the connection still holds the
    device's certificate) of a session's current connection."""
    sock = session._client._client.socket()  # type: ignore[union-attr]
    found = _ssl_of(sock)
    assert found is not None, "tls_trim cannot reach the SSL* of this Python's ssl sockets"
    lib, ptr = found
    lib.SSL_get_certificate.argtypes = [ctypes.c_void_p]
    lib.SSL_get_certificate.restype = ctypes.c_void_p
    before = _malloc_in_use()
    assert lib.SSL_free_buffers(ptr) == 1
    return before - _malloc_in_use(), lib.SSL_get_certificate(ptr) is not None


async def test_an_idle_stdlib_connection_keeps_no_read_buffer_nor_the_device_credentials(
        prov: Provisioner) -> None:
    factory = TlsContextFactory(prov.target, backend="stdlib")
    identity = prov.device("trim-stdlib")
    topic = f"trim/{identity.thing_name}"
    got: asyncio.Queue[bytes] = asyncio.Queue()
    async with DeviceSession(identity, prov.target, Metrics(), timeout=5,
                             tls=factory.device_tls(identity)) as session:
        freed, holds_certificate = _idle_holds(session)  # right after CONNACK
        assert freed < 1024 and not holds_certificate
        session.on_message(lambda m: got.put_nowait(bytes(m.payload)))  # type: ignore[arg-type]
        await session.subscribe(topic, qos=1)
        for n in range(2):  # reads after a release: SUBACK, PUBACK, the message
            await session.publish(topic, f"m{n}", qos=1)
            assert await asyncio.wait_for(got.get(), 5) == f"m{n}".encode()
            await asyncio.sleep(0.05)  # let the last read burst end
            freed, _ = _idle_holds(session)
            assert freed < 1024
