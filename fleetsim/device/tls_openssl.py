"""Device TLS below Python's ssl (`tls_backend: openssl`): each device's key and certificate
are decoded once and handed to its connection on a shared context, which gives them back once
its handshake is done.

Python's `ssl` takes a client certificate only as PEM files (`load_cert_chain`), so a device
either decodes its chain again at every connect (a shared context) or keeps a context of its
own. pyOpenSSL reaches OpenSSL's SSL_use_certificate/SSL_use_PrivateKey on a connection: the
key and certificate are decoded when the device's TLS is prepared (by OpenSSL, into an
EVP_PKEY and an X509) and the connection takes a reference to them. It also runs on
cryptography's bundled OpenSSL rather than the system's.

A connected device keeps neither (issue 9: 6.4 KB of C heap per device, `python -m
bench.device_memory`: the X509 4.3 KB, the EC key's EVP_PKEY 2.1 KB). The client needs them
only in a handshake (no TLS 1.3 post-handshake authentication is offered; a TLS 1.2
renegotiation, which AWS IoT does not ask for, would then send no certificate and be
refused), so the first connection takes the ones decoded when the device's TLS was prepared,
and SSL_certs_clear (ssl.h; not in cryptography's bindings: `openssl_unbound`) drops the
connection's references once the handshake is done, which frees them. A device that connects
again decodes them again (~0.4 M instructions, ~8% of a connect) and from then on keeps them,
as a device that reconnects once is likely to again. Where SSL_certs_clear cannot be located,
every device keeps its decoded key and certificate for its life, as before.

What paho and `transport.open_tls` ask of an `SSLSocket` (non-blocking `do_handshake`/`recv`/
`send`/`pending`, `fileno`, `setblocking`, `close`, with ssl's SSLWantReadError/
SSLWantWriteError) is what `TlsSocket` offers, errors translated into ssl's exceptions with
ssl's wording, so `errors.connect_failure_kind` classifies them alike.

Verification is as strict as the stdlib path's (`ssl.PROTOCOL_TLS_CLIENT`): the server's chain
must end at one of the target's trust anchors (VERIFY_PEER), and its name must match the host
connected to, or `server_name` (X509_VERIFY_PARAM_set1_host, partial wildcards refused as
Python's ssl refuses them; an IP address is checked with X509_VERIFY_PARAM_set1_ip and sent
without SNI, as Python's ssl does). A chain that verified is not verified again for the same
name while it stays valid (`tls_verified`); the proof that the server holds its key is checked
at every handshake. TLS 1.2 offers Python's default cipher list, and both
versions Python's ssl's key exchange groups; AWS IoT Core takes TLS 1.2 and 1.3, with ECDHE
AES-GCM suites in every security policy ("Transport security in AWS IoT Core").
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import ssl
from collections.abc import Callable
from functools import cache, lru_cache

from cryptography import x509
from OpenSSL import SSL, crypto

# The SSL* of a connection is reachable only through pyOpenSSL's binding of OpenSSL (its
# `_ssl`); hostname checks and the certificate hand-over use it directly. Passing X509/PKey
# objects to `Connection.use_certificate` is deprecated (it would convert cryptography objects
# at every call, re-encoding the key), and the point here is to decode once.
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from fleetsim import openssl_unbound
from fleetsim.device import tls_verified
from fleetsim.device.identity import DeviceIdentity, IdentityDamaged

_GROUPS = b"X25519:P-256:X448:P-521:P-384"
_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
# Python's ssl default for TLS 1.2 and below (Modules/_ssl.c, PY_SSL_DEFAULT_CIPHER_STRING).
_CIPHERS = (b"@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:"
            b"!SHA1:!AESCCM")


class OpenSslContext:
    """One shared client context of a target: trust anchors, versions, ALPN; devices made from
    it (`device`) keep their decoded key and certificate."""

    def __init__(self, anchors: list[x509.Certificate], min_version: str = "1.2",
                 max_version: str | None = None, alpn: list[str] | None = None):
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(_VERSIONS[min_version])
        if max_version:
            ctx.set_max_proto_version(_VERSIONS[max_version])
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET)
        # RELEASE_BUFFERS: idle connections hold no 16 KB record buffers. NO_AUTO_CHAIN: a
        # device sends its own certificate (or the chain its identity holds, which stays with
        # Python's ssl), not a chain OpenSSL would build for it from the server trust anchors
        # at every connect: against local core, whose CA also signs devices, that was a full
        # X509_verify_cert of the device's own certificate per handshake (an ECDSA verify,
        # ~15% of a connect's instructions, `python -m bench.connect_path --callgrind`). AWS IoT
        # verifies a client certificate against its registry and the registered CA ("X.509
        # client certificates", "Create your own client certificates").
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS | openssl_unbound.MODE_NO_AUTO_CHAIN)
        ctx.set_cipher_list(_CIPHERS)
        # The key exchange groups Python's ssl offers (OpenSSL 3.0's defaults). OpenSSL 3.5+
        # would add X25519MLKEM768 and send a key share for it beside X25519's: an ML-KEM key
        # generated per connect and ~9 KB more per connected device for a group local core
        # and Python's ssl do not offer.
        if _lib.SSL_CTX_set1_curves_list(ctx._context, _GROUPS) != 1:
            _lib.ERR_clear_error()
        ctx.set_verify(SSL.VERIFY_PEER)  # no per-certificate Python callback
        store = ctx.get_cert_store()
        assert store is not None
        for anchor in anchors:
            store.add_cert(crypto.X509.from_cryptography(anchor))
        if alpn:
            ctx.set_alpn_protos([p.encode() for p in alpn])
        self._ctx = ctx
        self._paho_context: ssl.SSLContext | None = None
        # Located now, in one scan of the extension's symbol table (~7 ms), not at a first
        # connect.
        openssl_unbound.locate("SSL_certs_clear", *tls_verified.FUNCTIONS)
        self.sheds_credentials = _certs_clear() is not None
        self.verified_chains = tls_verified.VerifiedChains()
        self.verified_chains.install(ctx)  # the server's chain verified once per name

    def paho_context(self) -> ssl.SSLContext:
        """What paho is given to read `check_hostname` from (it never wraps with it: sockets
        come from `transport.open_tls`)."""
        if self._paho_context is None:
            self._paho_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return self._paho_context

    def device(self, identity: DeviceIdentity,
               certificate_pem: bytes | None = None) -> OpenSslDeviceTls:
        """The identity's TLS, its key and certificate (`certificate_pem` if given, already
        read) decoded now (and checked) for its first connect."""
        cert, key = self.decode(identity, certificate_pem)
        return OpenSslDeviceTls(self, cert, key, identity if self.sheds_credentials else None)

    @staticmethod
    def decode(identity: DeviceIdentity,
               certificate_pem: bytes | None = None) -> tuple[crypto.X509, crypto.PKey]:
        """The identity's certificate and key, decoded by OpenSSL straight from PEM
        (PEM_read_bio_*), not through cryptography's objects, which pyOpenSSL would encode to
        DER and decode again (~300 -> ~130 µs per device here)."""
        certificate_pem = certificate_pem or identity.certificate_pem
        assert certificate_pem is not None
        try:
            cert = crypto.load_certificate(crypto.FILETYPE_PEM, certificate_pem)
            key = crypto.load_privatekey(crypto.FILETYPE_PEM, identity.private_key_pem)
        except crypto.Error:  # the store checks only the key's PEM armour
            problem = "or its certificate is not a readable PEM key pair"
            if identity.key_path is not None:
                raise IdentityDamaged(identity.key_path, problem) from None
            raise ValueError(f"the private key of {identity.thing_name} {problem}") from None
        return cert, key

    def connection(self, sock: socket.socket, cert: crypto.X509,
                   key: crypto.PKey) -> SSL.Connection:
        conn = SSL.Connection(self._ctx, sock)
        if (_lib.SSL_use_certificate(conn._ssl, cert._x509) != 1
                or _lib.SSL_use_PrivateKey(conn._ssl, key._pkey) != 1):
            _lib.ERR_clear_error()
            raise ssl.SSLError("the device's certificate does not match its private key")
        return conn


class OpenSslDeviceTls:
    """One device's TLS on its target's shared context: its decoded certificate and key, until
    its first connection takes them (`identity` given: they are decoded again from it for a
    later connect, and kept from then on; None: kept from the start). Quacks like `DeviceTls`
    where `transport.open_tls` and `FleetClient` need it."""

    __slots__ = ("_cert", "_identity", "_key", "_owner", "server_name")

    shared = True

    def __init__(self, owner: OpenSslContext, cert: crypto.X509, key: crypto.PKey,
                 identity: DeviceIdentity | None = None):
        self._owner = owner
        self._cert: crypto.X509 | None = cert
        self._key: crypto.PKey | None = key
        self._identity = identity
        self.server_name: str | None = None

    def _credentials(self) -> tuple[crypto.X509, crypto.PKey]:
        """The certificate and key for a new connection."""
        cert, key = self._cert, self._key
        if self._identity is None:  # kept for the device's life
            assert cert is not None and key is not None
            return cert, key
        if cert is None or key is None:  # a connect after the first
            cert, key = self._cert, self._key = self._owner.decode(self._identity)
            self._identity = None
        else:  # the first: the connection's references become the only ones
            self._cert = self._key = None
        return cert, key

    @property
    def context(self) -> ssl.SSLContext:
        return self._owner.paho_context()

    @property
    def check_hostname(self) -> bool:
        return True

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None,
                    do_handshake_on_connect: bool = True) -> TlsSocket:
        name = self.server_name or server_hostname
        if not name:
            raise ValueError("a server name is needed to verify the server's certificate")
        conn = self._owner.connection(sock, *self._credentials())
        _expect_name(conn, name)
        conn.set_connect_state()
        tls = TlsSocket(conn, sock)
        if do_handshake_on_connect:
            tls.do_handshake()
        return tls


def _expect_name(conn: SSL.Connection, name: str) -> None:
    """Verify the server's certificate against `name` during the handshake, as Python's ssl
    does with check_hostname: SNI and a DNS-name check for a host name, an IP address check
    (and no SNI, which carries only host names) for an address."""
    param = _lib.SSL_get0_param(conn._ssl)
    conn.set_app_data(name)  # what `VerifiedChains` keys a verdict on, beside the chain
    packed, raw = _server_name(name)
    if packed is None:
        _lib.X509_VERIFY_PARAM_set_hostflags(param, _lib.X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS)
        if _lib.X509_VERIFY_PARAM_set1_host(param, raw, len(raw)) != 1:
            raise ValueError(f"{name!r} is not a host name to verify")
        conn.set_tlsext_host_name(raw)
    elif _lib.X509_VERIFY_PARAM_set1_ip(param, packed, len(packed)) != 1:
        raise ValueError(f"{name!r} is not an IP address to verify")


@lru_cache(maxsize=64)
def _server_name(name: str) -> tuple[bytes | None, bytes]:
    """The name a device connects to, parsed once per target rather than at every connect:
    (its packed address, b"") for an IP address, (None, its IDNA bytes) for a host name."""
    try:
        return ipaddress.ip_address(name).packed, b""
    except ValueError:
        return None, name.encode("idna")


@cache
def _certs_clear() -> Callable[[int], None] | None:
    """OpenSSL's SSL_certs_clear(SSL *): frees a connection's certificates and keys (its
    references to them); None where it cannot be located."""
    return openssl_unbound.function("SSL_certs_clear", None, ctypes.c_void_p)


class TlsSocket:
    """An `ssl.SSLSocket` as far as paho and fleetsim use one, on a pyOpenSSL connection."""

    __slots__ = ("_conn", "_sock")

    def __init__(self, conn: SSL.Connection, sock: socket.socket):
        self._conn, self._sock = conn, sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def pending(self) -> int:
        return self._conn.pending()

    def do_handshake(self) -> None:
        try:
            self._conn.do_handshake()
        except SSL.Error as e:
            raise _translated(e, self._conn) from None
        clear = _certs_clear()
        if clear is not None:  # done with the device's certificate and key (module docstring)
            clear(int(_ffi.cast("uintptr_t", self._conn._ssl)))

    def recv(self, bufsize: int) -> bytes:
        try:
            return self._conn.recv(bufsize)
        except SSL.ZeroReturnError:
            return b""  # close_notify: a clean end, as SSLSocket.recv reports it
        except SSL.Error as e:
            raise _translated(e, self._conn) from None

    def send(self, data: bytes | bytearray | memoryview) -> int:
        try:
            return self._conn.send(data)
        except SSL.Error as e:
            raise _translated(e, self._conn) from None

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.send(view):]

    def version(self) -> str | None:
        return self._conn.get_protocol_version_name()

    def close(self) -> None:
        self._sock.close()


def _translated(error: SSL.Error, conn: SSL.Connection) -> OSError:
    """pyOpenSSL's error as Python's ssl raises it, with ssl's wording."""
    if isinstance(error, SSL.WantReadError):
        return ssl.SSLWantReadError("The operation did not complete (read)")
    if isinstance(error, SSL.WantWriteError):
        return ssl.SSLWantWriteError("The operation did not complete (write)")
    if isinstance(error, SSL.SysCallError):
        code, text = error.args if len(error.args) == 2 else (-1, str(error))
        if code == -1 or code == 0:  # the peer closed the TCP connection mid-TLS
            return ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF occurred in violation of protocol")
        return OSError(code, text)
    reasons = [r for (_lib_name, _func, r) in (error.args[0] if error.args and isinstance(
        error.args[0], list) else [])]
    if "certificate verify failed" in reasons:
        result = _lib.SSL_get_verify_result(conn._ssl)
        why = _ffi.string(_lib.X509_verify_cert_error_string(result)).decode()
        err = ssl.SSLCertVerificationError(
            1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {why}")
        err.verify_code, err.verify_message = result, why
        return err
    if "unexpected eof while reading" in reasons:
        return ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF "
                               "occurred in violation of protocol")
    text = "; ".join(reasons) or str(error)
    return ssl.SSLError(1, f"[SSL: {text.upper().replace(' ', '_')}] {text}")
