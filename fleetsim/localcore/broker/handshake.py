"""The TLS handshake of each accepted connection, run so that a refused one is seen and logged.

asyncio's server-side TLS (`create_server(ssl=...)`) swallows a failed handshake: the protocol
is never told and the loop's exception handler is not called for an `SSLError` (it logs it only
in debug mode). So the broker listens on plain TCP and runs the handshake itself with
`loop.start_tls` (server side), which raises the handshake's error with the peer at hand: a
client certificate from a CA that is not registered is refused there ("certificate signed by an
unknown CA"), and logged with the peer and the reason, rate-limited (`RefusalLog`). A completed
handshake hands the TLS transport to the MQTT `Connection`, as asyncio would have.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("fleetsim.localcore.broker")

# OpenSSL's X509_V_ERR_* codes that mean the client's certificate chains to no trusted CA:
# unable to get issuer certificate (2), self-signed (18), self-signed in chain (19), unable to
# get local issuer certificate (20), unable to verify the first certificate (21).
UNKNOWN_CA_CODES = frozenset({2, 18, 19, 20, 21})
UNKNOWN_CA = "certificate signed by an unknown CA"


def refusal_reason(exc: BaseException) -> str | None:
    """Why the handshake was refused, in a sentence; None when the client just went away."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return verify_refusal(exc.verify_code,
                              exc.verify_message or exc.reason or "certificate verify failed")
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "the client sent no certificate (AWS IoT requires mutual TLS)"
        if exc.reason in ("UNEXPECTED_EOF_WHILE_READING", None) and "EOF" in str(exc):
            return None
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError) or (isinstance(exc, ConnectionAbortedError)
                                         and "handshake is taking longer" in str(exc)):
        return "TLS handshake timed out"  # asyncio's and uvloop's own words for it
    return None  # reset, closed: the client went away


def verify_refusal(code: int, detail: str) -> str:
    """The refusal of a client certificate that failed verification with this X509_V_ERR_*
    code and OpenSSL's message for it."""
    if code in UNKNOWN_CA_CODES:
        return f"{UNKNOWN_CA} ({detail})"
    return f"client certificate refused: {detail}"


class RefusalLog:
    """One warning per refused handshake, at most `per_window` per `window` seconds; those
    beyond are counted and summed up in one line when the next window starts."""

    def __init__(self, per_window: int = 10, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.per_window, self.window, self._clock = per_window, window, clock
        self._started = -window
        self._logged = 0
        self._held = 0
        self.refused = 0  # every refusal, logged or not

    def note(self, peer: str, reason: str) -> None:
        self.refused += 1
        now = self._clock()
        if now - self._started >= self.window:
            if self._held:
                log.warning("%d more TLS handshakes refused in the last %g s (not logged one "
                            "by one)", self._held, self.window)
            self._started, self._logged, self._held = now, 0, 0
        if self._logged < self.per_window:
            self._logged += 1
            log.warning("TLS handshake from %s refused: %s", peer, reason)
        else:
            self._held += 1


class Handshakes:
    """Accepts TCP connections for the broker and runs their TLS handshakes."""

    def __init__(self, ssl_context: ssl.SSLContext, make_protocol: Callable[[], asyncio.Protocol],
                 timeout: Callable[[], float], refusals: RefusalLog | None = None):
        self._ssl = ssl_context
        self._make = make_protocol
        self._timeout = timeout
        self.refusals = refusals or RefusalLog()
        self._pending: set[asyncio.Task[None]] = set()

    def protocol(self) -> asyncio.Protocol:
        return _Accepted(self)

    def start(self, transport: asyncio.Transport, early: bytearray) -> None:
        """Start the handshake; `early` holds what the client sent before `start_tls` took
        the transport (its ClientHello: pausing does not stop every loop from reading it)."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._handshake(transport))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        # Runs after the task's first step, in which start_tls sets its TLS protocol on the
        # transport and schedules that protocol's connection_made; the bytes are handed over
        # right after it, before the loop reads the socket again.
        loop.call_soon(lambda: loop.call_soon(_hand_over, transport, early))

    async def _handshake(self, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if peer and len(peer) > 1 else "an unknown peer"
        # Made at the accept, as asyncio does: the broker counts connections freed, handshakes
        # that never completed included (its memory trims).
        conn = self._make()
        handover = _Handover()
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, handover, self._ssl, server_side=True,
                ssl_handshake_timeout=self._timeout())
        except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError
            transport.abort()
            reason = refusal_reason(e)
            if reason is not None:
                self.refusals.note(where, reason)
            return
        if tls is None or handover.lost:  # closed meanwhile
            transport.abort()
            return
        handover.hand_to(conn, tls)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def _hand_over(transport: asyncio.Transport, early: bytearray) -> None:
    """Give the TLS protocol the bytes read before it took over."""
    if not early or transport.is_closing():
        return
    data, protocol = bytes(early), transport.get_protocol()
    early.clear()
    if isinstance(protocol, _Accepted):  # start_tls has not taken over: keep them
        early += data
        return
    proto: Any = protocol
    if hasattr(proto, "buffer_updated"):  # asyncio's and uvloop's SSLProtocol
        view = memoryview(data)
        while view:
            buf = proto.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            proto.buffer_updated(n)
            view = view[n:]
    else:
        proto.data_received(data)


class _Handover(asyncio.Protocol):
    """The TLS transport's protocol from the end of the handshake until the MQTT connection
    takes it: what the client sent right behind its Finished (TLS 1.3: its CONNECT, in the
    same read) is kept for the connection."""

    __slots__ = ("_early", "lost")

    def __init__(self) -> None:
        self._early = bytearray()
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self._early += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def hand_to(self, conn: asyncio.Protocol, tls: asyncio.BaseTransport) -> None:
        tls.set_protocol(conn)
        conn.connection_made(tls)
        if self._early:
            data, self._early = bytes(self._early), bytearray()
            conn.data_received(data)


class _Accepted(asyncio.Protocol):
    """A TCP connection before its handshake: reading paused until `start_tls` takes the
    transport over; whatever arrives all the same is kept for it."""

    __slots__ = ("_early", "_handshakes")

    def __init__(self, handshakes: Handshakes):
        self._handshakes = handshakes
        self._early = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: Any = transport
        t.pause_reading()
        self._handshakes.start(t, self._early)

    def data_received(self, data: bytes) -> None:
        self._early += data
