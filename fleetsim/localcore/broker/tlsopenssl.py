"""The broker's server-side TLS on pyOpenSSL (cryptography's bundled OpenSSL), the default.

The same seam as `handshake.py`: the broker listens on plain TCP, runs each handshake itself
and logs the ones it refuses, then hands a TLS transport to the MQTT `Connection`. Here one
object per connection is both the TCP transport's protocol and the `Connection`'s transport:
ciphertext read from the socket goes into an OpenSSL memory BIO, the plaintext OpenSSL makes of
it goes to the `Connection` in one `data_received` per read (as asyncio's and uvloop's TLS
protocols deliver it), and what OpenSSL writes goes to the socket. No `start_tls`, no task per
handshake. Python's `ssl` links the system's OpenSSL 3.0, whose certificate decoding was 39% of
local core's CPU per connection; OpenSSL 4.0 under pyOpenSSL handshakes for about half of it
(`python -m bench server-tls`). `FLEETSIM_LOCAL_TLS=stdlib` selects `handshake.py` instead.

What the `Connection` reads of the TLS layer (`get_extra_info("ssl_object")`) is a `PeerView`:
the client's certificate (DER), the chain it sent after it, and its SNI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from fleetsim.localcore.broker.handshake import RefusalLog, verify_refusal

log = logging.getLogger("fleetsim.localcore.broker")

_HANDSHAKING, _OPEN, _CLOSED = 0, 1, 2
_READ_SIZE = 16384  # a TLS record's plaintext is at most this (RFC 8446 5.1)
_BIO_SIZE = 65536
# Plaintext handed to the Connection per callback at most, by default; the rest follows in the
# next loop iteration (asyncio's TLS protocol reads up to 256 KiB at a time). `preconnect.py`
# narrows it until the CONNECT is accepted.
READ_HIGH_WATER = 256 * 1024
SHUTDOWN_TIMEOUT = 30.0  # asyncio's and uvloop's default ssl_shutdown_timeout


def openssl_refusal(conn: SSL.Connection, exc: SSL.Error) -> str | None:
    """Why pyOpenSSL refused the handshake, in the words `handshake.refusal_reason` uses for
    Python's ssl; None when the client just went away."""
    reasons = [str(r[2]) for r in exc.args[0] if len(r) > 2] \
        if exc.args and isinstance(exc.args[0], list) else []
    code = int(_lib.SSL_get_verify_result(conn._ssl))  # X509_V_OK is 0
    if code:
        detail = _ffi.string(_lib.X509_verify_cert_error_string(code)).decode()
        return verify_refusal(code, detail)
    if any("peer did not return a certificate" in r for r in reasons):
        return "the client sent no certificate (AWS IoT requires mutual TLS)"
    if any("unexpected eof" in r for r in reasons):
        return None
    return f"TLS handshake failed: {reasons[0] if reasons else exc}"


class PeerView:
    """What the broker reads of a completed handshake (the `ssl_object` extra)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: SSL.Connection):
        self._conn = conn

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The client's certificate, DER (only `binary_form=True` is offered)."""
        if not binary_form:
            raise ValueError("only the DER form of the client certificate is kept")
        cert = self._conn.get_peer_certificate()
        return None if cert is None else crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)

    @property
    def server_name_indication(self) -> str | None:
        name = self._conn.get_servername()
        return name.decode("ascii", "replace") if name else None

    def chain_der(self) -> tuple[bytes, ...]:
        """DER of the certificates the client sent after its own (a server's peer chain holds
        no leaf in OpenSSL: `SSL_get_peer_cert_chain`)."""
        chain = self._conn.get_peer_cert_chain() or []
        return tuple(crypto.dump_certificate(crypto.FILETYPE_ASN1, c) for c in chain)

    def version(self) -> str | None:
        return self._conn.get_protocol_version_name()

    def selected_alpn_protocol(self) -> str | None:
        chosen = self._conn.get_alpn_proto_negotiated()
        return chosen.decode() if chosen else None


class OpenSslHandshakes:
    """Accepts TCP connections for the broker and runs their handshakes on pyOpenSSL."""

    def __init__(self, context: SSL.Context, make_protocol: Callable[[], asyncio.Protocol],
                 timeout: Callable[[], float], refusals: RefusalLog | None = None):
        self.context = context
        self._make = make_protocol
        self._timeout = timeout
        self.refusals = refusals or RefusalLog()
        self._pending: set[TlsConnection] = set()

    def protocol(self) -> asyncio.Protocol:
        return TlsConnection(self)

    async def close(self) -> None:
        for pending in list(self._pending):
            pending.abort()
        self._pending.clear()


class TlsConnection(asyncio.Protocol, asyncio.Transport):
    """One accepted connection: the TCP transport's protocol, the `Connection`'s transport."""

    __slots__ = ("_app", "_handshakes", "_paused", "_peer", "_read_high", "_ssl", "_state", "_tcp",
                 "_timer")

    def __init__(self, handshakes: OpenSslHandshakes):
        self._handshakes = handshakes
        self._tcp: Any = None
        self._ssl: SSL.Connection | None = None
        self._state = _HANDSHAKING
        self._paused = False
        self._read_high = READ_HIGH_WATER
        self._timer: asyncio.TimerHandle | None = None
        self._peer: PeerView | None = None
        # Made at the accept, as asyncio does: the broker counts connections freed, handshakes
        # that never completed included (its memory trims).
        self._app: Any = handshakes._make()

    # --- the TCP transport's protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._tcp = transport
        conn = SSL.Connection(self._handshakes.context, None)
        conn.set_accept_state()
        self._ssl = conn
        self._handshakes._pending.add(self)
        self._timer = asyncio.get_running_loop().call_later(self._handshakes._timeout(),
                                                            self._timed_out)

    def data_received(self, data: bytes) -> None:
        conn = self._ssl
        if conn is None or self._state == _CLOSED:
            return  # closing: what the client still sends is dropped
        conn.bio_write(data)
        if self._state == _HANDSHAKING:
            self._handshake(conn)
        elif self._state == _OPEN and not self._paused:
            self._read(conn)  # paused: the records wait in the BIO for resume_reading

    def eof_received(self) -> bool:
        return False  # the TCP transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        state, self._state = self._state, _CLOSED
        self._end_handshake()
        self._ssl = None
        app, self._app = self._app, None
        if state != _HANDSHAKING and app is not None:
            app.connection_lost(exc)  # a handshake that never completed: the client went away

    def pause_writing(self) -> None:
        if self._state == _OPEN:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._state == _OPEN:
            self._app.resume_writing()

    # --- the handshake -----------------------------------------------------------------------

    def _handshake(self, conn: SSL.Connection) -> None:
        try:
            conn.do_handshake()
        except SSL.WantReadError:
            self._flush(conn)
            return
        except SSL.Error as e:
            self._refuse(openssl_refusal(conn, e))
            return
        self._end_handshake()
        self._flush(conn)
        self._state = _OPEN
        self._peer = PeerView(conn)
        self._app.connection_made(self)
        if self._state == _OPEN:
            self._read(conn)  # TLS 1.3: the CONNECT may have come with the client's Finished

    def _refuse(self, reason: str | None) -> None:
        """Send the alert OpenSSL wrote, close, and log why (unless the client went away)."""
        self._end_handshake()
        if self._ssl is not None:
            self._flush(self._ssl)
        self._state = _CLOSED
        if reason is not None:
            self._handshakes.refusals.note(self._where(), reason)
        self._tcp.close()

    def _timed_out(self) -> None:
        self._timer = None
        if self._state == _HANDSHAKING:
            self._handshakes.refusals.note(self._where(), "TLS handshake timed out")
            self._state = _CLOSED
            self._tcp.abort()

    def _end_handshake(self) -> None:
        self._handshakes._pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _where(self) -> str:
        peer = self._tcp.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if peer and len(peer) > 1 else "an unknown peer"

    # --- records -----------------------------------------------------------------------------

    def _read(self, conn: SSL.Connection) -> None:
        """Decrypt the complete records the BIO holds, up to the read high water of plaintext;
        hand the plaintext over in one call. What is left is read in the next iteration."""
        chunks: list[bytes] = []
        size, closing, more = 0, False, False
        while True:
            if size >= self._read_high:
                more = True
                break
            try:
                chunk = conn.recv(_READ_SIZE)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:  # the client's close_notify
                closing = True
                break
            except SSL.Error as e:
                log.debug("TLS record from %s refused: %s", self._where(), e)
                self._state = _CLOSED
                self._tcp.abort()
                return
            chunks.append(chunk)
            size += len(chunk)
        if chunks:
            self._app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self._ssl is not None:
            self._flush(self._ssl)  # a KeyUpdate's answer, an alert
        if closing:
            self.close()
        elif more:
            self._read_later()

    def _read_later(self) -> None:
        asyncio.get_running_loop().call_soon(self._read_on)

    def _read_on(self) -> None:
        if self._state == _OPEN and not self._paused and self._ssl is not None:
            self._read(self._ssl)

    def _flush(self, conn: SSL.Connection) -> None:
        """Send what OpenSSL wrote into its outgoing BIO."""
        try:
            data = conn.bio_read(_BIO_SIZE)
        except SSL.WantReadError:
            return
        while len(data) % _BIO_SIZE == 0:
            try:
                data += conn.bio_read(_BIO_SIZE)
            except SSL.WantReadError:
                break
        if not self._tcp.is_closing():
            self._tcp.write(data)

    # --- the transport the Connection sees ---------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        conn = self._ssl
        if self._state != _OPEN or conn is None or not data:
            return
        conn.sendall(bytes(data))
        self._flush(conn)

    def close(self) -> None:
        """close_notify and a FIN once what is queued is sent; what the client still sends is
        read and dropped until it closes too (or SHUTDOWN_TIMEOUT), as asyncio's TLS transport
        does: closing a socket with unread data resets it, and the client would lose what it
        was sent last (an MQTT 5 DISCONNECT)."""
        conn, tcp = self._ssl, self._tcp
        if self._state != _OPEN or conn is None or tcp is None:
            self._state = _CLOSED
            if tcp is not None:
                tcp.close()
            return
        self._state = _CLOSED
        with contextlib.suppress(SSL.Error):
            conn.shutdown()
        self._flush(conn)
        if tcp.is_closing() or not tcp.can_write_eof():
            tcp.close()
            return
        tcp.write_eof()
        if self._paused:
            tcp.resume_reading()
        self._timer = asyncio.get_running_loop().call_later(SHUTDOWN_TIMEOUT, tcp.abort)

    def abort(self) -> None:
        self._state = _CLOSED
        self._end_handshake()
        if self._tcp is not None:
            self._tcp.abort()

    def is_closing(self) -> bool:
        return self._state != _OPEN or self._tcp.is_closing()

    def pause_reading(self) -> None:
        self._paused = True
        if self._tcp is not None and not self._tcp.is_closing():
            self._tcp.pause_reading()

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._tcp is not None and not self._tcp.is_closing():
            self._tcp.resume_reading()
            self._read_later()  # records that came before the pause took hold

    def set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """The plaintext handed over per callback at most (`low` is accepted and unused)."""
        self._read_high = READ_HIGH_WATER if high is None else max(1, high)

    def get_read_buffer_limits(self) -> tuple[int, int]:
        return self._read_high // 4, self._read_high

    def is_reading(self) -> bool:
        return not self._paused

    def get_write_buffer_size(self) -> int:
        return int(self._tcp.get_write_buffer_size())

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._tcp.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tcp.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._app

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._peer if self._peer is not None else default
        if name == "sslcontext":
            return self._handshakes.context
        if self._tcp is None:
            return default
        return self._tcp.get_extra_info(name, default)
